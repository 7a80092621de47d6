// Package registrytest runs a real OCI registry for tests — Debian's
// docker-registry, the CNCF distribution server — on loopback, and makes,
// pushes and signs images in it the way the ecosystem's do.
package registrytest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// Registry is a running docker-registry.
type Registry struct {
	// Host is 127.0.0.1:PORT.
	Host string
}

// Binary finds docker-registry; under CI=true a missing one fails the
// test, elsewhere it skips it.
func Binary(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"docker-registry", "/usr/bin/docker-registry"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	msg := "docker-registry is not installed (apt-get install -y docker-registry; .ci/run installs it)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Start runs docker-registry with its storage in a temporary folder on a
// free loopback port, waits until /v2/ answers, and stops it when the
// test ends.
func Start(t testing.TB) *Registry {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), host)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start docker-registry: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logf.Close()
	})
	waitUp(t, host, exited, filepath.Join(dir, "registry.log"))
	return &Registry{Host: host}
}

// waitUp polls /v2/ until it answers 200, the server exits, or a minute
// passes (a registry that never answers fails the test).
func waitUp(t testing.TB, host string, exited <-chan error, logPath string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("docker-registry exited (%v): %s", err, b)
		case <-tick.C:
		}
	}
	t.Fatalf("docker-registry did not answer on %s/v2/ within a minute", host)
}

// File is one entry of a test layer.
type File struct {
	Path     string
	Mode     int64
	Data     []byte
	Type     byte // tar.TypeReg when zero
	Linkname string
}

// Layer builds an uncompressed tar layer of files.
func Layer(t testing.TB, files ...File) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		typ := f.Type
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: f.Path, Mode: mode, Typeflag: typ, Linkname: f.Linkname, ModTime: time.Unix(0, 0)}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(f.Data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write(f.Data); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Image makes an image from layers with the given configuration.
func Image(t testing.TB, cfg v1.Config, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Config = "linux", "amd64", cfg
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Push writes img to the registry as repo:tag (repo without the host) and
// returns the full reference and the manifest digest.
func (r *Registry) Push(t testing.TB, repo, tag string, img v1.Image) (ref, digest string) {
	t.Helper()
	ref = r.Host + "/" + repo + ":" + tag
	tr, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tr, img, remote.WithContext(context.Background())); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref, d.String()
}

// Key is an ECDSA P-256 signing key, as cosign generate-key-pair makes.
type Key struct {
	priv *ecdsa.PrivateKey
	// PublicPEM is the public key as cosign.pub holds it.
	PublicPEM []byte
}

// NewKey generates a key.
func NewKey(t testing.TB) *Key {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &Key{priv: priv, PublicPEM: pub}
}

// WritePublic writes the public key to dir/file and returns the path.
func (k *Key) WritePublic(t testing.TB, dir, file string) string {
	t.Helper()
	p := filepath.Join(dir, file)
	if err := os.WriteFile(p, k.PublicPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Payload is the simple-signing payload cosign signs for repo@digest.
func Payload(t testing.TB, repo, digest string) []byte {
	t.Helper()
	d, err := name.NewDigest(repo + "@" + digest)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(payload.Cosign{Image: d})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// SignPayload signs body with k (ECDSA over SHA-256, ASN.1), base64.
func (k *Key) SignPayload(t testing.TB, body []byte) string {
	t.Helper()
	sum := sha256.Sum256(body)
	sig, err := k.priv.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// Sign stores a cosign signature of repo@digest by k in the registry
// (repo is host/path).
func (r *Registry) Sign(t testing.TB, k *Key, repo, digest string) {
	t.Helper()
	body := Payload(t, repo, digest)
	r.PutSignature(t, repo, digest, body, k.SignPayload(t, body))
}

// PutSignature stores body with the base64 signature sig as the
// signature artifact of repo@digest, whatever they say (tests of refusal
// store tampered ones).
func (r *Registry) PutSignature(t testing.TB, repo, digest string, body []byte, sig string) {
	t.Helper()
	l := static.NewLayer(body, types.MediaType("application/vnd.dev.cosign.simplesigning.v1+json"))
	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), mutate.Addendum{
		Layer:       l,
		Annotations: map[string]string{"dev.cosignproject.cosign/signature": sig},
	})
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(repo + ":" + sigTag(digest))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatalf("push signature %s: %v", tag, err)
	}
}

func sigTag(digest string) string {
	return "sha256-" + digest[len("sha256:"):] + ".sig"
}
