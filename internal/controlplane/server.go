// Package controlplane serves both control-plane protocols of the flowctl
// ecosystem on one gRPC server — flowctl.ControlPlane (older components)
// and flowctl.v1.ControlPlaneService (SDK components) — over one registry
// of registrations that is persisted in the pipeline's state file.
//
// Use:
//
//	srv, err := controlplane.New(controlplane.Options{
//		Store:    store,                                  // registry persisted here
//		Verifier: tokens.NewVerifier(secret, pipeline, lineage),
//		Issuer:   tokens.NewIssuer(secret),               // refreshes tokens past half-life
//		AuthMode: controlplane.AuthRequired,
//		Expected: controlplane.StateExpected(store),      // the pipeline's components
//		Logger:   logger,
//	})
//	gs := grpc.NewServer(controlplane.GRPCServerOptions()...)
//	srv.Register(gs) // both services
//	go gs.Serve(lis)
//	...
//	srv.Snapshot()   // registrations, with Alive/Healthy: for /v1/status, the watcher
//	srv.Metrics()    // counters and gauges: for /metrics
//	...
//	gs.GracefulStop()
//	srv.Close() // final flush
//
// Every handler checks the call's token itself (no interceptor to forget).
// Attribution, auth and liveness rules are documented on Options and in
// docs/control-plane.md.
package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/tokens"
	flowctlpb "github.com/flowctl/flowctl/proto/gen/flowctl"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// Options configure a Server.
type Options struct {
	// Store keeps the registry (namespace "controlplane"); nil keeps it in
	// memory only.
	Store *state.Store
	// Verifier checks component tokens (required, in both modes: a token
	// that is presented is always checked).
	Verifier *tokens.Verifier
	// Issuer refreshes tokens past half their life; nil refreshes none.
	Issuer *tokens.Issuer
	// AuthMode is AuthRequired (default), AuthTokenOnly or AuthPermissive;
	// a component's own `auth` (ExpectedComponent.Auth) overrides it for
	// calls attributed to that component.
	AuthMode AuthMode
	// Attestor proves which component made a call without a token; nil
	// proves none (such calls are then admitted only where the mode is
	// permissive).
	Attestor Attestor
	// Expected lists the pipeline's components, for attribution and for the
	// instance check of tokens; nil: none (every tokenless registration is
	// unmanaged, every token refused as unknown_component).
	Expected ExpectedComponents
	// Logger receives registrations and refusals (never a token); nil
	// discards.
	Logger *slog.Logger

	// FlushInterval is how often heartbeats are written to the state
	// (default 1s). Registrations are written at once.
	FlushInterval time.Duration
	// PendingWait is how long a call whose fresh token names an instance
	// the expected components do not (yet) have waits for them to catch up
	// before it is refused (default 5s): a component registers as soon as
	// it starts, possibly before apply has recorded it.
	PendingWait time.Duration
	// AttestWait is how long a call without a token that cannot be
	// attested yet (its instance not yet recorded, an id the state does not
	// have) waits for the state to catch up before it is decided (default
	// 15s). A component that is one is admitted as soon as its record is
	// written; anything else is refused when the wait ends.
	AttestWait time.Duration
	// ExpectedRefresh is how often Expected is re-read (default 2s); it is
	// also re-read when a token names an unknown component or instance.
	ExpectedRefresh time.Duration
	// DefaultCadence is the heartbeat interval assumed before one is
	// observed (default 30s, the SDK's; older components beat every 10s and
	// their cadence is observed from the first heartbeat on). A
	// registration is dead after MissedBeats cadences without a heartbeat.
	DefaultCadence time.Duration
	// ForgetAfter: a registration dead for this long is removed (default
	// 24h; negative: never).
	ForgetAfter time.Duration
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// Server is the control plane.
type Server struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	reg     *registry
	metrics *Metrics
	logLimiter

	expected  atomic.Pointer[expectedIndex]
	refreshMu sync.Mutex
	// reads counts the reads of the expected components started; a forced
	// refresh is satisfied by a read started after it was asked for.
	reads atomic.Uint64
	// changed is signalled when a refresh changed the expected
	// components: unmanaged registrations are then re-attributed.
	changed chan struct{}
	refusals
	// storeMu serialises this process's transactions on the state file
	// (bbolt's file lock would make them poll for each other).
	storeMu sync.Mutex

	// flushMu makes flushes (the loop's and Flush's) one at a time, so that
	// an older heartbeat state is never written after a newer one.
	flushMu   sync.Mutex
	pendingMu sync.Mutex
	pending   []op
	waiters   []chan struct{}
	kick      chan struct{}

	closeOnce   sync.Once
	closed      chan struct{}
	flushed     chan struct{}
	refreshDone chan struct{}
}

// New loads the persisted registry and starts the background flush and
// expected-components refresh.
func New(opts Options) (*Server, error) {
	if opts.Verifier == nil {
		return nil, errors.New("control plane: a token verifier is required")
	}
	if opts.AuthMode == "" {
		opts.AuthMode = AuthRequired
	}
	if _, err := ParseAuthMode(string(opts.AuthMode)); err != nil {
		return nil, err
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = time.Second
	}
	if opts.PendingWait <= 0 {
		opts.PendingWait = 5 * time.Second
	}
	if opts.AttestWait <= 0 {
		opts.AttestWait = 15 * time.Second
	}
	if opts.ExpectedRefresh <= 0 {
		opts.ExpectedRefresh = 2 * time.Second
	}
	if opts.DefaultCadence <= 0 {
		opts.DefaultCadence = defaultCadence
	}
	if opts.ForgetAfter == 0 {
		opts.ForgetAfter = 24 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:        opts,
		log:         opts.Logger,
		now:         opts.Now,
		reg:         newRegistry(),
		metrics:     newMetrics(),
		kick:        make(chan struct{}, 1),
		changed:     make(chan struct{}, 1),
		closed:      make(chan struct{}),
		flushed:     make(chan struct{}),
		refreshDone: make(chan struct{}),
	}
	s.expected.Store(newExpectedIndex(nil, time.Time{}))
	if err := s.refreshExpected(false); err != nil {
		return nil, err
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	go s.flushLoop()
	go s.refreshLoop()
	// Not "ready": the caller has yet to bind its listeners (serve logs
	// "control plane serving" once it has).
	s.log.Debug("control plane registry loaded", "auth", string(opts.AuthMode), "registrations", s.reg.len())
	return s, nil
}

func (s *Server) refreshLoop() {
	defer close(s.refreshDone)
	if s.opts.Expected == nil {
		<-s.closed
		return
	}
	t := time.NewTicker(s.opts.ExpectedRefresh)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
			_ = s.refreshExpected(false)
		case <-s.changed:
			ctx, cancel := context.WithTimeout(context.Background(), s.opts.ExpectedRefresh)
			s.reattribute(ctx, s.expected.Load())
			cancel()
		}
	}
}

// Register registers both services (flowctl.ControlPlane and
// flowctl.v1.ControlPlaneService) on gs.
func (s *Server) Register(gs grpc.ServiceRegistrar) {
	flowctlpb.RegisterControlPlaneServer(gs, &legacyService{s: s})
	flowctlv1.RegisterControlPlaneServiceServer(gs, &v1Service{s: s})
}

// GRPCServerOptions are gRPC server settings suited to the control plane:
// many long-lived connections (one per component) that each carry a small
// call every few seconds. Smaller per-connection buffers, handed back to a
// pool after each write, keep memory per connection low; a worker per CPU
// runs the handlers, so a call starts no goroutine (whose stack would grow
// and be scanned by the collector); fixed flow-control windows turn off
// the server's bandwidth-estimation pings (one per call, useless for
// messages of a few dozen bytes); keepalive pings from components are
// tolerated. Pass them, with any of your own, to grpc.NewServer.
func GRPCServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ReadBufferSize(8 << 10),
		grpc.WriteBufferSize(8 << 10),
		grpc.SharedWriteBuffer(true),
		grpc.InitialWindowSize(1 << 16),
		grpc.InitialConnWindowSize(1 << 16),
		grpc.NumStreamWorkers(uint32(runtime.NumCPU())),
		grpc.MaxRecvMsgSize(1 << 20),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Second, PermitWithoutStream: true}),
		// Each connection remembers the attestation of its caller.
		grpc.StatsHandler(connTagger{}),
	}
}

// defaultCadence is the heartbeat interval assumed before one is observed:
// the SDK's default, the longest in the wild.
const defaultCadence = 30 * time.Second

// DefaultMemoryLimit is the soft memory limit (runtime/debug.SetMemoryLimit)
// the serve command should set when GOMEMLIMIT is not: with a thousand
// components connected, gRPC's per-connection state is ~30 MiB, and the
// collector's default headroom (GOGC=100) would double it. A limit below
// what a thousand connections need at full load (about 50 MiB) makes the
// collector run all the time: 44 MiB cost a quarter of the throughput
// (bench/README.md); 52 MiB keeps the peak RSS near 60 MiB.
const DefaultMemoryLimit = 52 << 20

// RefreshExpected re-reads the expected components now (after an apply).
func (s *Server) RefreshExpected() error { return s.refreshExpected(false) }

// Close stops the background work and writes what is pending. Stop the
// gRPC server first.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	<-s.flushed
	<-s.refreshDone
	return nil
}

// Flush writes pending registry changes to the state now.
func (s *Server) Flush() { s.flush() }

// Snapshot returns every registration, both protocols, managed or not,
// with Alive and Healthy computed at the current time; ordered by component
// address (unmanaged last), then service id. Slices and maps in the
// registrations are shared with the registry: read them, do not modify.
func (s *Server) Snapshot() []Registration {
	now := s.now()
	out := make([]Registration, 0, s.reg.len())
	s.reg.each(func(e *entry) {
		r, _ := e.snapshot()
		s.fill(&r, now)
		out = append(out, r)
	})
	sortRegistrations(out)
	return out
}

// Lookup returns the registration of a service id.
func (s *Server) Lookup(serviceID string) (Registration, bool) {
	e := s.reg.get(serviceID)
	if e == nil {
		return Registration{}, false
	}
	r, _ := e.snapshot()
	s.fill(&r, s.now())
	return r, true
}

// ByComponent returns the registrations attributed to a component address,
// most recently registered first (for apply's "registered" readiness and
// the watcher's heartbeat liveness).
func (s *Server) ByComponent(address string) []Registration {
	var out []Registration
	for _, r := range s.Snapshot() {
		if r.Component == address {
			out = append(out, r)
		}
	}
	sortByRegisteredDesc(out)
	return out
}

// Metrics returns the counters and current gauges.
func (s *Server) Metrics() MetricsSnapshot {
	m := s.metrics
	out := MetricsSnapshot{
		Registrations:       m.Registrations.Load(),
		Heartbeats:          m.Heartbeats.Load(),
		Unregistrations:     m.Unregistrations.Load(),
		UnknownService:      m.UnknownService.Load(),
		TokensRefreshed:     m.TokensRefreshed.Load(),
		Flushes:             m.Flushes.Load(),
		FlushErrors:         m.FlushErrors.Load(),
		Attestations:        m.Attestations.Load(),
		AttestationFailures: m.AttestationFailures.Load(),
		AttestationSeconds:  float64(m.AttestationNanos.Load()) / 1e9,
		Refusals:            make(map[string]uint64, len(m.refusals)),
	}
	for k, v := range m.refusals {
		out.Refusals[k] = v.Load()
	}
	for _, r := range s.Snapshot() {
		out.Registered++
		if r.Alive {
			out.Alive++
		}
		if r.Component == "" {
			out.Unmanaged++
		}
		switch r.Auth {
		case AuthUnauthenticated:
			out.Unauthenticated++
		case AuthAttested:
			out.Attested++
		}
	}
	return out
}

// AuthMode is the server's auth mode.
func (s *Server) AuthMode() AuthMode { return s.opts.AuthMode }

// newServiceID names a registration that came with no id.
func newServiceID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "svc-" + hex.EncodeToString(b[:])
}

var setHeader = grpc.SetHeader

// registerEntry publishes a new registration built by a handler: it checks
// that the caller may take the service id, replaces a previous registration
// of the same id, forgets registrations the new one supersedes, and writes
// the change to the state before returning.
func (s *Server) registerEntry(ctx context.Context, method string, c *caller, r Registration) error {
	r.RegisteredAt = s.now()
	r.Status = StatusUnknown
	r.RemoteAddr = peerOf(ctx)
	c.prove(&r)
	_, local := callAddrs(ctx)
	e := &entry{reg: r, local: local}
	if err := s.publish(ctx, method, c, e); err != nil {
		return err
	}
	ops := append(registrationOps(e), s.dropSuperseded(e)...)
	s.metrics.Registrations.Add(1)
	s.log.LogAttrs(ctx, slog.LevelInfo, "component registered",
		slog.String("service_id", r.ServiceID),
		slog.String("protocol", string(r.Protocol)),
		slog.String("component", r.Component),
		slog.String("attributed_by", string(r.AttributedBy)),
		slog.String("auth", string(r.Auth)),
		slog.String("proof", r.Proof),
		slog.String("peer", r.RemoteAddr))
	s.commit(ops...)
	return nil
}

// prove records on r how the caller was proven.
func (c *caller) prove(r *Registration) {
	switch {
	case c.claims != nil:
		r.Auth, r.Proof, r.InstanceID = AuthToken, ProofToken, c.claims.ID
	case c.att != nil:
		r.Auth, r.Proof, r.InstanceID = AuthAttested, ProofAttested+c.att.Proof, c.instance
	default:
		r.Auth, r.Proof = AuthUnauthenticated, ProofUnproven
	}
}

// publish puts e in the registry under its service id, when the caller may
// take that id from the registration holding it.
func (s *Server) publish(ctx context.Context, method string, c *caller, e *entry) error {
	id := e.reg.ServiceID
	sh := s.reg.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if old := sh.m[id]; old != nil {
		prev, _ := old.snapshot()
		// A token holder may take over an id held by an unmanaged
		// registration made without a token (the same component, run
		// earlier without its token), an attested caller one held by an
		// unproven registration; anything else needs the right to act on
		// the previous registration.
		takeover := c.claims != nil && prev.Auth == AuthUnauthenticated && prev.Component == "" ||
			c.att != nil && prev.Auth == AuthUnauthenticated
		if !takeover {
			if err := s.mayActOn(ctx, method, c, &prev); err != nil {
				return err
			}
		}
	}
	sh.m[id] = e
	return nil
}

// dropSuperseded forgets the registrations e supersedes and returns their
// deletion from the state.
func (s *Server) dropSuperseded(e *entry) []op {
	r := &e.reg
	if r.Component == "" {
		return nil
	}
	var gone []*entry
	s.reg.each(func(o *entry) {
		// Only fields fixed at registration are read: no entry lock.
		if o != e && supersedes(r, &o.reg) {
			gone = append(gone, o)
		}
	})
	var ops []op
	for _, o := range gone {
		id := o.reg.ServiceID // static field
		sh := s.reg.shard(id)
		sh.mu.Lock()
		if sh.m[id] == o {
			delete(sh.m, id)
			ops = append(ops, deleteOps(id)...)
		}
		sh.mu.Unlock()
	}
	return ops
}

// supersedes says whether the new registration r replaces p: a
// re-registration of the same component by the same instance (same token
// jti), by an attested instance (the component's process or container now),
// or from the same health endpoint (a restarted older component, which gets
// a new service id each time) — never by a weaker proof than p's.
func supersedes(r, p *Registration) bool {
	if p.Component != r.Component || p.ServiceID == r.ServiceID || p.Protocol != r.Protocol {
		return false
	}
	if p.Auth == AuthToken && r.Auth != AuthToken || p.Auth == AuthAttested && r.Auth == AuthUnauthenticated {
		return false
	}
	return r.InstanceID != "" && p.InstanceID == r.InstanceID ||
		r.Auth == AuthAttested && p.Auth == AuthAttested ||
		r.HealthEndpoint != "" && p.HealthEndpoint == r.HealthEndpoint
}

// heartbeat records one heartbeat on e after checking the caller may act on
// it. status is "" for legacy heartbeats (no status field).
func (s *Server) heartbeat(ctx context.Context, method string, c *caller, e *entry, status string, ms map[string]string, mf map[string]float64) error {
	now := s.now()
	e.mu.Lock()
	// Auth and Component are fixed at registration; checking under the
	// entry lock keeps the path to one lock.
	if c.claims != nil && e.reg.Component != c.claims.Subject || c.claims == nil && e.reg.Auth == AuthToken ||
		c.claims == nil && e.reg.Auth == AuthAttested && (c.att == nil || c.att.Address != e.reg.Component) {
		r := e.reg
		e.mu.Unlock()
		return s.mayActOn(ctx, method, c, &r)
	}
	// The time from registration to the first heartbeat is an interval
	// only when it is not that of a component that heartbeats as it
	// registers (the SDK does): taken as a cadence, those few milliseconds
	// would declare it dead long before its next beat.
	if last := e.reg.LastHeartbeat; !last.IsZero() {
		e.reg.Cadence = durationOf(observeCadence(e.reg.Cadence.D(), now.Sub(last)))
	} else if since := now.Sub(e.reg.RegisteredAt); since >= MinCadence {
		e.reg.Cadence = durationOf(observeCadence(e.reg.Cadence.D(), since))
	}
	e.reg.LastHeartbeat = now
	e.reg.Heartbeats++
	if status != "" {
		e.reg.Status = status
	}
	if ms != nil || mf != nil {
		e.metricsS, e.metricsF = ms, mf
	}
	e.mu.Unlock()
	e.dirty.Store(true)
	s.metrics.Heartbeats.Add(1)
	return nil
}
