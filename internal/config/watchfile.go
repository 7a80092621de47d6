package config

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// WatchFile calls changed each time the file at path is written, created or
// renamed into place, once the saves have been quiet for debounce (editors
// write several times per save). It watches the file's folder, since editors
// save by writing a new file and renaming it over the old. It returns when
// ctx ends, or at once with an error when the folder cannot be watched;
// changed runs on WatchFile's goroutine.
func WatchFile(ctx context.Context, path string, debounce time.Duration, changed func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	defer w.Close()
	dir, file := filepath.Dir(path), filepath.Clean(path)
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if filepath.Clean(ev.Name) == file && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0 {
				timer = time.After(debounce)
			}
		case <-w.Errors:
		case <-timer:
			timer = nil
			changed()
		}
	}
}
