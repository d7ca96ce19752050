package loadtest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// leanRemote is what a lean viewer needs from the server's SDP (offer or
// answer): ICE credentials and candidates, the DTLS fingerprint and setup
// role, and per payload type the kind and clock of what will arrive.
type leanRemote struct {
	ufrag, pwd  string
	fingerprint string // sha-256, as in a=fingerprint, upper case
	setup       string // the remote's a=setup: actpass, active, passive
	candidates  []string
	payloads    map[uint8]leanPayload
	tccID       uint8 // transport-cc header extension id, 0 = not negotiated
	sections    []leanSection
}

// leanPayload is one negotiated payload type.
type leanPayload struct {
	video bool
	clock uint32
	nack  bool
}

// leanSection is one m= section of an offer and what we answer to it.
type leanSection struct {
	kind, mid string
	pt        int    // chosen payload type, -1 = none we can receive
	direction string // the offer's direction
	feedback  []string
	tccID     int
}

var errLeanSDP = errors.New("loadtest: lean viewer: SDP")

// parseLeanRemote reads an offer or answer of the server.
func parseLeanRemote(raw string) (*leanRemote, error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(raw); err != nil {
		return nil, fmt.Errorf("%w: %w", errLeanSDP, err)
	}
	r := &leanRemote{payloads: map[uint8]leanPayload{}}
	r.read(d.Attributes, nil)
	for _, m := range d.MediaDescriptions {
		s := leanSection{kind: m.MediaName.Media, pt: -1, direction: "sendrecv"}
		r.read(m.Attributes, &s)
		if m.MediaName.Port.Value == 0 || (s.kind != "video" && s.kind != "audio") {
			s.pt = -1
		}
		r.sections = append(r.sections, s)
	}
	if r.ufrag == "" || r.pwd == "" || r.fingerprint == "" {
		return nil, fmt.Errorf("%w: no ICE credentials or DTLS fingerprint", errLeanSDP)
	}
	return r, nil
}

// read takes the attributes of one level (session: s nil) into r and s.
func (r *leanRemote) read(attrs []sdp.Attribute, s *leanSection) {
	fb := map[string][]string{}
	for _, a := range attrs {
		switch a.Key {
		case "ice-ufrag":
			r.ufrag = a.Value
		case "ice-pwd":
			r.pwd = a.Value
		case "fingerprint":
			if algo, fp, ok := strings.Cut(a.Value, " "); ok && strings.EqualFold(algo, "sha-256") {
				r.fingerprint = strings.ToUpper(strings.TrimSpace(fp))
			}
		case "setup":
			r.setup = a.Value
		case "candidate":
			r.candidates = append(r.candidates, a.Value)
		}
		if s == nil {
			continue
		}
		switch a.Key {
		case "mid":
			s.mid = a.Value
		case "sendrecv", "sendonly", "recvonly", "inactive":
			s.direction = a.Key
		case "extmap":
			id, uri, _ := strings.Cut(a.Value, " ")
			if strings.HasPrefix(uri, sdp.TransportCCURI) {
				id, _, _ = strings.Cut(id, "/")
				if n, err := strconv.Atoi(id); err == nil && n > 0 && n < 15 {
					s.tccID, r.tccID = n, uint8(n)
				}
			}
		case "rtcp-fb":
			pt, what, _ := strings.Cut(a.Value, " ")
			fb[pt] = append(fb[pt], what)
		case "rtpmap":
			pt, codec, _ := strings.Cut(a.Value, " ")
			n, err := strconv.Atoi(pt)
			if err != nil || n < 0 || n > 127 || s.pt >= 0 {
				continue
			}
			name, rest, _ := strings.Cut(codec, "/")
			clock, _, _ := strings.Cut(rest, "/")
			c, _ := strconv.Atoi(clock)
			if (s.kind == "video" && strings.EqualFold(name, "VP8")) || (s.kind == "audio" && strings.EqualFold(name, "opus")) {
				s.pt = n
				r.payloads[uint8(n)] = leanPayload{video: s.kind == "video", clock: uint32(c)}
			}
		}
	}
	if s != nil && s.pt >= 0 {
		for _, f := range fb[strconv.Itoa(s.pt)] {
			if f == "nack" || f == "nack pli" || f == "transport-cc" || f == "ccm fir" {
				s.feedback = append(s.feedback, f)
			}
			if f == "nack" {
				p := r.payloads[uint8(s.pt)]
				p.nack = true
				r.payloads[uint8(s.pt)] = p
			}
		}
	}
}

// leanLocal is our side of the SDP.
type leanLocal struct {
	ufrag, pwd, fingerprint string
	setup                   string // actpass in an offer, active in an answer
	candidate               string // a=candidate value, or "" (the server learns us from our checks)
}

func (l leanLocal) transport(b *strings.Builder) {
	fmt.Fprintf(b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\na=fingerprint:sha-256 %s\r\na=setup:%s\r\n", l.ufrag, l.pwd, l.fingerprint, l.setup)
	if l.candidate != "" {
		fmt.Fprintf(b, "a=candidate:%s\r\n", l.candidate)
	}
	b.WriteString("a=end-of-candidates\r\n")
}

func leanSessionHeader(b *strings.Builder, mids []string) {
	b.WriteString("v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n")
	if len(mids) > 0 {
		fmt.Fprintf(b, "a=group:BUNDLE %s\r\n", strings.Join(mids, " "))
	}
	b.WriteString("a=msid-semantic: WMS\r\n")
}

// leanAnswer answers an offer of the server: every audio and video section
// it sends is received with VP8 or Opus and the feedback it offers (NACK,
// PLI, transport-cc); anything else is rejected.
func leanAnswer(r *leanRemote, l leanLocal) string {
	var mids []string
	for _, s := range r.sections {
		if s.pt >= 0 {
			mids = append(mids, s.mid)
		}
	}
	var b strings.Builder
	leanSessionHeader(&b, mids)
	for _, s := range r.sections {
		if s.pt < 0 {
			proto := "UDP/TLS/RTP/SAVPF 0"
			if s.kind == "application" {
				proto = "UDP/DTLS/SCTP webrtc-datachannel"
			}
			fmt.Fprintf(&b, "m=%s 0 %s\r\nc=IN IP4 0.0.0.0\r\na=mid:%s\r\na=inactive\r\n", s.kind, proto, s.mid)
			continue
		}
		dir := "recvonly"
		if s.direction == "recvonly" || s.direction == "inactive" {
			dir = "inactive"
		}
		leanMedia(&b, s, dir, l)
	}
	return b.String()
}

// leanOffer is the offer of a WHEP viewer: one VP8 video section and,
// with audio, one Opus section, both receive-only.
func leanOffer(audio bool, l leanLocal) string {
	sections := []leanSection{{kind: "video", mid: "0", pt: 96, feedback: []string{"nack", "nack pli", "transport-cc"}, tccID: 3}}
	if audio {
		sections = append(sections, leanSection{kind: "audio", mid: "1", pt: 111, feedback: []string{"transport-cc"}, tccID: 3})
	}
	var mids []string
	for _, s := range sections {
		mids = append(mids, s.mid)
	}
	var b strings.Builder
	leanSessionHeader(&b, mids)
	for _, s := range sections {
		leanMedia(&b, s, "recvonly", l)
	}
	return b.String()
}

func leanMedia(b *strings.Builder, s leanSection, dir string, l leanLocal) {
	fmt.Fprintf(b, "m=%s 9 UDP/TLS/RTP/SAVPF %d\r\nc=IN IP4 0.0.0.0\r\na=mid:%s\r\n", s.kind, s.pt, s.mid)
	l.transport(b)
	fmt.Fprintf(b, "a=%s\r\na=rtcp-mux\r\n", dir)
	if s.tccID > 0 {
		fmt.Fprintf(b, "a=extmap:%d %s\r\n", s.tccID, sdp.TransportCCURI)
	}
	if s.kind == "video" {
		fmt.Fprintf(b, "a=rtpmap:%d VP8/90000\r\n", s.pt)
	} else {
		fmt.Fprintf(b, "a=rtpmap:%d opus/48000/2\r\na=fmtp:%d minptime=10;useinbandfec=1\r\n", s.pt, s.pt)
	}
	for _, f := range s.feedback {
		fmt.Fprintf(b, "a=rtcp-fb:%d %s\r\n", s.pt, f)
	}
}
