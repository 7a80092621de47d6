package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/flowctl/flowctl/internal/procinfo"
	"github.com/flowctl/flowctl/internal/providers/process/shim"
)

// runRecord is the shim's run record (see shim.Record).
type runRecord = shim.Record

const recordVersion = shim.RecordVersion

func readRecord(path string) (*runRecord, error)  { return shim.ReadRecord(path) }
func writeRecord(path string, r *runRecord) error { return shim.WriteRecord(path, r) }

// handle is the serialised Handle of a process component.
type handle struct {
	Address   string            `json:"address"`
	RunRecord string            `json:"run_record"`
	LogPath   string            `json:"log_path"`
	BootID    string            `json:"boot_id,omitempty"`
	Shim      procinfo.Identity `json:"shim"`
	Child     procinfo.Identity `json:"child"`
}

func handleOf(r *runRecord, recordPath string) handle {
	return handle{
		Address:   r.Address,
		RunRecord: recordPath,
		LogPath:   r.LogPath,
		BootID:    r.BootID,
		Shim:      r.Shim,
		Child:     r.Child,
	}
}

func decodeHandle(h []byte) (handle, error) {
	var hd handle
	if err := json.Unmarshal(h, &hd); err != nil {
		return handle{}, fmt.Errorf("process: invalid handle: %w", err)
	}
	if hd.RunRecord == "" || hd.Child.PID <= 0 {
		return handle{}, errors.New("process: invalid handle: no run record or child pid")
	}
	if hd.LogPath == "" {
		hd.LogPath = logPathFromRecord(hd.RunRecord)
	}
	return hd, nil
}

func encodeHandle(h handle) []byte {
	b, _ := json.Marshal(h)
	return b
}

// fileName turns an address into a file name (addresses are KIND.ID with
// a conservative ID, but never trust that with a path).
func fileName(address string) string {
	var b strings.Builder
	for _, r := range address {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := b.String()
	if s == "" || s == "." || s == ".." {
		s = "_" + s
	}
	return s
}

// logPathFromRecord derives Dir/logs/<name>.log from Dir/run/<name>.json.
func logPathFromRecord(recordPath string) string {
	dir := filepath.Dir(filepath.Dir(recordPath))
	name := strings.TrimSuffix(filepath.Base(recordPath), ".json")
	return filepath.Join(dir, "logs", name+".log")
}
