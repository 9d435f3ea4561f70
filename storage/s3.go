package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Options configures s3:// stores for callers that take the settings from
// flags. A setting in the URL's query wins over the same field here, and a
// field here wins over the standard AWS environment variables; zero fields
// mean "not set".
type S3Options struct {
	// Endpoint is host:port or http(s)://host:port; default
	// AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL, then s3.amazonaws.com.
	Endpoint string
	// Region is the bucket's region; default AWS_REGION, then
	// AWS_DEFAULT_REGION, then asked of the server.
	Region string
	// Insecure selects plain HTTP.
	Insecure bool
	// AccessKeyID, SecretAccessKey and SessionToken are the credentials;
	// default AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN.
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	// PartSize is the multipart upload part size; objects larger than it
	// are uploaded in parts. Default 16 MiB, at least 5 MiB.
	PartSize uint64
	// Timeout bounds connecting, and waiting for the headers of each
	// response, and the check that the bucket exists in Open. Default 30s.
	Timeout time.Duration
	// MaxRetries is how many times a failed request is tried. Default 3.
	MaxRetries int
	// TempDir is where Put buffers an object while hashing it. Default
	// os.TempDir().
	TempDir string
}

const (
	defaultPartSize   = 16 << 20
	minPartSize       = 5 << 20
	defaultS3Timeout  = 30 * time.Second
	defaultMaxRetries = 3
	// sumMetaKey is the user metadata (x-amz-meta-eddy-sha256) holding an
	// object's SHA-256. An object without it is not published.
	sumMetaKey = "eddy-sha256"
)

// OpenWith is Open with settings for s3:// URLs; other URLs ignore them.
func OpenWith(ctx context.Context, rawURL string, o S3Options) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("storage url %q: %w", rawURL, err)
	}
	if u.Scheme != "s3" {
		return Open(ctx, rawURL)
	}
	return openS3(ctx, u, o)
}

// s3Store keeps objects in a bucket under a key prefix. Put uploads the
// object with its checksum in the same request, so an object is visible with
// its checksum or not at all.
type s3Store struct {
	client   *minio.Client
	bucket   string
	prefix   string // "" or "a/b", without slashes at the ends
	endpoint string // host:port
	region   string
	insecure bool
	partSize uint64
	tempDir  string
}

// s3Query are the query parameters of an s3:// URL. Credentials are
// deliberately not among them: URLs end up in logs and in checkpoint
// metadata.
var s3Query = map[string]bool{"endpoint": true, "region": true, "insecure": true}

func openS3(ctx context.Context, u *url.URL, o S3Options) (Store, error) {
	redacted := u.Redacted()
	if u.User != nil {
		return nil, fmt.Errorf("s3 url %q: credentials do not belong in URLs; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", redacted)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("s3 url %q: missing bucket, want s3://bucket/prefix", redacted)
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		if err := validName(prefix); err != nil {
			return nil, fmt.Errorf("s3 url %q: prefix: %w", redacted, err)
		}
	}
	q := u.Query()
	for k := range q {
		if !s3Query[k] {
			return nil, fmt.Errorf("s3 url %q: unknown parameter %q, want endpoint, region or insecure (credentials come from the environment)", redacted, k)
		}
		if len(q[k]) > 1 {
			return nil, fmt.Errorf("s3 url %q: parameter %q given more than once", redacted, k)
		}
	}
	if v := q.Get("endpoint"); v != "" {
		o.Endpoint = v
	}
	if v := q.Get("region"); v != "" {
		o.Region = v
	}
	if v := q.Get("insecure"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("s3 url %q: insecure=%q: want true or false", redacted, v)
		}
		o.Insecure = b
	}
	o.Endpoint = firstNonEmpty(o.Endpoint, os.Getenv("AWS_ENDPOINT_URL_S3"), os.Getenv("AWS_ENDPOINT_URL"), "s3.amazonaws.com")
	o.Region = firstNonEmpty(o.Region, os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION"))
	if o.PartSize == 0 {
		o.PartSize = defaultPartSize
	}
	if o.PartSize < minPartSize {
		return nil, fmt.Errorf("s3 part size %d: want at least %d (5 MiB)", o.PartSize, minPartSize)
	}
	if o.Timeout <= 0 {
		o.Timeout = defaultS3Timeout
	}
	if o.MaxRetries <= 0 {
		o.MaxRetries = defaultMaxRetries
	}

	endpoint := o.Endpoint
	if strings.Contains(endpoint, "://") {
		eu, err := url.Parse(endpoint)
		if err != nil || eu.Host == "" || (eu.Scheme != "http" && eu.Scheme != "https") {
			return nil, fmt.Errorf("s3 endpoint %q: want host:port or http(s)://host:port", endpoint)
		}
		endpoint = eu.Host
		if eu.Scheme == "http" {
			o.Insecure = true
		}
	}

	var creds *credentials.Credentials
	if o.AccessKeyID != "" || o.SecretAccessKey != "" {
		creds = credentials.NewStaticV4(o.AccessKeyID, o.SecretAccessKey, o.SessionToken)
	} else {
		creds = credentials.NewEnvAWS()
	}
	tr, err := minio.DefaultTransport(!o.Insecure)
	if err != nil {
		return nil, err
	}
	// minio-go's defaults wait 30s to connect and a minute for each
	// response, ten times over: bound them so a dead endpoint fails fast.
	tr.DialContext = (&net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = o.Timeout
	tr.ResponseHeaderTimeout = o.Timeout
	client, err := minio.New(endpoint, &minio.Options{
		Creds:      creds,
		Secure:     !o.Insecure,
		Region:     o.Region,
		Transport:  tr,
		MaxRetries: o.MaxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 endpoint %q: %w", o.Endpoint, err)
	}
	s := &s3Store{
		client:   client,
		bucket:   u.Host,
		prefix:   prefix,
		endpoint: endpoint,
		region:   o.Region,
		insecure: o.Insecure,
		partSize: o.PartSize,
		tempDir:  o.TempDir,
	}

	// Check the bucket now, so a wrong endpoint, bad credentials or a
	// missing bucket are reported by Open and not by the first checkpoint.
	pctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	ok, err := client.BucketExists(pctx, s.bucket)
	if err != nil {
		return nil, s.wrap(fmt.Sprintf("bucket %q", s.bucket), err)
	}
	if !ok {
		return nil, fmt.Errorf("s3 bucket %q does not exist at %s", s.bucket, s.endpointURL())
	}
	return s, nil
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

func (s *s3Store) endpointURL() string {
	if s.insecure {
		return "http://" + s.endpoint
	}
	return "https://" + s.endpoint
}

// wrap names the endpoint and bucket in an error, and says what a denied
// request or a timeout most likely means.
func (s *s3Store) wrap(what string, err error) error {
	where := fmt.Sprintf("s3 %s at %s", what, s.endpointURL())
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "AccessDenied" || resp.Code == "InvalidAccessKeyId" || resp.Code == "SignatureDoesNotMatch" || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("%s: access denied, check the credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY): %w", where, err)
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return fmt.Errorf("%s: no answer in time, is the endpoint right and up?: %w", where, err)
	case isDialError(err):
		return fmt.Errorf("%s: cannot connect, is the endpoint right and up?: %w", where, err)
	}
	return fmt.Errorf("%s: %w", where, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isDialError(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

func isNoSuchKey(err error) bool {
	resp := minio.ToErrorResponse(err)
	return resp.Code == "NoSuchKey" || (resp.StatusCode == http.StatusNotFound && resp.Code != "NoSuchBucket")
}

func (s *s3Store) key(name string) string {
	if s.prefix == "" {
		return name
	}
	return s.prefix + "/" + name
}

// URL keeps the endpoint, region and scheme in the query, so OpenObject
// reaches the same server; credentials come from the environment.
func (s *s3Store) URL(name string) string {
	q := url.Values{}
	q.Set("endpoint", s.endpoint)
	if s.region != "" {
		q.Set("region", s.region)
	}
	if s.insecure {
		q.Set("insecure", "true")
	}
	return (&url.URL{Scheme: "s3", Host: s.bucket, Path: "/" + s.key(name), RawQuery: q.Encode()}).String()
}

// Put buffers the content in a temporary file while hashing it, then
// uploads the file with the checksum in its metadata. The checksum is known
// only at the end of the content, and S3 takes metadata only when an upload
// starts; buffering keeps the upload a single PutObject (multipart above
// PartSize) that publishes content and checksum together, atomically, and
// that overwrites an existing object atomically too. The price is local disk
// for one object at a time per Put.
func (s *s3Store) Put(ctx context.Context, name string, r io.Reader) (Info, error) {
	if err := validName(name); err != nil {
		return Info{}, err
	}
	f, err := os.CreateTemp(s.tempDir, "eddy-s3-put-*")
	if err != nil {
		return Info{}, fmt.Errorf("put %s: buffer: %w", name, err)
	}
	defer func() {
		_ = f.Close()
		_ = os.Remove(f.Name())
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), &ctxReader{ctx: ctx, r: r})
	if err != nil {
		return Info{}, fmt.Errorf("put %s: %w", name, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Info{}, fmt.Errorf("put %s: %w", name, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	_, err = s.client.PutObject(ctx, s.bucket, s.key(name), f, n, minio.PutObjectOptions{
		UserMetadata: map[string]string{sumMetaKey: sum},
		ContentType:  "application/octet-stream",
		PartSize:     s.partSize,
	})
	if err != nil {
		return Info{}, s.wrap("put "+s.URL(name), err)
	}
	return Info{Name: name, Size: n, SHA256: sum}, nil
}

// recordedSum returns the checksum in an object's metadata, or "" for an
// object that was not written by Put.
func recordedSum(oi minio.ObjectInfo) string {
	for k, v := range oi.UserMetadata {
		if strings.EqualFold(k, sumMetaKey) {
			return v
		}
	}
	return ""
}

func (s *s3Store) Stat(ctx context.Context, name string) (Info, error) {
	if err := validName(name); err != nil {
		return Info{}, err
	}
	oi, err := s.client.StatObject(ctx, s.bucket, s.key(name), minio.StatObjectOptions{})
	if isNoSuchKey(err) {
		return Info{}, fmt.Errorf("%s: %w", s.URL(name), ErrNotFound)
	}
	if err != nil {
		return Info{}, s.wrap("stat "+s.URL(name), err)
	}
	sum := recordedSum(oi)
	if sum == "" {
		return Info{}, fmt.Errorf("%s: no checksum metadata: %w", s.URL(name), ErrNotFound)
	}
	return Info{Name: name, Size: oi.Size, SHA256: sum}, nil
}

// Open takes the metadata and the content from one GET, so a concurrent
// overwrite cannot pair one version's checksum with another's content.
func (s *s3Store) Open(ctx context.Context, name string) (io.ReadCloser, Info, error) {
	if err := validName(name); err != nil {
		return nil, Info{}, err
	}
	body, oi, _, err := minio.Core{Client: s.client}.GetObject(ctx, s.bucket, s.key(name), minio.GetObjectOptions{})
	if isNoSuchKey(err) {
		return nil, Info{}, fmt.Errorf("%s: %w", s.URL(name), ErrNotFound)
	}
	if err != nil {
		return nil, Info{}, s.wrap("open "+s.URL(name), err)
	}
	sum := recordedSum(oi)
	if sum == "" {
		_ = body.Close()
		return nil, Info{}, fmt.Errorf("%s: no checksum metadata: %w", s.URL(name), ErrNotFound)
	}
	return newVerifyingReader(body, s.URL(name), sum), Info{Name: name, Size: oi.Size, SHA256: sum}, nil
}

func (s *s3Store) Delete(ctx context.Context, name string) error {
	if err := validName(name); err != nil {
		return err
	}
	err := s.client.RemoveObject(ctx, s.bucket, s.key(name), minio.RemoveObjectOptions{})
	if err != nil && !isNoSuchKey(err) {
		return s.wrap("delete "+s.URL(name), err)
	}
	return nil
}

// List lists the keys under the prefix, then stats each one for its
// checksum, skipping unpublished objects: listings carry no user metadata.
func (s *s3Store) List(ctx context.Context, prefix string) ([]Info, error) {
	base := ""
	if s.prefix != "" {
		base = s.prefix + "/"
	}
	// Returning early must stop the listing goroutine, or it blocks forever.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out []Info
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: base + prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, s.wrap(fmt.Sprintf("list %q in bucket %q", base+prefix, s.bucket), obj.Err)
		}
		name := strings.TrimPrefix(obj.Key, base)
		if validName(name) != nil {
			continue
		}
		info, err := s.Stat(ctx, name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", prefix, err)
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// openS3Object opens an object by the URL s3Store.URL returns; the query
// belongs to the store, not to the object's name.
func openS3Object(ctx context.Context, u *url.URL) (io.ReadCloser, Info, error) {
	i := strings.LastIndex(u.Path, "/")
	if i < 0 || i == len(u.Path)-1 {
		return nil, Info{}, fmt.Errorf("object url %q has no name", u.Redacted())
	}
	storeURL := *u
	storeURL.Path, storeURL.RawPath = u.Path[:i], ""
	st, err := openS3(ctx, &storeURL, S3Options{})
	if err != nil {
		return nil, Info{}, err
	}
	return st.Open(ctx, u.Path[i+1:])
}
