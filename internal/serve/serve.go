// Package serve runs the control plane of one pipeline's state file: the
// gRPC services of internal/controlplane (both protocols, one port), an
// HTTP listener for /healthz, Prometheus /metrics and /v1/status, the token
// secret, optional TLS and mTLS, and a record in the state saying where it
// listens (so that `flowctl status` and `apply` find a running one).
// Beside the control plane it runs the relay (the SDK's data plane) and,
// asked to, the restart watcher.
//
// `flowctl serve` runs it in the foreground; `flowctl run` runs it
// in-process; apply has Ensure start `flowctl serve --state X` as a child
// when none serves the state file, and destroy has StopIfIdle stop it:
//
//	err := serve.Run(ctx, serve.Options{
//		StatePath: ".flowctl/ttp.state.db",
//		Listen:    "127.0.0.1:0",                 // default 127.0.0.1:8080
//		HTTPListen: "127.0.0.1:0",                // "" serves no HTTP
//		Ready:     func(a serve.Addrs) { ... },   // the bound addresses
//	})
//
// Run returns when ctx ends (nil after a clean shutdown) or when serving
// fails. While it runs, the state holds its Record (ReadRecord).
package serve

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/flowctl/flowctl/internal/attest"
	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/tokens"
)

// DefaultListen is the gRPC address components expect by default
// (FLOWCTL_ENDPOINT defaults to localhost:8080 in the components in the
// wild).
const DefaultListen = "127.0.0.1:8080"

// Options configure Run. Only StatePath is required.
type Options struct {
	// StatePath is the pipeline's state file; it must exist (apply or plan
	// creates it). The registry is persisted in it.
	StatePath string
	// State is where the state is kept when it is not the file StatePath
	// (a database; see state.Location). Empty: state.Locate over the
	// environment, which the control plane flowctl starts is given.
	State state.Location
	// Listen is the gRPC address (default DefaultListen); port 0 picks a
	// free port, reported to Ready.
	Listen string
	// HTTPListen is the address of /healthz, /metrics and /v1/status; ""
	// serves no HTTP. DefaultHTTPListen derives the `flowctl serve`
	// default from Listen.
	HTTPListen string
	// TokenSecretFile signs and verifies component tokens. "" uses the
	// pipeline's own secret beside the state file
	// (tokens.DefaultSecretPath), created 0600 when missing; a file named
	// here must exist. The file is re-read when it changes on disk (a
	// rotation), within SecretCheckInterval.
	TokenSecretFile string
	// AuthMode is controlplane.AuthRequired (default), AuthTokenOnly or
	// AuthPermissive.
	AuthMode controlplane.AuthMode
	// TLSCert and TLSKey (PEM files) turn on TLS for gRPC and HTTP;
	// TLSClientCA (PEM bundle) also requires client certificates signed by
	// it (mTLS) on both.
	TLSCert, TLSKey, TLSClientCA string
	// OperatorToken is the bearer token /metrics and /v1/status require
	// when the HTTP listener is not on a loopback address. "" reads
	// OperatorTokenFile.
	OperatorToken string
	// OperatorTokenFile holds the operator token; "" is
	// DefaultOperatorTokenPath(StatePath), created 0600 with a random token
	// when missing.
	OperatorTokenFile string
	// Logger receives what serve does (never a token or secret); nil
	// discards.
	Logger *slog.Logger
	// Ready is called once, when both listeners are bound and serving and
	// the Record is in the state, with the bound addresses.
	Ready func(Addrs)
	// DockerGateway lets the gRPC services also listen on the Docker
	// bridge's gateway (DockerGatewayHost), with the port Listen bound, so
	// that containers reach the control plane at
	// host.docker.internal:<the same port> — only while the state records
	// a component whose containers need it (providers.BridgeGatewayUser):
	// serve listens there from the start when one is recorded, else once
	// an apply records one. Only when Listen is on loopback only: a
	// wildcard address reaches the bridge already. A gateway that cannot be
	// bound is logged and skipped.
	DockerGateway bool
	// GatewayCheckInterval is how often serve, not listening on the
	// gateway, looks for a component that needs it (default 1s).
	GatewayCheckInterval time.Duration
	// Watch runs the restart watcher beside the listeners once they serve:
	// it restarts the components the state says should run, by their
	// restart policies. The relay, which moves SDK components' events
	// along the DAG, runs in any case.
	Watch bool
	// MemoryLimit is the soft memory limit to set (runtime/debug). 0 sets
	// controlplane.DefaultMemoryLimit unless GOMEMLIMIT is set; negative
	// leaves the process's limit alone (in-process use next to other work,
	// tests).
	MemoryLimit int64
	// ShutdownGrace bounds the graceful stop of each listener when ctx ends
	// (default 5s); calls still running then are cut.
	ShutdownGrace time.Duration
	// SecretCheckInterval is how often the token secret file is checked
	// for a change (default 2s).
	SecretCheckInterval time.Duration
}

// Addrs are the addresses Run listens on.
type Addrs struct {
	// GRPC is the bound gRPC address (host:port).
	GRPC string `json:"grpc"`
	// AlsoGRPC are the further gRPC addresses (Options.DockerGateway).
	AlsoGRPC []string `json:"also_grpc,omitempty"`
	// Gateway says whether and why the gRPC services listen on the Docker
	// bridge's gateway, or why not.
	Gateway string `json:"docker_gateway,omitempty"`
	// GatewayPending: serve does not listen on the gateway yet, and will
	// once a component that needs it is recorded or expected.
	GatewayPending bool `json:"docker_gateway_pending,omitempty"`
	// HTTP is the bound HTTP address; "" when none.
	HTTP string `json:"http,omitempty"`
	// TLS: both listeners speak TLS. ClientAuth: they require a client
	// certificate.
	TLS        bool `json:"tls,omitempty"`
	ClientAuth bool `json:"client_auth,omitempty"`
}

// DefaultHTTPListen is the HTTP address `flowctl serve` uses when --http is
// not given: the gRPC host, one port up (127.0.0.1:8080 → 127.0.0.1:8081;
// port 0 stays 0).
func DefaultHTTPListen(grpcListen string) (string, error) {
	host, port, err := net.SplitHostPort(grpcListen)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", grpcListen, err)
	}
	p, err := net.LookupPort("tcp", port)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", grpcListen, err)
	}
	if p == 0 {
		return net.JoinHostPort(host, "0"), nil
	}
	if p == 65535 {
		return "", fmt.Errorf("listen address %q: no port above it for HTTP; pass --http", grpcListen)
	}
	return net.JoinHostPort(host, fmt.Sprint(p+1)), nil
}

// Run serves until ctx ends, then stops gracefully: listeners stop taking
// calls, calls under way finish (within ShutdownGrace), the registry is
// flushed to the state and the Record removed. It returns nil after such a
// shutdown, a *RunningError when another live control plane already serves
// this state file, or why it could not serve.
func Run(ctx context.Context, opts Options) error {
	opts, err := withDefaults(opts)
	if err != nil {
		return err
	}
	s := &server{opts: opts, log: opts.Logger, bg: newBackground(opts.Watch)}
	if err := s.prepare(); err != nil {
		return err
	}
	// From here on every exit path closes cp (final flush).
	defer s.cp.Close()
	defer s.closeListeners()
	if err := s.listen(); err != nil {
		return err
	}
	if err := s.claim(); err != nil {
		return err
	}
	defer s.release()
	setMemoryLimit(opts.MemoryLimit, s.log)
	s.newServers()
	return s.serve(ctx)
}

// withDefaults fills in what Options leave out, and checks the rest.
func withDefaults(opts Options) (Options, error) {
	if opts.StatePath == "" {
		return opts, errors.New("serve: no state file")
	}
	if opts.Listen == "" {
		opts.Listen = DefaultListen
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = 5 * time.Second
	}
	if opts.SecretCheckInterval <= 0 {
		opts.SecretCheckInterval = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	mode, err := controlplane.ParseAuthMode(string(opts.AuthMode))
	if err != nil {
		return opts, err
	}
	opts.AuthMode = mode
	return opts, nil
}

// server is one Run: what each phase sets up for the next.
type server struct {
	opts Options
	log  *slog.Logger
	bg   *background

	tlsCfg  *tls.Config
	store   *state.Store
	meta    state.Meta
	secret  *tokens.Secret
	opToken string
	cp      *controlplane.Server
	// provs are the executors: the background work drives them, the
	// control plane's attestor asks them who made a call.
	provs *providers.Registry

	grpcL net.Listener
	httpL net.Listener // nil when serving no HTTP
	also  []net.Listener
	addrs Addrs
	rec   Record
	// gateway is the decision on the Docker bridge's gateway at listen.
	gateway gatewayDecision

	gs *grpc.Server
	hs *http.Server // nil when serving no HTTP
}

// prepare reads what serving needs before it binds anything: TLS, the
// state, the secrets, and the control plane over them.
func (s *server) prepare() error {
	var err error
	if s.tlsCfg, err = serverTLS(s.opts.TLSCert, s.opts.TLSKey, s.opts.TLSClientCA); err != nil {
		return err
	}
	if err := s.openState(); err != nil {
		return err
	}
	if err := s.loadSecrets(); err != nil {
		return err
	}
	s.provs = backgroundProviders(s.opts.StatePath, s.log)
	s.cp, err = controlplane.New(controlplane.Options{
		Store:    s.store,
		Verifier: tokens.NewVerifier(s.secret, s.meta.Pipeline, s.meta.Lineage),
		Issuer:   tokens.NewIssuer(s.secret),
		AuthMode: s.opts.AuthMode,
		Expected: controlplane.StateExpected(s.store),
		Attestor: attest.Providers{Registry: s.provs},
		Logger:   s.log,
	})
	if err != nil {
		return fmt.Errorf("serve: start the control plane: %w", err)
	}
	return nil
}

// openState opens the state file, and fails before touching the registry
// when another serve has it; the check that counts is claimRecord's, once
// listening.
func (s *server) openState() error {
	loc := s.opts.State
	if loc.Path == "" {
		var err error
		if loc, err = state.Locate(s.opts.StatePath, nil, nil); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
	}
	store, err := state.OpenAt(loc, "")
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	s.store = store
	if err := store.View(func(tx *state.Tx) error { s.meta = tx.Meta(); return nil }); err != nil {
		return fmt.Errorf("serve: read state %s: %w", s.opts.StatePath, err)
	}
	if other, err := Running(store); err != nil {
		return fmt.Errorf("serve: %w", err)
	} else if other != nil {
		return &RunningError{Record: *other}
	}
	return nil
}

// loadSecrets reads the token secret and, when serving HTTP, the operator
// token.
func (s *server) loadSecrets() error {
	var err error
	if s.secret, err = loadSecret(s.opts); err != nil {
		return err
	}
	if w := s.secret.Warning(); w != "" {
		s.log.Warn(w)
	}
	if s.opts.HTTPListen != "" {
		if s.opToken, err = operatorToken(s.opts); err != nil {
			return err
		}
	}
	return nil
}

// listen binds the gRPC listener, the HTTP one, and the further gRPC
// hosts (skipped, with a warning, when they cannot be bound).
func (s *server) listen() error {
	var err error
	if s.grpcL, err = net.Listen("tcp", s.opts.Listen); err != nil {
		return fmt.Errorf("serve: gRPC listener: %w", err)
	}
	if s.opts.HTTPListen != "" {
		if s.httpL, err = net.Listen("tcp", s.opts.HTTPListen); err != nil {
			return fmt.Errorf("serve: HTTP listener: %w", err)
		}
	}
	s.addrs = Addrs{GRPC: s.grpcL.Addr().String(), TLS: s.tlsCfg != nil, ClientAuth: s.tlsCfg != nil && s.tlsCfg.ClientAuth == tls.RequireAndVerifyClientCert}
	_, port, _ := net.SplitHostPort(s.addrs.GRPC)
	s.gateway = s.decideGateway()
	s.addrs.Gateway, s.addrs.GatewayPending = s.gateway.why, s.gateway.host == "" && s.gateway.later
	for _, h := range s.alsoHosts() {
		l, err := net.Listen("tcp", net.JoinHostPort(h, port))
		if err != nil {
			s.log.Warn("serve: not listening on a further address", "host", h, "err", err)
			s.addrs.Gateway = fmt.Sprintf("not listening on the Docker bridge gateway %s: %v", h, err)
			continue
		}
		s.also = append(s.also, l)
		s.addrs.AlsoGRPC = append(s.addrs.AlsoGRPC, l.Addr().String())
	}
	if s.httpL != nil {
		s.addrs.HTTP = s.httpL.Addr().String()
	}
	return nil
}

// alsoHosts are the further hosts the gRPC services listen on from the
// start (the Docker bridge's gateway, when decideGateway says so).
func (s *server) alsoHosts() []string {
	if s.gateway.host != "" {
		return []string{s.gateway.host}
	}
	return nil
}

// closeListeners closes whatever listen bound.
func (s *server) closeListeners() {
	for _, l := range append([]net.Listener{s.grpcL, s.httpL}, s.also...) {
		if l != nil {
			_ = l.Close()
		}
	}
}

// claim writes this serve's record into the state.
func (s *server) claim() error {
	rec, err := claimRecord(s.store, s.addrs, s.opts.AuthMode)
	if err != nil {
		return err
	}
	s.rec = rec
	return nil
}

// release removes the record claim wrote, if it is still the state's.
func (s *server) release() {
	if err := removeRecord(s.store, s.rec); err != nil {
		s.log.Warn("serve: could not remove the serve record from the state", "err", err)
	}
}

// newServers builds the gRPC server and, when there is an HTTP listener,
// the HTTP one (that listener then speaks TLS when TLS is on).
func (s *server) newServers() {
	gopts := controlplane.GRPCServerOptions()
	if s.tlsCfg != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(s.tlsCfg)))
	}
	s.gs = grpc.NewServer(gopts...)
	s.cp.Register(s.gs)
	if s.httpL == nil {
		return
	}
	api := newHTTPAPI(s.cp, s.store, s.rec, s.opToken, requiresOperatorToken(s.httpL.Addr()), s.log, s.bg.collectors()...)
	s.hs = &http.Server{
		Handler:           api.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	if s.tlsCfg != nil {
		hc := s.tlsCfg.Clone()
		hc.NextProtos = []string{"h2", "http/1.1"}
		s.httpL = tls.NewListener(s.httpL, hc)
	}
}

// serve runs the listeners, the secret's watch and the background work
// until ctx ends or a listener fails, then shuts them down.
func (s *server) serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2+len(s.also))
	var wg sync.WaitGroup
	s.startListeners(&wg, errc)
	wg.Add(1)
	go func() {
		defer wg.Done()
		watchSecret(ctx, s.secret, s.opts.SecretCheckInterval, s.log)
	}()

	s.log.Info("control plane serving", "pipeline", s.meta.Pipeline, "state", s.opts.StatePath, "grpc", s.addrs.GRPC, "http", s.addrs.HTTP,
		"tls", s.addrs.TLS, "client_auth", s.addrs.ClientAuth, "auth", string(s.opts.AuthMode), "pid", s.rec.Process.PID)
	s.log.Info("serve: "+s.gateway.why, "also_grpc", strings.Join(s.addrs.AlsoGRPC, ","))
	if s.gateway.host == "" && s.gateway.later {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.watchGateway(ctx, &wg, errc)
		}()
	}
	if s.opts.Ready != nil {
		s.opts.Ready(s.addrs)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.bg.run(ctx, env{
			Store: s.store, ControlPlane: s.cp, Secret: s.secret, Addrs: s.addrs, Meta: s.meta, Logger: s.log,
			Providers: s.provs,
		})
	}()

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		cancel()
	}
	return s.shutdown(&wg, runErr)
}

// startListeners serves gRPC on every gRPC listener and HTTP on the HTTP
// one; a listener that fails reports on errc.
func (s *server) startListeners(wg *sync.WaitGroup, errc chan<- error) {
	for _, l := range append([]net.Listener{s.grpcL}, s.also...) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.gs.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				errc <- fmt.Errorf("serve: gRPC on %s: %w", l.Addr(), err)
			}
		}()
	}
	if s.hs == nil {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := s.hs.Serve(s.httpL); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serve: HTTP: %w", err)
		}
	}()
}

// shutdown stops the listeners (each within ShutdownGrace), waits for
// what serve runs, and flushes the registry; runErr is why serving ended,
// if it failed.
func (s *server) shutdown(wg *sync.WaitGroup, runErr error) error {
	s.log.Info("control plane stopping")
	stopGRPC(s.gs, s.opts.ShutdownGrace)
	if s.hs != nil {
		sctx, scancel := context.WithTimeout(context.Background(), s.opts.ShutdownGrace)
		if err := s.hs.Shutdown(sctx); err != nil {
			_ = s.hs.Close()
		}
		scancel()
	}
	wg.Wait()
	if err := s.cp.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("serve: flush the registry: %w", err)
	}
	s.log.Info("control plane stopped")
	return runErr
}

// stopGRPC lets calls under way finish, then cuts what is left after grace.
func stopGRPC(gs *grpc.Server, grace time.Duration) {
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		gs.Stop()
		<-done
	}
}

// setMemoryLimit applies Options.MemoryLimit.
func setMemoryLimit(limit int64, log *slog.Logger) {
	switch {
	case limit < 0:
		return
	case limit == 0:
		if os.Getenv("GOMEMLIMIT") != "" {
			return
		}
		limit = controlplane.DefaultMemoryLimit
	}
	debug.SetMemoryLimit(limit)
	log.Debug("serve: soft memory limit set", "bytes", limit)
}

// loadSecret reads the token secret: the operator's file, or the
// pipeline's own (created when missing).
func loadSecret(opts Options) (*tokens.Secret, error) {
	if opts.TokenSecretFile != "" {
		s, err := tokens.LoadSecret(opts.TokenSecretFile)
		if err != nil {
			return nil, fmt.Errorf("serve: %w", err)
		}
		return s, nil
	}
	s, err := tokens.LoadOrCreateSecret(tokens.DefaultSecretPath(opts.StatePath))
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	return s, nil
}

// watchSecret re-reads the secret when its file changes (a rotation
// replaces it by rename), until ctx ends.
func watchSecret(ctx context.Context, s *tokens.Secret, every time.Duration, log *slog.Logger) {
	path := s.Path()
	if path == "" {
		return
	}
	last, _ := os.Stat(path)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fi, err := os.Stat(path)
		if err != nil {
			continue // keep the key in memory; a rename in progress, or removed
		}
		if last != nil && os.SameFile(last, fi) && fi.ModTime().Equal(last.ModTime()) && fi.Size() == last.Size() {
			continue
		}
		if err := s.Reload(); err != nil {
			log.Error("serve: the token secret file changed but cannot be read; keeping the previous secret", "path", path, "err", err)
			continue
		}
		last = fi
		log.Warn("serve: the token secret changed on disk (rotated); tokens signed with the previous secret are refused from now on", "path", path)
		if w := s.Warning(); w != "" {
			log.Warn(w)
		}
	}
}

// isLoopbackListen says whether a listen address is on loopback only.
func isLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// DockerGatewayHost is the IPv4 address of the Docker bridge (docker0) on
// this machine, which containers reach as host.docker.internal; "" when
// there is none.
func DockerGatewayHost() string {
	ifc, err := net.InterfaceByName("docker0")
	if err != nil {
		return ""
	}
	addrs, err := ifc.Addrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil {
			return n.IP.String()
		}
	}
	return ""
}
