package cli

import (
	"context"
	"os"
	"path/filepath"

	"github.com/fsnotify/fsnotify"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/docker"
	"github.com/flowctl/flowctl/internal/serve"
	"github.com/flowctl/flowctl/internal/watch"
)

// runWatcher is serve's background work: the restart watcher over the
// state file serve serves, starting components as apply does (same
// providers, tokens from the same secret, this control plane's endpoint).
func runWatcher(ctx context.Context, env serve.Env, reg *providers.Registry, dock *docker.Provider) {
	stateDir := filepath.Dir(env.Store.Path())
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
	wakeOnExit(ctx, filepath.Join(stateDir, "run"), signal, env)
	go dock.WatchEnds(ctx, env.Meta.Pipeline, signal, env.Logger)
	r := watch.NewReconciler(watch.Options{
		Store: env.Store, Providers: reg, Engine: engine, Open: env.Secret.Open,
		Registrations: env.ControlPlane.Snapshot,
		Wake:          wake,
		Log:           env.Logger,
	})
	env.Logger.Info("restart watcher running")
	_ = r.Run(ctx)
}

// wakeOnExit calls signal when the process executor's run folder changes
// (a shim records an exit there), so that the watcher reacts at once
// rather than at its next poll. Without fsnotify it never signals (the
// poll remains).
func wakeOnExit(ctx context.Context, runDir string, signal func(), env serve.Env) {
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		env.Logger.Warn("restart watcher: no file notifications; polling only", "err", err)
		return
	}
	if err := w.Add(runDir); err != nil {
		env.Logger.Warn("restart watcher: no file notifications; polling only", "err", err)
		_ = w.Close()
		return
	}
	go func() {
		defer w.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if filepath.Ext(ev.Name) != ".json" {
					continue // temporary files of an atomic write
				}
				signal()
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
				// An overflow loses events: look anyway.
				signal()
			}
		}
	}()
}
