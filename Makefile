# HaloBuzz Live. `make run` starts one node in dev mode; `make test` runs
# everything CI runs.
GO      ?= go
PKGS    := ./...
FUZZTIME ?= 10s

.PHONY: run build test test-netns vet fmt bench bench-server bench-media bench-relay bench-bwe region-sim fuzz deps tools supply-chain clean

run:
	$(GO) run ./cmd/halo-sfu --dev

# build stamps the version (git describe) and the commit into the binaries
# (halo-sfu --version, halo_build_info); outside a git checkout the go
# command's own VCS stamp, or "unknown", is what they report.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X github.com/halobuzz/live/internal/version.version=$(VERSION) -X github.com/halobuzz/live/internal/version.commit=$(COMMIT)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

# deps installs what the tests use when it is missing: Chromium for the web
# page tests, redis-server for the cluster tests, Prometheus for the alert
# and dashboard tests, ffmpeg (ffprobe) for the LL-HLS tests. Needs root
# (CI is root).
deps:
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@# Prometheus (and promtool) for the alert and dashboard tests: without
	@# it those tests skip, saying so, so a failed install does not stop here.
	@if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then \
		echo "installing: prometheus"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		( $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null ) \
			|| echo "deps: Debian's prometheus package could not be installed: the Prometheus tests will be skipped"; \
	fi
	@# ffmpeg's ffprobe is the outside judge of the LL-HLS output: without
	@# it those tests skip, saying so.
	@if ! command -v ffprobe >/dev/null 2>&1; then \
		echo "installing: ffmpeg"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
		( $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends ffmpeg >/dev/null ) \
			|| echo "deps: Debian's ffmpeg package could not be installed: the LL-HLS ffprobe tests will be skipped"; \
	fi
	@# versitygw (the Versity S3 Gateway, Apache-2.0) is the real S3 server of
	@# the recording tests, built from the module proxy (about 1.5 min from a
	@# cold cache); without it those tests skip, saying so.
	@if ! command -v versitygw >/dev/null 2>&1; then \
		echo "installing: versitygw"; \
		if [ "$$(id -u)" = 0 ]; then BIN=/usr/local/bin; else BIN="$$(go env GOPATH)/bin"; fi; \
		( cd / && GOBIN="$$BIN" GOFLAGS=-mod=mod go install github.com/versity/versitygw/cmd/versitygw@v1.8.0 ) \
			|| echo "deps: versitygw could not be built: the recording tests will be skipped"; \
	fi

fmt:
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# test: formatting, vet, every test with the race detector (the packet path,
# signalling and rooms are all concurrent), fuzz seeds included.
test: deps tools fmt vet
	$(GO) test -race -count=1 -timeout 25m $(PKGS)
	@$(MAKE) --no-print-directory test-netns
	@$(MAKE) --no-print-directory supply-chain

# test-netns runs the media tests again inside a fresh network namespace
# whose only interface is lo: loopback ICE must be enough.
test-netns:
	@if command -v ip >/dev/null && unshare --net true 2>/dev/null; then \
		$(GO) test -c -o build/node.test ./internal/node && \
		cd internal/node && unshare --net sh -c 'ip link set lo up && ../../build/node.test -test.count=1 \
			-test.run "TestBroadcast|TestLateJoiner|TestMultiCamera|TestWHIP_PublisherSeen|TestWHEP_Viewer|TestLoss|TestUpstreamLoss"' && \
		echo "netns: media tests pass with only lo"; \
	else echo "netns: unshare not permitted here, skipped"; fi

# tools installs the supply-chain scanners at pinned versions into
# GOPATH/bin (from the Go module proxy), unless that version is there.
GOVULNCHECK_VERSION := v1.9.0
GITLEAKS_VERSION    := v8.21.2
TOOLS_BIN := $(shell $(GO) env GOPATH)/bin
tools:
	@$(GO) version -m $(TOOLS_BIN)/govulncheck 2>/dev/null | grep -q "golang.org/x/vuln[[:space:]]*$(GOVULNCHECK_VERSION)" || \
		{ echo "installing: govulncheck $(GOVULNCHECK_VERSION)"; GOFLAGS= $(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION); }
	@$(GO) version -m $(TOOLS_BIN)/gitleaks 2>/dev/null | grep -q "github.com/zricethezav/gitleaks/v8[[:space:]]*$(GITLEAKS_VERSION)" || \
		{ echo "installing: gitleaks $(GITLEAKS_VERSION)"; GOFLAGS= $(GO) install github.com/zricethezav/gitleaks/v8@$(GITLEAKS_VERSION); }

# supply-chain: the modules match go.sum, no vulnerability the code calls
# (govulncheck; skipped, saying why, only when its database cannot be
# reached), no secret anywhere in the git history (gitleaks, allowlist of
# test fixtures in deploy/gitleaks.toml).
supply-chain: tools
	$(GO) mod verify
	@out="$$($(TOOLS_BIN)/govulncheck ./... 2>&1)"; rc=$$?; \
	if [ $$rc -eq 0 ]; then echo "govulncheck: no vulnerability the code calls"; \
	elif [ $$rc -eq 3 ]; then echo "$$out"; echo "govulncheck: FAILED: the code calls a known vulnerability"; exit 1; \
	elif echo "$$out" | grep -q "fetching vulnerabilities"; then \
		echo "govulncheck: SKIPPED: the vulnerability database cannot be reached from this machine:"; \
		echo "$$out" | grep "fetching vulnerabilities"; \
	else echo "$$out"; echo "govulncheck: FAILED (exit $$rc)"; exit 1; fi
	@if [ "$$(git rev-parse --is-shallow-repository 2>/dev/null)" = true ]; then \
		echo "gitleaks: note: a shallow clone; only the history present is scanned"; fi
	$(TOOLS_BIN)/gitleaks git --no-banner --redact --log-level warn --config deploy/gitleaks.toml .
	@echo "gitleaks: no secret in the history"

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./sfu/ ./signaling/...

# bench-server runs, for each audience size in VIEWERS, a fresh halo-sfu
# (dev mode, its own loopback ports, media on 127.0.0.1) with one WHIP
# publisher (VP8 2.5 Mbit/s + Opus) and that many WHEP viewers of
# halo-loadtest, then BenchmarkFloor, and prints CPU per forwarded packet
# against the floor, RSS and goroutines per viewer, first keyframe and loss
# (docs/benchmarks.md, "make bench-server"). About 1 min per size.
VIEWERS        ?= 100,200
BENCH_DURATION ?= 20s
bench-server: build
	bin/halo-loadtest bench-server --sfu bin/halo-sfu --viewers "$(VIEWERS)" --duration $(BENCH_DURATION) --floor ./sfu/

# bench-media measures the join storm and the NACK flood of
# docs/benchmarks.md against halo-sfu processes (about 1 min per server per
# run). BENCH_SERVERS="before=/abs/path after=/abs/path" compares binaries,
# run by run in turn; BENCH_RUNS runs each (the summary gives the median and
# the spread); BENCH_MAX_LOAD waits before each run (up to 3 min) for the
# 1-minute load average to drop below it.
BENCH_SERVERS  ?= this=$(CURDIR)/bin/halo-sfu
BENCH_RUNS     ?= 3
BENCH_MAX_LOAD ?= 0
# bench-relay measures what a cascade relay hop costs: latency, and CPU per
# relayed packet on the origin and on the edge, two halo-sfu processes on
# one redis-server (needs redis-server; BENCH_RUNS and BENCH_MAX_LOAD as
# above; about 1 min per run).
bench-relay: deps
	HALO_BENCH=1 HALO_BENCH_RUNS=$(BENCH_RUNS) HALO_BENCH_MAX_LOAD=$(BENCH_MAX_LOAD) \
		$(GO) test -count=1 -timeout 30m -run '^TestRelayBench_HopCost$$' -v ./internal/node | grep -v '^=== RUN\|^--- \|^PASS\|^ok'

# region-sim runs a broadcast across three simulated regions (network
# namespaces, 40/120/180 ms between them; needs root and iproute2) and prints
# what each region's viewers get; see docs/operations.md. Flags, e.g.
# REGION_SIM_FLAGS="-viewers 10 -duration 60s".
REGION_SIM_FLAGS ?=
region-sim: deps build
	bin/halo-regionsim -sfu $(CURDIR)/bin/halo-sfu $(REGION_SIM_FLAGS)

# bench-bwe measures how fast viewers' layers follow their link, and what
# bandwidth estimation costs per forwarded packet at 100 viewers.
bench-bwe: build
	HALO_BENCH=1 $(GO) test -count=1 -v -timeout 30m -run '^TestBWEBench_' ./internal/node | grep -v '^=== RUN\|^--- \|^PASS\|^ok'

bench-media: build
	HALO_BENCH=1 HALO_BENCH_SERVERS="$(BENCH_SERVERS)" HALO_BENCH_RUNS=$(BENCH_RUNS) HALO_BENCH_MAX_LOAD=$(BENCH_MAX_LOAD) \
		$(GO) test -count=1 -v -timeout 60m -run '^TestMediaBench_(JoinStorm|NACKFlood)$$' ./internal/node

# fuzz runs each fuzz target for FUZZTIME.
fuzz:
	@for spec in $$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for f in $$(grep -h '^func Fuzz' $$spec/*_test.go | sed 's/func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
			echo "== $$spec $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$spec || exit 1; \
		done; \
	done

clean:
	rm -rf bin build
