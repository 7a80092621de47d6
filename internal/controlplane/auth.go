package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/flowctl/flowctl/internal/tokens"
	"github.com/flowctl/flowctl/pkg/contract"
)

// AuthMode says what the control plane does with calls that carry no token.
type AuthMode string

// Auth modes. A token that is presented must be valid in every mode.
const (
	// AuthRequired admits a call with a valid token, or without one when
	// the caller is attested: its connection is proven to come from a
	// pipeline component's workload (Options.Attestor). Anything else is
	// refused (codes.Unauthenticated). The default.
	AuthRequired AuthMode = "required"
	// AuthTokenOnly admits only calls with a valid token.
	AuthTokenOnly AuthMode = "token"
	// AuthPermissive admits calls without a token, for components that
	// predate tokens on executors that cannot attest; registrations that
	// are not attested are flagged unproven.
	AuthPermissive AuthMode = "permissive"
)

// ParseAuthMode parses a --auth flag value ("" is required).
func ParseAuthMode(s string) (AuthMode, error) {
	switch AuthMode(s) {
	case "", AuthRequired:
		return AuthRequired, nil
	case AuthTokenOnly, AuthPermissive:
		return AuthMode(s), nil
	}
	return "", fmt.Errorf("auth mode %q: want required, token or permissive", s)
}

// Metadata keys.
const (
	// MetadataAuthorization carries "Bearer <token>" on every call.
	MetadataAuthorization = contract.AuthorizationHeader
	// MetadataRefreshedToken is the response header that carries a fresh
	// token when the one presented is past half its life (Heartbeat answers
	// Empty, so it cannot travel in the body). Register responses carry it
	// too, besides connection_info["flowctl_token"].
	MetadataRefreshedToken = contract.RefreshedTokenHeader
	// ConnectionInfoToken is the connection_info key of a refreshed token in
	// RegistrationAck (older protocol) and RegisterResponse (current).
	ConnectionInfoToken = contract.ConnectionInfoToken
)

// Refusal reasons beyond the token's own (tokens.Reason): the token is
// valid but may not do what it asks.
const (
	// ReasonUnknownComponent: the token's subject is not in the pipeline
	// (destroyed, or never applied).
	ReasonUnknownComponent = "unknown_component"
	// ReasonReplacedInstance: the token's instance is not the component's
	// current one (replaced or restarted since).
	ReasonReplacedInstance = "replaced_instance"
	// ReasonImpersonation: a token for one component (or no token) acting on
	// another component's registration.
	ReasonImpersonation = "impersonation"
)

// caller is the authenticated identity of one call.
type caller struct {
	claims *tokens.Claims // nil: no token
	// att is the proven component of a caller without a token, and
	// instance its instance when it was proven; nil: unproven (admitted
	// only where the mode is permissive), and why says why.
	att      *Attested
	instance string
	why      string
}

// refuse is an error the handlers return after counting, logging and
// recording it (subject is the component the call was for, if known).
func (s *Server) refuse(ctx context.Context, method string, code codes.Code, reason, detail, subject string) error {
	return s.refuseInstance(ctx, method, code, reason, detail, subject, "")
}

// refuseInstance is refuse for a call that carried a token of instance.
func (s *Server) refuseInstance(ctx context.Context, method string, code codes.Code, reason, detail, subject, instance string) error {
	s.metrics.refused(reason)
	s.logRefusal(ctx, method, reason, detail, subject)
	s.recordRefusal(Refusal{At: s.now(), Component: subject, InstanceID: instance, Method: method, Reason: reason, Detail: detail, Peer: peerOf(ctx)})
	st := status.New(code, "flowctl control plane: "+reason+": "+detail)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: strings.ToUpper(reason), Domain: "flowctl.dev"}); err == nil {
		st = d
	}
	return st.Err()
}

// logRefusal logs a refusal without the token, at most refusalLogBurst per
// second; the count of those left out is logged with the next one.
func (s *Server) logRefusal(ctx context.Context, method, reason, detail, subject string) {
	sec := s.now().Unix()
	if old := s.logWindow.Load(); old != sec && s.logWindow.CompareAndSwap(old, sec) {
		s.logCount.Store(0)
	}
	if s.logCount.Add(1) > refusalLogBurst {
		s.logSuppressed.Add(1)
		return
	}
	attrs := []slog.Attr{
		slog.String("method", method),
		slog.String("reason", reason),
		slog.String("detail", detail),
		slog.String("peer", peerOf(ctx)),
	}
	if subject != "" {
		attrs = append(attrs, slog.String("subject", subject))
	}
	if n := s.logSuppressed.Swap(0); n > 0 {
		attrs = append(attrs, slog.Uint64("suppressed_since_last", n))
	}
	s.log.LogAttrs(ctx, slog.LevelWarn, "control plane refused a call", attrs...)
}

const refusalLogBurst = 20

type logLimiter struct {
	logWindow     atomic.Int64
	logCount      atomic.Int64
	logSuppressed atomic.Uint64
}

func peerOf(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

// authenticate checks the call's token, or admits a call without one (see
// tokenless). Every handler but the registrations' calls it first.
func (s *Server) authenticate(ctx context.Context, method string) (*caller, error) {
	if !hasToken(ctx) {
		c, _, _, err := s.tokenless(ctx, method, nil, "")
		return c, err
	}
	return s.checkToken(ctx, method)
}

// authenticateRegistration admits a registration and attributes it (ids
// are the ids it sent; healthEndpoint its health endpoint).
func (s *Server) authenticateRegistration(ctx context.Context, method string, ids []string, healthEndpoint string) (*caller, string, Attribution, error) {
	if !hasToken(ctx) {
		return s.tokenless(ctx, method, ids, healthEndpoint)
	}
	c, err := s.checkToken(ctx, method)
	if err != nil {
		return nil, "", "", err
	}
	if err := s.checkClaims(ctx, method, c, ids); err != nil {
		return nil, "", "", err
	}
	return c, c.claims.Subject, ByToken, nil
}

func hasToken(ctx context.Context) bool {
	return len(metadata.ValueFromIncomingContext(ctx, MetadataAuthorization)) > 0
}

// checkToken checks the call's token.
func (s *Server) checkToken(ctx context.Context, method string) (*caller, error) {
	vals := metadata.ValueFromIncomingContext(ctx, MetadataAuthorization)
	if len(vals) > 1 {
		return nil, s.refuse(ctx, method, codes.Unauthenticated, string(tokens.ReasonMalformed), "more than one authorization value", "")
	}
	scheme, tok, ok := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !ok || !strings.EqualFold(scheme, contract.AuthorizationScheme) {
		return nil, s.refuse(ctx, method, codes.Unauthenticated, string(tokens.ReasonMalformed), "authorization is not \"Bearer <token>\"", "")
	}
	claims, err := s.opts.Verifier.Verify(strings.TrimSpace(tok))
	if err != nil {
		reason, detail := string(tokens.ReasonMalformed), "unreadable token"
		var te *tokens.Error
		if errors.As(err, &te) {
			reason, detail = string(te.Reason), te.Detail
		}
		return nil, s.refuse(ctx, method, codes.Unauthenticated, reason, detail, "")
	}
	exp := s.expectedComponent(claims.Subject, claims.ID)
	if (exp == nil || exp.InstanceID != claims.ID) && s.fresh(claims) {
		exp = s.awaitInstance(ctx, claims.Subject, claims.ID)
	}
	if exp == nil {
		return nil, s.refuseInstance(ctx, method, codes.PermissionDenied, ReasonUnknownComponent,
			fmt.Sprintf("the token is for %s, which the pipeline's state does not have (destroyed?)", claims.Subject), claims.Subject, claims.ID)
	}
	if exp.InstanceID != claims.ID {
		return nil, s.refuseInstance(ctx, method, codes.PermissionDenied, ReasonReplacedInstance,
			fmt.Sprintf("the token is for an instance of %s that has been replaced or restarted since; use the token of the current instance", claims.Subject), claims.Subject, claims.ID)
	}
	return &caller{claims: claims}, nil
}

// expectedComponent returns the expected component at addr. When it is
// unknown, or its instance is not instance, the expected list may be stale
// (an apply just ran): it is re-read first.
func (s *Server) expectedComponent(addr, instance string) *ExpectedComponent {
	c := s.expected.Load().byAddr[addr]
	if c != nil && c.InstanceID == instance {
		return c
	}
	s.refreshExpected(true)
	return s.expected.Load().byAddr[addr]
}

// An instance registers as soon as it starts, which may be before apply
// has recorded it in state. A token issued less than pendingWindow ago
// whose instance state does not (yet) name is therefore given up to
// Options.PendingWait for the record to appear before it is refused.
const (
	pendingWindow = time.Minute
	pendingPoll   = 50 * time.Millisecond
)

// fresh says whether c was issued less than pendingWindow ago.
func (s *Server) fresh(c *tokens.Claims) bool {
	return c.IssuedAt != nil && s.now().Sub(c.IssuedAt.Time) < pendingWindow
}

// awaitInstance re-reads the expected components until addr's instance is
// instance, for at most Options.PendingWait (or until ctx ends), and
// returns what it has then.
func (s *Server) awaitInstance(ctx context.Context, addr, instance string) *ExpectedComponent {
	deadline := time.NewTimer(s.opts.PendingWait)
	defer deadline.Stop()
	tick := time.NewTicker(pendingPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
		case <-deadline.C:
		case <-tick.C:
			c := s.expectedComponent(addr, instance)
			if c == nil || c.InstanceID != instance {
				continue
			}
			return c
		}
		return s.expected.Load().byAddr[addr]
	}
}

// refreshExpected re-reads the expected components. A forced refresh is
// satisfied by any read that started after it was asked for (callers that
// ask together share one read), so what it returns is never older than
// the moment of asking.
func (s *Server) refreshExpected(forced bool) error {
	if s.opts.Expected == nil {
		return nil
	}
	asked := s.reads.Load()
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	if forced && s.expected.Load().seq > asked {
		return nil
	}
	seq := s.reads.Add(1)
	s.storeMu.Lock()
	list, err := s.opts.Expected.ExpectedComponents()
	s.storeMu.Unlock()
	if err != nil {
		s.log.Warn("control plane: could not read the pipeline's components", "err", err)
		return err
	}
	x := newExpectedIndex(list, s.now())
	old := s.expected.Load()
	x.seq, x.gen = seq, old.gen
	changed := !x.sameAs(old)
	if changed {
		x.gen++
	}
	// Stored before the signal: the loop that re-attributes reads the
	// index it is told about, never the one it replaces.
	s.expected.Store(x)
	if changed {
		select {
		case s.changed <- struct{}{}:
		default: // a signal is pending already; it will read this index
		}
	}
	return nil
}

// checkClaims refuses a token holder that names another pipeline
// component (an id it sent). An id the expected components do not have
// may be one the state has just recorded: they are re-read first, so the
// check never runs on a stale view.
func (s *Server) checkClaims(ctx context.Context, method string, c *caller, ids []string) error {
	x := s.expected.Load()
	for _, id := range ids {
		if id != "" && x.component(id) == nil {
			_ = s.refreshExpected(true)
			x = s.expected.Load()
			break
		}
	}
	for _, id := range ids {
		if other := x.component(id); other != nil && other.Address != c.claims.Subject {
			return s.refuseInstance(ctx, method, codes.PermissionDenied, ReasonImpersonation,
				fmt.Sprintf("a token for %s cannot register as %s", c.claims.Subject, other.Address), c.claims.Subject, c.claims.ID)
		}
	}
	return nil
}

// mayActOn checks that caller c may heartbeat, unregister or re-register the
// registration r: a token holder only its own component's; a caller without
// a token only registrations made without one.
func (s *Server) mayActOn(ctx context.Context, method string, c *caller, r *Registration) error {
	if c.claims != nil {
		if r.Component != c.claims.Subject {
			target := r.Component
			if target == "" {
				target = "unmanaged service " + r.ServiceID
			}
			return s.refuse(ctx, method, codes.PermissionDenied, ReasonImpersonation,
				fmt.Sprintf("a token for %s cannot act as %s", c.claims.Subject, target), c.claims.Subject)
		}
		return nil
	}
	if r.Auth == AuthToken {
		return s.refuse(ctx, method, codes.PermissionDenied, ReasonImpersonation,
			fmt.Sprintf("service %s was registered with a token for %s; calls on it must carry that token", r.ServiceID, r.Component), "")
	}
	if r.Auth == AuthAttested && (c.att == nil || c.att.Address != r.Component) {
		return s.refuse(ctx, method, codes.PermissionDenied, ReasonImpersonation,
			fmt.Sprintf("service %s was registered by an attested instance of %s; this caller is not one", r.ServiceID, r.Component), r.Component)
	}
	return nil
}

// refreshed returns a new token for c when its token is past half its life,
// and sets it as the response header MetadataRefreshedToken.
func (s *Server) refreshed(ctx context.Context, c *caller) string {
	if c.claims == nil || s.opts.Issuer == nil || !c.claims.NeedsRefresh(s.now()) {
		return ""
	}
	tok, err := s.opts.Issuer.Refresh(c.claims)
	if err != nil {
		s.log.Warn("control plane: could not refresh a component token", "subject", c.claims.Subject, "err", err)
		return ""
	}
	s.metrics.TokensRefreshed.Add(1)
	_ = setHeader(ctx, metadata.Pairs(MetadataRefreshedToken, tok))
	return tok
}
