//go:build linux

package process

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/flowctl/flowctl/internal/providers/process/shim"
)

func TestIsEndTellsAnExitFromAStart(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, rec *shim.Record) string {
		path := filepath.Join(dir, name)
		if err := shim.WriteRecord(path, rec); err != nil {
			t.Fatal(err)
		}
		return path
	}
	code := 3
	now := time.Now()
	started := write("source.a.json", &shim.Record{Version: shim.RecordVersion, Address: "source.a"})
	exited := write("source.b.json", &shim.Record{Version: shim.RecordVersion, Address: "source.b", ExitCode: &code, ExitedAt: &now})
	killed := write("source.c.json", &shim.Record{Version: shim.RecordVersion, Address: "source.c", Signal: "killed", ExitedAt: &now})
	for _, tc := range []struct {
		name string
		ev   fsnotify.Event
		want bool
	}{
		{"a start's record", fsnotify.Event{Name: started, Op: fsnotify.Create}, false},
		{"a start's record, written again", fsnotify.Event{Name: started, Op: fsnotify.Write}, false},
		{"an exit", fsnotify.Event{Name: exited, Op: fsnotify.Create}, true},
		{"a kill", fsnotify.Event{Name: killed, Op: fsnotify.Write}, true},
		{"a record removed", fsnotify.Event{Name: started, Op: fsnotify.Remove}, true},
		{"a record moved away", fsnotify.Event{Name: started, Op: fsnotify.Rename}, true},
		{"a record gone before it is read", fsnotify.Event{Name: filepath.Join(dir, "gone.json"), Op: fsnotify.Create}, true},
	} {
		if got := isEnd(tc.ev); got != tc.want {
			t.Errorf("%s: isEnd = %v, want %v", tc.name, got, tc.want)
		}
	}
}
