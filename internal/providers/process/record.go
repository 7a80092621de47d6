package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/procinfo"
)

// recordVersion is the version of the run record format.
const recordVersion = 1

// runRecord is what the shim writes to Dir/run/<address>.json: written
// (atomically, by the shim only) when the child has started, and again
// when it has exited.
type runRecord struct {
	Version    int    `json:"version"`
	Pipeline   string `json:"pipeline"`
	Lineage    string `json:"lineage,omitempty"`
	Address    string `json:"address"`
	SpecHash   string `json:"spec_hash,omitempty"`
	InstanceID string `json:"instance_id,omitempty"`
	// BootID is /proc/sys/kernel/random/boot_id when the record was written:
	// identities from another boot name nothing.
	BootID string            `json:"boot_id,omitempty"`
	Shim   procinfo.Identity `json:"shim"`
	Child  procinfo.Identity `json:"child"`
	// Command is the resolved executable; Args the whole argv.
	Command string   `json:"command"`
	Args    []string `json:"args"`
	WorkDir string   `json:"work_dir"`
	LogPath string   `json:"log_path"`

	StartedAt time.Time  `json:"started_at"`
	ExitedAt  *time.Time `json:"exited_at,omitempty"`
	// ExitCode is the exit status; for a child killed by a signal it is
	// 128 + the signal number and Signal names it ("SIGKILL").
	ExitCode *int   `json:"exit_code,omitempty"`
	Signal   string `json:"signal,omitempty"`
}

// handle is the serialised Handle of a process component.
type handle struct {
	Address   string            `json:"address"`
	RunRecord string            `json:"run_record"`
	LogPath   string            `json:"log_path"`
	BootID    string            `json:"boot_id,omitempty"`
	Shim      procinfo.Identity `json:"shim"`
	Child     procinfo.Identity `json:"child"`
}

func (r *runRecord) handle(recordPath string) handle {
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

// readRecord reads a run record; a missing file is (nil, nil).
func readRecord(path string) (*runRecord, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("read run record: %w", err)
	}
	var r runRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read run record %s: %w", path, err)
	}
	return &r, nil
}

// writeRecord replaces the record at path atomically (temp file + rename),
// so a reader sees the old or the new record, never a part. It does not
// fsync: after a power loss the processes a record names are gone anyway.
func writeRecord(path string, r *runRecord) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		_ = f.Close()
		_ = os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		_ = os.Remove(f.Name())
		return err
	}
	return nil
}
