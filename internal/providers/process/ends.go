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

// WatchEnds implements providers.EndWatcher: it signals whenever a shim
// records an exit in the run folder, or a run record goes, whatever the
// pipeline (the folder is one state's). A record written for a start is
// not an end: the 1,000 starts of an apply would otherwise wake the
// watcher for 1,000 passes over every component. Without file
// notifications it logs and returns: the watcher's poll remains.
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
			if isEnd(ev) {
				signal()
			}
		case _, ok := <-w.Errors:
			if !ok {
				return
			}
			// An overflow loses events: look anyway.
			signal()
		}
	}
}

// isEnd tells whether a change of a run record may be an end: a record
// removed or moved away, or written with an exit, or one that does not
// read (then look anyway).
func isEnd(ev fsnotify.Event) bool {
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		return true
	}
	rec, err := readRecord(ev.Name)
	return err != nil || rec == nil || rec.ExitedAt != nil || rec.ExitCode != nil || rec.Signal != ""
}
