package hls

import "strings"

// maxNameLen bounds a room or file name in an /hls/ path.
const maxNameLen = 128

// parsePath splits "/hls/{room}/{file}" and checks both names: a room is
// letters, digits, '-', '_' and '.' (not only dots); a file is such a name
// ending in .m3u8 or .mp4.
func parsePath(p string) (room, file string, ok bool) {
	rest, found := strings.CutPrefix(p, "/hls/")
	if !found {
		return "", "", false
	}
	room, file, found = strings.Cut(rest, "/")
	if !found || !validName(room) || !validName(file) || strings.Trim(room, ".") == "" {
		return "", "", false
	}
	if !strings.HasSuffix(file, ".m3u8") && !strings.HasSuffix(file, ".mp4") {
		return "", "", false
	}
	return room, file, true
}

func validName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
