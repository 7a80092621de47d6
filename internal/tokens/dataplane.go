package tokens

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/flowctl/flowctl/pkg/component"
	"github.com/flowctl/flowctl/pkg/contract"
)

// Data tokens (docs/data-plane-auth.md) are what a caller of a component's
// data plane presents: EdDSA (Ed25519) JWTs, iss "flowctl", aud
// "data-plane", sub the caller ("relay" for serve's relay), pipeline, iat,
// exp. They are signed with a private key that only flowctl reads (the
// data-plane key file, beside the token secret, 0600); each component gets
// the public half (FLOWCTL_DATA_PLANE_KEY), which verifies tokens and
// cannot make them.

// DataKeyFileName is the data-plane key's file in the state folder
// (.flowctl/data-plane-key).
const DataKeyFileName = "data-plane-key"

// DefaultDataTokenLifetime is how long a data token is valid; the holder
// asks for a new one past half of it.
const DefaultDataTokenLifetime = 15 * time.Minute

// DefaultDataKeyPath is the data-plane key beside a state file.
func DefaultDataKeyPath(statePath string) string {
	return filepath.Join(filepath.Dir(statePath), DataKeyFileName)
}

// DataKey is the Ed25519 key that signs data tokens. String never shows
// the private half.
type DataKey struct {
	priv ed25519.PrivateKey
	path string
}

// NewDataKey returns a new random key held in memory (tests, benchmarks).
func NewDataKey() (*DataKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate data-plane key: %w", err)
	}
	return &DataKey{priv: priv}, nil
}

// LoadOrCreateDataKey reads the key file at path (PEM, PKCS #8), creating
// it (mode 0600, folder 0700) with a new key when it does not exist. Two
// flowctl processes that race to create it end up with the same key.
func LoadOrCreateDataKey(path string) (*DataKey, error) {
	k, err := loadDataKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create data-plane key folder: %w", err)
	}
	k, tmp, err := writeNewDataKey(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp)
	// Linked into place: of two racing creators the second link fails and
	// that one reads the first's key.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return loadDataKey(path)
		}
		return nil, fmt.Errorf("create data-plane key: %w", err)
	}
	k.path = path
	return k, nil
}

// RotateDataKeyFile replaces the key in the file at path with a new one
// (creating it when missing). Components hold the public key they were
// started with: they refuse the tokens of the new key until they are
// started again. A DataTokens reading the file picks the new key up within
// a second.
func RotateDataKeyFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("data-plane key folder: %w", err)
	}
	_, tmp, err := writeNewDataKey(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rotate data-plane key: %w", err)
	}
	return nil
}

// writeNewDataKey writes a new key to a temporary file (0600) in dir, so
// that a reader of the key's own file never sees half a key.
func writeNewDataKey(dir string) (*DataKey, string, error) {
	k, err := NewDataKey()
	if err != nil {
		return nil, "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return nil, "", fmt.Errorf("encode data-plane key: %w", err)
	}
	f, err := os.CreateTemp(dir, ".data-plane-key-*")
	if err != nil {
		return nil, "", fmt.Errorf("create data-plane key: %w", err)
	}
	werr := f.Chmod(0o600)
	if werr == nil {
		werr = pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(f.Name())
		return nil, "", fmt.Errorf("write data-plane key: %w", werr)
	}
	return k, f.Name(), nil
}

func loadDataKey(path string) (*DataKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("data-plane key: %w", err)
	}
	b, _ := pem.Decode(raw)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("data-plane key %s: not a PEM private key", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("data-plane key %s: %w", path, err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("data-plane key %s: a %T, want an Ed25519 key", path, key)
	}
	return &DataKey{priv: priv, path: path}, nil
}

// Path is the key's file ("" for NewDataKey).
func (k *DataKey) Path() string { return k.path }

// Public is the key that verifies data tokens.
func (k *DataKey) Public() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }

// PublicString is the public key as FLOWCTL_DATA_PLANE_KEY carries it.
func (k *DataKey) PublicString() string {
	s, err := component.EncodeDataPlaneKey(k.Public())
	if err != nil {
		// An Ed25519 public key always encodes.
		panic(err)
	}
	return s
}

// String never shows the key.
func (k *DataKey) String() string { return "tokens.DataKey(redacted)" }

// GoString never shows the key.
func (k *DataKey) GoString() string { return k.String() }

// DataIssuer signs data tokens of one pipeline.
type DataIssuer struct {
	key      *DataKey
	pipeline string
	lifetime time.Duration
	now      func() time.Time
}

// DataIssuerOption configures a DataIssuer.
type DataIssuerOption func(*DataIssuer)

// WithDataLifetime sets the lifetime of the tokens (default
// DefaultDataTokenLifetime).
func WithDataLifetime(d time.Duration) DataIssuerOption {
	return func(i *DataIssuer) {
		if d > 0 {
			i.lifetime = d
		}
	}
}

// WithDataClock replaces time.Now, for tests.
func WithDataClock(now func() time.Time) DataIssuerOption {
	return func(i *DataIssuer) { i.now = now }
}

// NewDataIssuer returns an issuer of data tokens for pipeline.
func NewDataIssuer(key *DataKey, pipeline string, opts ...DataIssuerOption) *DataIssuer {
	i := &DataIssuer{key: key, pipeline: pipeline, lifetime: DefaultDataTokenLifetime, now: time.Now}
	for _, o := range opts {
		o(i)
	}
	return i
}

// Issue signs a data token for caller (contract.DataPlaneRelaySubject, or
// a component address).
func (i *DataIssuer) Issue(caller string) (string, error) {
	tok, _, err := i.issue(caller)
	return tok, err
}

func (i *DataIssuer) issue(caller string) (string, time.Time, error) {
	if caller == "" {
		return "", time.Time{}, errors.New("issue data token: no caller")
	}
	now := i.now().Truncate(time.Second)
	exp := now.Add(i.lifetime)
	c := component.DataClaims{
		Pipeline: i.pipeline,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    contract.DataPlaneIssuer,
			Audience:  jwt.ClaimStrings{contract.DataPlaneAudience},
			Subject:   caller,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(i.key.priv)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign data token: %w", err)
	}
	return tok, now.Add(i.lifetime / 2), nil
}

// DataTokens hands out the data token of one caller, signing a new one
// when the last is past half its life. When the issuer's key came from a
// file, it re-reads the file once it changes (RotateDataKeyFile), looking
// at most every keyCheckGap. It is safe for concurrent use.
type DataTokens struct {
	caller string

	mu      sync.Mutex
	iss     DataIssuer // a copy: a rotation replaces its key
	tok     string
	renewAt time.Time
	file    os.FileInfo // the key file as last read
	checked time.Time
}

// keyCheckGap is the least time between two looks at the key file.
const keyCheckGap = time.Second

// Tokens returns the token source of caller.
func (i *DataIssuer) Tokens(caller string) *DataTokens {
	t := &DataTokens{iss: *i, caller: caller}
	if i.key.path != "" {
		t.file, _ = os.Stat(i.key.path)
	}
	return t
}

// Token returns a valid token.
func (t *DataTokens) Token() (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reloadKey()
	if t.tok != "" && t.iss.now().Before(t.renewAt) {
		return t.tok, nil
	}
	tok, renew, err := t.iss.issue(t.caller)
	if err != nil {
		return "", err
	}
	t.tok, t.renewAt = tok, renew
	return tok, nil
}

// reloadKey takes a rotated key file's new key; a file that cannot be
// read leaves the key as it was.
func (t *DataTokens) reloadKey() {
	path := t.iss.key.path
	now := t.iss.now()
	if path == "" || now.Sub(t.checked) < keyCheckGap {
		return
	}
	t.checked = now
	st, err := os.Stat(path)
	if err != nil || t.file != nil && os.SameFile(st, t.file) && st.ModTime().Equal(t.file.ModTime()) && st.Size() == t.file.Size() {
		return
	}
	k, err := loadDataKey(path)
	if err != nil {
		return
	}
	t.iss.key, t.file, t.tok = k, st, ""
}
