// Package version tells which build of the server is running: the release
// version, the commit it was built from and the Go toolchain.
//
// A release build stamps version and commit with the linker
// (make build, deploy/Dockerfile):
//
//	go build -ldflags "-X github.com/halobuzz/live/internal/version.version=v1.2.0 \
//	  -X github.com/halobuzz/live/internal/version.commit=$(git rev-parse HEAD)" ./cmd/halo-sfu
//
// Without them the VCS information the go command embeds (go build inside a
// git checkout) is used, so a plain `go build` still names its commit. It
// imports nothing of ours: cmd and signaling both read it.
package version

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Set with -ldflags -X; empty when the build did not set them.
var (
	version string
	commit  string
)

// Info is what a build knows about itself.
type Info struct {
	Version string // release version ("v1.2.0"), or "devel"
	Commit  string // full commit hash, "+dirty" appended for uncommitted changes; "unknown" when nothing told
	Go      string // the Go toolchain, e.g. "go1.26.0"
}

// Get returns the build's Info: the linker-stamped values first, then the
// go command's embedded build information.
func Get() Info {
	return resolve(version, commit, readBuildInfo())
}

func readBuildInfo() *debug.BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return bi
}

// resolve picks each field from the stamped value, else from bi.
func resolve(stampedVersion, stampedCommit string, bi *debug.BuildInfo) Info {
	in := Info{Version: stampedVersion, Commit: stampedCommit, Go: runtime.Version()}
	if bi != nil {
		if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			in.Version = bi.Main.Version
		}
		if in.Commit == "" {
			var rev string
			var dirty bool
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					dirty = s.Value == "true"
				}
			}
			if rev != "" && dirty {
				rev += "+dirty"
			}
			in.Commit = rev
		}
		if bi.GoVersion != "" {
			in.Go = bi.GoVersion
		}
	}
	if in.Version == "" {
		in.Version = "devel"
	}
	if in.Commit == "" {
		in.Commit = "unknown"
	}
	return in
}

// String is the one line `halo-sfu --version` prints.
func (i Info) String() string {
	var b strings.Builder
	b.WriteString("halo-sfu ")
	b.WriteString(i.Version)
	b.WriteString(" commit ")
	b.WriteString(i.Commit)
	b.WriteString(" ")
	b.WriteString(i.Go)
	return b.String()
}
