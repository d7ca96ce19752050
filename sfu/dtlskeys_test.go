package sfu

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/srtp/v3"
	"github.com/pion/webrtc/v4"
)

// If this fails, a Pion upgrade moved what dtlskeys.go reads: viewers
// would stay on Pion's path (no lean path, no hand-over). Look for an
// exported way to the DTLS connection's keys and role in the new version
// (see the comment at the top of dtlskeys.go), or adapt the check.
func TestDTLSKeys_PionLayoutStillHasTheConnField(t *testing.T) {
	if pionDTLS.err != nil {
		t.Fatalf("Pion's layout changed: %v", pionDTLS.err)
	}
	f, ok := reflect.TypeFor[webrtc.DTLSTransport]().FieldByName("conn")
	if !ok || f.Offset != pionDTLS.connOffset {
		t.Fatalf("conn field %+v, offset in use %d", f, pionDTLS.connOffset)
	}
	if !pionDTLS.usable(slog.Default()) {
		t.Fatal("the check passed but the keys are not usable")
	}
}

func TestDTLSKeys_GuardRejectsAChangedLayout(t *testing.T) {
	type renamed struct{ Conn *dtls.Conn }
	type retyped struct{ conn *dtls.State }
	type gone struct{ other int }
	type inner struct{ conn *dtls.Conn }
	type promoted struct {
		x int
		inner
	}
	for _, typ := range []reflect.Type{reflect.TypeFor[renamed](), reflect.TypeFor[retyped](),
		reflect.TypeFor[gone](), reflect.TypeFor[promoted](), reflect.TypeFor[*webrtc.DTLSTransport]()} {
		if _, err := connFieldOffset(typ); !errors.Is(err, errNoDTLSConn) {
			t.Errorf("%s: err %v, want errNoDTLSConn", typ, err)
		}
	}
	type moved struct {
		x    int64
		conn *dtls.Conn
	}
	if off, err := connFieldOffset(reflect.TypeFor[moved]()); err != nil || off != unsafe.Offsetof(moved{}.conn) {
		t.Errorf("moved: offset %d, err %v", off, err)
	}

	// A failed check keeps every viewer off the lean path and says so,
	// once.
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	broken := &pionDTLSLayout{err: errors.New("no conn field")}
	for range 3 {
		if broken.usable(log) {
			t.Fatal("a failed check left the keys usable")
		}
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Errorf("%d errors logged, want 1:\n%s", n, logs.String())
	}
	if _, err := broken.conn(&webrtc.DTLSTransport{}); err == nil {
		t.Error("a failed check still reads the field")
	}
}

func TestDTLSKeys_NoConnectionBeforeTheHandshake(t *testing.T) {
	pc := testutil.LoopbackPeer(t, testutil.PeerOptions{})
	if _, err := dtlsKeys(pc.SCTP().Transport()); !errors.Is(err, errNoDTLSConn) {
		t.Fatalf("err %v, want errNoDTLSConn", err)
	}
}

// Two Pion peers shake hands; the keys read from each end must mirror each
// other, and the answerer must be the DTLS client (Pion's default answering
// role, the engine's with a WHEP viewer). Once for each SRTP profile the
// engine offers.
func TestDTLSKeys_BothEndsOfAHandshakeAgree(t *testing.T) {
	for _, prof := range []dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80} {
		t.Run(fmt.Sprintf("%#04x", uint16(prof)), func(t *testing.T) { bothEndsAgree(t, prof) })
	}
}

func bothEndsAgree(t *testing.T, prof dtls.SRTPProtectionProfile) {
	offerer, answerer := dtlsKeysPeer(t, prof), dtlsKeysPeer(t, prof)
	if _, err := offerer.CreateDataChannel("keys", nil); err != nil {
		t.Fatal(err)
	}
	up := func(pc *webrtc.PeerConnection) chan struct{} {
		c := make(chan struct{})
		var once sync.Once
		pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
			if s == webrtc.PeerConnectionStateConnected {
				once.Do(func() { close(c) })
			}
		})
		return c
	}
	offUp, ansUp := up(offerer), up(answerer)
	dtlsKeysSignal(t, offerer, answerer)
	for _, c := range []chan struct{}{offUp, ansUp} {
		select {
		case <-c:
		case <-time.After(10 * time.Second):
			t.Fatal("the peers did not connect")
		}
	}

	read := func(pc *webrtc.PeerConnection) (*leanKeys, bool) {
		t.Helper()
		conn, err := pionDTLS.conn(pc.SCTP().Transport())
		if err != nil {
			t.Fatal(err)
		}
		k, client, err := keysFromConn(conn)
		if err != nil {
			t.Fatal(err)
		}
		if k2, err := dtlsKeys(pc.SCTP().Transport()); err != nil || !bytes.Equal(k2.key, k.key) {
			t.Fatalf("dtlsKeys: %v", err)
		}
		return k, client
	}
	ok, oClient := read(offerer)
	ak, aClient := read(answerer)
	if oClient || !aClient {
		t.Fatalf("offerer client %v, answerer client %v: want the answerer to be the DTLS client", oClient, aClient)
	}
	want := map[dtls.SRTPProtectionProfile]srtp.ProtectionProfile{
		dtls.SRTP_AEAD_AES_128_GCM:       srtp.ProtectionProfileAeadAes128Gcm,
		dtls.SRTP_AES128_CM_HMAC_SHA1_80: srtp.ProtectionProfileAes128CmHmacSha1_80,
	}[prof]
	if ok.profile != want || ak.profile != want {
		t.Fatalf("profiles %v and %v, want %v", ok.profile, ak.profile, want)
	}
	if len(ok.key) == 0 || !bytes.Equal(ok.key, ak.remoteKey) || !bytes.Equal(ok.salt, ak.remoteSalt) ||
		!bytes.Equal(ok.remoteKey, ak.key) || !bytes.Equal(ok.remoteSalt, ak.salt) || bytes.Equal(ok.key, ok.remoteKey) {
		t.Fatal("the two ends' keys do not mirror each other")
	}
}

// dtlsKeysPeer is a Pion peer on loopback that offers only the SRTP
// profile prof.
func dtlsKeysPeer(t *testing.T, prof dtls.SRTPProtectionProfile) *webrtc.PeerConnection {
	t.Helper()
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetSRTPProtectionProfiles(prof)
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// dtlsKeysSignal runs one offer and answer between two peers, with all their
// candidates.
func dtlsKeysSignal(t *testing.T, offerer, answerer *webrtc.PeerConnection) {
	t.Helper()
	offer, err := offerer.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(offerer)
	if err := offerer.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	if err := answerer.SetRemoteDescription(*offerer.LocalDescription()); err != nil {
		t.Fatal(err)
	}
	answer, err := answerer.CreateAnswer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered = webrtc.GatheringCompletePromise(answerer)
	if err := answerer.SetLocalDescription(answer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	if err := offerer.SetRemoteDescription(*answerer.LocalDescription()); err != nil {
		t.Fatal(err)
	}
}
