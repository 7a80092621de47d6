package cli

import (
	"context"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/serve"
	"github.com/flowctl/flowctl/internal/watch"
)

// runWatcher is serve's background work: the restart watcher over the
// state file serve serves, starting components as apply does (same
// providers, tokens from the same secret, this control plane's endpoint).
func runWatcher(ctx context.Context, env serve.Env, reg *providers.Registry) {
	snapshot := func() ([]controlplane.Registration, error) { return env.ControlPlane.Snapshot(), nil }
	engine, err := serve.NewEngine(serve.EngineOptions{
		Store: env.Store, Providers: reg, Log: env.Logger, Endpoint: serve.DialAddr(env.Addrs.GRPC),
		Secret: env.Secret, Generation: env.Meta.TokenGeneration, Registrations: snapshot,
	})
	if err != nil {
		env.Logger.Error("restart watcher: not running", "err", err)
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
	for _, p := range reg.All() {
		if ew, ok := p.(providers.EndWatcher); ok {
			go ew.WatchEnds(ctx, env.Meta.Pipeline, signal, env.Logger)
		}
	}
	r := watch.NewReconciler(watch.Options{
		Store: env.Store, Providers: reg, Engine: engine, Open: env.Secret.Open,
		Registrations: env.ControlPlane.Snapshot,
		Wake:          wake,
		Log:           env.Logger,
	})
	env.Logger.Info("restart watcher running")
	_ = r.Run(ctx)
}
