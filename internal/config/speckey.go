package config

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// SpecKeyFileName is the file, in the state folder beside the token secret,
// that holds the key of spec hashes (.flowctl/spec-hash-key).
const SpecKeyFileName = "spec-hash-key"

// specKeySize is the size in bytes of a key flowctl creates, and the least
// it accepts.
const specKeySize = 32

// specHashDomain separates spec hashes from any other use of the key.
const specHashDomain = "flowctl spec hash v2\x00"

// SpecKey keys the spec hash of components that have sensitive values, so
// that a hash printed in a plan, a state dump, an object's label or a
// component's FLOWCTL_SPEC_HASH never lets anyone test a guess of a value
// offline: without the key, the hash of a guess cannot be computed.
//
// Its String and GoString never show the key.
type SpecKey struct {
	key []byte
	id  string // ID, computed once
}

// SpecKeyPath is the key file of the state file at statePath.
func SpecKeyPath(statePath string) string {
	return filepath.Join(filepath.Dir(statePath), SpecKeyFileName)
}

// NewSpecKey is a key held in memory (tests, or one obtained elsewhere).
func NewSpecKey(key []byte) (*SpecKey, error) {
	if len(key) < specKeySize {
		return nil, fmt.Errorf("spec hash key is %d bytes; at least %d are needed", len(key), specKeySize)
	}
	return newSpecKey(bytes.Clone(key)), nil
}

func newSpecKey(key []byte) *SpecKey {
	k := &SpecKey{key: key}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(specKeyIDDomain))
	k.id = hex.EncodeToString(m.Sum(nil))[:8]
	return k
}

// LoadSpecKey reads the key file at path; an error wrapping fs.ErrNotExist
// when there is none.
func LoadSpecKey(path string) (*SpecKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("spec hash key: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("spec hash key %s is not a regular file", path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("spec hash key: %w", err)
	}
	k, err := NewSpecKey(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// LoadOrCreateSpecKey reads the key file at path, creating it (mode 0600,
// folder 0700) with random bytes when it does not exist. When two flowctl
// processes race to create it, one wins and the other reads its key.
func LoadOrCreateSpecKey(path string) (*SpecKey, error) {
	k, err := LoadSpecKey(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create spec hash key folder: %w", err)
	}
	key := make([]byte, specKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("generate spec hash key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return LoadSpecKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("create spec hash key: %w", err)
	}
	_, werr := f.Write(key)
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(path)
		return nil, fmt.Errorf("write spec hash key: %w", werr)
	}
	return newSpecKey(key), nil
}

// String never shows the key.
func (k *SpecKey) String() string { return "config.SpecKey(redacted)" }

// GoString never shows the key.
func (k *SpecKey) GoString() string { return k.String() }

// sum is the keyed spec hash of data: "k", the key's ID, ".", and the hex
// HMAC-SHA256 of data under k. Naming the key lets a plan tell a hash made
// with another key (another machine's) from a changed value.
func (k *SpecKey) sum(data []byte) string {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte(specHashDomain))
	m.Write(data)
	return "k" + k.ID() + "." + hex.EncodeToString(m.Sum(nil))
}

// specKeyIDDomain separates the key's ID from the hashes it makes.
const specKeyIDDomain = "flowctl spec hash key id\x00"

// ID names the key without revealing it: 8 hex digits of an HMAC of a
// fixed string.
func (k *SpecKey) ID() string { return k.id }

// SpecHashKeyID is the ID of the key a spec hash was made with ("" for a
// hash made without one).
func SpecHashKeyID(hash string) string {
	if len(hash) != 1+8+1+2*sha256.Size || hash[0] != 'k' || hash[9] != '.' {
		return ""
	}
	return hash[1:9]
}

// NeedsSpecKey says whether hashing p's components takes a key: whether
// any of them has a sensitive value.
func (p *Pipeline) NeedsSpecKey() bool {
	for _, c := range p.Components {
		if c.HasSensitive() {
			return true
		}
	}
	return false
}

// StateSpecKey is the spec hash key of the state file at statePath: read
// from SpecKeyPath, or created there when create is set (the pipeline has
// sensitive values, so its hashes need one). It is nil, with no error, when
// there is none and create is not set: the pipeline's hashes need no key.
func StateSpecKey(statePath string, create bool) (*SpecKey, error) {
	path := SpecKeyPath(statePath)
	if create {
		return LoadOrCreateSpecKey(path)
	}
	k, err := LoadSpecKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return k, err
}
