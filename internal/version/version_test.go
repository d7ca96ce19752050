package version

import (
	"runtime/debug"
	"testing"
)

// The linker-stamped values win; the go command's VCS stamp fills what the
// linker did not set; a build that knows nothing says so.
func TestResolve(t *testing.T) {
	vcs := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.modified", Value: "true"},
	}}
	cases := []struct {
		name            string
		version, commit string
		bi              *debug.BuildInfo
		want            Info
	}{
		{"stamped", "v1.2.0", "feedface", vcs, Info{"v1.2.0", "feedface", "go1.26.0"}},
		{"vcs fallback", "", "", vcs, Info{"devel", "0123456789abcdef0123456789abcdef01234567+dirty", "go1.26.0"}},
		{"module version", "", "", &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.3.0"}},
			Info{"v1.3.0", "unknown", "go1.26.0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := resolve(c.version, c.commit, c.bi); got != c.want {
				t.Errorf("resolve = %+v, want %+v", got, c.want)
			}
		})
	}
	if got := resolve("", "", nil); got.Version != "devel" || got.Commit != "unknown" || got.Go == "" {
		t.Errorf("no build info: %+v", got)
	}
}
