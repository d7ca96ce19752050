package loadtest

import (
	"errors"
	"fmt"
	"slices"
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
	h264  bool
	clock uint32
	nack  bool
}

// leanSection is one m= section of an offer and what we answer to it.
type leanSection struct {
	kind, mid string
	codecs    []leanCodec // those we can receive, in the offer's order
	direction string      // the offer's direction
	tccID     int
	rejected  bool // port 0, or not audio or video
}

// leanCodec is one payload type of a section we can receive.
type leanCodec struct {
	pt       int
	name     string // rtpmap encoding name: VP8, H264, opus
	fmtp     string // parameters, echoed in an answer
	feedback []string
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
		s := leanSection{kind: m.MediaName.Media, direction: "sendrecv"}
		r.read(m.Attributes, &s)
		if m.MediaName.Port.Value == 0 || (s.kind != "video" && s.kind != "audio") || len(s.codecs) == 0 {
			s.rejected = true
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
	fmtps := map[string]string{}
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
		case "fmtp":
			pt, params, _ := strings.Cut(a.Value, " ")
			fmtps[pt] = params
		case "rtcp-fb":
			pt, what, _ := strings.Cut(a.Value, " ")
			fb[pt] = append(fb[pt], what)
		case "rtpmap":
			pt, codec, _ := strings.Cut(a.Value, " ")
			n, err := strconv.Atoi(pt)
			if err != nil || n < 0 || n > 127 {
				continue
			}
			name, rest, _ := strings.Cut(codec, "/")
			clock, _, _ := strings.Cut(rest, "/")
			c, _ := strconv.Atoi(clock)
			h264 := strings.EqualFold(name, "H264")
			if (s.kind == "video" && (strings.EqualFold(name, "VP8") || h264)) || (s.kind == "audio" && strings.EqualFold(name, "opus")) {
				s.codecs = append(s.codecs, leanCodec{pt: n, name: name})
				// Every payload type we can read: an answer may list
				// several, and the server sends its track's.
				r.payloads[uint8(n)] = leanPayload{video: s.kind == "video", h264: h264, clock: uint32(c)}
			}
		}
	}
	if s == nil {
		return
	}
	for i := range s.codecs {
		c := &s.codecs[i]
		pt := strconv.Itoa(c.pt)
		c.fmtp = fmtps[pt]
		for _, f := range fb[pt] {
			if f == "nack" || f == "nack pli" || f == "transport-cc" || f == "ccm fir" {
				c.feedback = append(c.feedback, f)
			}
		}
		if slices.Contains(fb[pt], "nack") {
			p := r.payloads[uint8(c.pt)]
			p.nack = true
			r.payloads[uint8(c.pt)] = p
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
		if !s.rejected {
			mids = append(mids, s.mid)
		}
	}
	var b strings.Builder
	leanSessionHeader(&b, mids)
	for _, s := range r.sections {
		if s.rejected {
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

// leanOffer is the offer of a WHEP viewer: one video section (VP8, then
// H.264 for servers without VP8) and, with audio, one Opus section, both
// receive-only.
func leanOffer(audio bool, l leanLocal) string {
	video := []string{"nack", "nack pli", "transport-cc"}
	sections := []leanSection{{kind: "video", mid: "0", tccID: 3, codecs: []leanCodec{
		{pt: 96, name: "VP8", feedback: video},
		{pt: 102, name: "H264", fmtp: h264Codec.SDPFmtpLine, feedback: video},
	}}}
	if audio {
		sections = append(sections, leanSection{kind: "audio", mid: "1", tccID: 3,
			codecs: []leanCodec{{pt: 111, name: "opus", fmtp: opusCodec.SDPFmtpLine, feedback: []string{"transport-cc"}}}})
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
	pts := make([]string, len(s.codecs))
	for i, c := range s.codecs {
		pts[i] = strconv.Itoa(c.pt)
	}
	fmt.Fprintf(b, "m=%s 9 UDP/TLS/RTP/SAVPF %s\r\nc=IN IP4 0.0.0.0\r\na=mid:%s\r\n", s.kind, strings.Join(pts, " "), s.mid)
	l.transport(b)
	fmt.Fprintf(b, "a=%s\r\na=rtcp-mux\r\n", dir)
	if s.tccID > 0 {
		fmt.Fprintf(b, "a=extmap:%d %s\r\n", s.tccID, sdp.TransportCCURI)
	}
	for _, c := range s.codecs {
		switch {
		case strings.EqualFold(c.name, "opus"):
			fmt.Fprintf(b, "a=rtpmap:%d opus/48000/2\r\n", c.pt)
		default:
			fmt.Fprintf(b, "a=rtpmap:%d %s/90000\r\n", c.pt, c.name)
		}
		if c.fmtp != "" {
			fmt.Fprintf(b, "a=fmtp:%d %s\r\n", c.pt, c.fmtp)
		}
		for _, f := range c.feedback {
			fmt.Fprintf(b, "a=rtcp-fb:%d %s\r\n", c.pt, f)
		}
	}
}
