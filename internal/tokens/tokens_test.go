package tokens

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func testSecret(t *testing.T) *Secret {
	t.Helper()
	s, err := NewSecret(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var subj = Subject{Address: "source.ledger", Pipeline: "ttp", Lineage: "lin-1", InstanceID: "inst-1"}

func issueAt(t *testing.T, s *Secret, at time.Time, sub Subject, opts ...IssuerOption) string {
	t.Helper()
	opts = append([]IssuerOption{WithIssuerClock(func() time.Time { return at })}, opts...)
	tok, err := NewIssuer(s, opts...).Issue(sub)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func verifierAt(s *Secret, at time.Time) *Verifier {
	return NewVerifier(s, "ttp", "lin-1", WithVerifierClock(func() time.Time { return at }))
}

// signRaw signs arbitrary claims with key, to build tokens the issuer would
// never produce.
func signRaw(t *testing.T, key []byte, m jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, m).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func goodClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss": ClaimIssuer, "aud": ClaimAudience, "sub": "source.ledger", "jti": "inst-1",
		"pipeline": "ttp", "lineage": "lin-1",
		"iat": t0.Unix(), "exp": t0.Add(time.Hour).Unix(),
	}
}

func TestIssueVerify(t *testing.T) {
	s := testSecret(t)
	tok := issueAt(t, s, t0, subj)
	c, err := verifierAt(s, t0.Add(time.Minute)).Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.Address() != "source.ledger" || c.InstanceID() != "inst-1" || c.Pipeline != "ttp" || c.Lineage != "lin-1" ||
		c.Issuer != ClaimIssuer || len(c.Audience) != 1 || c.Audience[0] != ClaimAudience {
		t.Fatalf("claims: %+v", c)
	}
	if got := c.Lifetime(); got != DefaultLifetime {
		t.Fatalf("lifetime %s", got)
	}
	if !c.IssuedAt.Equal(t0) {
		t.Fatalf("iat %s", c.IssuedAt)
	}
}

func TestRefusals(t *testing.T) {
	s := testSecret(t)
	other, _ := NewSecret(bytes.Repeat([]byte{9}, 32))
	key := s.bytes()
	noneTok, err := jwt.NewWithClaims(jwt.SigningMethodNone, goodClaims()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	hs512, err := jwt.NewWithClaims(jwt.SigningMethodHS512, goodClaims()).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	with := func(k string, v any) jwt.MapClaims {
		m := goodClaims()
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	good := issueAt(t, s, t0, subj)
	parts := strings.Split(good, ".")
	tampered := parts[0] + "." + strings.TrimRight(signRawPayload(t, with("sub", "sink.other")), "=") + "." + parts[2]

	cases := []struct {
		name  string
		token string
		at    time.Time
		want  *Error
	}{
		{"missing", "", t0, ErrMissing},
		{"garbage", "not-a-jwt", t0, ErrMalformed},
		{"two parts", "abc.def", t0, ErrMalformed},
		{"forged signature", issueAt(t, other, t0, subj), t0, ErrBadSignature},
		{"tampered payload", tampered, t0, ErrBadSignature},
		{"alg none", noneTok, t0, ErrBadSignature},
		{"other algorithm", hs512, t0, ErrBadSignature},
		{"wrong audience", signRaw(t, key, with("aud", "someone-else")), t0, ErrWrongAudience},
		{"no audience", signRaw(t, key, with("aud", nil)), t0, ErrWrongAudience},
		{"wrong issuer", signRaw(t, key, with("iss", "evil")), t0, ErrWrongIssuer},
		{"expired", issueAt(t, s, t0, subj, WithLifetime(time.Hour)), t0.Add(2 * time.Hour), ErrExpired},
		{"no expiry", signRaw(t, key, with("exp", nil)), t0, ErrMalformed},
		{"issued in the future", issueAt(t, s, t0.Add(time.Hour), subj), t0, ErrNotYetValid},
		{"no subject", signRaw(t, key, with("sub", nil)), t0, ErrMalformed},
		{"no instance", signRaw(t, key, with("jti", nil)), t0, ErrMalformed},
		{"no issued-at", signRaw(t, key, with("iat", nil)), t0, ErrMalformed},
		{"claim of wrong type", signRaw(t, key, with("exp", "tomorrow")), t0, ErrMalformed},
		{"wrong pipeline", issueAt(t, s, t0, Subject{Address: "source.ledger", Pipeline: "other", Lineage: "lin-1", InstanceID: "i"}), t0, ErrWrongPipeline},
		{"wrong lineage", issueAt(t, s, t0, Subject{Address: "source.ledger", Pipeline: "ttp", Lineage: "lin-0", InstanceID: "i"}), t0, ErrWrongLineage},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := verifierAt(s, tc.at).Verify(tc.token)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want reason %s", err, tc.want.Reason)
			}
			if ReasonOf(err) != tc.want.Reason {
				t.Fatalf("ReasonOf = %q", ReasonOf(err))
			}
			if tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Fatalf("error quotes the token: %v", err)
			}
			for _, p := range strings.Split(tc.token, ".") {
				if len(p) > 16 && strings.Contains(err.Error(), p) {
					t.Fatalf("error quotes part of the token: %v", err)
				}
			}
		})
	}
}

// signRawPayload returns the base64 payload segment of a token carrying m.
func signRawPayload(t *testing.T, m jwt.MapClaims) string {
	tok := signRaw(t, []byte("x"), m)
	return strings.Split(tok, ".")[1]
}

func TestLeewayAndBoundaries(t *testing.T) {
	s := testSecret(t)
	tok := issueAt(t, s, t0, subj, WithLifetime(time.Hour))
	if _, err := verifierAt(s, t0.Add(time.Hour+time.Second)).Verify(tok); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
	if _, err := verifierAt(s, t0.Add(time.Hour+time.Minute)).Verify(tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("past leeway: %v", err)
	}
	// An empty pipeline/lineage in the verifier checks neither.
	c, err := NewVerifier(s, "", "", WithVerifierClock(func() time.Time { return t0 })).Verify(tok)
	if err != nil || c.Pipeline != "ttp" {
		t.Fatalf("%v %+v", err, c)
	}
}

func TestNeedsRefreshAndRefresh(t *testing.T) {
	s := testSecret(t)
	tok := issueAt(t, s, t0, subj, WithLifetime(10*time.Hour))
	c, err := verifierAt(s, t0).Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if c.NeedsRefresh(t0.Add(4*time.Hour + 59*time.Minute)) {
		t.Fatal("refresh before half-life")
	}
	if !c.NeedsRefresh(t0.Add(5 * time.Hour)) {
		t.Fatal("no refresh at half-life")
	}
	later := t0.Add(6 * time.Hour)
	fresh, err := NewIssuer(s, WithLifetime(10*time.Hour), WithIssuerClock(func() time.Time { return later })).Refresh(c)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := verifierAt(s, later).Verify(fresh)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Subject != c.Subject || c2.ID != c.ID || c2.Pipeline != c.Pipeline || c2.Lineage != c.Lineage || !c2.IssuedAt.Equal(later) {
		t.Fatalf("refreshed claims %+v", c2)
	}
	if c2.NeedsRefresh(later) {
		t.Fatal("fresh token needs refresh")
	}
}

func TestIssueNeedsAddressAndInstance(t *testing.T) {
	s := testSecret(t)
	if _, err := NewIssuer(s).Issue(Subject{Address: "source.a"}); err == nil {
		t.Fatal("issued without instance id")
	}
	if _, err := NewIssuer(s).Issue(Subject{InstanceID: "i"}); err == nil {
		t.Fatal("issued without address")
	}
}

func TestSecretFileCreatedOnce0600(t *testing.T) {
	dir := t.TempDir()
	path := DefaultSecretPath(filepath.Join(dir, ".flowctl", "ttp.state.db"))
	if path != filepath.Join(dir, ".flowctl", SecretFileName) {
		t.Fatalf("path %s", path)
	}
	s1, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Size() != SecretSize {
		t.Fatalf("mode %v size %d", st.Mode(), st.Size())
	}
	if s1.Warning() != "" {
		t.Fatal(s1.Warning())
	}
	s2, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s1.bytes(), s2.bytes()) {
		t.Fatal("second load created a new secret")
	}
	// A token issued with the first verifies with the second.
	tok := issueAt(t, s1, t0, subj)
	if _, err := verifierAt(s2, t0).Verify(tok); err != nil {
		t.Fatal(err)
	}
}

func TestRotationRefusesOldTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), SecretFileName)
	s, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	old := issueAt(t, s, t0, subj)
	v := verifierAt(s, t0)
	if _, err := v.Verify(old); err != nil {
		t.Fatal(err)
	}
	if err := s.Rotate(); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(old); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("old token after rotation: %v", err)
	}
	if _, err := v.Verify(issueAt(t, s, t0, subj)); err != nil {
		t.Fatalf("new token after rotation: %v", err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode after rotation %v", st.Mode())
	}

	// Rotation by another process (the file replaced), then Reload.
	other, err := LoadSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	tok := issueAt(t, other, t0, subj)
	if err := RotateSecretFile(path); err != nil {
		t.Fatal(err)
	}
	if _, err := verifierAt(other, t0).Verify(tok); err != nil {
		t.Fatal("rotation took effect before reload")
	}
	if err := other.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, err := verifierAt(other, t0).Verify(tok); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("after reload: %v", err)
	}
}

func TestOperatorSecretFile(t *testing.T) {
	dir := t.TempDir()
	hexFile := filepath.Join(dir, "hex")
	if err := os.WriteFile(hexFile, []byte(strings.Repeat("ab", 32)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSecret(hexFile)
	if err != nil {
		t.Fatal(err)
	}
	if string(s.bytes()) != strings.Repeat("ab", 32) {
		t.Fatal("trailing newline kept")
	}
	if !strings.Contains(s.Warning(), "readable by others") {
		t.Fatalf("warning %q", s.Warning())
	}
	short := filepath.Join(dir, "short")
	os.WriteFile(short, []byte("too short\n"), 0o600)
	if _, err := LoadSecret(short); err == nil || strings.Contains(err.Error(), "too short") {
		t.Fatalf("short secret: %v", err)
	}
	if _, err := LoadSecret(filepath.Join(dir, "absent")); err == nil {
		t.Fatal("absent file accepted")
	}
	if _, err := NewSecret([]byte("short")); err == nil {
		t.Fatal("short in-memory secret accepted")
	}
}

func TestSecretNeverPrinted(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	s, _ := NewSecret(key)
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s)} {
		if strings.Contains(out, string(key)) || strings.Contains(out, "0123456789") {
			t.Fatalf("secret printed: %s", out)
		}
	}
}

func TestCachedVerificationRechecksTime(t *testing.T) {
	s := testSecret(t)
	now := t0
	v := NewVerifier(s, "ttp", "lin-1", WithVerifierClock(func() time.Time { return now }))
	tok := issueAt(t, s, t0, subj, WithLifetime(time.Hour))
	c1, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := v.Verify(tok)
	if err != nil || c2 != c1 {
		t.Fatalf("second verification not served from the cache: %v", err)
	}
	now = t0.Add(2 * time.Hour)
	if _, err := v.Verify(tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("cached token past expiry: %v", err)
	}
	now = t0.Add(-time.Hour)
	if _, err := v.Verify(tok); !errors.Is(err, ErrNotYetValid) {
		t.Fatalf("cached token before iat: %v", err)
	}
	// A tampered copy is never a cache hit.
	if _, err := v.Verify(tok + "x"); err == nil {
		t.Fatal("tampered token accepted")
	}
	// The cache is bounded.
	small := NewVerifier(s, "", "", WithCacheSize(2), WithVerifierClock(func() time.Time { return t0 }))
	for i := 0; i < 10; i++ {
		if _, err := small.Verify(issueAt(t, s, t0, Subject{Address: "source.a", InstanceID: fmt.Sprint(i)})); err != nil {
			t.Fatal(err)
		}
		if len(small.cache) > 2 {
			t.Fatalf("cache grew to %d", len(small.cache))
		}
	}
	off := NewVerifier(s, "", "", WithCacheSize(0), WithVerifierClock(func() time.Time { return t0 }))
	if _, err := off.Verify(tok); err != nil || off.cache != nil {
		t.Fatal("cache used when disabled")
	}
}
