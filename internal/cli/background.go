package cli

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/docker"
	"github.com/flowctl/flowctl/internal/providers/process"
	"github.com/flowctl/flowctl/internal/relay"
	"github.com/flowctl/flowctl/internal/serve"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/watch"
)

// serveBackground is what serve runs beside the control plane: the restart
// watcher (unless turned off) and the relay.
type serveBackground struct {
	watch     bool
	relay     *relay.Relay
	env       atomic.Pointer[serve.Env]
	providers atomic.Pointer[providers.Registry]
}

func newServeBackground(watch bool) *serveBackground {
	b := &serveBackground{watch: watch}
	b.relay = relay.New(relay.Options{Topology: b.topology})
	return b
}

// collectors are the relay's metrics, for /metrics.
func (b *serveBackground) collectors() []prometheus.Collector {
	return []prometheus.Collector{b.relay.Collector()}
}

// run is serve.Options.Background.
func (b *serveBackground) run(ctx context.Context, env serve.Env) {
	reg := serveProviders(filepath.Dir(env.Store.Path()))
	b.providers.Store(reg)
	b.env.Store(&env)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = b.relay.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		serve.SaveRelayEdges(ctx, env.Store, b.relay)
	}()
	if b.watch {
		runWatcher(ctx, env, reg)
	}
	wg.Wait()
}

// topology is the relay's view of the pipeline: the components that serve
// the SDK's data plane (registered with the current protocol, announcing a
// data endpoint, alive), with where to reach them.
func (b *serveBackground) topology(ctx context.Context) ([]relay.Node, error) {
	env, reg := b.env.Load(), b.providers.Load()
	if env == nil || reg == nil {
		return nil, nil
	}
	var recs []*state.Record
	if err := env.Store.View(func(tx *state.Tx) error {
		var err error
		recs, err = tx.Components()
		return err
	}); err != nil {
		return nil, err
	}
	dataPlane := map[string]bool{}
	for _, r := range env.ControlPlane.Snapshot() {
		if r.Protocol == controlplane.ProtocolV1 && r.Endpoint != "" && r.Alive && r.Component != "" {
			dataPlane[r.Component+"/"+r.InstanceID] = true
			if r.InstanceID == "" {
				dataPlane[r.Component+"/"] = true
			}
		}
	}
	var nodes []relay.Node
	for _, rec := range recs {
		if !dataPlane[rec.Address+"/"+rec.InstanceID] && !dataPlane[rec.Address+"/"] {
			continue
		}
		port := rec.Ports["PORT"]
		if port == 0 || rec.Status != state.StatusRunning {
			continue
		}
		c, err := watch.ComponentOf(rec)
		if err != nil {
			continue
		}
		host := "127.0.0.1"
		if p, err := reg.Get(rec.Provider); err == nil {
			if hr, ok := p.(providers.HealthHostResolver); ok {
				if h, err := hr.HealthHost(ctx, rec.Handle); err == nil && h != "" {
					host = h
				}
			}
		}
		kind := relay.Sink
		switch c.Kind {
		case config.KindSource:
			kind = relay.Source
		case config.KindProcessor:
			kind = relay.Processor
		}
		nodes = append(nodes, relay.Node{
			Address: rec.Address, ID: c.ID, Kind: kind,
			Dial: net.JoinHostPort(host, strconv.Itoa(port)), Inputs: c.Inputs,
		})
	}
	return nodes, nil
}

// serveProviders are the executors serve's background work drives (the
// watcher's restarts, the relay's addresses), over the state folder.
// Nomad is not among them: the cluster restarts its own, and the relay
// reaches only local and Docker components.
func serveProviders(stateDir string) *providers.Registry {
	return providers.NewRegistry(process.New(process.Options{Dir: stateDir}), docker.New(docker.Options{}))
}
