// Package tokens issues and verifies component tokens: HS256 JWTs that
// `apply` hands to each component instance (FLOWCTL_COMPONENT_TOKEN) and
// that the control plane checks on every call.
//
// Claims: iss "flowctl", aud "flowctl-control-plane", sub the component
// address (source.ledger), pipeline, lineage (of the state file), jti the
// instance id (changes with every start of the component), iat, exp.
//
// A token is a credential: never log it, nor the secret. Errors returned by
// this package never contain either.
package tokens

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Fixed claim values.
const (
	ClaimIssuer     = "flowctl"
	ClaimAudience   = "flowctl-control-plane"
	DefaultLifetime = 7 * 24 * time.Hour
	// DefaultLeeway tolerates clock skew between flowctl processes when
	// checking exp and iat.
	DefaultLeeway = 5 * time.Second
)

// Claims are a component token's claims.
type Claims struct {
	Pipeline string `json:"pipeline"`
	Lineage  string `json:"lineage"`
	jwt.RegisteredClaims
}

// Address is the component address the token was issued for (sub).
func (c *Claims) Address() string { return c.Subject }

// InstanceID is the instance the token was issued for (jti).
func (c *Claims) InstanceID() string { return c.ID }

// Lifetime is exp - iat.
func (c *Claims) Lifetime() time.Duration {
	if c.ExpiresAt == nil || c.IssuedAt == nil {
		return 0
	}
	return c.ExpiresAt.Sub(c.IssuedAt.Time)
}

// NeedsRefresh reports whether the token is past half its life at now.
func (c *Claims) NeedsRefresh(now time.Time) bool {
	if c.ExpiresAt == nil || c.IssuedAt == nil {
		return true
	}
	return !now.Before(c.IssuedAt.Add(c.Lifetime() / 2))
}

// Subject is what a token is issued for.
type Subject struct {
	Address    string // sub: KIND.ID
	Pipeline   string
	Lineage    string
	InstanceID string // jti
}

// Issuer signs component tokens.
type Issuer struct {
	secret   *Secret
	lifetime time.Duration
	now      func() time.Time
}

// IssuerOption configures an Issuer.
type IssuerOption func(*Issuer)

// WithLifetime sets the lifetime of issued tokens (default 7 days).
func WithLifetime(d time.Duration) IssuerOption {
	return func(i *Issuer) {
		if d > 0 {
			i.lifetime = d
		}
	}
}

// WithIssuerClock replaces time.Now, for tests.
func WithIssuerClock(now func() time.Time) IssuerOption {
	return func(i *Issuer) { i.now = now }
}

// NewIssuer returns an issuer signing with secret.
func NewIssuer(secret *Secret, opts ...IssuerOption) *Issuer {
	i := &Issuer{secret: secret, lifetime: DefaultLifetime, now: time.Now}
	for _, o := range opts {
		o(i)
	}
	return i
}

// Lifetime is the lifetime of the tokens it issues.
func (i *Issuer) Lifetime() time.Duration { return i.lifetime }

// Issue signs a token for s.
func (i *Issuer) Issue(s Subject) (string, error) {
	if s.Address == "" || s.InstanceID == "" {
		return "", errors.New("issue token: address and instance id are required")
	}
	key := i.secret.bytes()
	if len(key) == 0 {
		return "", errors.New("issue token: no secret")
	}
	now := i.now().Truncate(time.Second)
	claims := Claims{
		Pipeline: s.Pipeline,
		Lineage:  s.Lineage,
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    ClaimIssuer,
			Audience:  jwt.ClaimStrings{ClaimAudience},
			Subject:   s.Address,
			ID:        s.InstanceID,
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(i.lifetime)),
		},
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(key)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return tok, nil
}

// Refresh issues a new token for the same subject, pipeline, lineage and
// instance as c, with a fresh lifetime.
func (i *Issuer) Refresh(c *Claims) (string, error) {
	return i.Issue(Subject{Address: c.Subject, Pipeline: c.Pipeline, Lineage: c.Lineage, InstanceID: c.ID})
}

// Reason says why a token was refused.
type Reason string

// Refusal reasons.
const (
	ReasonMissing       Reason = "missing"        // no token presented
	ReasonMalformed     Reason = "malformed"      // not a JWT, or a required claim (sub, jti, iat, exp) is absent
	ReasonBadSignature  Reason = "bad_signature"  // signed with another key (forged, or before a rotation) or another algorithm
	ReasonWrongAudience Reason = "wrong_audience" // aud is not flowctl-control-plane
	ReasonWrongIssuer   Reason = "wrong_issuer"   // iss is not flowctl
	ReasonExpired       Reason = "expired"        // exp has passed
	ReasonNotYetValid   Reason = "not_yet_valid"  // iat or nbf is in the future
	ReasonWrongPipeline Reason = "wrong_pipeline" // issued for another pipeline
	ReasonWrongLineage  Reason = "wrong_lineage"  // issued for another state file (the pipeline was destroyed and re-created)
)

// Reasons lists every refusal reason (for metrics).
var Reasons = []Reason{ReasonMissing, ReasonMalformed, ReasonBadSignature, ReasonWrongAudience, ReasonWrongIssuer, ReasonExpired, ReasonNotYetValid, ReasonWrongPipeline, ReasonWrongLineage}

// Error is a refusal. errors.Is(err, ErrExpired) and friends work on it;
// ReasonOf extracts the reason.
type Error struct {
	Reason Reason
	// Detail explains the refusal; it never contains the token.
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return "token refused: " + string(e.Reason)
	}
	return "token refused: " + string(e.Reason) + ": " + e.Detail
}

// Is matches errors of the same reason.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Reason == e.Reason
}

// Sentinel errors, one per reason, for errors.Is.
var (
	ErrMissing       = &Error{Reason: ReasonMissing}
	ErrMalformed     = &Error{Reason: ReasonMalformed}
	ErrBadSignature  = &Error{Reason: ReasonBadSignature}
	ErrWrongAudience = &Error{Reason: ReasonWrongAudience}
	ErrWrongIssuer   = &Error{Reason: ReasonWrongIssuer}
	ErrExpired       = &Error{Reason: ReasonExpired}
	ErrNotYetValid   = &Error{Reason: ReasonNotYetValid}
	ErrWrongPipeline = &Error{Reason: ReasonWrongPipeline}
	ErrWrongLineage  = &Error{Reason: ReasonWrongLineage}
)

// ReasonOf returns the reason of a refusal, or "" when err is not one.
func ReasonOf(err error) Reason {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func refuse(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// Verifier checks component tokens of one pipeline and lineage.
type Verifier struct {
	secret   *Secret
	pipeline string
	lineage  string
	now      func() time.Time
	leeway   time.Duration
	parser   *jwt.Parser

	// cache of verified tokens (token → claims), so that a component's
	// every heartbeat does not re-parse and re-hash the same token; the time
	// claims are re-checked on each use, and an entry verified with a
	// secret that has since been rotated is not used.
	cacheMax int
	cacheMu  sync.RWMutex
	cache    map[string]cached
}

type cached struct {
	claims *Claims
	key    *[]byte
}

// DefaultCacheSize is how many verified tokens a Verifier remembers.
const DefaultCacheSize = 16384

// VerifierOption configures a Verifier.
type VerifierOption func(*Verifier)

// WithVerifierClock replaces time.Now, for tests.
func WithVerifierClock(now func() time.Time) VerifierOption {
	return func(v *Verifier) { v.now = now }
}

// WithCacheSize sets how many verified tokens are remembered (default
// DefaultCacheSize; 0 disables the cache).
func WithCacheSize(n int) VerifierOption {
	return func(v *Verifier) { v.cacheMax = n }
}

// WithLeeway sets the clock-skew tolerance (default DefaultLeeway).
func WithLeeway(d time.Duration) VerifierOption {
	return func(v *Verifier) { v.leeway = d }
}

// NewVerifier returns a verifier accepting tokens signed with secret for
// pipeline and lineage. An empty pipeline or lineage is not checked.
func NewVerifier(secret *Secret, pipeline, lineage string, opts ...VerifierOption) *Verifier {
	v := &Verifier{secret: secret, pipeline: pipeline, lineage: lineage, now: time.Now, leeway: DefaultLeeway, cacheMax: DefaultCacheSize}
	for _, o := range opts {
		o(v)
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithTimeFunc(v.now),
		jwt.WithLeeway(v.leeway),
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(),
		// Issuer and audience are checked by Verify, to report them precisely.
	)
	return v
}

// Now is the verifier's clock.
func (v *Verifier) Now() time.Time { return v.now() }

// Verify checks token and returns its claims, or an *Error saying why it is
// refused. The claims returned may be shared with other callers: do not
// modify them.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, refuse(ReasonMissing, "no token presented")
	}
	kp := v.secret.key.Load()
	if kp == nil || len(*kp) == 0 {
		return nil, refuse(ReasonBadSignature, "no secret to verify with")
	}
	if v.cacheMax > 0 {
		v.cacheMu.RLock()
		e, ok := v.cache[token]
		v.cacheMu.RUnlock()
		if ok && e.key == kp {
			if err := v.checkTimes(e.claims); err != nil {
				return nil, err
			}
			return e.claims, nil
		}
	}
	c, err := v.verify(token, *kp)
	if err != nil {
		return nil, err
	}
	if v.cacheMax > 0 {
		v.cacheMu.Lock()
		if len(v.cache) >= v.cacheMax || v.cache == nil {
			v.cache = make(map[string]cached, min(v.cacheMax, 1024))
		}
		v.cache[token] = cached{claims: c, key: kp}
		v.cacheMu.Unlock()
	}
	return c, nil
}

// checkTimes re-checks the time claims of a token verified earlier, as the
// parser does: exp (required), iat and nbf, with the leeway.
func (v *Verifier) checkTimes(c *Claims) error {
	now := v.now()
	if c.ExpiresAt == nil || !now.Before(c.ExpiresAt.Add(v.leeway)) {
		return refuse(ReasonExpired, "the token has expired")
	}
	if c.IssuedAt != nil && now.Before(c.IssuedAt.Add(-v.leeway)) || c.NotBefore != nil && now.Before(c.NotBefore.Add(-v.leeway)) {
		return refuse(ReasonNotYetValid, "the token is not valid yet (issued in the future)")
	}
	return nil
}

func (v *Verifier) verify(token string, key []byte) (*Claims, error) {
	var c Claims
	_, err := v.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return key, nil })
	if err != nil {
		return nil, classify(err)
	}
	if c.Issuer != ClaimIssuer {
		return nil, refuse(ReasonWrongIssuer, "issuer %q, want %q", trunc(c.Issuer), ClaimIssuer)
	}
	if !hasAudience(c.Audience) {
		return nil, refuse(ReasonWrongAudience, "audience %q, want %q", trunc(fmt.Sprint([]string(c.Audience))), ClaimAudience)
	}
	if c.Subject == "" {
		return nil, refuse(ReasonMalformed, "no subject (sub) claim")
	}
	if c.ID == "" {
		return nil, refuse(ReasonMalformed, "no instance id (jti) claim")
	}
	if c.IssuedAt == nil {
		return nil, refuse(ReasonMalformed, "no issued-at (iat) claim")
	}
	if v.pipeline != "" && c.Pipeline != v.pipeline {
		return nil, refuse(ReasonWrongPipeline, "token of %s is for pipeline %q, not %q", trunc(c.Subject), trunc(c.Pipeline), v.pipeline)
	}
	if v.lineage != "" && c.Lineage != v.lineage {
		return nil, refuse(ReasonWrongLineage, "token of %s is for state lineage %q, not %q", trunc(c.Subject), trunc(c.Lineage), v.lineage)
	}
	return &c, nil
}

func hasAudience(aud jwt.ClaimStrings) bool {
	for _, a := range aud {
		if a == ClaimAudience {
			return true
		}
	}
	return false
}

// classify maps golang-jwt's errors to reasons. Its messages are not passed
// on verbatim: some quote parts of the token.
func classify(err error) *Error {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return refuse(ReasonMalformed, "not a well-formed JWT")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return refuse(ReasonBadSignature, "signature does not verify with this pipeline's secret (forged, another algorithm, or signed before a secret rotation)")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return refuse(ReasonMalformed, "a required claim (exp) is missing")
	case errors.Is(err, jwt.ErrTokenExpired):
		return refuse(ReasonExpired, "the token has expired")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued), errors.Is(err, jwt.ErrTokenNotValidYet):
		return refuse(ReasonNotYetValid, "the token is not valid yet (issued in the future)")
	case errors.Is(err, jwt.ErrInvalidType):
		return refuse(ReasonMalformed, "a claim has the wrong type")
	}
	return refuse(ReasonMalformed, "unreadable token")
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
