//go:build linux

package process

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/fsnotify/fsnotify"
)

// hostEnvPassed is the part of flowctl's own environment a process
// component inherits, so that bare command names resolve and locale and
// time zone match the user's shell.
var hostEnvPassed = [...]string{"PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR"}

// HostEnv implements providers.HostEnvPasser.
func (p *Provider) HostEnv() []string { return hostEnvPassed[:] }

// WatchEnds implements providers.EndWatcher: it signals whenever the run
// folder changes (a shim records an exit there), whatever the pipeline
// (the folder is one state's). Without file notifications it logs and
// returns: the watcher's poll remains.
func (p *Provider) WatchEnds(ctx context.Context, _ string, signal func(), log *slog.Logger) {
	runDir := filepath.Join(p.opts.Dir, "run")
	if err := os.MkdirAll(runDir, 0o700); err != nil {
		return
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		log.Warn("restart watcher: no file notifications; polling only", "err", err)
		return
	}
	defer w.Close()
	if err := w.Add(runDir); err != nil {
		log.Warn("restart watcher: no file notifications; polling only", "err", err)
		return
	}
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
}
