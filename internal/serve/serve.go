// Package serve runs the control plane of one pipeline's state file: the
// gRPC services of internal/controlplane (both protocols, one port), an
// HTTP listener for /healthz, Prometheus /metrics and /v1/status, the token
// secret, optional TLS and mTLS, and a record in the state saying where it
// listens (so that `flowctl status` and `apply` find a running one).
//
// `flowctl serve` runs it in the foreground; other commands run it
// in-process or start `flowctl serve --state X` as a child:
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
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/flowctl/flowctl/internal/controlplane"
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
	// AuthMode is controlplane.AuthRequired (default) or AuthPermissive.
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
	// AlsoListenHosts are further hosts (IP addresses) the gRPC services
	// listen on, with the port Listen bound: the Docker bridge's gateway,
	// so that containers reach the control plane at
	// host.docker.internal:<the same port> (DockerGatewayHost finds it). A
	// host that cannot be bound is logged and skipped.
	AlsoListenHosts []string
	// Collectors are further Prometheus collectors /metrics exports (the
	// relay's).
	Collectors []prometheus.Collector
	// Background, when set, runs beside the listeners once they serve
	// (the restart watcher) with what serve holds; its context ends when
	// serve stops, which waits for it to return.
	Background func(ctx context.Context, env Env)
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
	// AlsoGRPC are the further gRPC addresses (Options.AlsoListenHosts).
	AlsoGRPC []string `json:"also_grpc,omitempty"`
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
	if opts.StatePath == "" {
		return errors.New("serve: no state file")
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
		return err
	}
	opts.AuthMode = mode
	log := opts.Logger

	tlsCfg, err := serverTLS(opts.TLSCert, opts.TLSKey, opts.TLSClientCA)
	if err != nil {
		return err
	}
	store, err := state.Open(opts.StatePath, "")
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	var meta state.Meta
	if err := store.View(func(tx *state.Tx) error { meta = tx.Meta(); return nil }); err != nil {
		return fmt.Errorf("serve: read state %s: %w", opts.StatePath, err)
	}
	// Fail before touching the registry when another serve has it; the
	// check that counts is claimRecord's, once listening.
	if other, err := Running(store); err != nil {
		return fmt.Errorf("serve: %w", err)
	} else if other != nil {
		return &RunningError{Record: *other}
	}
	secret, err := loadSecret(opts)
	if err != nil {
		return err
	}
	if w := secret.Warning(); w != "" {
		log.Warn(w)
	}
	var opToken string
	if opts.HTTPListen != "" {
		if opToken, err = operatorToken(opts); err != nil {
			return err
		}
	}

	cp, err := controlplane.New(controlplane.Options{
		Store:    store,
		Verifier: tokens.NewVerifier(secret, meta.Pipeline, meta.Lineage),
		Issuer:   tokens.NewIssuer(secret),
		AuthMode: opts.AuthMode,
		Expected: controlplane.StateExpected(store),
		Logger:   log,
	})
	if err != nil {
		return fmt.Errorf("serve: start the control plane: %w", err)
	}
	// From here on every exit path closes cp (final flush).
	defer cp.Close()

	lis, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("serve: gRPC listener: %w", err)
	}
	defer lis.Close()
	var hlis net.Listener
	if opts.HTTPListen != "" {
		if hlis, err = net.Listen("tcp", opts.HTTPListen); err != nil {
			return fmt.Errorf("serve: HTTP listener: %w", err)
		}
		defer hlis.Close()
	}
	addrs := Addrs{GRPC: lis.Addr().String(), TLS: tlsCfg != nil, ClientAuth: tlsCfg != nil && tlsCfg.ClientAuth == tls.RequireAndVerifyClientCert}
	var also []net.Listener
	if len(opts.AlsoListenHosts) > 0 {
		_, port, _ := net.SplitHostPort(addrs.GRPC)
		for _, h := range opts.AlsoListenHosts {
			l, err := net.Listen("tcp", net.JoinHostPort(h, port))
			if err != nil {
				log.Warn("serve: not listening on a further address", "host", h, "err", err)
				continue
			}
			defer l.Close()
			also = append(also, l)
			addrs.AlsoGRPC = append(addrs.AlsoGRPC, l.Addr().String())
		}
	}
	if hlis != nil {
		addrs.HTTP = hlis.Addr().String()
	}

	rec, err := claimRecord(store, addrs, opts.AuthMode)
	if err != nil {
		return err
	}
	defer func() {
		if err := removeRecord(store, rec); err != nil {
			log.Warn("serve: could not remove the serve record from the state", "err", err)
		}
	}()

	setMemoryLimit(opts.MemoryLimit, log)

	gopts := controlplane.GRPCServerOptions()
	if tlsCfg != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(tlsCfg)))
	}
	gs := grpc.NewServer(gopts...)
	cp.Register(gs)

	var hs *http.Server
	if hlis != nil {
		api := newHTTPAPI(cp, store, rec, opToken, requiresOperatorToken(hlis.Addr()), log, opts.Collectors...)
		hs = &http.Server{
			Handler:           api.handler(),
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		if tlsCfg != nil {
			hc := tlsCfg.Clone()
			hc.NextProtos = []string{"h2", "http/1.1"}
			hlis = tls.NewListener(hlis, hc)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2+len(also))
	var wg sync.WaitGroup
	for _, l := range append([]net.Listener{lis}, also...) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := gs.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				errc <- fmt.Errorf("serve: gRPC on %s: %w", l.Addr(), err)
			}
		}()
	}
	if hs != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hs.Serve(hlis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve: HTTP: %w", err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		watchSecret(ctx, secret, opts.SecretCheckInterval, log)
	}()

	log.Info("control plane serving", "pipeline", meta.Pipeline, "state", opts.StatePath, "grpc", addrs.GRPC, "http", addrs.HTTP,
		"tls", addrs.TLS, "client_auth", addrs.ClientAuth, "auth", string(opts.AuthMode), "pid", rec.Process.PID)
	if opts.Ready != nil {
		opts.Ready(addrs)
	}
	if opts.Background != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			opts.Background(ctx, Env{Store: store, ControlPlane: cp, Secret: secret, Addrs: addrs, Meta: meta, Logger: log})
		}()
	}

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		cancel()
	}
	log.Info("control plane stopping")
	stopGRPC(gs, opts.ShutdownGrace)
	if hs != nil {
		sctx, scancel := context.WithTimeout(context.Background(), opts.ShutdownGrace)
		if err := hs.Shutdown(sctx); err != nil {
			_ = hs.Close()
		}
		scancel()
	}
	wg.Wait()
	if err := cp.Close(); err != nil && runErr == nil {
		runErr = fmt.Errorf("serve: flush the registry: %w", err)
	}
	log.Info("control plane stopped")
	return runErr
}

// Env is what serve hands Options.Background.
type Env struct {
	Store        *state.Store
	ControlPlane *controlplane.Server
	// Secret signs component tokens (and seals state values, see
	// tokens.Secret.Seal); it follows rotations of its file.
	Secret *tokens.Secret
	Addrs  Addrs
	Meta   state.Meta
	Logger *slog.Logger
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
