package cli

import (
	"context"
	"os"
	"path/filepath"

	"github.com/fsnotify/fsnotify"

	"github.com/flowctl/flowctl/internal/apply"
	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/docker"
	"github.com/flowctl/flowctl/internal/providers/process"
	"github.com/flowctl/flowctl/internal/serve"
	"github.com/flowctl/flowctl/internal/tokens"
	"github.com/flowctl/flowctl/internal/watch"
)

// runWatcher is serve's background work: the restart watcher over the
// state file serve serves, starting components as apply does (same
// providers, tokens from the same secret, this control plane's endpoint).
func runWatcher(ctx context.Context, env serve.Env) {
	stateDir := filepath.Dir(env.Store.Path())
	reg := providers.NewRegistry(
		process.New(process.Options{Dir: stateDir}),
		docker.New(docker.Options{}),
	)
	iss := tokens.NewIssuer(env.Secret)
	snapshot := func() ([]controlplane.Registration, error) { return env.ControlPlane.Snapshot(), nil }
	engine := func() *apply.Engine {
		return &apply.Engine{
			Store: env.Store, Providers: reg, ControlPlane: serve.DialAddr(env.Addrs.GRPC),
			TokenGeneration: env.Meta.TokenGeneration,
			Token: func(c *config.Component, instanceID string) (string, error) {
				return iss.Issue(tokens.Subject{Address: c.Address(), Pipeline: env.Meta.Pipeline, Lineage: env.Meta.Lineage, InstanceID: instanceID})
			},
			Registered: waitRegistered(snapshot),
			Seal:       env.Secret.Seal,
			Log:        env.Logger,
		}
	}
	r := watch.NewReconciler(watch.Options{
		Store: env.Store, Providers: reg, Engine: engine, Open: env.Secret.Open,
		Registrations: env.ControlPlane.Snapshot,
		Wake:          wakeOnExit(ctx, filepath.Join(stateDir, "run"), env),
		Log:           env.Logger,
	})
	env.Logger.Info("restart watcher running")
	_ = r.Run(ctx)
}

// wakeOnExit signals when the process executor's run folder changes (a
// shim records an exit there), so that the watcher reacts at once rather
// than at its next poll. Without fsnotify it never signals (the poll
// remains).
func wakeOnExit(ctx context.Context, runDir string, env serve.Env) <-chan struct{} {
	wake := make(chan struct{}, 1)
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return wake
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		env.Logger.Warn("restart watcher: no file notifications; polling only", "err", err)
		return wake
	}
	if err := w.Add(runDir); err != nil {
		env.Logger.Warn("restart watcher: no file notifications; polling only", "err", err)
		_ = w.Close()
		return wake
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
				select {
				case wake <- struct{}{}:
				default:
				}
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
				// An overflow loses events: look anyway.
				select {
				case wake <- struct{}{}:
				default:
				}
			}
		}
	}()
	return wake
}
