package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pion/webrtc/v4"
)

// h264Only is a WHIP/WHEP server of another kind, as small ones are: one
// fixed endpoint each (no room in the URL), no token, H.264 and Opus only,
// a Location that is the endpoint itself, every WHEP viewer fed the last
// WHIP publisher's tracks. It records what a server would notice of the
// load tester: authorization headers and requests other than POST.
type h264Only struct {
	api          *webrtc.API
	video, audio *webrtc.TrackLocalStaticRTP
	authHeaders  atomic.Int64
	otherMethods atomic.Int64

	mu  sync.Mutex
	pcs []*webrtc.PeerConnection
	wg  sync.WaitGroup
}

func newH264Only(t *testing.T) string {
	t.Helper()
	m := &webrtc.MediaEngine{}
	for _, c := range []struct {
		codec webrtc.RTPCodecParameters
		kind  webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264, ClockRate: 90000}, PayloadType: 96}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 97}, webrtc.RTPCodecTypeAudio},
	} {
		if err := m.RegisterCodec(c.codec, c.kind); err != nil {
			t.Fatal(err)
		}
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	s := &h264Only{api: webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se))}
	var err error
	if s.video, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeH264}, "video", "other"); err != nil {
		t.Fatal(err)
	}
	if s.audio, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus}, "audio", "other"); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/whip", func(w http.ResponseWriter, r *http.Request) { s.serve(t, w, r, true) })
	mux.HandleFunc("/whep", func(w http.ResponseWriter, r *http.Request) { s.serve(t, w, r, false) })
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		s.mu.Lock()
		for _, pc := range s.pcs {
			_ = pc.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
		if n := s.authHeaders.Load(); n != 0 {
			t.Errorf("%d requests carried an Authorization header, though no token was given", n)
		}
		if n := s.otherMethods.Load(); n != 0 {
			t.Errorf("%d requests other than POST reached the fixed endpoints (a DELETE to a Location that names no session)", n)
		}
	})
	return srv.URL
}

func (s *h264Only) serve(t *testing.T, w http.ResponseWriter, r *http.Request, publish bool) {
	if r.Header.Get("Authorization") != "" {
		s.authHeaders.Add(1)
	}
	if r.Method != http.MethodPost {
		s.otherMethods.Add(1)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	offer, _ := io.ReadAll(r.Body)
	pc, err := s.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	s.pcs = append(s.pcs, pc)
	s.mu.Unlock()
	if publish {
		pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			out := s.audio
			if tr.Kind() == webrtc.RTPCodecTypeVideo {
				out = s.video
			}
			for {
				p, _, err := tr.ReadRTP()
				if err != nil {
					return
				}
				p.Header.Extensions, p.Header.Extension = nil, false
				_ = out.WriteRTP(p)
			}
		})
	} else {
		for _, tr := range []*webrtc.TrackLocalStaticRTP{s.video, s.audio} {
			sender, err := pc.AddTrack(tr)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				buf := make([]byte, 1500)
				for {
					if _, _, err := sender.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	answer, err := pc.CreateAnswer(nil)
	if err == nil {
		err = pc.SetLocalDescription(answer)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	<-gathered
	w.Header().Set("Location", r.URL.Path)
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, pc.LocalDescription().SDP)
}

// The load pointed at a WHIP/WHEP server of another kind (fixed endpoints,
// no token, H.264 only, a Location without a session): with --codec h264
// and no credentials every viewer gets media, no token is sent, and the
// end of the run sends no DELETE to the endpoints.
func TestRun_AnotherWHIPWHEPServer(t *testing.T) {
	base := newH264Only(t)
	out := filepath.Join(t.TempDir(), "other.json")
	code, stdout, stderr := runCmd(t, context.Background(), "--whip", base+"/whip", "--whep", base+"/whep",
		"--codec", "h264", "--viewers", "3", "--ramp", "20", "--duration", "2s", "--bitrate", "400000", "--json", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	rep := readJSON(t, out)
	if rep.Viewers.Connected != 3 || rep.Received.Keyframes == 0 || rep.Received.AudioPackets == 0 || rep.Measures.LatencyMS.N == 0 {
		t.Fatalf("viewers %+v received %+v latency %+v", rep.Viewers, rep.Received, rep.Measures.LatencyMS)
	}
}
