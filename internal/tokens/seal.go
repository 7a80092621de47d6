package tokens

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// sealPrefix versions the sealed format.
const sealPrefix = "v1:"

// sealKey derives the sealing key from the secret, so that sealing and
// signing never share a key.
func (s *Secret) sealKey() ([]byte, error) {
	k := s.bytes()
	if len(k) == 0 {
		return nil, errors.New("no token secret")
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte("flowctl sealed values v1"))
	return m.Sum(nil), nil
}

// Seal encrypts plaintext (AES-256-GCM, under a key derived from the
// secret) for keeping in the state file: what apply knows of a component
// that the state's redacted spec leaves out (its sensitive environment),
// and that the restart watcher, which holds the same secret, needs to
// start it again. A rotated secret makes older sealed values unreadable;
// the next apply replaces those components anyway.
func (s *Secret) Seal(plaintext []byte) (string, error) {
	key, err := s.sealKey()
	if err != nil {
		return "", err
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: %w", err)
	}
	out := aead.Seal(nonce, nonce, plaintext, []byte(sealPrefix))
	return sealPrefix + base64.RawStdEncoding.EncodeToString(out), nil
}

// Open decrypts what Seal produced with the same secret.
func (s *Secret) Open(sealed string) ([]byte, error) {
	raw, ok := strings.CutPrefix(sealed, sealPrefix)
	if !ok {
		return nil, errors.New("open sealed value: unknown format")
	}
	b, err := base64.RawStdEncoding.DecodeString(raw)
	if err != nil {
		return nil, fmt.Errorf("open sealed value: %w", err)
	}
	key, err := s.sealKey()
	if err != nil {
		return nil, err
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	if len(b) < aead.NonceSize() {
		return nil, errors.New("open sealed value: too short")
	}
	pt, err := aead.Open(nil, b[:aead.NonceSize()], b[aead.NonceSize():], []byte(sealPrefix))
	if err != nil {
		return nil, errors.New("open sealed value: not sealed with this secret (rotated since?)")
	}
	return pt, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
