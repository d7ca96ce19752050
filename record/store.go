package record

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// partSize is the part of a multipart upload: objects above it go in
// parts (minio-go's multipart upload), smaller ones in one PUT.
const partSize = 5 << 20

// store is the S3-compatible bucket of the recordings.
type store struct {
	c      *minio.Client
	bucket string
	base   string // the URL of the bucket, for the playlists' URLs
	tags   map[string]string
	meta   map[string]string
}

func newStore(cfg Config) (*store, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("record: recording.s3.endpoint %q is not a URL", cfg.Endpoint)
	}
	lookup, base := minio.BucketLookupPath, strings.TrimSuffix(u.Scheme+"://"+u.Host, "/")+"/"+cfg.Bucket
	if !cfg.PathStyle {
		lookup, base = minio.BucketLookupDNS, u.Scheme+"://"+cfg.Bucket+"."+u.Host
	}
	c, err := minio.New(u.Host, &minio.Options{
		Creds: credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""), Secure: u.Scheme == "https",
		Region: cfg.Region, BucketLookup: lookup,
		MaxRetries: 1, // the queue retries, with its own back-off
	})
	if err != nil {
		return nil, fmt.Errorf("record: S3 client for %s: %w", cfg.Endpoint, err)
	}
	s := &store{c: c, bucket: cfg.Bucket, base: base}
	if cfg.Retention != "" {
		s.tags = map[string]string{"retention": cfg.Retention}
		s.meta = map[string]string{"retention": cfg.Retention}
	}
	return s, nil
}

// attemptTimeout bounds one upload attempt of size bytes: a store that
// accepts connections but does not answer (a stopped process) is retried.
func attemptTimeout(size int64) time.Duration {
	return 10*time.Second + time.Duration(size>>20)*2*time.Second
}

// put uploads one object: multipart above partSize.
func (s *store) put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout(size))
	defer cancel()
	_, err := s.c.PutObject(ctx, s.bucket, key, r, size, minio.PutObjectOptions{
		ContentType: contentType, UserTags: s.tags, UserMetadata: s.meta, PartSize: partSize,
	})
	if err != nil {
		return fmt.Errorf("record: put %s: %w", key, err)
	}
	return nil
}

// url is the object's URL in the store.
func (s *store) url(key string) string { return s.base + "/" + key }
