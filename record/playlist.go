package record

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bluenviron/gohlslib/v2/pkg/playlist"
)

// maxPlaylistBytes bounds a playlist read from the muxer.
const maxPlaylistBytes = 1 << 20

// errNotPlaylist is a playlist of the other kind, or none.
var errNotPlaylist = errors.New("record: not the expected kind of playlist")

// parseMultivariant reads the muxer's index.m3u8: the URIs of its media
// playlists (the variant's, then each rendition's), without their query.
func parseMultivariant(b []byte) (*playlist.Multivariant, []string, error) {
	if len(b) > maxPlaylistBytes {
		return nil, nil, fmt.Errorf("record: multivariant playlist of %d bytes: %w", len(b), errNotPlaylist)
	}
	pl, err := playlist.Unmarshal(b)
	if err != nil {
		return nil, nil, fmt.Errorf("record: multivariant playlist: %w", err)
	}
	mv, ok := pl.(*playlist.Multivariant)
	if !ok || len(mv.Variants) == 0 {
		return nil, nil, errNotPlaylist
	}
	var uris []string
	add := func(u string) error {
		u = stripQuery(u)
		if !safeName(u) {
			return fmt.Errorf("record: media playlist URI %q: %w", u, errNotPlaylist)
		}
		for _, x := range uris {
			if x == u {
				return nil
			}
		}
		uris = append(uris, u)
		return nil
	}
	if err := add(mv.Variants[0].URI); err != nil {
		return nil, nil, err
	}
	for _, r := range mv.Renditions {
		if r.URI != nil {
			if err := add(*r.URI); err != nil {
				return nil, nil, err
			}
		}
	}
	return mv, uris, nil
}

// parseMedia reads one of the muxer's media playlists.
func parseMedia(b []byte) (*playlist.Media, error) {
	if len(b) > maxPlaylistBytes {
		return nil, fmt.Errorf("record: media playlist of %d bytes: %w", len(b), errNotPlaylist)
	}
	pl, err := playlist.Unmarshal(b)
	if err != nil {
		return nil, fmt.Errorf("record: media playlist: %w", err)
	}
	m, ok := pl.(*playlist.Media)
	if !ok {
		return nil, errNotPlaylist
	}
	if m.Map == nil {
		return nil, fmt.Errorf("record: media playlist without EXT-X-MAP: %w", errNotPlaylist)
	}
	return m, nil
}

// stripQuery is u without its query (a signed URL's exp and sig).
func stripQuery(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i]
	}
	return u
}

// safeName reports whether name is a plain file name the recording may
// use as the last part of an object key.
func safeName(name string) bool {
	if name == "" || len(name) > 128 || name == "." || name == ".." {
		return false
	}
	for _, c := range name {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// objectName is the name a muxer's file gets in the recording: without
// the muxer's random prefix ("3f2a_video1_seg9.mp4" is "video1_seg9.mp4").
func objectName(file string) string {
	file = stripQuery(file)
	if i := strings.IndexByte(file, '_'); i > 0 && i < len(file)-1 {
		return file[i+1:]
	}
	return file
}

// segment is one media segment of a recorded stream.
type segment struct {
	name     string
	duration time.Duration
	state    segState
}

type segState uint8

const (
	segPending segState = iota
	segUploaded
	segDropped
)

// renderMedia writes a stream's playlist of the segments uploaded so far:
// EVENT while recording, VOD with EXT-X-ENDLIST once final. A dropped
// segment leaves a discontinuity.
func renderMedia(initName string, segs []*segment, final bool) ([]byte, error) {
	typ := playlist.MediaPlaylistType("EVENT")
	if final {
		typ = "VOD"
	}
	pl := &playlist.Media{Version: 7, PlaylistType: &typ, Map: &playlist.MediaMap{URI: initName}, Endlist: final, IndependentSegments: true}
	target := 1
	gap := false
	for _, s := range segs {
		switch s.state {
		case segDropped:
			gap = true
			continue
		case segPending:
			continue
		}
		if d := int((s.duration + time.Second - 1) / time.Second); d > target {
			target = d
		}
		pl.Segments = append(pl.Segments, &playlist.MediaSegment{Duration: s.duration, URI: s.name, Discontinuity: gap && len(pl.Segments) > 0})
		gap = false
	}
	pl.TargetDuration = target
	if len(pl.Segments) == 0 {
		// gohlslib's Marshal needs no segment; a player waits for more.
		return []byte(fmt.Sprintf("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-PLAYLIST-TYPE:%s\n#EXT-X-MAP:URI=\"%s\"\n%s", typ, initName, endlist(final))), nil
	}
	b, err := pl.Marshal()
	if err != nil {
		return nil, fmt.Errorf("record: marshal a media playlist: %w", err)
	}
	return b, nil
}

func endlist(final bool) string {
	if final {
		return "#EXT-X-ENDLIST\n"
	}
	return ""
}

// renderIndex is the muxer's multivariant playlist with its URIs made
// the recording's (no query).
func renderIndex(mv *playlist.Multivariant) ([]byte, error) {
	c := *mv
	c.Variants = nil
	for _, v := range mv.Variants {
		x := *v
		x.URI = stripQuery(x.URI)
		c.Variants = append(c.Variants, &x)
	}
	c.Renditions = nil
	for _, r := range mv.Renditions {
		x := *r
		if r.URI != nil {
			u := stripQuery(*r.URI)
			x.URI = &u
		}
		c.Renditions = append(c.Renditions, &x)
	}
	b, err := c.Marshal()
	if err != nil {
		return nil, fmt.Errorf("record: marshal the multivariant playlist: %w", err)
	}
	return b, nil
}
