package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/flowctl/flowctl/internal/procinfo"
	"github.com/flowctl/flowctl/internal/serve"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/tokens"
)

// Bounds of the control plane apply starts in the background.
const (
	serveStartTimeout = 15 * time.Second
	serveStopTimeout  = 10 * time.Second
	// serveLogName is the background control plane's log, in the state
	// folder.
	serveLogName = "serve.log"
)

// controlPlane is the control plane an apply's components talk to.
type controlPlane struct {
	endpoint string // host:port injected as FLOWCTL_ENDPOINT
	started  bool   // this apply started it in the background
	external bool   // named by the pipeline or --control-plane: not flowctl's to manage
}

// ensureControlPlane makes sure a control plane listens for ws's
// components before apply starts any (SDK components block until it
// answers): the one --control-plane (override) or the pipeline names,
// which must answer; else the `flowctl serve` already serving this state
// file; else a `flowctl serve` started now in the background, in a session
// of its own so that it outlives this command, logging to
// .flowctl/serve.log and recorded in state by itself.
func ensureControlPlane(ctx context.Context, ws *workspace, override string) (*controlPlane, error) {
	addr := override
	if addr == "" && ws.pipeline != nil {
		addr = ws.pipeline.ControlPlane
	}
	if addr != "" {
		if err := dialCheck(ctx, addr, 5*time.Second); err != nil {
			return nil, fmt.Errorf("the control plane %s does not answer (components that register would wait for it forever): %w", addr, err)
		}
		return &controlPlane{endpoint: addr, external: true}, nil
	}
	rec, err := serve.Running(ws.store)
	if err != nil {
		return nil, err
	}
	if rec != nil {
		return &controlPlane{endpoint: rec.Endpoint()}, nil
	}
	return startServe(ctx, ws)
}

// dialCheck reports whether something accepts TCP connections at addr.
func dialCheck(ctx context.Context, addr string, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

// startServe runs `flowctl serve` for ws's state file in the background
// and waits until it has recorded itself in state. It listens on
// 127.0.0.1:8080, the ecosystem's default endpoint, when that is free, and
// on a free loopback port otherwise (components are told where by
// FLOWCTL_ENDPOINT).
func startServe(ctx context.Context, ws *workspace) (*controlPlane, error) {
	// 8080 may be taken between the check and serve's bind (another
	// pipeline's apply): then a free port it is.
	if portFree(serve.DefaultListen) {
		cp, err := startServeOn(ctx, ws, serve.DefaultListen)
		if err == nil || !errors.Is(err, errAddrInUse) {
			return cp, err
		}
	}
	return startServeOn(ctx, ws, "127.0.0.1:0")
}

// errAddrInUse marks a serve that could not bind its address.
var errAddrInUse = errors.New("address already in use")

func startServeOn(ctx context.Context, ws *workspace, listen string) (*controlPlane, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start the control plane: locate flowctl: %w", err)
	}
	statePath, err := filepath.Abs(ws.store.Path())
	if err != nil {
		return nil, fmt.Errorf("start the control plane: %w", err)
	}
	args := []string{"serve", "--state", statePath, "--listen", listen, "--http", "127.0.0.1:0"}
	if ws.pipeline != nil && ws.pipeline.Auth != "" {
		args = append(args, "--auth", ws.pipeline.Auth)
	}
	logPath := filepath.Join(ws.stateDir, serveLogName)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start the control plane: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(exe, args...)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the control plane: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	deadline := time.NewTimer(serveStartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		rec, err := serve.ReadRecord(ws.store)
		if err == nil && rec != nil && rec.Process.PID == cmd.Process.Pid && rec.Alive() {
			return &controlPlane{endpoint: rec.Endpoint(), started: true}, nil
		}
		select {
		case err := <-exited:
			tail := lastLogLines(logPath, 5)
			if strings.Contains(tail, "address already in use") {
				return nil, fmt.Errorf("the control plane could not listen on %s: %w", listen, errAddrInUse)
			}
			return nil, fmt.Errorf("the control plane (flowctl serve) exited at start (%v): %s", err, tail)
		case <-deadline.C:
			_ = cmd.Process.Kill()
			return nil, fmt.Errorf("the control plane (flowctl serve) did not start within %s: %s", serveStartTimeout, lastLogLines(logPath, 5))
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// stopServeIfIdle stops the control plane flowctl runs for ws's state file
// once no component of it is left in state (after a destroy). One that an
// operator runs in the foreground (`flowctl serve` in a terminal) is
// stopped too: it serves nothing any more.
func stopServeIfIdle(ws *workspace) error {
	var left int
	if err := ws.store.View(func(tx *state.Tx) error {
		recs, err := tx.Components()
		left = len(recs)
		return err
	}); err != nil {
		return err
	}
	if left > 0 {
		return nil
	}
	rec, err := serve.Running(ws.store)
	if err != nil || rec == nil {
		return err
	}
	if rec.Process.PID == os.Getpid() {
		return nil // flowctl run serves in this process and stops it itself
	}
	if err := procinfo.Signal(rec.Process, syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop the control plane (pid %d): %w", rec.Process.PID, err)
	}
	deadline := time.Now().Add(serveStopTimeout)
	for procinfo.Alive(rec.Process) {
		if time.Now().After(deadline) {
			_ = procinfo.Signal(rec.Process, syscall.SIGKILL)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// tokenSecret is the secret of component tokens for ws, beside the state
// file (created 0600 on first use): the one serve verifies with, and the
// generation of it state records.
func tokenSecret(ws *workspace) (*tokens.Secret, uint64, error) {
	secret, err := tokens.LoadOrCreateSecret(tokens.DefaultSecretPath(ws.store.Path()))
	if err != nil {
		return nil, 0, err
	}
	var gen uint64
	if err := ws.store.View(func(tx *state.Tx) error { gen = tx.TokenGeneration(); return nil }); err != nil {
		return nil, 0, err
	}
	return secret, gen, nil
}

// lastLogLines is the last n lines of a log file, joined for an error
// message.
func lastLogLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "no log"
		}
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
