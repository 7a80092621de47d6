package component

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/pkg/contract"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// Data-plane authentication (docs/data-plane-auth.md).
//
// Whoever calls a component's data plane presents a data token: a JWT
// that flowctl signs with its Ed25519 key (alg EdDSA), audience
// contract.DataPlaneAudience, subject the caller (contract.DataPlaneRelaySubject
// for the relay of `flowctl serve`). A component holds only the public key
// (FLOWCTL_DATA_PLANE_KEY), so it can verify tokens but not make them.
//
// A DataVerifier checks the token once per call: once per stream, not per
// event. It remembers the tokens it verified, so that a caller opening
// stream after stream with the same token pays for one signature check.

// DataClaims are a data token's claims.
type DataClaims struct {
	// Pipeline is the pipeline the token was issued for; a verifier that
	// knows its pipeline refuses tokens of another.
	Pipeline string `json:"pipeline,omitempty"`
	jwt.RegisteredClaims
}

// Caller is who the token was issued to (sub).
func (c *DataClaims) Caller() string { return c.Subject }

// ParseDataPlaneKey decodes a public key in the form of
// FLOWCTL_DATA_PLANE_KEY: base64 of the key's PKIX DER encoding (the body
// of a PEM "PUBLIC KEY" block, on one line). A whole PEM block is accepted
// too.
func ParseDataPlaneKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		var body []string
		for _, l := range strings.Split(s, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "-----") {
				body = append(body, l)
			}
		}
		s = strings.Join(body, "")
	}
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("data-plane key: not base64: %w", err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("data-plane key: not a PKIX public key: %w", err)
	}
	k, ok := pub.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("data-plane key: a %T, want an Ed25519 key", pub)
	}
	return k, nil
}

// EncodeDataPlaneKey is the inverse of ParseDataPlaneKey.
func EncodeDataPlaneKey(k ed25519.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return "", fmt.Errorf("data-plane key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(der), nil
}

// Errors of DataVerifier.Verify; the interceptors answer each with
// codes.Unauthenticated (ErrNotRelay with codes.PermissionDenied).
var (
	ErrNoDataToken      = errors.New("no data token (authorization: Bearer <token>)")
	ErrInvalidDataToken = errors.New("invalid data token")
	ErrNotRelay         = errors.New("only flowctl's relay may call this method")
)

// dataLeeway tolerates clock skew between flowctl and its components.
const dataLeeway = 5 * time.Second

// dataCacheSize bounds how many verified tokens a DataVerifier remembers.
const dataCacheSize = 1024

// relayOnly are the methods only the relay's token may call: they move a
// source's committed position.
var relayOnly = map[string]bool{
	flowctlv1.SourceService_SaveState_FullMethodName: true,
}

// DataVerifier checks the data tokens of calls to a component's data plane.
// Its interceptors are what the SDK's own data-plane server uses; a
// component that serves its data plane with its own grpc.Server installs
// them with ServerOptions.
type DataVerifier struct {
	key      ed25519.PublicKey
	pipeline string
	now      func() time.Time
	parser   *jwt.Parser

	mu    sync.RWMutex
	cache map[string]*DataClaims
}

// DataVerifierOption adjusts a DataVerifier.
type DataVerifierOption func(*DataVerifier)

// WithPipeline makes the verifier refuse tokens issued for another
// pipeline (FLOWCTL_PIPELINE).
func WithPipeline(name string) DataVerifierOption {
	return func(v *DataVerifier) { v.pipeline = name }
}

// WithVerifierClock replaces time.Now, for tests.
func WithVerifierClock(now func() time.Time) DataVerifierOption {
	return func(v *DataVerifier) { v.now = now }
}

// NewDataVerifier returns a verifier of tokens signed by key's private half.
func NewDataVerifier(key ed25519.PublicKey, opts ...DataVerifierOption) *DataVerifier {
	v := &DataVerifier{key: key, now: time.Now}
	for _, o := range opts {
		o(v)
	}
	v.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithAudience(contract.DataPlaneAudience),
		jwt.WithIssuer(contract.DataPlaneIssuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(dataLeeway),
		jwt.WithTimeFunc(func() time.Time { return v.now() }),
	)
	return v
}

// Verify checks token and returns its claims (shared: do not modify them).
// The error wraps ErrNoDataToken or ErrInvalidDataToken and says why, never
// quoting the token.
func (v *DataVerifier) Verify(token string) (*DataClaims, error) {
	if token == "" {
		return nil, ErrNoDataToken
	}
	v.mu.RLock()
	c, ok := v.cache[token]
	v.mu.RUnlock()
	if ok {
		if err := v.checkTimes(c); err != nil {
			return nil, err
		}
		return c, nil
	}
	c = &DataClaims{}
	if _, err := v.parser.ParseWithClaims(token, c, func(*jwt.Token) (any, error) { return v.key, nil }); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrInvalidDataToken, why(err))
	}
	if c.Subject == "" {
		return nil, fmt.Errorf("%w: no subject", ErrInvalidDataToken)
	}
	if v.pipeline != "" && c.Pipeline != v.pipeline {
		return nil, fmt.Errorf("%w: issued for another pipeline", ErrInvalidDataToken)
	}
	v.mu.Lock()
	if len(v.cache) >= dataCacheSize || v.cache == nil {
		v.cache = make(map[string]*DataClaims, 16)
	}
	v.cache[token] = c
	v.mu.Unlock()
	return c, nil
}

// checkTimes re-checks exp, iat and nbf of a token verified earlier.
func (v *DataVerifier) checkTimes(c *DataClaims) error {
	now := v.now()
	if c.ExpiresAt == nil || !now.Before(c.ExpiresAt.Add(dataLeeway)) {
		return fmt.Errorf("%w: expired", ErrInvalidDataToken)
	}
	if c.IssuedAt != nil && now.Before(c.IssuedAt.Add(-dataLeeway)) || c.NotBefore != nil && now.Before(c.NotBefore.Add(-dataLeeway)) {
		return fmt.Errorf("%w: not valid yet", ErrInvalidDataToken)
	}
	return nil
}

// why says which check a token failed; golang-jwt's own messages may quote
// parts of the token.
func why(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "not a well-formed JWT"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "not signed by this pipeline's data-plane key"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "audience is not " + contract.DataPlaneAudience
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "issuer is not " + contract.DataPlaneIssuer
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "a required claim is missing"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued), errors.Is(err, jwt.ErrTokenNotValidYet):
		return "not valid yet"
	}
	return "unreadable"
}

// Authenticate verifies the data token of an incoming call (its
// authorization metadata) and checks that the caller may call method (a
// full method name, "/flowctl.v1.SourceService/SaveState"). The error is a
// gRPC status: Unauthenticated, or PermissionDenied for a valid token of a
// caller other than the relay on a method only the relay may call.
func (v *DataVerifier) Authenticate(ctx context.Context, method string) (*DataClaims, error) {
	var tok string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if vals := md.Get(contract.AuthorizationHeader); len(vals) > 0 {
			scheme, rest, found := strings.Cut(vals[0], " ")
			if found && strings.EqualFold(scheme, contract.AuthorizationScheme) {
				tok = strings.TrimSpace(rest)
			}
		}
	}
	c, err := v.Verify(tok)
	if err != nil {
		return nil, status.Error(codes.Unauthenticated, "data plane: "+err.Error())
	}
	if relayOnly[method] && c.Subject != contract.DataPlaneRelaySubject {
		return nil, status.Errorf(codes.PermissionDenied, "data plane: %v (caller %q)", ErrNotRelay, trim(c.Subject))
	}
	return c, nil
}

func trim(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

type claimsKey struct{}

// DataClaimsFrom returns the verified claims of the call ctx belongs to,
// when a DataVerifier's interceptor let it in.
func DataClaimsFrom(ctx context.Context) (*DataClaims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*DataClaims)
	return c, ok
}

// UnaryInterceptor refuses unary calls without a valid data token.
func (v *DataVerifier) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		c, err := v.Authenticate(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(context.WithValue(ctx, claimsKey{}, c), req)
	}
}

// StreamInterceptor refuses streams without a valid data token; the token
// is checked once, when the stream opens.
func (v *DataVerifier) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		c, err := v.Authenticate(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &claimedStream{ServerStream: ss, ctx: context.WithValue(ss.Context(), claimsKey{}, c)})
	}
}

// ServerOptions are the options that install both interceptors on a
// grpc.Server.
func (v *DataVerifier) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(v.UnaryInterceptor()), grpc.ChainStreamInterceptor(v.StreamInterceptor())}
}

type claimedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *claimedStream) Context() context.Context { return s.ctx }

// DataVerifier returns the verifier cfg's DataPlaneKey (and Pipeline) call
// for: nil when the key is unset, an error when it is malformed.
func (cfg Config) DataVerifier() (*DataVerifier, error) {
	if cfg.DataPlaneKey == "" {
		return nil, nil
	}
	k, err := ParseDataPlaneKey(cfg.DataPlaneKey)
	if err != nil {
		return nil, fmt.Errorf("component: %s: %w", contract.EnvDataPlaneKey, err)
	}
	var opts []DataVerifierOption
	if cfg.Pipeline != "" {
		opts = append(opts, WithPipeline(cfg.Pipeline))
	}
	return NewDataVerifier(k, opts...), nil
}

// DataTokenCredentials attaches a data token to every call made on a
// connection (grpc.WithPerRPCCredentials): token is asked once per call —
// once per stream — so a source of refreshed tokens is consulted as often
// as that. It works without transport security, as the data plane runs.
func DataTokenCredentials(token func(ctx context.Context) (string, error)) credentials.PerRPCCredentials {
	return bearer(token)
}

// WithDataToken is a dial option that sends a fixed data token with every
// call (Dial(addr, WithDataToken(tok))).
func WithDataToken(token string) grpc.DialOption {
	return grpc.WithPerRPCCredentials(DataTokenCredentials(func(context.Context) (string, error) { return token, nil }))
}

type bearer func(ctx context.Context) (string, error)

func (b bearer) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	t, err := b(ctx)
	if err != nil {
		return nil, fmt.Errorf("data token: %w", err)
	}
	return map[string]string{contract.AuthorizationHeader: contract.AuthorizationScheme + " " + t}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }
