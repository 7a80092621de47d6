//go:build linux

package shim

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flowctl/flowctl/internal/procinfo"
)

// child is the running component as the shim holds it: the command, the
// read ends of its output pipes, its log, the signals to forward to it and
// its run record.
type child struct {
	spec       *Spec
	cmd        *exec.Cmd
	outR, errR *os.File
	logFile    *rotatingFile
	sigs       chan os.Signal
	rec        *Record
}

// startChild starts the component in a process group of its own and writes
// its run record. On error nothing of it is left running.
func startChild(spec *Spec) (*child, error) {
	logFile, err := openRotating(spec.LogPath, spec.LogMaxSize, spec.LogMaxFiles)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pipe: %w", err)
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
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		_ = logFile.close()
		return nil, startError(spec.Args[0], spec.Path, err)
	}
	_ = outW.Close()
	_ = errW.Close()
	rec, err := recordStart(spec, cmd.Process.Pid)
	if err != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		return nil, err
	}
	return &child{spec: spec, cmd: cmd, outR: outR, errR: errR, logFile: logFile, sigs: sigs, rec: rec}, nil
}

// recordStart writes the run record of the child just started as pid.
func recordStart(spec *Spec, pid int) (*Record, error) {
	id, err := procinfo.Of(pid)
	if err != nil {
		// Cannot happen while we have not reaped it; be safe anyway.
		return nil, fmt.Errorf("identify child %d: %w", pid, err)
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
		Ports:      portsOf(spec.Env),
		Shim:       self,
		Child:      id,
		Command:    spec.Path,
		Args:       spec.Args,
		WorkDir:    spec.WorkDir,
		LogPath:    spec.LogPath,
		StartedAt:  time.Now().UTC(),
	}
	if err := WriteRecord(spec.RecordPath, rec); err != nil {
		return nil, fmt.Errorf("write run record: %w", err)
	}
	return rec, nil
}

// supervise copies the child's output to its log and forwards signals to
// it until it exits, then records the exit and finishes the log.
func (c *child) supervise(diag *diagLog) {
	pump := newLogPump(c.logFile, diag.w)
	pump.copy(StreamStdout, c.outR)
	pump.copy(StreamStderr, c.errR)

	fw := &forwarder{pid: c.cmd.Process.Pid}
	go fw.forward(c.sigs, diag)
	waitErr := fw.reap(c.cmd, diag)
	signal.Stop(c.sigs)
	c.rec.Survivors = stopDescendants(diag)

	// Record the exit at once (observers are waiting for it), then finish
	// the log; Stop waits for the shim to be gone, so a stopped
	// component's last lines are in the log when Stop returns.
	c.recordExit(waitErr, diag)
	if !pump.finish(drainReadWait, drainWriteWait, func() { _ = c.outR.Close(); _ = c.errR.Close() }) {
		diag.printf("log writer did not finish; some lines may be lost")
	}
	if c.rec.Signal != "" {
		diag.printf("child killed by %s", c.rec.Signal)
	} else {
		diag.printf("child exited with code %d", *c.rec.ExitCode)
	}
}

// recordExit writes how the child ended into its run record, unless the
// record now belongs to a newer instance of the component.
func (c *child) recordExit(waitErr error, diag *diagLog) {
	now := time.Now().UTC()
	c.rec.ExitedAt = &now
	code, sig := exitStatus(c.cmd, waitErr, diag)
	c.rec.ExitCode = &code
	c.rec.Signal = sig
	if cur, err := ReadRecord(c.spec.RecordPath); err == nil && cur != nil && cur.Child != c.rec.Child {
		diag.printf("run record now belongs to %s; not recording the exit", cur.Child)
	} else if err := WriteRecord(c.spec.RecordPath, c.rec); err != nil {
		diag.printf("write run record: %v", err)
	}
}

// exitStatus is the child's exit code (128 + the signal number when a
// signal killed it, -1 when unknown) and the name of that signal.
func exitStatus(cmd *exec.Cmd, waitErr error, diag *diagLog) (code int, sig string) {
	if cmd.ProcessState == nil {
		diag.printf("wait for the child: %v", waitErr)
		return -1, ""
	}
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case !ok:
		return -1, ""
	case ws.Signaled():
		return 128 + int(ws.Signal()), signalName(ws.Signal())
	default:
		return ws.ExitStatus(), ""
	}
}

// forwarder forwards signals to the child's process group for as long as
// the child is not reaped: until then its pid, hence the group id, cannot
// be reused.
type forwarder struct {
	pid    int
	mu     sync.Mutex
	reaped bool
}

func (fw *forwarder) forward(sigs <-chan os.Signal, diag *diagLog) {
	for s := range sigs {
		fw.mu.Lock()
		if !fw.reaped {
			diag.printf("forwarding %v to process group %d", s, fw.pid)
			_ = syscall.Kill(-fw.pid, s.(syscall.Signal))
		}
		fw.mu.Unlock()
	}
}

// reap waits for the child to exit without reaping it, kills what is left
// of its group (descendants must not outlive the component), then reaps
// it; it returns cmd.Wait's error.
func (fw *forwarder) reap(cmd *exec.Cmd, diag *diagLog) error {
	if err := waitExited(fw.pid); err != nil {
		// Cannot happen. Not knowing that the child has exited, killing its
		// group would be wrong: just wait for it, forwarding meanwhile.
		diag.printf("waitid: %v", err)
		waitErr := cmd.Wait()
		fw.mu.Lock()
		fw.reaped = true
		fw.mu.Unlock()
		return waitErr
	}
	fw.mu.Lock()
	defer fw.mu.Unlock()
	_ = syscall.Kill(-fw.pid, syscall.SIGKILL)
	waitErr := cmd.Wait()
	fw.reaped = true
	return waitErr
}

// waitExited blocks until the process pid has exited, leaving it
// unreaped.
func waitExited(pid int) error {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
