// Package shim is the supervisor that owns one process component for the
// process provider (package process): it starts the component in a
// process group of its own, writes its output with timestamps into a
// rotating log, keeps its run record, forwards signals, and records the
// exit. It is small on purpose: it links only the standard library and
// procinfo, so that the flowctl-shim binary built from it starts fast.
package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flowctl/flowctl/internal/procinfo"
)

// The shim protocol. Start runs the shim with two extra file descriptors:
// fd 3 (specFD) carries the Spec as JSON, written by Start and closed;
// fd 4 (statusFD) carries one Status back, after which the shim closes
// it. The spec travels over a pipe rather than a file so that the
// component's environment (tokens) is never written to disk. Arguments are
// informational only (the address, so that `ps` shows what a shim is for).
const (
	specFD   = 3
	statusFD = 4
)

// Bounds of the shim's shutdown after the child has exited: time to read
// what is left in the pipes (descendants that escaped the process group
// may hold them open), then to write the queued lines.
const (
	drainReadWait  = 2 * time.Second
	drainWriteWait = 3 * time.Second
)

// Spec is what Start tells the shim.
type Spec struct {
	RecordPath  string   `json:"record_path"`
	LogPath     string   `json:"log_path"`
	LogMaxSize  int64    `json:"log_max_size"`
	LogMaxFiles int      `json:"log_max_files"`
	Path        string   `json:"path"` // resolved executable
	Args        []string `json:"args"` // argv, argv[0] as the user wrote it
	WorkDir     string   `json:"work_dir"`
	Env         []string `json:"env"` // exact environment of the child
	Pipeline    string   `json:"pipeline"`
	Lineage     string   `json:"lineage"`
	Address     string   `json:"address"`
	SpecHash    string   `json:"spec_hash"`
	InstanceID  string   `json:"instance_id"`
}

// Status is the shim's answer: the record once the child runs, or why
// it could not start.
type Status struct {
	Record *Record `json:"record,omitempty"`
	Error  string  `json:"error,omitempty"`
}

// Main is the body of the hidden `flowctl __shim` command, which the
// process provider runs (in a new session) to own one component: it starts
// the component in its own process group with the exact environment it was
// given, copies its output line by line with timestamps into the rotating
// log, forwards SIGTERM, SIGINT, SIGHUP and SIGQUIT to the component's
// process group, writes the run record when the component has started and
// again when it has exited, and exits. It returns the shim's exit code.
//
// It is only meaningful when started by the provider's Start, which passes
// the spec on file descriptor 3 and reads the status on descriptor 4.
func Main(args []string) int {
	_ = args // informational: the component address
	diag := os.Stderr
	logf := func(format string, a ...any) {
		fmt.Fprintf(diag, "%s flowctl-shim[%d]: %s\n", time.Now().UTC().Format(tsLayout), os.Getpid(), fmt.Sprintf(format, a...))
	}
	// The descriptors were inherited without close-on-exec: set it, or the
	// component would inherit them too and hold the status pipe open.
	for _, fd := range []int{specFD, statusFD} {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			logf("file descriptor %d is not open: this command is run by flowctl only", fd)
			return 2
		}
		syscall.CloseOnExec(fd)
	}
	specF := os.NewFile(specFD, "spec")
	statusF := os.NewFile(statusFD, "status")
	var reportOnce sync.Once
	report := func(st Status) {
		reportOnce.Do(func() {
			_ = json.NewEncoder(statusF).Encode(st)
			_ = statusF.Close()
		})
	}
	fail := func(format string, a ...any) int {
		msg := fmt.Sprintf(format, a...)
		logf("%s", msg)
		report(Status{Error: msg})
		return 1
	}

	b, err := io.ReadAll(io.LimitReader(specF, 64<<20))
	_ = specF.Close()
	if err != nil {
		return fail("read spec: %v", err)
	}
	var spec Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return fail("decode spec: %v", err)
	}
	if spec.Path == "" || len(spec.Args) == 0 || spec.RecordPath == "" || spec.LogPath == "" {
		return fail("incomplete spec")
	}
	diagPrefix := spec.Address
	logf = func(format string, a ...any) {
		fmt.Fprintf(diag, "%s flowctl-shim[%d] %s: %s\n", time.Now().UTC().Format(tsLayout), os.Getpid(), diagPrefix, fmt.Sprintf(format, a...))
	}

	logFile, err := openRotating(spec.LogPath, spec.LogMaxSize, spec.LogMaxFiles)
	if err != nil {
		return fail("open log: %v", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return fail("pipe: %v", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return fail("pipe: %v", err)
	}

	// Catch the signals to forward before the child exists, so that none
	// arriving in between is lost (it is forwarded once the child runs).
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT)

	cmd := &exec.Cmd{
		Path:        spec.Path,
		Args:        spec.Args,
		Env:         spec.Env,
		Dir:         spec.WorkDir,
		Stdout:      outW,
		Stderr:      errW,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if cmd.Env == nil {
		cmd.Env = []string{} // never the shim's own environment
	}
	if err := CheckDir(spec.WorkDir); err != nil {
		_ = logFile.close()
		return fail("%v", err)
	}
	if err := cmd.Start(); err != nil {
		_ = logFile.close()
		return fail("%v", startError(spec.Args[0], spec.Path, err))
	}
	_ = outW.Close()
	_ = errW.Close()
	pid := cmd.Process.Pid
	child, err := procinfo.Of(pid)
	if err != nil {
		// Cannot happen while we have not reaped it; be safe anyway.
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = cmd.Wait()
		return fail("identify child %d: %v", pid, err)
	}
	self, _ := procinfo.Self()
	rec := &Record{
		Version:    RecordVersion,
		Pipeline:   spec.Pipeline,
		Lineage:    spec.Lineage,
		Address:    spec.Address,
		SpecHash:   spec.SpecHash,
		InstanceID: spec.InstanceID,
		BootID:     bootID(),
		Shim:       self,
		Child:      child,
		Command:    spec.Path,
		Args:       spec.Args,
		WorkDir:    spec.WorkDir,
		LogPath:    spec.LogPath,
		StartedAt:  time.Now().UTC(),
	}
	if err := WriteRecord(spec.RecordPath, rec); err != nil {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = cmd.Wait()
		return fail("write run record: %v", err)
	}
	report(Status{Record: rec})
	logf("started %s (%s)", spec.Args[0], child)

	pump := newLogPump(logFile, diag)
	pump.copy(StreamStdout, outR)
	pump.copy(StreamStderr, errR)

	// Forward signals to the child's process group for as long as it is not
	// reaped: until then its pid, hence the group id, cannot be reused.
	var mu sync.Mutex
	reaped := false
	go func() {
		for s := range sigs {
			mu.Lock()
			if !reaped {
				logf("forwarding %v to process group %d", s, pid)
				_ = syscall.Kill(-pid, s.(syscall.Signal))
			}
			mu.Unlock()
		}
	}()

	// Wait for the exit without reaping, kill what is left of the group
	// (descendants must not outlive the component), then reap.
	var waitidErr error
	for {
		var info unix.Siginfo
		waitidErr = unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(waitidErr, syscall.EINTR) {
			break
		}
	}
	var waitErr error
	if waitidErr == nil {
		mu.Lock()
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		waitErr = cmd.Wait()
		reaped = true
		mu.Unlock()
	} else {
		// Cannot happen. Not knowing that the child has exited, killing its
		// group would be wrong: just wait for it.
		logf("waitid: %v", waitidErr)
		waitErr = cmd.Wait()
		mu.Lock()
		reaped = true
		mu.Unlock()
	}
	signal.Stop(sigs)

	// Record the exit at once (observers are waiting for it), then finish
	// the log; Stop waits for the shim to be gone, so a stopped
	// component's last lines are in the log when Stop returns.
	now := time.Now().UTC()
	rec.ExitedAt = &now
	code := -1
	if cmd.ProcessState == nil {
		logf("wait for the child: %v", waitErr)
	} else if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok {
		switch {
		case ws.Signaled():
			code = 128 + int(ws.Signal())
			rec.Signal = signalName(ws.Signal())
		default:
			code = ws.ExitStatus()
		}
	}
	rec.ExitCode = &code
	// Do not clobber the record of a newer instance of the component.
	if cur, err := ReadRecord(spec.RecordPath); err == nil && cur != nil && cur.Child != child {
		logf("run record now belongs to %s; not recording the exit", cur.Child)
	} else if err := WriteRecord(spec.RecordPath, rec); err != nil {
		logf("write run record: %v", err)
	}
	if !pump.finish(drainReadWait, drainWriteWait, func() { _ = outR.Close(); _ = errR.Close() }) {
		logf("log writer did not finish; some lines may be lost")
	}
	if rec.Signal != "" {
		logf("child killed by %s", rec.Signal)
	} else {
		logf("child exited with code %d", code)
	}
	return 0
}

// startError names the command and keeps the OS error of a failed start
// ("no such file or directory", "exec format error", "permission denied").
func startError(argv0, path string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	if argv0 != path {
		return fmt.Errorf("command %q (%s): %w", argv0, path, err)
	}
	return fmt.Errorf("command %q: %w", argv0, err)
}

// CheckDir reports a working directory the component cannot run in (the
// error of a failed chdir would otherwise look like a missing command).
func CheckDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("working directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("working directory %s: not a directory", dir)
	}
	return nil
}

// signalName names a signal the way a user expects ("SIGKILL").
func signalName(s syscall.Signal) string {
	if n := unix.SignalName(s); n != "" {
		return n
	}
	return "signal " + strconv.Itoa(int(s))
}

// bootID identifies this boot of the machine ("" if unknown); identities
// recorded under another boot name nothing.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
