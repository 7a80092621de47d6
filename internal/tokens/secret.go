package tokens

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
)

// SecretSize is the size in bytes of a secret flowctl creates.
const SecretSize = 32

// MinSecretSize is the smallest secret accepted from an operator's file.
const MinSecretSize = 32

// SecretFileName is the name of the secret flowctl creates in the state
// folder (.flowctl/token-secret).
const SecretFileName = "token-secret"

// DefaultSecretPath is the secret file beside a state file:
// <dir of state>/token-secret.
func DefaultSecretPath(statePath string) string {
	return filepath.Join(filepath.Dir(statePath), SecretFileName)
}

// Secret is the HMAC key that signs and verifies component tokens. It can be
// reloaded or rotated while in use: issuers and verifiers that share it see
// the new key at once, and tokens signed with the old one are refused from
// then on.
//
// Its String and GoString never show the key, so a Secret that ends up in a
// log line or an error message leaks nothing.
type Secret struct {
	path string
	key  atomic.Pointer[[]byte]
	// Warning is set when the file is readable by others than its owner.
	warning atomic.Pointer[string]
}

// NewSecret returns an in-memory secret (tests, or a key the caller
// obtained elsewhere). It must be at least MinSecretSize bytes.
func NewSecret(key []byte) (*Secret, error) {
	if len(key) < MinSecretSize {
		return nil, fmt.Errorf("token secret is %d bytes; at least %d are needed", len(key), MinSecretSize)
	}
	s := &Secret{}
	k := bytes.Clone(key)
	s.key.Store(&k)
	return s, nil
}

// LoadOrCreateSecret reads the secret file at path, creating it (mode 0600,
// folder 0700) with SecretSize random bytes when it does not exist. This is
// the default secret of a pipeline, kept in its state folder.
func LoadOrCreateSecret(path string) (*Secret, error) {
	s := &Secret{path: path}
	if err := s.Reload(); err == nil {
		return s, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create token secret folder: %w", err)
	}
	key := make([]byte, SecretSize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate token secret: %w", err)
	}
	// O_EXCL: when two flowctl processes race to create it, one wins and
	// the other reads the winner's key.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return s, s.Reload()
		}
		return nil, fmt.Errorf("create token secret: %w", err)
	}
	if _, err := f.Write(key); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("write token secret: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("write token secret: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write token secret: %w", err)
	}
	s.key.Store(&key)
	return s, nil
}

// LoadSecret reads an existing secret file (an operator-supplied
// --token-secret-file). A file of exactly SecretSize bytes is used as it is;
// otherwise surrounding white space is trimmed (so `openssl rand -hex 32 >
// file` works) and at least MinSecretSize bytes must remain.
func LoadSecret(path string) (*Secret, error) {
	s := &Secret{path: path}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Path is the file the secret was read from ("" for NewSecret).
func (s *Secret) Path() string { return s.path }

// Warning describes a problem with the file that does not prevent its use
// (it is readable by group or others); "" when there is none.
func (s *Secret) Warning() string {
	if w := s.warning.Load(); w != nil {
		return *w
	}
	return ""
}

// Reload re-reads the secret file; a rotated secret takes effect at once.
func (s *Secret) Reload() error {
	if s.path == "" {
		return nil
	}
	st, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("token secret: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("token secret %s is not a regular file", s.path)
	}
	raw, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("token secret: %w", err)
	}
	key := raw
	if len(raw) != SecretSize {
		key = bytes.TrimSpace(raw)
	}
	if len(key) < MinSecretSize {
		return fmt.Errorf("token secret %s holds %d bytes; at least %d are needed", s.path, len(key), MinSecretSize)
	}
	key = bytes.Clone(key)
	s.key.Store(&key)
	w := ""
	if st.Mode().Perm()&0o077 != 0 {
		w = fmt.Sprintf("token secret %s is readable by others (mode %04o); chmod 600 it", s.path, st.Mode().Perm())
	}
	s.warning.Store(&w)
	return nil
}

// Rotate writes a new random secret to the file (atomically: a temporary
// file renamed over it) and uses it from now on. Every token signed with the
// previous secret is refused after rotation; components need new tokens
// (a new apply).
func (s *Secret) Rotate() error {
	key := make([]byte, SecretSize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("generate token secret: %w", err)
	}
	if s.path != "" {
		if err := writeFileAtomic(s.path, key); err != nil {
			return err
		}
	}
	s.key.Store(&key)
	return nil
}

// RotateSecretFile replaces the secret in the file at path with new random
// bytes (for `flowctl` commands that rotate without a running Secret).
func RotateSecretFile(path string) error {
	return (&Secret{path: path}).Rotate()
}

func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("token secret folder: %w", err)
	}
	f, err := os.CreateTemp(dir, ".token-secret-*")
	if err != nil {
		return fmt.Errorf("write token secret: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write token secret: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write token secret: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write token secret: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write token secret: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write token secret: %w", err)
	}
	return nil
}

func (s *Secret) bytes() []byte {
	if s == nil {
		return nil
	}
	if k := s.key.Load(); k != nil {
		return *k
	}
	return nil
}

// String never shows the key.
func (s *Secret) String() string { return "tokens.Secret(redacted)" }

// GoString never shows the key.
func (s *Secret) GoString() string { return s.String() }
