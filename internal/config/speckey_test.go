package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const guessedSecret = "SUPERSECRET-abc123"

// sensitiveComponent loads a pipeline whose source has a sensitive env
// value.
func sensitiveComponent(t *testing.T, secret string) *Component {
	t.Helper()
	src := `pipeline "p" {}
variable "api_key" {
  type      = string
  sensitive = true
}
source "app" {
  command = ["./app"]
  env = { API_KEY = var.api_key, MODE = "live" }
}
`
	p, diags := LoadBytes([]byte(src), "p.hcl", LoadOptions{Environ: []string{"FLOWCTL_VAR_api_key=" + secret}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	c := p.Component("source.app")
	if !c.HasSensitive() {
		t.Fatal("API_KEY is not marked sensitive")
	}
	return c
}

// guess fills candidate into the redacted spec, as anyone holding a plan
// or a state dump can, and hashes it the way an unkeyed spec hash is.
func guess(c *Component, candidate string) string {
	r := c.Redacted()
	for k, v := range r.Env {
		if v.Sensitive {
			v.Value = candidate
			r.Env[k] = v
		}
	}
	sum := sha256.Sum256(r.CanonicalJSON())
	return hex.EncodeToString(sum[:])
}

func testKey(t *testing.T, b byte) *SpecKey {
	t.Helper()
	k, err := NewSpecKey(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestASpecHashDoesNotLetAGuessOfASensitiveValueBeTested(t *testing.T) {
	c := sensitiveComponent(t, guessedSecret)
	// The guessing works on an unkeyed hash: this is how a value was
	// recovered from the hash flowctl printed before hashes were keyed.
	if guess(c, guessedSecret) != c.UnkeyedSpecHash() {
		t.Fatal("filling the value into the redacted spec does not give the unkeyed hash: the guess below proves nothing")
	}
	hash := c.SpecHash(testKey(t, 1))
	for _, candidate := range []string{guessedSecret, "wrong", ""} {
		if guess(c, candidate) == hash {
			t.Errorf("the spec hash matches the redacted spec filled with %q", candidate)
		}
	}
	if strings.Contains(string(c.Redacted().CanonicalJSON()), guessedSecret) {
		t.Error("the redacted spec holds the secret")
	}
}

func TestASensitiveValueStillChangesTheSpecHash(t *testing.T) {
	k := testKey(t, 1)
	a, b := sensitiveComponent(t, guessedSecret), sensitiveComponent(t, guessedSecret+"-rotated")
	if a.SpecHash(k) == b.SpecHash(k) {
		t.Error("a changed sensitive value gives the same hash")
	}
	if a.SpecHash(k) != sensitiveComponent(t, guessedSecret).SpecHash(k) {
		t.Error("the same spec and key give two hashes")
	}
	if a.SpecHash(k) == a.SpecHash(testKey(t, 2)) {
		t.Error("two keys give the same hash")
	}
}

func TestASpecWithoutSensitiveValuesHashesWithoutAKey(t *testing.T) {
	p, diags := LoadBytes([]byte("pipeline \"p\" {}\nsource \"app\" {\n  command = [\"./app\"]\n  env = { MODE = \"live\" }\n}\n"), "p.hcl", LoadOptions{Environ: []string{}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	c := p.Component("source.app")
	if c.SpecHash(nil) != c.UnkeyedSpecHash() || c.SpecHash(testKey(t, 1)) != c.UnkeyedSpecHash() {
		t.Error("a spec without sensitive values hashes differently than it always did: every object would look changed")
	}
	if p.NeedsSpecKey() {
		t.Error("NeedsSpecKey without sensitive values")
	}
}

func TestTheSpecKeyFileIsCreatedOnceOwnerOnlyAndAShortOneIsRefused(t *testing.T) {
	dir := t.TempDir()
	statePath := filepath.Join(dir, ".flowctl", "p.state.db")
	if k, err := StateSpecKey(statePath, false); err != nil || k != nil {
		t.Fatalf("without a key file and not asked to create one: %v, %v", k, err)
	}
	k1, err := StateSpecKey(statePath, true)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(SpecKeyPath(statePath))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", fi.Mode().Perm())
	}
	k2, err := StateSpecKey(statePath, false)
	if err != nil {
		t.Fatal(err)
	}
	c := sensitiveComponent(t, guessedSecret)
	if c.SpecHash(k1) != c.SpecHash(k2) {
		t.Error("the key read back hashes differently")
	}
	if strings.Contains(k1.String()+k1.GoString(), string(k1.key)) {
		t.Error("String shows the key")
	}
	if err := os.WriteFile(SpecKeyPath(statePath), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := StateSpecKey(statePath, true); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Errorf("a 5-byte key file: %v", err)
	}
}

func TestAKeyedSpecHashNamesItsKeyAndAnUnkeyedOneNone(t *testing.T) {
	k1, k2 := testKey(t, 1), testKey(t, 2)
	c := sensitiveComponent(t, guessedSecret)
	if id := SpecHashKeyID(c.SpecHash(k1)); id != k1.ID() || id == k2.ID() || len(id) != 8 {
		t.Errorf("key id of a keyed hash: %q (key 1 is %s, key 2 %s)", id, k1.ID(), k2.ID())
	}
	if id := SpecHashKeyID(c.UnkeyedSpecHash()); id != "" {
		t.Errorf("key id of an unkeyed hash: %q", id)
	}
}

// BenchmarkSpecHash compares the keyed hash of a spec with sensitive values
// with the unkeyed one flowctl used before (what every plan pays per
// component).
func BenchmarkSpecHash(b *testing.B) {
	t := &testing.T{}
	c := sensitiveComponent(t, guessedSecret)
	k := testKey(t, 1)
	b.Run("keyed", func(b *testing.B) {
		for b.Loop() {
			_ = c.SpecHash(k)
		}
	})
	b.Run("unkeyed", func(b *testing.B) {
		for b.Loop() {
			_ = c.UnkeyedSpecHash()
		}
	})
}
