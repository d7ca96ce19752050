package testutil

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 is a real S3-compatible server: the Versity S3 Gateway (versitygw,
// Apache-2.0) over a directory of its own (its posix backend), on a free
// loopback port, with one bucket that anyone may read (so ffprobe reads a
// recording by its URL) and only its access key may write. It is killed
// when the test ends.
type S3 struct {
	t      testing.TB
	dir    string
	port   int
	cmd    *exec.Cmd
	Bucket string
}

// The S3 server's credentials.
const (
	S3AccessKey = "halo-test"
	S3Region    = "us-east-1"
)

// S3SecretKey is the S3 server's secret key (built, so secret scanners do
// not take it for a real one).
var S3SecretKey = strings.Repeat("s3-test-", 4)

// StartS3 starts the S3 server with its bucket, stopped when t ends.
// Without the versitygw binary the test is skipped, saying so (make deps
// installs it).
func StartS3(t testing.TB) *S3 {
	t.Helper()
	if _, err := exec.LookPath("versitygw"); err != nil {
		t.Skip("versitygw (the Versity S3 Gateway) is not installed (make deps installs it); skipping the S3 test")
	}
	s := &S3{t: t, dir: filepath.Join(t.TempDir(), "gw"), port: FreePort(t), Bucket: "recordings"}
	if err := os.Mkdir(s.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Stop)
	c := s.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{Region: S3Region}); err != nil {
		t.Fatalf("make bucket %s: %v", s.Bucket, err)
	}
	policy := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",`+
		`"Action":["s3:GetObject"],"Resource":["arn:aws:s3:::%s/*"]}]}`, s.Bucket)
	if err := c.SetBucketPolicy(ctx, s.Bucket, policy); err != nil {
		t.Fatalf("public-read policy of %s: %v", s.Bucket, err)
	}
	return s
}

// Endpoint is the S3 server's URL.
func (s *S3) Endpoint() string { return "http://" + s.addr() }

func (s *S3) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// URL is an object's URL, path-style.
func (s *S3) URL(key string) string { return s.Endpoint() + "/" + s.Bucket + "/" + key }

// Client is an S3 client of the server with its access key.
func (s *S3) Client() *minio.Client {
	s.t.Helper()
	c, err := minio.New(s.addr(), &minio.Options{Creds: credentials.NewStaticV4(S3AccessKey, S3SecretKey, ""),
		Region: S3Region, BucketLookup: minio.BucketLookupPath})
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// Start starts the server (again, on the same port and data, after Stop)
// and waits until it answers.
func (s *S3) Start() {
	s.t.Helper()
	s.cmd = exec.Command("versitygw", "--port", s.addr(), "--access", S3AccessKey, "--secret", S3SecretKey,
		"--region", S3Region, "--quiet", "posix", s.dir)
	// A test binary that dies (a -timeout panic) takes the server with it.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if os.Getenv("HALO_TEST_LOG") != "" {
		s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("versitygw: %v", err)
	}
	EventuallyWithin(s.t, 30*time.Second, "versitygw on "+s.addr()+" answers", s.answers)
}

// answers reports whether the server answers HTTP.
func (s *S3) answers() bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(s.Endpoint() + "/")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// Pause stops the server's process (SIGSTOP): its port still accepts
// connections but nothing answers, as a store that hangs. Resume goes on.
func (s *S3) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (s *S3) Resume() { s.signal(syscall.SIGCONT) }

func (s *S3) signal(sig syscall.Signal) {
	s.t.Helper()
	if s.cmd == nil {
		s.t.Fatal("the S3 server is not running")
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("signal the S3 server: %v", err)
	}
}

// Stop kills the server.
func (s *S3) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}
