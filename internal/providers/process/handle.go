//go:build linux

package process

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/flowctl/flowctl/internal/procinfo"
	"github.com/flowctl/flowctl/internal/providers/process/shim"
)

// runRecord is the shim's run record (see shim.Record).
type runRecord = shim.Record

func readRecord(path string) (*runRecord, error) { return shim.ReadRecord(path) }

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
