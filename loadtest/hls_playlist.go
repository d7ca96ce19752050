package loadtest

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// An LL-HLS player's view of playlists (RFC 8216bis): what an HLS viewer
// needs of the multivariant playlist (the video playlist and the audio
// rendition) and of a media playlist (its parts, segments, their
// PROGRAM-DATE-TIME and the server's blocking-reload support). Anything
// else is ignored; a malformed line it needs is an error, never a panic.

// hlsMaxPlaylist bounds a playlist body the viewer reads.
const hlsMaxPlaylist = 1 << 20

// hlsMultivariant is what a viewer takes from index.m3u8.
type hlsMultivariant struct {
	Video string // the first variant's URI
	Audio string // the first audio rendition's URI ("" when muxed or none)
}

// hlsPart is one partial segment: its media sequence number and index in
// its segment, and its start on the wall clock (the segment's
// PROGRAM-DATE-TIME plus the parts before it; zero when unknown).
type hlsPart struct {
	MSN      uint64
	Index    int
	URI      string
	Duration time.Duration
	Start    time.Time
	Gap      bool
}

// hlsMedia is a media playlist.
type hlsMedia struct {
	TargetDuration time.Duration
	PartTarget     time.Duration
	PartHoldBack   time.Duration
	CanBlock       bool
	MediaSequence  uint64
	Map            string
	// Complete is how many segments are complete (MediaSequence to
	// MediaSequence+Complete-1); Parts are every part listed, in order,
	// those of the segment in progress (MSN MediaSequence+Complete) last.
	Complete int
	Parts    []hlsPart
	Preload  string
	End      bool
}

var errNotPlaylist = errors.New("not an HLS playlist (no #EXTM3U)")

// parseHLSMultivariant reads a multivariant playlist.
func parseHLSMultivariant(body string) (hlsMultivariant, error) {
	var m hlsMultivariant
	sc, err := hlsLines(body)
	if err != nil {
		return m, err
	}
	wantURI := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "#EXT-X-STREAM-INF:"):
			wantURI = m.Video == ""
		case strings.HasPrefix(line, "#EXT-X-MEDIA:"):
			a, err := hlsAttrs(line[len("#EXT-X-MEDIA:"):])
			if err != nil {
				return m, fmt.Errorf("EXT-X-MEDIA: %w", err)
			}
			if a["TYPE"] == "AUDIO" && a["URI"] != "" && m.Audio == "" {
				m.Audio = a["URI"]
			}
		case strings.HasPrefix(line, "#"):
		case wantURI:
			m.Video, wantURI = line, false
		}
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if m.Video == "" {
		return m, errors.New("multivariant playlist lists no variant")
	}
	return m, nil
}

// parseHLSMedia reads a media playlist.
func parseHLSMedia(body string) (*hlsMedia, error) {
	sc, err := hlsLines(body)
	if err != nil {
		return nil, err
	}
	m := &hlsMedia{}
	var pending []hlsPart // parts of the segment not closed yet
	var pdt time.Time     // its PROGRAM-DATE-TIME, when given
	var next time.Time    // where it starts by the segments before it
	var extinf time.Duration
	inf := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		tag, val, _ := strings.Cut(line, ":")
		switch {
		case line == "":
		case tag == "#EXT-X-TARGETDURATION":
			d, err := hlsSeconds(val)
			if err != nil {
				return nil, fmt.Errorf("EXT-X-TARGETDURATION: %w", err)
			}
			m.TargetDuration = d
		case tag == "#EXT-X-MEDIA-SEQUENCE":
			n, err := strconv.ParseUint(val, 10, 63)
			if err != nil {
				return nil, fmt.Errorf("EXT-X-MEDIA-SEQUENCE: %w", err)
			}
			m.MediaSequence = n
		case tag == "#EXT-X-PART-INF":
			a, err := hlsAttrs(val)
			if err != nil {
				return nil, fmt.Errorf("EXT-X-PART-INF: %w", err)
			}
			if m.PartTarget, err = hlsSeconds(a["PART-TARGET"]); err != nil {
				return nil, fmt.Errorf("PART-TARGET: %w", err)
			}
		case tag == "#EXT-X-SERVER-CONTROL":
			a, err := hlsAttrs(val)
			if err != nil {
				return nil, fmt.Errorf("EXT-X-SERVER-CONTROL: %w", err)
			}
			m.CanBlock = a["CAN-BLOCK-RELOAD"] == "YES"
			if v, ok := a["PART-HOLD-BACK"]; ok {
				if m.PartHoldBack, err = hlsSeconds(v); err != nil {
					return nil, fmt.Errorf("PART-HOLD-BACK: %w", err)
				}
			}
		case tag == "#EXT-X-MAP":
			a, err := hlsAttrs(val)
			if err != nil {
				return nil, fmt.Errorf("EXT-X-MAP: %w", err)
			}
			m.Map = a["URI"]
		case tag == "#EXT-X-PROGRAM-DATE-TIME":
			t, err := time.Parse(time.RFC3339Nano, val)
			if err != nil {
				return nil, fmt.Errorf("EXT-X-PROGRAM-DATE-TIME: %w", err)
			}
			pdt = t
		case tag == "#EXT-X-PART":
			a, err := hlsAttrs(val)
			if err != nil {
				return nil, fmt.Errorf("EXT-X-PART: %w", err)
			}
			d, err := hlsSeconds(a["DURATION"])
			if err != nil || a["URI"] == "" {
				return nil, fmt.Errorf("EXT-X-PART needs DURATION and URI: %q", val)
			}
			pending = append(pending, hlsPart{Index: len(pending), URI: a["URI"], Duration: d, Gap: a["GAP"] == "YES"})
		case tag == "#EXT-X-PRELOAD-HINT":
			a, err := hlsAttrs(val)
			if err != nil {
				return nil, fmt.Errorf("EXT-X-PRELOAD-HINT: %w", err)
			}
			if a["TYPE"] == "PART" {
				m.Preload = a["URI"]
			}
		case tag == "#EXTINF":
			d, _, _ := strings.Cut(val, ",")
			if extinf, err = hlsSeconds(d); err != nil {
				return nil, fmt.Errorf("EXTINF: %w", err)
			}
			inf = true
		case tag == "#EXT-X-ENDLIST":
			m.End = true
		case strings.HasPrefix(line, "#"):
		default: // a segment's URI closes it
			if !inf {
				return nil, fmt.Errorf("segment %q without EXTINF", line)
			}
			start := m.placeParts(pending, m.MediaSequence+uint64(m.Complete), pdt, next)
			if !start.IsZero() {
				next = start.Add(extinf)
			}
			m.Complete++
			pending, pdt, inf = nil, time.Time{}, false
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	m.placeParts(pending, m.MediaSequence+uint64(m.Complete), pdt, next)
	return m, nil
}

// placeParts adds the parts of segment msn, starting at pdt (or next when
// the playlist gives none), to m.Parts; it returns the segment's start.
func (m *hlsMedia) placeParts(parts []hlsPart, msn uint64, pdt, next time.Time) time.Time {
	start := pdt
	if start.IsZero() {
		start = next
	}
	at := start
	for _, p := range parts {
		p.MSN = msn
		if !at.IsZero() {
			p.Start = at
			at = at.Add(p.Duration)
		}
		m.Parts = append(m.Parts, p)
	}
	return start
}

// nextAfter returns the part that follows (msn, index) in m: found is
// false when m does not list it yet (ask the server for want, blocking).
// behind is set when m no longer lists (msn, index) at all: the viewer
// fell behind the playlist's window.
func (m *hlsMedia) nextAfter(msn uint64, index int) (p hlsPart, found bool, want [2]uint64, behind bool) {
	for i, q := range m.Parts {
		if q.MSN == msn && q.Index == index {
			if i+1 < len(m.Parts) {
				return m.Parts[i+1], true, want, false
			}
			if q.MSN < m.MediaSequence+uint64(m.Complete) { // the last part of a complete segment
				return p, false, [2]uint64{q.MSN + 1, 0}, false
			}
			return p, false, [2]uint64{q.MSN, uint64(q.Index) + 1}, false
		}
	}
	if len(m.Parts) > 0 && (msn < m.Parts[0].MSN || (msn == m.Parts[0].MSN && index < m.Parts[0].Index)) {
		return p, false, want, true
	}
	return p, false, [2]uint64{msn, uint64(index) + 1}, false
}

// find returns the part (msn, index) of m.
func (m *hlsMedia) find(msn uint64, index int) (hlsPart, bool) {
	for _, q := range m.Parts {
		if q.MSN == msn && q.Index == index {
			return q, true
		}
	}
	return hlsPart{}, false
}

func hlsLines(body string) (*bufio.Scanner, error) {
	if len(body) > hlsMaxPlaylist {
		return nil, fmt.Errorf("playlist of %d bytes, more than %d", len(body), hlsMaxPlaylist)
	}
	if !strings.HasPrefix(strings.TrimLeft(body, "\ufeff"), "#EXTM3U") {
		return nil, errNotPlaylist
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 0, 4096), hlsMaxPlaylist)
	return sc, nil
}

// hlsSeconds parses a decimal number of seconds (0 to a day).
func hlsSeconds(s string) (time.Duration, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f < 0 || f > 86400 || f != f {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// hlsAttrs parses an attribute list: NAME=value pairs separated by commas,
// values quoted strings (which may hold commas) or bare words.
func hlsAttrs(s string) (map[string]string, error) {
	out := map[string]string{}
	for len(s) > 0 {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return nil, fmt.Errorf("attribute without a value in %q", s)
		}
		name := strings.TrimSpace(s[:eq])
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("unterminated quoted value of %s", name)
			}
			val, s = s[1:1+end], s[2+end:]
		} else {
			end := strings.IndexByte(s, ',')
			if end < 0 {
				end = len(s)
			}
			val, s = strings.TrimSpace(s[:end]), s[end:]
		}
		out[name] = val
		if len(s) > 0 {
			if s[0] != ',' {
				return nil, fmt.Errorf("expected ',' after %s", name)
			}
			s = s[1:]
		}
	}
	return out, nil
}
