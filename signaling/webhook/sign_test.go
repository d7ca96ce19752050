package webhook

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

// The Standard Webhooks specification's published test vector
// (libraries/go/webhook_test.go, TestWebhookSign, of
// github.com/standard-webhooks/standard-webhooks).
const (
	vectorSecret    = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorBody      = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSigner_SignsTheSpecsTestVector(t *testing.T) {
	s, err := NewSigner(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Sign(vectorID, time.Unix(vectorTimestamp, 0), []byte(vectorBody)); got != vectorSignature {
		t.Fatalf("signature %s, want %s", got, vectorSignature)
	}
}

func TestSigner_VerifiesAsTheSpecsReceiver(t *testing.T) {
	s, err := NewSigner(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(vectorTimestamp, 0)
	const tolerance = 5 * time.Minute
	valid := func() http.Header {
		h := http.Header{}
		h.Set(HeaderID, vectorID)
		h.Set(HeaderTimestamp, strconv.Itoa(vectorTimestamp))
		h.Set(HeaderSignature, vectorSignature)
		return h
	}
	for _, tc := range []struct {
		name   string
		change func(h http.Header)
		at     time.Time
		want   error
	}{
		{"valid", func(http.Header) {}, now, nil},
		{"missing id", func(h http.Header) { h.Del(HeaderID) }, now, ErrMissingHeaders},
		{"missing timestamp", func(h http.Header) { h.Del(HeaderTimestamp) }, now, ErrMissingHeaders},
		{"missing signature", func(h http.Header) { h.Del(HeaderSignature) }, now, ErrMissingHeaders},
		{"other signature", func(h http.Header) { h.Set(HeaderSignature, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=") }, now, ErrBadSignature},
		{"too old", func(http.Header) {}, now.Add(tolerance + time.Second), ErrBadTimestamp},
		{"too new", func(http.Header) {}, now.Add(-tolerance - time.Second), ErrBadTimestamp},
		{"not a number", func(h http.Header) { h.Set(HeaderTimestamp, "x") }, now, ErrBadTimestamp},
		{"other id", func(h http.Header) { h.Set(HeaderID, "msg_other") }, now, ErrBadSignature},
		{"several, one valid", func(h http.Header) {
			h.Set(HeaderSignature, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= "+vectorSignature)
		}, now, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := valid()
			tc.change(h)
			if err := s.Verify(h, []byte(vectorBody), tc.at, tolerance); err != tc.want {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestNewSigner_RefusesBadSecrets(t *testing.T) {
	for _, secret := range []string{"", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_", "whsec_!!!!", "whsec_c2hvcnQ="} {
		if _, err := NewSigner(secret); err == nil {
			t.Errorf("NewSigner(%q) accepted", secret)
		}
	}
}
