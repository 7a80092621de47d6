// Package process runs pipeline components as local processes, each owned
// by a shim so that it outlives the flowctl command that started it.
//
// # The shim
//
// Start runs the shim (package shim: the flowctl-shim binary installed
// beside flowctl, or flowctl re-executed in the hidden mode `flowctl __shim
// ADDRESS`) in a session of its own (setsid): Ctrl-C in the terminal
// and the end of the CLI do not reach it. The shim starts the component in
// a process group of its own, copies its stdout and stderr line by line
// into Dir/logs/<address>.log ("<RFC 3339 UTC ns> <stdout|stderr> <line>",
// rotated by size into .log.1, .log.2, ...), forwards SIGTERM, SIGINT,
// SIGHUP and SIGQUIT to the component's group, and keeps the run record
// Dir/run/<address>.json: who the shim and the component are (pid and
// start time, never a pid alone), the pipeline, lineage, instance ID and
// spec hash, the command, when it started, and once it has exited when and
// how. When the component exits, the shim kills whatever is left of its
// process group, records the exit and exits too. Its own diagnostics go to
// Dir/run/<address>.shim.log. Stop removes the run record and the shim log;
// the component's log stays.
//
// # The component's environment
//
// The component gets exactly spec.Env, with three exceptions: PATH is the
// CLI's own when spec.Env has none (so that "python3" or "sh" resolve and
// work as in the user's shell); FLOWCTL_PIPELINE, FLOWCTL_LINEAGE,
// FLOWCTL_INSTANCE_ID, FLOWCTL_SPEC_HASH and FLOWCTL_COMPONENT_ADDRESS are
// filled in from the spec when spec.Env lacks them (the engine normally
// injects them); and two markers are always set: FLOWCTL_MANAGED_BY=
// process-shim and FLOWCTL_RUN_RECORD=<path of the run record>. Nothing
// else of the CLI's environment is inherited. With these, List finds a
// component whose run record was lost by reading /proc/PID/environ.
//
// The command is Component.Command followed by Component.Args. A command
// containing a slash (./bin/x) resolves against spec.WorkDir, the pipeline
// file's folder, which is also the working directory; a bare name is
// looked up on the PATH the component gets (package execpath).
//
// # Identity
//
// A handle names the run record and the identities (pid + start ticks +
// boot ID) of the shim and the component. Nothing is ever signalled unless
// its identity still matches, so a recycled pid is never touched.
package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flowctl/flowctl/internal/execpath"
	"github.com/flowctl/flowctl/internal/procinfo"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/process/shim"
)

// Name is the executor name of this provider.
const Name = "process"

// Environment variables the provider sets on every component it starts.
const (
	// EnvManagedBy marks a process as a component started by this provider;
	// its value is ManagedByValue.
	EnvManagedBy   = "FLOWCTL_MANAGED_BY"
	ManagedByValue = "process-shim"
	// EnvRunRecord is the absolute path of the component's run record.
	EnvRunRecord = "FLOWCTL_RUN_RECORD"
	// EnvShimRecord is set on the shim itself (not the component): the run
	// record it keeps. It lets List recognise a component's shim.
	EnvShimRecord = "FLOWCTL_SHIM_RECORD"
)

// Variables the engine injects into spec.Env (filled in here when absent).
const (
	EnvPipeline   = "FLOWCTL_PIPELINE"
	EnvLineage    = "FLOWCTL_LINEAGE"
	EnvInstanceID = "FLOWCTL_INSTANCE_ID"
	EnvSpecHash   = "FLOWCTL_SPEC_HASH"
	EnvAddress    = "FLOWCTL_COMPONENT_ADDRESS"
)

// Defaults of Options.
const (
	DefaultLogMaxSize   = 10 << 20
	DefaultLogMaxFiles  = 3
	DefaultStartTimeout = 5 * time.Second
)

// maxShimLog is the size beyond which a shim log is started afresh.
const maxShimLog = 1 << 20

// Bounds of Stop beyond the caller's grace period.
const (
	killWait = 5 * time.Second // for the group to die after SIGKILL
	shimWait = 5 * time.Second // for the shim to record the exit and leave
)

// Options configure the provider.
type Options struct {
	// Dir is the state folder (e.g. /path/.flowctl): logs go to Dir/logs,
	// run records and shim diagnostics to Dir/run. Required.
	Dir string
	// ShimCommand runs the shim; the component address is appended.
	// Default: flowctl-shim beside the executable (LeanShimName) when it
	// is there, else [os.Executable(), "__shim"].
	ShimCommand []string
	// ShimEnv is the shim's environment (it inherits nothing else from the
	// CLI); tests use it to make the test binary act as the shim.
	ShimEnv []string
	// LogMaxSize is the size at which a log file is rotated (default 10 MiB);
	// LogMaxFiles is how many files a log may span, the current one
	// included (default 3: x.log, x.log.1, x.log.2). 1 truncates instead.
	LogMaxSize  int64
	LogMaxFiles int
	// StartTimeout bounds how long Start waits for the shim to report that
	// the component started (default 5 s).
	StartTimeout time.Duration
}

// Provider runs components as local processes under a shim.
type Provider struct {
	opts Options
}

var _ providers.Provider = (*Provider)(nil)

// New returns a process provider.
func New(opts Options) *Provider {
	if opts.LogMaxSize <= 0 {
		opts.LogMaxSize = DefaultLogMaxSize
	}
	if opts.LogMaxFiles <= 0 {
		opts.LogMaxFiles = DefaultLogMaxFiles
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	if abs, err := filepath.Abs(opts.Dir); err == nil && opts.Dir != "" {
		opts.Dir = abs
	}
	return &Provider{opts: opts}
}

// Name implements providers.Provider.
func (p *Provider) Name() string { return Name }

// RunRecordPath is where the run record of the component at address lives.
func (p *Provider) RunRecordPath(address string) string {
	return filepath.Join(p.opts.Dir, "run", fileName(address)+".json")
}

// LogPath is the (current) log file of the component at address.
func (p *Provider) LogPath(address string) string {
	return filepath.Join(p.opts.Dir, "logs", fileName(address)+".log")
}

func (p *Provider) shimLogPath(address string) string {
	return filepath.Join(p.opts.Dir, "run", fileName(address)+".shim.log")
}

func (p *Provider) shimCommand() ([]string, error) {
	if len(p.opts.ShimCommand) > 0 {
		return p.opts.ShimCommand, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("locate the flowctl executable for the shim: %w", err)
	}
	if lean := filepath.Join(filepath.Dir(exe), LeanShimName); isExecutable(lean) {
		return []string{lean}, nil
	}
	return []string{exe, "__shim"}, nil
}

// LeanShimName is the shim binary (cmd/flowctl-shim) the provider runs when
// it is installed beside the flowctl executable; it starts several times
// faster than flowctl itself, which matters when many components start at
// once. Without it the provider runs `flowctl __shim`, which is the same
// code.
const LeanShimName = "flowctl-shim"

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// childEnv is the component's environment (see the package doc).
func childEnv(spec *providers.ComponentSpec, recordPath string) []string {
	m := make(map[string]string, len(spec.Env)+8)
	for k, v := range spec.Env {
		m[k] = v
	}
	setDefault := func(k, v string) {
		if _, ok := m[k]; !ok && v != "" {
			m[k] = v
		}
	}
	setDefault(EnvPipeline, spec.Pipeline)
	setDefault(EnvLineage, spec.Lineage)
	setDefault(EnvInstanceID, spec.InstanceID)
	setDefault(EnvSpecHash, spec.SpecHash)
	setDefault(EnvAddress, spec.Address())
	if p, ok := os.LookupEnv("PATH"); ok {
		setDefault("PATH", p)
	}
	m[EnvManagedBy] = ManagedByValue
	m[EnvRunRecord] = recordPath
	env := make([]string, 0, len(m))
	for k, v := range m {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	return env
}

// Start implements providers.Provider: it starts the shim, which starts the
// component, and returns once the run record shows the component running,
// or with an error when it could not start (nothing is then left running
// and no record claims a running process).
func (p *Provider) Start(ctx context.Context, spec providers.ComponentSpec) (providers.Handle, error) {
	if spec.Component == nil {
		return nil, errors.New("process: start: no component")
	}
	if p.opts.Dir == "" {
		return nil, errors.New("process: no state folder (Options.Dir)")
	}
	addr := spec.Address()
	fail := func(err error) (providers.Handle, error) { return nil, fmt.Errorf("start %s: %w", addr, err) }
	argv := append(append([]string(nil), spec.Component.Command...), spec.Component.Args...)
	if len(spec.Component.Command) == 0 || argv[0] == "" {
		return fail(errors.New("the process executor needs a command (this component has none)"))
	}
	workDir := spec.WorkDir
	if workDir == "" {
		workDir = "."
	}
	workDir, err := filepath.Abs(workDir)
	if err != nil {
		return fail(err)
	}
	if err := shim.CheckDir(workDir); err != nil {
		return fail(err)
	}
	recordPath := p.RunRecordPath(addr)
	env := childEnv(&spec, recordPath)
	path, err := execpath.Resolve(argv[0], workDir, env)
	if err != nil {
		return fail(err)
	}
	for _, d := range []string{filepath.Join(p.opts.Dir, "logs"), filepath.Join(p.opts.Dir, "run")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fail(err)
		}
	}
	if err := p.checkNotRunning(ctx, recordPath); err != nil {
		return fail(err)
	}
	sp, err := p.spawnShim(addr)
	if err != nil {
		return fail(err)
	}
	defer sp.statusR.Close()
	cmd, exited, specW, statusR := sp.cmd, sp.exited, sp.specW, sp.statusR

	b, _ := json.Marshal(shim.Spec{
		RecordPath:  recordPath,
		LogPath:     p.LogPath(addr),
		LogMaxSize:  p.opts.LogMaxSize,
		LogMaxFiles: p.opts.LogMaxFiles,
		Path:        path,
		Args:        argv,
		WorkDir:     workDir,
		Env:         env,
		Pipeline:    spec.Pipeline,
		Lineage:     spec.Lineage,
		Address:     addr,
		SpecHash:    spec.SpecHash,
		InstanceID:  spec.InstanceID,
	})
	go func() { _, _ = specW.Write(b); _ = specW.Close() }()

	type answer struct {
		st  shim.Status
		err error
	}
	answers := make(chan answer, 1)
	go func() {
		var a answer
		raw, err := io.ReadAll(io.LimitReader(statusR, 1<<20))
		switch {
		case err != nil:
			a.err = err
		case len(raw) == 0:
			a.err = errors.New("the shim exited without reporting")
		default:
			a.err = json.Unmarshal(raw, &a.st)
		}
		answers <- a
	}()

	timer := time.NewTimer(p.opts.StartTimeout)
	defer timer.Stop()
	var a answer
	select {
	case a = <-answers:
	case <-timer.C:
		a.err = fmt.Errorf("the shim did not report within %v", p.opts.StartTimeout)
	case <-ctx.Done():
		a.err = ctx.Err()
	}
	if a.err == nil && a.st.Error != "" {
		a.err = errors.New(a.st.Error)
	}
	if a.err == nil && a.st.Record == nil {
		a.err = errors.New("the shim reported nothing")
	}
	if a.err != nil {
		p.abortStart(cmd, exited, recordPath)
		if tail := lastLines(p.shimLogPath(addr), 3); tail != "" && a.st.Error == "" {
			a.err = fmt.Errorf("%w (shim log: %s)", a.err, tail)
		}
		return fail(a.err)
	}
	return encodeHandle(handleOf(a.st.Record, recordPath)), nil
}

// shimProc is a started shim waiting for its spec on specW.
type shimProc struct {
	cmd     *exec.Cmd
	specW   *os.File      // the shim's fd 3
	statusR *os.File      // the shim's fd 4
	exited  chan struct{} // closed once the shim is reaped
}

// spawnShim starts a shim for the component at address, in a session of its
// own; it waits for its spec. Its stderr goes to the shim log.
func (p *Provider) spawnShim(addr string) (*shimProc, error) {
	for _, d := range []string{filepath.Join(p.opts.Dir, "logs"), filepath.Join(p.opts.Dir, "run")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	shimCmd, err := p.shimCommand()
	if err != nil {
		return nil, err
	}
	specR, specW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		_ = specR.Close()
		_ = specW.Close()
		return nil, err
	}
	// The shim's diagnostics accumulate across runs, within reason.
	shimLogFlags := os.O_CREATE | os.O_WRONLY | os.O_APPEND
	if fi, err := os.Stat(p.shimLogPath(addr)); err == nil && fi.Size() > maxShimLog {
		shimLogFlags |= os.O_TRUNC
	}
	shimLog, err := os.OpenFile(p.shimLogPath(addr), shimLogFlags, 0o600)
	if err != nil {
		for _, f := range []*os.File{specR, specW, statusR, statusW} {
			_ = f.Close()
		}
		return nil, err
	}
	cmd := exec.Command(shimCmd[0], append(append([]string(nil), shimCmd[1:]...), addr)...)
	cmd.Env = append(append([]string{}, p.opts.ShimEnv...), EnvShimRecord+"="+p.RunRecordPath(addr))
	cmd.Dir = "/"
	cmd.Stdin = nil // /dev/null
	cmd.Stdout = nil
	cmd.Stderr = shimLog
	cmd.ExtraFiles = []*os.File{specR, statusW} // fds 3 and 4
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	_ = specR.Close()
	_ = statusW.Close()
	_ = shimLog.Close()
	if err != nil {
		_ = specW.Close()
		_ = statusR.Close()
		return nil, fmt.Errorf("run the shim %s: %w", shimCmd[0], err)
	}
	// From here on the shim is reaped by a goroutine, so that it does not
	// linger as a zombie of a long-lived caller; exited is closed then.
	sp := &shimProc{cmd: cmd, specW: specW, statusR: statusR, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(sp.exited) }()
	return sp, nil
}

// checkNotRunning refuses to start over a live instance of the same
// component (its record would be overwritten and the process orphaned). A
// shim still recording its child's exit is given a moment to finish.
func (p *Provider) checkNotRunning(ctx context.Context, recordPath string) error {
	rec, err := readRecord(recordPath)
	if err != nil || rec == nil {
		return nil // an unreadable record is replaced
	}
	if alive(rec.BootID, rec.Child) {
		return fmt.Errorf("it is already running (%s); stop it first", rec.Child)
	}
	if alive(rec.BootID, rec.Shim) && !waitGone(ctx, rec.BootID, rec.Shim, shimWait) {
		return fmt.Errorf("the shim of its previous run (%s) is still running", rec.Shim)
	}
	return nil
}

// abortStart makes sure a failed start leaves nothing behind: the shim is
// asked to stop (it forwards that to the component if one was started),
// then killed, and a record naming a child is cleaned up.
func (p *Provider) abortStart(cmd *exec.Cmd, exited <-chan struct{}, recordPath string) {
	select {
	case <-exited:
	default:
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(2 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	rec, _ := readRecord(recordPath)
	if rec == nil || rec.Shim.PID != cmd.Process.Pid {
		return
	}
	if alive(rec.BootID, rec.Child) {
		_ = signalGroup(rec.BootID, rec.Child, syscall.SIGKILL)
		waitGone(context.Background(), rec.BootID, rec.Child, killWait)
	}
	_ = os.Remove(recordPath)
}

// waitGone polls until id is no longer alive; false if it still is after d
// (or when ctx ends first).
func waitGone(ctx context.Context, boot string, id procinfo.Identity, d time.Duration) bool {
	deadline := time.Now().Add(d)
	step := 5 * time.Millisecond
	for {
		if !alive(boot, id) {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		select {
		case <-ctx.Done():
		case <-time.After(step):
		}
		step = min(step*2, 50*time.Millisecond)
	}
}

// Stop implements providers.Provider. It sends SIGTERM to the component's
// process group, waits up to grace (cut short when ctx ends), then sends
// SIGKILL; it waits for the shim to record the exit, kills it if it
// lingers, and removes the run record. Only processes whose identity still
// matches the handle are signalled; a component already gone is not an
// error.
func (p *Provider) Stop(ctx context.Context, h providers.Handle, grace time.Duration) error {
	hd, err := decodeHandle(h)
	if err != nil {
		return err
	}
	if alive(hd.BootID, hd.Child) {
		if err := signalGroup(hd.BootID, hd.Child, syscall.SIGTERM); err != nil && !errors.Is(err, errNotOurs) {
			return fmt.Errorf("stop %s: %w", hd.Address, err)
		}
		if !waitGone(ctx, hd.BootID, hd.Child, grace) {
			if err := signalGroup(hd.BootID, hd.Child, syscall.SIGKILL); err != nil && !errors.Is(err, errNotOurs) {
				return fmt.Errorf("stop %s: %w", hd.Address, err)
			}
			if !waitGone(context.Background(), hd.BootID, hd.Child, killWait) {
				return fmt.Errorf("stop %s: %s is still alive %v after SIGKILL", hd.Address, hd.Child, killWait)
			}
		}
	}
	if alive(hd.BootID, hd.Shim) && !waitGone(context.Background(), hd.BootID, hd.Shim, shimWait) {
		_ = signalProcess(hd.BootID, hd.Shim, syscall.SIGKILL)
		waitGone(context.Background(), hd.BootID, hd.Shim, killWait)
	}
	if rec, _ := readRecord(hd.RunRecord); rec != nil && rec.Child == hd.Child {
		if err := os.Remove(hd.RunRecord); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("stop %s: remove run record: %w", hd.Address, err)
		}
		// The shim's diagnostics go with the run; the component's log stays.
		_ = os.Remove(strings.TrimSuffix(hd.RunRecord, ".json") + ".shim.log")
	}
	return nil
}

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
		if !o.Exists || o.Running || o.ExitCode != nil || !alive(hd.BootID, hd.Shim) || time.Now().After(deadline) {
			return o, nil
		}
		select {
		case <-ctx.Done():
			return o, nil
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// recordingWait bounds how long Observe waits for a shim to record the
// exit of a component that has just exited.
const recordingWait = 500 * time.Millisecond

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
			o.Pipeline, o.Lineage, o.InstanceID, o.SpecHash = m[EnvPipeline], m[EnvLineage], m[EnvInstanceID], m[EnvSpecHash]
			o.Ports = portsOf(m)
		}
		return o
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
		if env, err := procinfo.Environ(rec.Child.PID); err == nil && alive(hd.BootID, hd.Child) {
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

// List implements providers.Provider: every run record of the pipeline in
// Dir/run, running or exited, plus every live process on the machine
// (readable by this user) marked as a component of the pipeline that no
// record names: the safety net for lost records. Descendants of a
// component (which inherit its environment) are not listed on their own.
func (p *Provider) List(ctx context.Context, pipeline string) ([]providers.Observed, error) {
	var out []providers.Observed
	seen := map[procinfo.Identity]bool{}
	runDir := filepath.Join(p.opts.Dir, "run")
	ents, err := os.ReadDir(runDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("process: list %s: %w", runDir, err)
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
		seen[rec.Child] = true
		out = append(out, observe(handleOf(rec, path), rec))
	}

	pids, err := procinfo.PIDs()
	if err != nil {
		return nil, fmt.Errorf("process: list: %w", err)
	}
	self := os.Getpid()
	for _, pid := range pids {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if pid == self {
			continue
		}
		o, ok := p.orphan(pid, pipeline, seen)
		if ok {
			out = append(out, o)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Address != out[j].Address {
			return out[i].Address < out[j].Address
		}
		return out[i].StartedAt.Before(out[j].StartedAt)
	})
	return out, nil
}

// orphan reports pid as a component of pipeline that no record names.
func (p *Provider) orphan(pid int, pipeline string, seen map[procinfo.Identity]bool) (providers.Observed, bool) {
	env, err := procinfo.Environ(pid)
	if err != nil {
		return providers.Observed{}, false
	}
	m := envMap(env)
	if m[EnvManagedBy] != ManagedByValue || m[EnvPipeline] != pipeline {
		return providers.Observed{}, false
	}
	st, err := procinfo.ReadStat(pid)
	if err != nil || st.PGID != pid {
		return providers.Observed{}, false // a descendant in the component's group
	}
	id := procinfo.Identity{PID: pid, StartTicks: st.StartTicks}
	if seen[id] || !procinfo.Alive(id) {
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
	var shim procinfo.Identity
	if penv, err := procinfo.Environ(st.PPID); err == nil {
		pm := envMap(penv)
		if pm[EnvManagedBy] == ManagedByValue && pm[EnvRunRecord] == record {
			return providers.Observed{}, false // a descendant that made its own group
		}
		if pm[EnvShimRecord] == record {
			shim, _ = procinfo.Of(st.PPID)
		}
	}
	addr := m[EnvAddress]
	if record == "" {
		record = p.RunRecordPath(addr)
	}
	hd := handle{
		Address:   addr,
		RunRecord: record,
		LogPath:   logPathFromRecord(record),
		BootID:    currentBootID(),
		Shim:      shim,
		Child:     id,
	}
	return providers.Observed{
		Address:     addr,
		Exists:      true,
		Running:     true,
		SpecHash:    m[EnvSpecHash],
		Pipeline:    m[EnvPipeline],
		Lineage:     m[EnvLineage],
		InstanceID:  m[EnvInstanceID],
		StartedAt:   startTimeOf(id.StartTicks),
		Handle:      encodeHandle(hd),
		Fingerprint: fingerprint(id),
		Detail:      fmt.Sprintf("running (%s); no run record names it", id),
	}, true
}

// lastLines returns up to n last lines of a small file, joined by " | ".
func lastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > 8192 {
		b = b[len(b)-8192:]
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, " | "))
}

// portsOf reads PORT and HEALTH_PORT from a component's environment, so an
// adopted component keeps the ports it was started with.
func portsOf(env map[string]string) map[string]int {
	out := map[string]int{}
	for _, k := range []string{"PORT", "HEALTH_PORT"} {
		if p, err := strconv.Atoi(env[k]); err == nil && p > 0 {
			out[k] = p
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
