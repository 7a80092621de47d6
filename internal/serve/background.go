package serve

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/nomad"
	"github.com/flowctl/flowctl/internal/providers/registry"
	"github.com/flowctl/flowctl/internal/relay"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/tokens"
	"github.com/flowctl/flowctl/internal/watch"
	"github.com/flowctl/flowctl/pkg/contract"
)

// env is what serve's background work runs with.
type env struct {
	Store        *state.Store
	ControlPlane *controlplane.Server
	// Secret signs component tokens (and seals state values, see
	// tokens.Secret.Seal); it follows rotations of its file.
	Secret    *tokens.Secret
	Addrs     Addrs
	Meta      state.Meta
	Logger    *slog.Logger
	Providers *providers.Registry
	// DataTokens hands out the relay's data token (subject "relay"),
	// signed with the data-plane key beside the state file; run loads it
	// when unset.
	DataTokens *tokens.DataTokens
}

// background is what serve runs beside the control plane once it serves:
// the relay, the saving of its edge counters, and the restart watcher
// (Options.Watch).
type background struct {
	watch bool
	relay *relay.Relay
	// env is set when the work starts; the relay's topology reads it, and
	// finds nothing before.
	env atomic.Pointer[env]
}

func newBackground(watcher bool) *background {
	b := &background{watch: watcher}
	b.relay = relay.New(relay.Options{Topology: b.topology, Token: b.dataToken})
	return b
}

// dataToken is the relay's data token, which every call it makes to a
// component carries.
func (b *background) dataToken(context.Context) (string, error) {
	e := b.env.Load()
	if e == nil || e.DataTokens == nil {
		return "", errors.New("no data-plane key loaded")
	}
	return e.DataTokens.Token()
}

// collectors are the relay's metrics, for /metrics.
func (b *background) collectors() []prometheus.Collector {
	return []prometheus.Collector{b.relay.Collector()}
}

// backgroundProviders are the executors serve's background work drives
// (the watcher's restarts, the relay's addresses), over the state folder.
// Serve has no pipeline file: Nomad's cluster is the one NOMAD_* names.
func backgroundProviders(statePath string, log *slog.Logger) *providers.Registry {
	return registry.New(registry.Options{StateDir: filepath.Dir(statePath), Nomad: nomad.Options{Logger: log}})
}

// run does the work until ctx ends.
func (b *background) run(ctx context.Context, e env) {
	if e.DataTokens == nil {
		if k, err := tokens.LoadOrCreateDataKey(tokens.DefaultDataKeyPath(e.Store.Path())); err != nil {
			e.Logger.Error("serve: no data-plane key: the relay cannot call components", "err", err)
		} else {
			e.DataTokens = tokens.NewDataIssuer(k, e.Meta.Pipeline).Tokens(contract.DataPlaneRelaySubject)
		}
	}
	b.env.Store(&e)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = b.relay.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		SaveRelayEdges(ctx, e.Store, b.relay)
	}()
	if b.watch {
		runWatcher(ctx, e)
	}
	wg.Wait()
}

// topology is the relay's view of the pipeline: the components that serve
// the SDK's data plane (registered with the current protocol, announcing a
// data endpoint, alive), with where to reach them.
func (b *background) topology(ctx context.Context) ([]relay.Node, error) {
	e := b.env.Load()
	if e == nil {
		return nil, nil
	}
	e.Store.Settled(ctx, settleQuiet, settleMax)
	var recs []*state.Record
	if err := e.Store.View(func(tx *state.Tx) error {
		var err error
		recs, err = tx.Components()
		return err
	}); err != nil {
		return nil, err
	}
	dataPlane := dataPlaneInstances(e.ControlPlane.Snapshot())
	var nodes []relay.Node
	for _, rec := range recs {
		if !dataPlane[rec.Address+"/"+rec.InstanceID] && !dataPlane[rec.Address+"/"] {
			continue
		}
		if n, ok := relayNode(ctx, e.Providers, rec); ok {
			nodes = append(nodes, n)
		}
	}
	return nodes, nil
}

// dataPlaneInstances are the "address/instance" keys of the registrations
// that serve the SDK's data plane; an instance-less registration also
// stands for its component as "address/".
func dataPlaneInstances(regs []controlplane.Registration) map[string]bool {
	out := map[string]bool{}
	for _, r := range regs {
		if r.Protocol == controlplane.ProtocolV1 && r.Endpoint != "" && r.Alive && r.Component != "" {
			out[r.Component+"/"+r.InstanceID] = true
			if r.InstanceID == "" {
				out[r.Component+"/"] = true
			}
		}
	}
	return out
}

// relayHostWait bounds how long the relay's topology waits for an
// executor to say where a component listens.
const relayHostWait = 2 * time.Second

// relayNode is rec as the relay reaches it; false when it runs no data
// port.
func relayNode(ctx context.Context, reg *providers.Registry, rec *state.Record) (relay.Node, bool) {
	port := rec.Ports["PORT"]
	if port == 0 || rec.Status != state.StatusRunning {
		return relay.Node{}, false
	}
	c, err := watch.ComponentOf(rec)
	if err != nil {
		return relay.Node{}, false
	}
	host := "127.0.0.1"
	if p, err := reg.Get(rec.Provider); err == nil {
		if hr, ok := p.(providers.HealthHostResolver); ok {
			// Bounded: an executor may wait for its object to turn healthy
			// (Nomad), and the relay asks again at its next look.
			hctx, cancel := context.WithTimeout(ctx, relayHostWait)
			if h, err := hr.HealthHost(hctx, rec.Handle); err == nil && h != "" {
				host = h
			}
			cancel()
		}
	}
	kind := relay.Sink
	switch c.Kind {
	case config.KindSource:
		kind = relay.Source
	case config.KindProcessor:
		kind = relay.Processor
	}
	return relay.Node{
		Address: rec.Address, ID: c.ID, Kind: kind,
		Dial: net.JoinHostPort(host, strconv.Itoa(port)), Inputs: c.Inputs,
	}, true
}

// runWatcher is the restart watcher over the state file serve serves,
// starting components as apply does (same executors, tokens from the same
// secret, this control plane's endpoint).
func runWatcher(ctx context.Context, e env) {
	snapshot := func() ([]controlplane.Registration, error) { return e.ControlPlane.Snapshot(), nil }
	engine, err := NewEngine(EngineOptions{
		Store: e.Store, Providers: e.Providers, Log: e.Logger, Endpoint: DialAddr(e.Addrs.GRPC),
		Secret: e.Secret, Generation: e.Meta.TokenGeneration, Registrations: snapshot,
	})
	if err != nil {
		e.Logger.Error("restart watcher: not running", "err", err)
		return
	}
	// Ends are seen at once from either side: a shim's exit record, or
	// the engine's events (followed once the watcher has reached the
	// engine for a docker component; never a reason to fail or wait).
	wake := make(chan struct{}, 1)
	signal := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	ends := make(chan struct{}, 1)
	end := func() {
		select {
		case ends <- struct{}{}:
		default:
		}
	}
	go gateEnds(ctx, e.Store, ends, signal)
	for _, p := range e.Providers.All() {
		if ew, ok := p.(providers.EndWatcher); ok {
			go ew.WatchEnds(ctx, e.Meta.Pipeline, end, e.Logger)
		}
	}
	r := watch.NewReconciler(watch.Options{
		Store: e.Store, Providers: e.Providers, Engine: engine, Open: e.Secret.Open,
		Registrations: e.ControlPlane.Snapshot,
		Wake:          wake,
		Log:           e.Logger,
	})
	e.Logger.Info("restart watcher running")
	_ = r.Run(ctx)
}
