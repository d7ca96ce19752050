package record

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/halobuzz/live/internal/testutil"
	"github.com/minio/minio-go/v7"
)

// testQueue is a queue uploading to s3, with a recording whose spool is a
// temporary directory; stop ends its goroutine.
func testQueue(t *testing.T, s3 *testutil.S3, max int64) (q *queue, r *recording, stop func()) {
	t.Helper()
	st, err := newStore(Config{Endpoint: s3.Endpoint(), Bucket: s3.Bucket, Region: testutil.S3Region, AccessKey: testutil.S3AccessKey,
		SecretKey: testutil.S3SecretKey, PathStyle: true, Retention: "30d"})
	if err != nil {
		t.Fatal(err)
	}
	q = newQueue(st, max, 500*time.Millisecond, slog.New(slog.DiscardHandler))
	r = &recording{m: &Manager{q: q}, dir: t.TempDir(), log: slog.New(slog.DiscardHandler)}
	r.info.Room, r.info.ID, r.base = "q", "test", "q/"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.run(ctx)
	}()
	return q, r, func() { cancel(); <-done }
}

// pushSegment spools a segment of size bytes and queues it.
func pushSegment(t *testing.T, q *queue, r *recording, name string, size int) *segment {
	t.Helper()
	b := bytes.Repeat([]byte{byte(len(name))}, size)
	file, err := r.spool(name, b)
	if err != nil {
		t.Fatal(err)
	}
	s := &segment{name: name, duration: time.Second}
	q.push(&item{rec: r, key: "q/" + name, ctype: "video/mp4", file: file, size: int64(size), seg: s})
	return s
}

// While the store hangs (SIGSTOP), the spool holds what waits up to its
// bound: past it the oldest segments are dropped and counted, the newest
// kept; once the store answers again what was kept is uploaded, in order,
// and the spool is empty (files removed).
func TestQueue_SpoolBoundDropsTheOldestWhileTheStoreHangs(t *testing.T) {
	s3 := testutil.StartS3(t)
	q, r, stop := testQueue(t, s3, 300_000)
	defer stop()
	s3.Pause()
	segs := []*segment{pushSegment(t, q, r, "a.mp4", 100_000)}
	testutil.Eventually(t, "a is in flight", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.busy != nil
	})
	for _, name := range []string{"b.mp4", "c.mp4", "d.mp4", "e.mp4"} {
		segs = append(segs, pushSegment(t, q, r, name, 100_000))
	}
	// a is in flight (its attempt waits on the store): b and c make room.
	if got := q.dropped.Load(); got != 2 {
		t.Fatalf("%d segments dropped, want 2 (the oldest waiting)", got)
	}
	if segs[1].state != segDropped || segs[2].state != segDropped || r.info.Dropped != 2 {
		t.Fatalf("dropped: b %v c %v, recording counts %d", segs[1].state, segs[2].state, r.info.Dropped)
	}
	if got := q.spoolBytes.Load(); got != 300_000 {
		t.Fatalf("spool %d bytes, want 300000 (a, d, e)", got)
	}
	s3.Resume()
	testutil.EventuallyWithin(t, 60*time.Second, "the spool is uploaded", func() bool { return q.pending() == 0 })
	c := s3.Client()
	for i, name := range []string{"a.mp4", "b.mp4", "c.mp4", "d.mp4", "e.mp4"} {
		_, err := c.StatObject(context.Background(), s3.Bucket, "q/"+name, minio.StatObjectOptions{})
		if dropped := i == 1 || i == 2; dropped != (err != nil) {
			t.Errorf("%s: in the store: %v (dropped %v)", name, err == nil, dropped)
		}
	}
	if left, _ := os.ReadDir(r.dir); len(left) != 0 {
		t.Errorf("spool files left: %v", left)
	}
	if q.spoolBytes.Load() != 0 {
		t.Errorf("spool %d bytes after the upload", q.spoolBytes.Load())
	}
}

// An object above the part size goes up in parts (multipart), whole, with
// the retention tag and metadata; a playlist is rendered when its turn
// comes, listing what was uploaded before it.
func TestQueue_LargeObjectMultipartWithRetention(t *testing.T) {
	s3 := testutil.StartS3(t)
	q, r, stop := testQueue(t, s3, 64<<20)
	defer stop()
	big := pushSegment(t, q, r, "big.mp4", partSize+1<<20)
	s := &stream{uri: "v_stream.m3u8", initName: "v_init.mp4", segs: []*segment{big}}
	r.streams = []*stream{s}
	r.pushPlaylist(s, true)
	testutil.EventuallyWithin(t, 60*time.Second, "uploaded", func() bool { return q.pending() == 0 })
	c := s3.Client()
	ctx := context.Background()
	info, err := c.StatObject(ctx, s3.Bucket, "q/big.mp4", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != partSize+1<<20 {
		t.Errorf("size %d, want %d", info.Size, partSize+1<<20)
	}
	if info.UserMetadata["Retention"] != "30d" {
		t.Errorf("metadata %v, want retention 30d", info.UserMetadata)
	}
	tags, err := c.GetObjectTagging(ctx, s3.Bucket, "q/big.mp4", minio.GetObjectTaggingOptions{})
	if err != nil || tags.ToMap()["retention"] != "30d" {
		t.Errorf("tags %v (%v), want retention=30d", tags, err)
	}
	obj, err := c.GetObject(ctx, s3.Bucket, "q/v_stream.m3u8", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(obj)
	obj.Close()
	if !bytes.Contains(b, []byte("\nbig.mp4\n")) || !bytes.HasSuffix(b, []byte("#EXT-X-ENDLIST\n")) {
		t.Errorf("playlist:\n%s", b)
	}
}
