//go:build linux

package process

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/procinfo"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/pkg/contract"
)

// recordingWait bounds how long Observe waits for a shim to record the
// exit of a component that has just exited.
const recordingWait = 500 * time.Millisecond

// Observe implements providers.Provider, from the run record and /proc.
func (p *Provider) Observe(ctx context.Context, h providers.Handle) (providers.Observed, error) {
	hd, err := decodeHandle(h)
	if err != nil {
		return providers.Observed{}, err
	}
	deadline := time.Now().Add(recordingWait)
	for {
		rec, err := readRecord(hd.RunRecord)
		if err != nil {
			return providers.Observed{}, err
		}
		o := observe(hd, rec)
		// The component has just exited and the shim is writing down how:
		// worth a moment's wait, callers want the exit code.
		if !o.ExitPending || !alive(hd.BootID, hd.Shim) || time.Now().After(deadline) {
			return o, nil
		}
		select {
		case <-ctx.Done():
			return o, nil
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func fingerprint(id procinfo.Identity) string {
	return fmt.Sprintf("pid=%d,start=%d", id.PID, id.StartTicks)
}

// observe builds what a handle's object looks like, given its record (nil
// when missing).
func observe(hd handle, rec *runRecord) providers.Observed {
	if rec != nil && rec.Child != hd.Child {
		rec = nil // the record is a newer instance's
	}
	running := alive(hd.BootID, hd.Child)
	if rec == nil {
		return observeUnrecorded(hd, running)
	}
	o := providers.Observed{
		Address:     rec.Address,
		Exists:      true,
		Running:     running,
		SpecHash:    rec.SpecHash,
		Pipeline:    rec.Pipeline,
		Lineage:     rec.Lineage,
		InstanceID:  rec.InstanceID,
		StartedAt:   rec.StartedAt,
		Handle:      encodeHandle(hd),
		Fingerprint: fingerprint(rec.Child),
	}
	switch {
	case running:
		o.Detail = fmt.Sprintf("running (%s)", rec.Child)
		if rec.Ports != nil {
			o.Ports = maps.Clone(rec.Ports)
		} else if env, err := procinfo.Environ(rec.Child.PID); err == nil && alive(hd.BootID, hd.Child) {
			o.Ports = portsOf(envMap(env))
		}
	case rec.ExitCode != nil:
		c := *rec.ExitCode
		o.ExitCode = &c
		if rec.Signal != "" {
			o.Signal = rec.Signal
			o.Detail = "killed by " + rec.Signal
		} else {
			o.Detail = fmt.Sprintf("exited with code %d", c)
		}
	case alive(hd.BootID, hd.Shim):
		o.ExitPending = true
		o.Detail = "exited (the shim is recording the exit status)"
	default:
		o.Detail = "exited (exit status unknown: the shim is gone)"
	}
	return o
}

// observeUnrecorded describes a handle's object when no run record names
// it: nothing, or a live process whose environment says what it is.
func observeUnrecorded(hd handle, running bool) providers.Observed {
	if !running {
		return providers.Observed{Address: hd.Address}
	}
	o := providers.Observed{
		Address: hd.Address, Exists: true, Running: true,
		Handle: encodeHandle(hd), Fingerprint: fingerprint(hd.Child),
		StartedAt: startTimeOf(hd.Child.StartTicks),
		Detail:    fmt.Sprintf("running (%s); its run record is missing", hd.Child),
	}
	if env, err := procinfo.Environ(hd.Child.PID); err == nil && alive(hd.BootID, hd.Child) {
		m := envMap(env)
		o.Pipeline, o.Lineage = m[contract.EnvPipeline], m[contract.EnvLineage]
		o.InstanceID, o.SpecHash = m[contract.EnvInstanceID], m[contract.EnvSpecHash]
		o.Ports = portsOf(m)
	}
	return o
}

// List implements providers.Provider: every run record of the pipeline in
// Dir/run, running or exited, plus every live process on the machine
// (readable by this user) marked as a component of the pipeline that no
// record names: the safety net for lost records. Descendants of a
// component (which inherit its environment) are not listed on their own.
func (p *Provider) List(ctx context.Context, pipeline string) ([]providers.Observed, error) {
	out, seen, err := p.listRecorded(pipeline)
	if err != nil {
		return nil, err
	}
	orphans, err := p.listOrphans(ctx, pipeline, seen)
	if err != nil {
		return nil, err
	}
	out = append(out, orphans...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Address != out[j].Address {
			return out[i].Address < out[j].Address
		}
		return out[i].StartedAt.Before(out[j].StartedAt)
	})
	return out, nil
}

// listRecorded observes every run record of pipeline in Dir/run; seen
// holds the components they name, each with its shim.
func (p *Provider) listRecorded(pipeline string) (out []providers.Observed, seen map[procinfo.Identity]procinfo.Identity, err error) {
	seen = map[procinfo.Identity]procinfo.Identity{}
	runDir := p.runDir()
	ents, err := os.ReadDir(runDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("process: list %s: %w", runDir, err)
	}
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		path := filepath.Join(runDir, name)
		rec, err := readRecord(path)
		if err != nil || rec == nil || rec.Pipeline != pipeline {
			continue
		}
		seen[rec.Child] = rec.Shim
		out = append(out, observe(handleOf(rec, path), rec))
	}
	return out, seen, nil
}

// listOrphans observes the live components of pipeline that are not in
// seen, found by their environment in /proc.
func (p *Provider) listOrphans(ctx context.Context, pipeline string, seen map[procinfo.Identity]procinfo.Identity) ([]providers.Observed, error) {
	pids, err := procinfo.PIDs()
	if err != nil {
		return nil, fmt.Errorf("process: list: %w", err)
	}
	var out []providers.Observed
	self := os.Getpid()
	// A component listRecorded saw, or its shim, needs only its identity
	// checked: one read of its stat instead of its environment, stat and
	// run record (at 1,000 components, most of a plan's refresh). A shim
	// is never an orphan component: its environment is not a component's.
	seenPID := make(map[int]uint64, 2*len(seen))
	for id, shimID := range seen {
		seenPID[id.PID] = id.StartTicks
		if shimID.PID > 0 {
			seenPID[shimID.PID] = shimID.StartTicks
		}
	}
	for _, pid := range pids {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if pid == self {
			continue
		}
		if ticks, ok := seenPID[pid]; ok {
			if st, err := procinfo.ReadStat(pid); err == nil && st.StartTicks == ticks {
				continue
			}
		}
		if o, ok := p.orphan(pid, pipeline, seen); ok {
			out = append(out, o)
		}
	}
	return out, nil
}

// orphan reports pid as a component of pipeline that no record names.
func (p *Provider) orphan(pid int, pipeline string, seen map[procinfo.Identity]procinfo.Identity) (providers.Observed, bool) {
	env, err := procinfo.Environ(pid)
	if err != nil {
		return providers.Observed{}, false
	}
	m := envMap(env)
	if m[EnvManagedBy] != ManagedByValue || m[contract.EnvPipeline] != pipeline {
		return providers.Observed{}, false
	}
	st, err := procinfo.ReadStat(pid)
	if err != nil || st.PGID != pid {
		return providers.Observed{}, false // a descendant in the component's group
	}
	id := procinfo.Identity{PID: pid, StartTicks: st.StartTicks}
	if _, ok := seen[id]; ok || !procinfo.Alive(id) {
		return providers.Observed{}, false
	}
	record := m[EnvRunRecord]
	if record != "" {
		// A record elsewhere (another state folder of the same pipeline)
		// may name it: report it as that record says.
		if rec, err := readRecord(record); err == nil && rec != nil && rec.Child == id {
			return observe(handleOf(rec, record), rec), true
		}
	}
	shimID, ok := orphanShim(st.PPID, record)
	if !ok {
		return providers.Observed{}, false
	}
	return p.observeOrphan(id, shimID, record, m), true
}

// orphanShim identifies the shim of a component whose record is lost from
// its parent, ppid: its shim when the parent is the shim of record, nobody
// when it is some other process. ok is false when the parent is a
// component of the same record: the process is a descendant that made its
// own group, not a component.
func orphanShim(ppid int, record string) (shimID procinfo.Identity, ok bool) {
	penv, err := procinfo.Environ(ppid)
	if err != nil {
		return procinfo.Identity{}, true
	}
	pm := envMap(penv)
	if pm[EnvManagedBy] == ManagedByValue && pm[EnvRunRecord] == record {
		return procinfo.Identity{}, false
	}
	if pm[EnvShimRecord] == record {
		shimID, _ = procinfo.Of(ppid)
	}
	return shimID, true
}

// observeOrphan describes a live component that no record names, from its
// environment m.
func (p *Provider) observeOrphan(id, shimID procinfo.Identity, record string, m map[string]string) providers.Observed {
	addr := m[contract.EnvComponentAddress]
	if record == "" {
		record = p.RunRecordPath(addr)
	}
	hd := handle{
		Address:   addr,
		RunRecord: record,
		LogPath:   logPathFromRecord(record),
		BootID:    currentBootID(),
		Shim:      shimID,
		Child:     id,
	}
	return providers.Observed{
		Address:     addr,
		Exists:      true,
		Running:     true,
		SpecHash:    m[contract.EnvSpecHash],
		Pipeline:    m[contract.EnvPipeline],
		Lineage:     m[contract.EnvLineage],
		InstanceID:  m[contract.EnvInstanceID],
		StartedAt:   startTimeOf(id.StartTicks),
		Handle:      encodeHandle(hd),
		Fingerprint: fingerprint(id),
		Detail:      fmt.Sprintf("running (%s); no run record names it", id),
	}
}

// portsOf reads the contract's ports from a component's environment, so an
// adopted component keeps the ports it was started with.
func portsOf(env map[string]string) map[string]int {
	out := map[string]int{}
	for _, k := range contract.PortNames() {
		if p, err := strconv.Atoi(env[k]); err == nil && p > 0 {
			out[k] = p
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
