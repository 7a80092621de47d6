package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/stats"

	"github.com/flowctl/flowctl/internal/tokens"
)

// Attestor proves which expected component made a call that carries no
// token, from the connection's addresses: peer is the caller's end, local
// the control plane's (invalid when unknown). It looks only at candidates
// (the pipeline's components as state records them) and returns the one
// whose workload holds the connection, or an error saying why none can be
// shown to — an error that wraps ErrCannotAttest when no candidate runs on
// an executor able to tell (waiting for the state to change would not
// help). internal/attest implements it over the executors.
type Attestor interface {
	Attest(ctx context.Context, peer, local netip.AddrPort, candidates []ExpectedComponent) (Attested, error)
}

// Attested is a proven caller.
type Attested struct {
	// Address is the component the caller is an instance of.
	Address string
	// Proof says what was checked ("pid 1234", "container 0123456789ab").
	Proof string
}

// ErrCannotAttest: none of the candidates runs where attestation is
// possible (an executor without the capability, such as nomad).
var ErrCannotAttest = errors.New("no component runs on an executor that can attest its workloads")

// connState is what the control plane remembers of one connection: the
// attestation of its caller, computed at its first tokenless call and
// reused until the expected components change. It lives in the
// connection's context and goes with it.
type connState struct {
	mu  sync.Mutex
	set bool
	gen uint64 // generation of the expected index it was computed against
	att *Attested
	// instance is the attested component's instance then.
	instance string
	why      string
}

type connKey struct{}

// connTagger gives each connection its connState (a stats.Handler: gRPC
// derives every call's context from the connection's).
type connTagger struct{}

func (connTagger) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return context.WithValue(ctx, connKey{}, &connState{})
}
func (connTagger) HandleConn(context.Context, stats.ConnStats) {}
func (connTagger) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return ctx
}
func (connTagger) HandleRPC(context.Context, stats.RPCStats) {}

func connStateOf(ctx context.Context) *connState {
	cs, _ := ctx.Value(connKey{}).(*connState)
	return cs
}

// callAddrs are the two ends of the call's connection.
func callAddrs(ctx context.Context) (peerAP, localAP netip.AddrPort) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return
	}
	return addrPortOf(p.Addr), addrPortOf(p.LocalAddr)
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if t, ok := a.(*net.TCPAddr); ok {
		ap := t.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	if a == nil {
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// cached returns the connection's attestation when it still holds for x:
// a proof while its component's instance is unchanged, a failure while the
// expected components are.
func (cs *connState) cached(x *expectedIndex) (*Attested, string, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if !cs.set {
		return nil, "", false
	}
	if cs.att != nil {
		if c := x.byAddr[cs.att.Address]; c != nil && c.InstanceID == cs.instance {
			return cs.att, "", true
		}
		return nil, "", false
	}
	return nil, cs.why, cs.gen == x.gen
}

func (cs *connState) store(x *expectedIndex, att *Attested, why string) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.set, cs.gen, cs.att, cs.why, cs.instance = true, x.gen, att, why, ""
	if att != nil {
		if c := x.byAddr[att.Address]; c != nil {
			cs.instance = c.InstanceID
		}
	}
}

// attestCall proves which component made the call, if it can. A component
// calls as soon as it starts, possibly before apply has recorded its
// instance: while attestation fails for want of a record (not because
// nothing can attest), the expected components are re-read and the
// attestation tried again, for at most AttestWait. ids are ids the call
// claims; one the index does not have is waited for too.
func (s *Server) attestCall(ctx context.Context, ids []string) (*Attested, string, *expectedIndex) {
	x := s.expected.Load()
	if s.opts.Attestor == nil {
		return nil, "this control plane attests no workloads", x
	}
	peerAP, localAP := callAddrs(ctx)
	if !peerAP.IsValid() {
		return nil, "the call's peer address is unknown", x
	}
	cs := connStateOf(ctx)
	if cs != nil {
		if att, why, ok := cs.cached(x); ok {
			return att, why, x
		}
	}
	// Real time, as the pending wait of tokens (awaitInstance).
	deadline := time.Now().Add(s.opts.AttestWait)
	for {
		att, why, final := s.attestOnce(ctx, x, peerAP, localAP, ids)
		if att != nil || final || !time.Now().Before(deadline) || s.pause(ctx) != nil {
			if cs != nil {
				cs.store(x, att, why)
			}
			return att, why, x
		}
		_ = s.refreshExpected(true)
		x = s.expected.Load()
	}
}

// attestOnce asks the Attestor against x; final says that waiting for the
// state to change cannot help.
func (s *Server) attestOnce(ctx context.Context, x *expectedIndex, peerAP, localAP netip.AddrPort, ids []string) (*Attested, string, bool) {
	start := time.Now()
	a, err := s.opts.Attestor.Attest(ctx, peerAP, localAP, x.list)
	s.metrics.observeAttestation(time.Since(start), err == nil)
	if err == nil {
		if x.byAddr[a.Address] == nil {
			return nil, fmt.Sprintf("the attestor named %s, which is not a pipeline component", a.Address), true
		}
		return &a, "", true
	}
	final := errors.Is(err, ErrCannotAttest)
	for _, id := range ids {
		if id != "" && x.component(id) == nil {
			final = false // an id the state may be about to record
		}
	}
	return nil, err.Error(), final
}

// pause waits one poll interval (or until ctx ends).
func (s *Server) pause(ctx context.Context) error {
	t := time.NewTimer(pendingPoll)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closed:
		return errors.New("control plane closing")
	case <-t.C:
		return nil
	}
}

// modeFor is the auth mode that governs calls for component c: its own
// `auth`, or the server's (c nil: the server's).
func (s *Server) modeFor(c *ExpectedComponent) AuthMode {
	if c != nil && c.Auth != "" {
		return c.Auth
	}
	return s.opts.AuthMode
}

// tokenless admits a call that carries no token, and attributes it when it
// registers (ids and healthEndpoint are what a registration sent; nil for
// other calls). A proven caller is attributed to its component, whatever
// ids it sends (an id of another component is impersonation); an unproven
// one is admitted only where the mode governing it is permissive.
func (s *Server) tokenless(ctx context.Context, method string, ids []string, healthEndpoint string) (*caller, string, Attribution, error) {
	att, why, x := s.attestCall(ctx, ids)
	if att != nil {
		comp := x.byAddr[att.Address]
		for _, id := range ids {
			if other := x.component(id); other != nil && other.Address != att.Address {
				return nil, "", "", s.refuse(ctx, method, codes.PermissionDenied, ReasonImpersonation,
					fmt.Sprintf("this process is attested as %s (%s); it cannot act as %s", att.Address, att.Proof, other.Address), att.Address)
			}
		}
		if mode := s.modeFor(comp); mode == AuthTokenOnly {
			return nil, "", "", s.refuse(ctx, method, codes.Unauthenticated, string(tokens.ReasonMissing),
				fmt.Sprintf("no token (auth = token for %s: it is attested (%s), but this component must send its token FLOWCTL_COMPONENT_TOKEN)", att.Address, att.Proof), att.Address)
		}
		return &caller{att: att, instance: comp.InstanceID}, att.Address, ByAttestation, nil
	}
	target, by := s.claimedTarget(x, ids, healthEndpoint)
	mode := s.modeFor(target)
	if mode != AuthPermissive {
		subject := ""
		if target != nil {
			subject = target.Address
		}
		return nil, "", "", s.refuse(ctx, method, codes.Unauthenticated, string(tokens.ReasonMissing),
			fmt.Sprintf("no token (auth = %s; this process could not be attested because %s): send gRPC metadata \"authorization: Bearer <FLOWCTL_COMPONENT_TOKEN>\", or set auth = \"permissive\"", mode, why), subject)
	}
	if target == nil {
		return &caller{why: why}, "", Unmanaged, nil
	}
	return &caller{why: why}, target.Address, by, nil
}

// claimedTarget is the component a tokenless registration names: by a sent
// id, else by the port of its health endpoint.
func (s *Server) claimedTarget(x *expectedIndex, ids []string, healthEndpoint string) (*ExpectedComponent, Attribution) {
	for _, id := range ids {
		if comp := x.component(id); comp != nil {
			return comp, ByComponentID
		}
	}
	if port := healthPortOf(healthEndpoint); port > 0 {
		if comp := x.byPort[port]; comp != nil {
			return comp, ByHealthPort
		}
	}
	return nil, Unmanaged
}

// unattributedWhy says why a tokenless registration stayed unmanaged.
func unattributedWhy(ids []string, healthEndpoint, why string) string {
	claimed := "it sent no component id"
	for _, id := range ids {
		if id != "" {
			claimed = fmt.Sprintf("its id %q names no pipeline component", id)
			break
		}
	}
	hp := "no health endpoint"
	if healthEndpoint != "" {
		hp = fmt.Sprintf("its health endpoint %q matches no component's HEALTH_PORT", healthEndpoint)
	}
	return fmt.Sprintf("%s, %s, and it could not be attested: %s", claimed, hp, why)
}

// reattribute gives the unmanaged registrations a component when the
// expected components now allow it: by attestation of the connection they
// came on (when it is still open), else by the id they sent or their
// health endpoint (where that component's mode is permissive).
func (s *Server) reattribute(ctx context.Context, x *expectedIndex) {
	var list []*entry
	s.reg.each(func(e *entry) {
		if e.reg.Component == "" && e.reg.Auth == AuthUnauthenticated { // static fields
			list = append(list, e)
		}
	})
	for _, e := range list {
		r, _ := e.snapshot()
		addr, by, auth, proof, inst := s.attributeLater(ctx, x, &r, e.local)
		if addr == "" {
			continue
		}
		s.replaceAttribution(e, addr, by, auth, proof, inst)
	}
}

func (s *Server) attributeLater(ctx context.Context, x *expectedIndex, r *Registration, local netip.AddrPort) (addr string, by Attribution, auth AuthState, proof, inst string) {
	if s.opts.Attestor != nil {
		if p, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			p = netip.AddrPortFrom(p.Addr().Unmap(), p.Port())
			if a, err := s.opts.Attestor.Attest(ctx, p, local, x.list); err == nil {
				if c := x.byAddr[a.Address]; c != nil && s.modeFor(c) != AuthTokenOnly {
					return a.Address, ByAttestation, AuthAttested, ProofAttested + a.Proof, c.InstanceID
				}
			}
		}
	}
	target, how := s.claimedTarget(x, []string{r.ClaimedID}, r.HealthEndpoint)
	if target == nil || s.modeFor(target) != AuthPermissive {
		return "", "", "", "", ""
	}
	return target.Address, how, AuthUnauthenticated, ProofUnproven, ""
}

// replaceAttribution swaps e for a copy attributed to addr (static fields
// are never modified in place) and writes it to the state.
func (s *Server) replaceAttribution(e *entry, addr string, by Attribution, auth AuthState, proof, inst string) {
	e.mu.Lock()
	n := &entry{reg: e.reg, metricsF: e.metricsF, metricsS: e.metricsS, local: e.local}
	e.mu.Unlock()
	n.reg.Component, n.reg.AttributedBy, n.reg.Auth, n.reg.Proof, n.reg.InstanceID, n.reg.Unattributed = addr, by, auth, proof, inst, ""
	id := n.reg.ServiceID
	sh := s.reg.shard(id)
	sh.mu.Lock()
	if sh.m[id] != e {
		sh.mu.Unlock()
		return
	}
	sh.m[id] = n
	sh.mu.Unlock()
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "unmanaged registration attributed",
		slog.String("service_id", id), slog.String("component", addr),
		slog.String("attributed_by", string(by)), slog.String("proof", proof))
	s.enqueue(registrationOps(n)...)
	s.kickFlush()
}

func (s *Server) kickFlush() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}
