package images

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// Cosign's signature format, as cosign writes it with a key: the tag
// "sha256-<hex>.sig" in the image's repository holds an OCI image whose
// layers are simple-signing payloads, each with its base64 signature in a
// layer annotation.
const (
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	SignatureAnnotation    = "dev.cosignproject.cosign/signature"
	// maxPayload bounds one signature payload read from a registry.
	maxPayload = 1 << 20
)

// SignatureTag is the tag cosign stores the signatures of digest under.
func SignatureTag(digest string) string {
	return strings.Replace(digest, ":", "-", 1) + ".sig"
}

// PublicKey is a verification key read from a PEM file (cosign.pub).
type PublicKey struct {
	// Fingerprint is "sha256:" and the hex SHA-256 of the key's DER
	// (SubjectPublicKeyInfo) encoding.
	Fingerprint string
	verifier    signature.Verifier
}

// LoadPublicKey reads a PEM public key (ECDSA, RSA or Ed25519), as cosign
// generate-key-pair writes cosign.pub.
func LoadPublicKey(file string) (*PublicKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	return ParsePublicKey(b)
}

// ParsePublicKey parses a PEM public key.
func ParsePublicKey(pemBytes []byte) (*PublicKey, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	der, err := cryptoutils.MarshalPublicKeyToDER(pub)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	sum := sha256.Sum256(der)
	return &PublicKey{Fingerprint: "sha256:" + hex.EncodeToString(sum[:]), verifier: v}, nil
}

// SignatureError says an image's signatures do not satisfy a key.
type SignatureError struct {
	Image  string
	Reason string
}

func (e *SignatureError) Error() string {
	return fmt.Sprintf("image %s: %s", e.Image, e.Reason)
}

// Verify checks that the image repository@digest carries a cosign
// signature by key whose payload names digest, and returns nil when one
// does.
func (s *Store) Verify(ctx context.Context, repository, digest string, key *PublicKey) error {
	pinned := repository + "@" + digest
	repo, err := name.NewRepository(repository)
	if err != nil {
		return fmt.Errorf("image %s: %w", pinned, err)
	}
	sigRef := repo.Tag(SignatureTag(digest))
	img, err := remote.Image(sigRef, s.remoteOptions(ctx)...)
	if err != nil {
		var terr *transport.Error
		if errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound {
			return &SignatureError{Image: pinned, Reason: fmt.Sprintf("unsigned: no signature %s in the registry", sigRef)}
		}
		return fmt.Errorf("image %s: read signature %s: %w", pinned, sigRef, registryError(repo.RegistryStr(), err))
	}
	m, err := img.Manifest()
	if err != nil {
		return fmt.Errorf("image %s: signature manifest: %w", pinned, err)
	}
	var reasons []string
	for _, l := range m.Layers {
		if l.MediaType != SimpleSigningMediaType {
			continue
		}
		layer, err := img.LayerByDigest(l.Digest)
		if err != nil {
			return fmt.Errorf("image %s: signature layer: %w", pinned, err)
		}
		reason, err := checkSignature(layer.Compressed, l.Annotations[SignatureAnnotation], digest, key)
		if err != nil {
			return fmt.Errorf("image %s: %w", pinned, err)
		}
		if reason == "" {
			return nil
		}
		reasons = append(reasons, reason)
	}
	if len(reasons) == 0 {
		return &SignatureError{Image: pinned, Reason: fmt.Sprintf("unsigned: %s holds no simple-signing payload", sigRef)}
	}
	return &SignatureError{Image: pinned, Reason: fmt.Sprintf("no signature verifies with the key %s: %s", key.Fingerprint, strings.Join(reasons, "; "))}
}

// checkSignature verifies one payload: the reason it fails, or "".
func checkSignature(open func() (io.ReadCloser, error), sigB64, digest string, key *PublicKey) (string, error) {
	if sigB64 == "" {
		return "a payload without a signature annotation", nil
	}
	sig, err := base64.StdEncoding.DecodeString(sigB64)
	if err != nil {
		return "a signature that is not base64", nil
	}
	rc, err := open()
	if err != nil {
		return "", err
	}
	defer rc.Close()
	body, err := io.ReadAll(io.LimitReader(rc, maxPayload))
	if err != nil {
		return "", err
	}
	if err := key.verifier.VerifySignature(bytes.NewReader(sig), bytes.NewReader(body)); err != nil {
		return "the signature does not match the payload and key", nil
	}
	var p payload.SimpleContainerImage
	if err := json.Unmarshal(body, &p); err != nil {
		return "a payload that is not simple-signing JSON", nil
	}
	if p.Critical.Type != payload.CosignSignatureType {
		return fmt.Sprintf("a payload of type %q", p.Critical.Type), nil
	}
	if got := p.Critical.Image.DockerManifestDigest; got != digest {
		return fmt.Sprintf("a signature for %s, another image", got), nil
	}
	return "", nil
}

// VerifyWithKeyFile verifies repository@digest with the PEM key in
// keyFile and returns the key's fingerprint. A verification that passed
// is remembered in the cache (Dir/verified), so that starting the image
// again needs no registry; a failed one is never remembered.
func (s *Store) VerifyWithKeyFile(ctx context.Context, repository, digest, keyFile string) (string, error) {
	key, err := LoadPublicKey(keyFile)
	if err != nil {
		return "", err
	}
	mark := filepath.Join(s.dir, "verified", strings.TrimPrefix(digest, "sha256:")+"-"+strings.TrimPrefix(key.Fingerprint, "sha256:"))
	if _, err := os.Stat(mark); err == nil {
		return key.Fingerprint, nil
	}
	if err := s.Verify(ctx, repository, digest, key); err != nil {
		return "", err
	}
	_ = writeFileAtomic(mark, []byte(repository+"@"+digest+"\n"))
	return key.Fingerprint, nil
}
