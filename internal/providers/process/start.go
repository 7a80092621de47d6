//go:build linux

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
	"strings"
	"syscall"
	"time"

	"github.com/flowctl/flowctl/internal/execpath"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/process/shim"
	"github.com/flowctl/flowctl/pkg/contract"
)

// LeanShimName is the shim binary (cmd/flowctl-shim) the provider runs when
// it is installed beside the flowctl executable; it starts several times
// faster than flowctl itself, which matters when many components start at
// once. Without it the provider runs `flowctl __shim`, which is the same
// code.
const LeanShimName = "flowctl-shim"

// maxShimLog is the size beyond which a shim log is started afresh.
const maxShimLog = 1 << 20

// maxStatus bounds the shim's answer on its status descriptor.
const maxStatus = 1 << 20

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
	h, err := p.start(ctx, &spec)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", spec.Address(), err)
	}
	return h, nil
}

func (p *Provider) start(ctx context.Context, spec *providers.ComponentSpec) (providers.Handle, error) {
	if spec.Component.RunsImageAsProcess() {
		s, err := p.imageSpec(ctx, spec)
		if err != nil {
			return nil, err
		}
		spec = s
	}
	ss, err := p.shimSpec(spec)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{p.logDir(), p.runDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if err := p.checkNotRunning(ctx, ss.RecordPath); err != nil {
		return nil, err
	}
	sp, err := p.spawnShim(ss.Address)
	if err != nil {
		return nil, err
	}
	defer sp.statusR.Close()
	b, _ := json.Marshal(ss)
	go func() { _, _ = sp.specW.Write(b); _ = sp.specW.Close() }()

	st, err := p.awaitStatus(ctx, sp.statusR)
	if err != nil {
		p.abortStart(sp.cmd, sp.exited, ss.RecordPath)
		// The shim's own report says what went wrong; without one, its log
		// may.
		if tail := lastLines(p.shimLogPath(ss.Address), 3); tail != "" && st.Error == "" {
			err = fmt.Errorf("%w (shim log: %s)", err, tail)
		}
		return nil, err
	}
	return encodeHandle(handleOf(st.Record, ss.RecordPath)), nil
}

// shimSpec is what the shim needs to run the component: the command
// resolved against the working directory and the component's environment.
func (p *Provider) shimSpec(spec *providers.ComponentSpec) (*shim.Spec, error) {
	argv := append(append([]string(nil), spec.Component.Command...), spec.Component.Args...)
	if len(spec.Component.Command) == 0 || argv[0] == "" {
		return nil, errors.New("the process executor needs a command (this component has none)")
	}
	workDir := spec.WorkDir
	if workDir == "" {
		workDir = "."
	}
	workDir, err := filepath.Abs(workDir)
	if err != nil {
		return nil, err
	}
	if err := shim.CheckDir(workDir); err != nil {
		return nil, err
	}
	addr := spec.Address()
	recordPath := p.RunRecordPath(addr)
	env := childEnv(spec, recordPath)
	path, err := execpath.Resolve(argv[0], workDir, env)
	if err != nil {
		return nil, err
	}
	return &shim.Spec{
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
	}, nil
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
	setDefault(contract.EnvPipeline, spec.Pipeline)
	setDefault(contract.EnvLineage, spec.Lineage)
	setDefault(contract.EnvInstanceID, spec.InstanceID)
	setDefault(contract.EnvSpecHash, spec.SpecHash)
	setDefault(contract.EnvComponentAddress, spec.Address())
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

// awaitStatus waits for the shim's report on statusR, at most
// StartTimeout, and turns a report of failure into an error.
func (p *Provider) awaitStatus(ctx context.Context, statusR io.Reader) (shim.Status, error) {
	type answer struct {
		st  shim.Status
		err error
	}
	answers := make(chan answer, 1)
	go func() {
		st, err := readStatus(statusR)
		answers <- answer{st, err}
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
	return a.st, a.err
}

// readStatus reads the one Status a shim writes before closing its status
// descriptor.
func readStatus(r io.Reader) (shim.Status, error) {
	var st shim.Status
	raw, err := io.ReadAll(io.LimitReader(r, maxStatus))
	if err != nil {
		return st, err
	}
	if len(raw) == 0 {
		return st, errors.New("the shim exited without reporting")
	}
	err = json.Unmarshal(raw, &st)
	return st, err
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
	shimLog, err := openShimLog(p.shimLogPath(addr))
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

// openShimLog opens a shim log for appending: the shim's diagnostics
// accumulate across runs, within reason.
func openShimLog(path string) (*os.File, error) {
	flags := os.O_CREATE | os.O_WRONLY | os.O_APPEND
	if fi, err := os.Stat(path); err == nil && fi.Size() > maxShimLog {
		flags |= os.O_TRUNC
	}
	return os.OpenFile(path, flags, 0o600)
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

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
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
