package tokens

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowctl/flowctl/pkg/component"
	"github.com/flowctl/flowctl/pkg/contract"
)

func TestDataKeyIsCreatedOnceOwnerOnlyAndReadBack(t *testing.T) {
	path := DefaultDataKeyPath(filepath.Join(t.TempDir(), ".flowctl", "state.db"))
	keys := make([]*DataKey, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := LoadOrCreateDataKey(path)
			if err != nil {
				t.Error(err)
				return
			}
			keys[i] = k
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for _, k := range keys[1:] {
		if k.PublicString() != keys[0].PublicString() {
			t.Fatal("racing creators ended up with different keys")
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".data-plane-key-*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	again, err := LoadOrCreateDataKey(path)
	if err != nil || again.PublicString() != keys[0].PublicString() {
		t.Fatalf("reloaded key differs (%v)", err)
	}
	if s := again.String() + again.GoString(); strings.Contains(s, "PRIVATE") {
		t.Fatalf("String shows the key: %s", s)
	}
}

func TestDataKeyRefusesADamagedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), DataKeyFileName)
	if err := os.WriteFile(path, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateDataKey(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("damaged key file: %v", err)
	}
}

func TestDataTokensVerifyWithThePublicKeyOnlyAndAreRenewedPastHalfLife(t *testing.T) {
	k, err := NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := component.ParseDataPlaneKey(k.PublicString())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	src := NewDataIssuer(k, "quickstart", WithDataLifetime(10*time.Minute), WithDataClock(clock)).Tokens(contract.DataPlaneRelaySubject)
	first, err := src.Token()
	if err != nil {
		t.Fatal(err)
	}
	v := component.NewDataVerifier(pub, component.WithPipeline("quickstart"), component.WithVerifierClock(clock))
	c, err := v.Verify(first)
	if err != nil {
		t.Fatal(err)
	}
	if c.Caller() != "relay" || c.Pipeline != "quickstart" || c.ExpiresAt.Sub(c.IssuedAt.Time) != 10*time.Minute {
		t.Fatalf("claims %+v", c)
	}
	now = now.Add(4 * time.Minute)
	if tok, _ := src.Token(); tok != first {
		t.Fatal("a token before half its life was replaced")
	}
	now = now.Add(2 * time.Minute)
	second, err := src.Token()
	if err != nil || second == first {
		t.Fatalf("no new token past half life (%v)", err)
	}
	now = now.Add(5 * time.Minute) // the first has expired, from the cache too
	if _, err := v.Verify(first); err == nil {
		t.Fatal("an expired token verified")
	}
	if _, err := v.Verify(second); err != nil {
		t.Fatalf("the renewed token: %v", err)
	}
}

func TestDataTokensFollowARotatedKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), DataKeyFileName)
	k, err := LoadOrCreateDataKey(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	src := NewDataIssuer(k, "p", WithDataClock(clock)).Tokens(contract.DataPlaneRelaySubject)
	verifier := func(key string) *component.DataVerifier {
		pub, err := component.ParseDataPlaneKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return component.NewDataVerifier(pub, component.WithVerifierClock(clock))
	}
	oldV := verifier(k.PublicString())
	tok, err := src.Token()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oldV.Verify(tok); err != nil {
		t.Fatal(err)
	}

	if err := RotateDataKeyFile(path); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("rotated key file: %v %v", st, err)
	}
	rotated, err := LoadOrCreateDataKey(path)
	if err != nil || rotated.PublicString() == k.PublicString() {
		t.Fatalf("the key did not change (%v)", err)
	}
	now = now.Add(2 * keyCheckGap)
	tok, err = src.Token()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verifier(rotated.PublicString()).Verify(tok); err != nil {
		t.Fatalf("after rotation, the token does not verify with the new key: %v", err)
	}
	if _, err := oldV.Verify(tok); err == nil {
		t.Fatal("after rotation, the token still verifies with the old key")
	}
}
