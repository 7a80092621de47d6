// Package images gives the process executor the files of OCI images: it
// resolves a reference to a digest, pulls the image (from its registry with
// the user's Docker credentials, or from the local Docker engine), verifies
// cosign-compatible signatures, and extracts the layers into a
// content-addressed cache shared by every pipeline of the user.
//
// # The cache
//
// Dir/sha256/<hex>/ is one image, named by the digest it was asked for (a
// manifest, or an index whose platform image was taken): rootfs/ holds its
// files and image.json what was pulled (Image). An entry is made in a
// temporary folder under Dir/tmp and renamed into place when complete, so
// an entry that exists is whole, and two processes extracting the same
// image at once both end with the same entry. Dir/refs/ remembers which
// digest a tag resolved to when it was last pulled (pull = "missing" and
// "never" look there first).
//
// # Extraction
//
// Layers are applied in order. OCI whiteouts (.wh.NAME, .wh..wh..opq)
// remove what lower layers left. An entry is refused, naming it, when its
// path is absolute or climbs out of the root, when it goes through a
// symbolic link that leads out, when it is a symbolic link or hard link
// whose target is outside the root (an absolute link target counts as
// outside: the component runs on the host, where "/etc" is the host's), when
// it is a device node, or when it carries the setuid or setgid bit.
package images

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// EnvCacheDir overrides the cache folder.
const EnvCacheDir = "FLOWCTL_IMAGE_CACHE"

// Pull policies, as config spells them.
const (
	PullMissing = "missing"
	PullAlways  = "always"
	PullNever   = "never"
)

// DefaultDir is the cache folder: $FLOWCTL_IMAGE_CACHE, else flowctl/images
// under the user's cache folder ($XDG_CACHE_HOME or ~/.cache).
func DefaultDir() (string, error) {
	if d := os.Getenv(EnvCacheDir); d != "" {
		return filepath.Abs(d)
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("image cache: %w (set %s)", err, EnvCacheDir)
	}
	return filepath.Join(base, "flowctl", "images"), nil
}

// Store is an image cache folder and the ways to fill it.
type Store struct {
	dir string
	// remote options: credentials from the user's Docker config and
	// credential helpers.
	keychain authn.Keychain
	// engine, when set, is the local Docker engine images are taken from
	// when their registry cannot provide them.
	engine Engine
}

// Option configures a Store.
type Option func(*Store)

// WithEngine lets the store take images from a local Docker engine.
func WithEngine(e Engine) Option { return func(s *Store) { s.engine = e } }

// New returns the store kept in dir.
func New(dir string, opts ...Option) *Store {
	s := &Store{dir: dir, keychain: authn.DefaultKeychain}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Dir is the cache folder.
func (s *Store) Dir() string { return s.dir }

// Config is the part of an image's configuration a process uses.
type Config struct {
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"working_dir,omitempty"`
}

// Image is one cache entry.
type Image struct {
	// Digest names the entry: the digest the image was pulled by.
	Digest string `json:"digest"`
	// Manifest is the digest of the platform image's manifest (Digest
	// itself unless Digest names an index).
	Manifest string `json:"manifest"`
	// References are the references it was pulled as.
	References []string `json:"references,omitempty"`
	// Source is "registry" or "engine".
	Source    string    `json:"source"`
	Config    Config    `json:"config"`
	Size      int64     `json:"size"`
	Extracted time.Time `json:"extracted"`
	// Root is the folder holding the image's files (not stored).
	Root string `json:"-"`
}

// Resolved is a reference pinned to a digest.
type Resolved struct {
	// Repository is registry/repository ("docker.io/withobsrvr/x").
	Repository string
	Digest     string
	// From says where the digest was learnt: "registry", "cache", "engine"
	// or "reference" (the reference pins it).
	From string
}

// Pinned is repository@digest.
func (r Resolved) Pinned() string { return r.Repository + "@" + r.Digest }

// UnreachableError says a registry could not be asked at all.
type UnreachableError struct {
	Registry string
	Err      error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("registry %s cannot be reached: %v", e.Registry, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// Resolve pins ref to a digest as pull says: a reference that names a
// digest is taken as it is; "missing" and "never" take the digest the
// cache recorded for the tag, else the image the local engine has under
// that name (as docker run would); "missing" then, and "always" at once,
// ask the registry.
func (s *Store) Resolve(ctx context.Context, ref, pull string) (Resolved, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return Resolved{}, fmt.Errorf("image %q: %w", ref, err)
	}
	repo := r.Context().Name()
	if d, ok := r.(name.Digest); ok {
		return Resolved{Repository: repo, Digest: d.DigestStr(), From: "reference"}, nil
	}
	if pull != PullAlways {
		if d, ok := s.recordedTag(r.Name()); ok {
			return Resolved{Repository: repo, Digest: d, From: "cache"}, nil
		}
	}
	if pull != PullAlways {
		if d, ok := s.engineDigest(ctx, r); ok {
			return Resolved{Repository: repo, Digest: d, From: "engine"}, nil
		}
	}
	if pull == PullNever {
		return Resolved{}, fmt.Errorf("image %q is neither in the image cache (%s) nor on a local Docker engine, and pull = %q forbids pulling it", ref, s.dir, pull)
	}
	desc, err := remote.Head(r, s.remoteOptions(ctx)...)
	if err != nil {
		return Resolved{}, fmt.Errorf("image %q: %w", ref, registryError(r.Context().RegistryStr(), err))
	}
	return Resolved{Repository: repo, Digest: desc.Digest.String(), From: "registry"}, nil
}

// registryError names the registry of a failed call, marking the calls
// that never reached it.
func registryError(registry string, err error) error {
	var answered *transport.Error
	if errors.As(err, &answered) {
		return fmt.Errorf("registry %s: %w", registry, err)
	}
	var nerr net.Error
	if errors.As(err, &nerr) || isDialError(err) {
		return &UnreachableError{Registry: registry, Err: err}
	}
	return fmt.Errorf("registry %s: %w", registry, err)
}

func isDialError(err error) bool {
	msg := err.Error()
	for _, s := range []string{"connection refused", "no such host", "dial tcp", "i/o timeout", "network is unreachable"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

func (s *Store) remoteOptions(ctx context.Context) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(s.keychain),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}),
	}
}

// Get returns the cache entry of digest, or ok false.
func (s *Store) Get(digest string) (*Image, bool) {
	dir, err := s.entryDir(digest)
	if err != nil {
		return nil, false
	}
	img, err := readEntry(dir)
	if err != nil {
		return nil, false
	}
	return img, true
}

// Ensure makes the image ref pinned to digest present in the cache and
// returns its entry: from the cache, else the local engine when it has
// that very image, else its registry. ref names the repository (its tag, if any, is recorded as
// resolving to digest).
func (s *Store) Ensure(ctx context.Context, ref, digest string) (*Image, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", ref, err)
	}
	if img, ok := s.Get(digest); ok {
		s.recordTag(r, digest)
		return img, nil
	}
	pinned, err := name.NewDigest(r.Context().Name() + "@" + digest)
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", ref, err)
	}
	img, source := s.engineImage(ctx, r, digest), "engine"
	if img == nil {
		var err error
		img, err = remote.Image(pinned, s.remoteOptions(ctx)...)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", pinned, registryError(r.Context().RegistryStr(), err))
		}
		source = "registry"
	}
	entry, err := s.extractEntry(ctx, img, digest, source, r.Name())
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", pinned, err)
	}
	s.recordTag(r, digest)
	return entry, nil
}

// entryDir is the folder of digest's entry.
func (s *Store) entryDir(digest string) (string, error) {
	h, err := v1.NewHash(digest)
	if err != nil || h.Algorithm != "sha256" {
		return "", fmt.Errorf("%q is not a sha256 digest", digest)
	}
	return filepath.Join(s.dir, "sha256", h.Hex), nil
}

func readEntry(dir string) (*Image, error) {
	b, err := os.ReadFile(filepath.Join(dir, "image.json"))
	if err != nil {
		return nil, err
	}
	var img Image
	if err := json.Unmarshal(b, &img); err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	img.Root = filepath.Join(dir, "rootfs")
	return &img, nil
}

// List returns every cache entry, sorted by digest.
func (s *Store) List() ([]*Image, error) {
	dirs, err := os.ReadDir(filepath.Join(s.dir, "sha256"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Image
	for _, d := range dirs {
		img, err := readEntry(filepath.Join(s.dir, "sha256", d.Name()))
		if err != nil {
			continue // not an entry (left by something else): prune removes it
		}
		out = append(out, img)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, nil
}

// Prune removes every entry whose digest keep does not name, the tag
// records that point to removed entries, and leftovers of interrupted
// extractions. It returns the digests removed.
func (s *Store) Prune(keep map[string]bool) ([]string, error) {
	var removed []string
	dirs, err := os.ReadDir(filepath.Join(s.dir, "sha256"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, d := range dirs {
		digest := "sha256:" + d.Name()
		if keep[digest] {
			continue
		}
		if err := removeAll(filepath.Join(s.dir, "sha256", d.Name())); err != nil {
			return removed, fmt.Errorf("remove %s: %w", digest, err)
		}
		removed = append(removed, digest)
	}
	if err := removeAll(filepath.Join(s.dir, "tmp")); err != nil {
		return removed, err
	}
	s.pruneTags(keep)
	s.pruneVerified(keep)
	return removed, nil
}

// pruneVerified forgets the verifications of images no longer kept.
func (s *Store) pruneVerified(keep map[string]bool) {
	files, _ := os.ReadDir(filepath.Join(s.dir, "verified"))
	for _, f := range files {
		sum, _, _ := strings.Cut(f.Name(), "-")
		if !keep["sha256:"+sum] {
			_ = os.Remove(filepath.Join(s.dir, "verified", f.Name()))
		}
	}
}

// removeAll removes path even where extraction left folders without write
// permission.
func removeAll(path string) error {
	_ = filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(path)
}

// tagRecord is Dir/refs/<sha256 of the reference>.json.
type tagRecord struct {
	Reference string `json:"reference"`
	Digest    string `json:"digest"`
}

func (s *Store) tagPath(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return filepath.Join(s.dir, "refs", hex.EncodeToString(sum[:])+".json")
}

func (s *Store) recordedTag(ref string) (string, bool) {
	b, err := os.ReadFile(s.tagPath(ref))
	if err != nil {
		return "", false
	}
	var rec tagRecord
	if json.Unmarshal(b, &rec) != nil || rec.Reference != ref {
		return "", false
	}
	if _, ok := s.Get(rec.Digest); !ok {
		return "", false
	}
	return rec.Digest, true
}

// recordTag remembers that the tag r resolved to digest; a reference by
// digest records nothing. The record is written atomically; failing to
// write it costs only a later lookup.
func (s *Store) recordTag(r name.Reference, digest string) {
	if _, ok := r.(name.Tag); !ok {
		return
	}
	if d, ok := s.recordedTag(r.Name()); ok && d == digest {
		return // the common case, a start from the cache: write nothing
	}
	b, _ := json.Marshal(tagRecord{Reference: r.Name(), Digest: digest})
	_ = writeFileAtomic(s.tagPath(r.Name()), b)
}

func (s *Store) pruneTags(keep map[string]bool) {
	files, _ := os.ReadDir(filepath.Join(s.dir, "refs"))
	for _, f := range files {
		p := filepath.Join(s.dir, "refs", f.Name())
		b, err := os.ReadFile(p)
		var rec tagRecord
		if err != nil || json.Unmarshal(b, &rec) != nil || !keep[rec.Digest] {
			_ = os.Remove(p)
		}
	}
}

func writeFileAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
