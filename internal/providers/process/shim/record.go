//go:build linux

package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/procinfo"
	"github.com/flowctl/flowctl/pkg/contract"
)

// RecordVersion is the version of the run record format.
const RecordVersion = 1

// Record is what the shim writes to Dir/run/<address>.json: written
// (atomically, by the shim only) when the child has started, and again
// when it has exited.
type Record struct {
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
	// Survivors are the component's descendants the shim could not stop
	// after it exited.
	Survivors []Descendant `json:"survivors,omitempty"`
	// Ports are the PORT and HEALTH_PORT of the child's environment, so
	// that observing a running component needs no read of its
	// /proc/PID/environ (records of older shims have none).
	Ports map[string]int `json:"ports,omitempty"`
}

// ReadRecord reads a run record; a missing file is (nil, nil).
func ReadRecord(path string) (*Record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("read run record: %w", err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read run record %s: %w", path, err)
	}
	return &r, nil
}

// WriteRecord replaces the record at path atomically (temp file + rename),
// so a reader sees the old or the new record, never a part. It does not
// fsync: after a power loss the processes a record names are gone anyway.
func WriteRecord(path string, r *Record) error {
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

// portsOf is PORT and HEALTH_PORT of env, when set to a port number.
func portsOf(env []string) map[string]int {
	var out map[string]int
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if k != contract.EnvPort && k != contract.EnvHealthPort {
			continue
		}
		if p, err := strconv.Atoi(v); err == nil && p > 0 {
			if out == nil {
				out = map[string]int{}
			}
			out[k] = p
		}
	}
	return out
}
