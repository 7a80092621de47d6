package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/plan"
	"github.com/flowctl/flowctl/internal/procinfo"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/tokens"
)

// Bounds of a control plane flowctl starts for a state file.
const (
	// StartTimeout bounds the wait for a started control plane to listen.
	StartTimeout = 15 * time.Second
	stopTimeout  = 10 * time.Second
	// externalDialTimeout bounds the check that a named control plane
	// answers.
	externalDialTimeout = 5 * time.Second
	// answerTimeout bounds the check that a running control plane of the
	// state file answers.
	answerTimeout = 2 * time.Second
	// logName is the log of a control plane flowctl runs, in the state
	// folder.
	logName = "serve.log"
)

// LogPath is where a control plane flowctl runs for the state file at
// statePath logs: serve.log in the state folder.
func LogPath(statePath string) string {
	return filepath.Join(filepath.Dir(statePath), logName)
}

// ControlPlane is the control plane an apply's components talk to.
type ControlPlane struct {
	// Endpoint is the host:port injected as FLOWCTL_ENDPOINT.
	Endpoint string
	// Started: Ensure started it in the background.
	Started bool
	// External: named by the pipeline or the operator, not flowctl's to
	// manage.
	External bool
	// Moved is the address recorded in state that a control plane Ensure
	// started could not listen on (taken): components started earlier were
	// told it, and learn Endpoint at their next start (a restart by the
	// watcher, or an apply), whose environment carries it.
	Moved string
}

// EnsureOptions say which control plane Ensure looks for, and how it
// starts one.
type EnsureOptions struct {
	// Store is the pipeline's state file.
	Store *state.Store
	// Address is a control plane the operator names (--control-plane); ""
	// takes the pipeline's control_plane.
	Address string
	// Pipeline, when at hand, may name a control plane, and gives the
	// auth mode of one Ensure starts.
	Pipeline *config.Pipeline
	// Executable locates the flowctl binary whose `serve` command Ensure
	// starts (the CLI passes os.Executable).
	Executable func() (string, error)
}

// Ensure makes sure a control plane listens for the components of
// o.Store before any starts (SDK components block until it answers): the
// one named by o.Address or the pipeline, which must answer; else the
// `flowctl serve` already serving the state file; else a `flowctl serve`
// started now in the background, in a session of its own so that it
// outlives the caller, logging to LogPath and recorded in state by itself.
func Ensure(ctx context.Context, o EnsureOptions) (*ControlPlane, error) {
	addr := o.Address
	if addr == "" && o.Pipeline != nil {
		addr = o.Pipeline.ControlPlane
	}
	if addr != "" {
		if err := dialCheck(ctx, addr, externalDialTimeout); err != nil {
			return nil, fmt.Errorf("the control plane %s does not answer (components that register would wait for it forever): %w", addr, err)
		}
		return &ControlPlane{Endpoint: addr, External: true}, nil
	}
	// Containers about to start must find the control plane on the
	// Docker bridge: say so before a control plane starts, and wait for
	// one already running to open it.
	if err := ExpectBridge(o.Store, o.Pipeline); err != nil {
		return nil, err
	}
	cp, err := ensureOwn(ctx, o)
	if err != nil {
		return nil, err
	}
	if err := AwaitBridge(ctx, o.Store); err != nil {
		return nil, err
	}
	return cp, nil
}

// ensureOwn is the control plane flowctl runs for o.Store: the one
// serving it, or one started now.
func ensureOwn(ctx context.Context, o EnsureOptions) (*ControlPlane, error) {
	rec, err := Running(o.Store)
	if err != nil {
		return nil, err
	}
	if rec != nil {
		if answers(ctx, rec.Endpoint(), answerTimeout) == nil {
			return &ControlPlane{Endpoint: rec.Endpoint()}, nil
		}
		// Alive but not answering: it serves nobody; a new one will.
		if err := stopProcess(rec); err != nil {
			return nil, err
		}
	}
	return startChild(ctx, o)
}

// PreferredListen is where a control plane flowctl starts for store
// listens: the address the last one listened on, when it is free (the
// components were told it), else AutoListen. recorded is that address,
// "" when none ever listened; a listen other than it means it is taken.
func PreferredListen(store *state.Store) (listen, recorded string) {
	recorded, _ = LastAddress(store)
	if recorded != "" && portFree(recorded) {
		return recorded, recorded
	}
	return AutoListen(), recorded
}

// ObserveControlPlane is the control plane of store as a plan sees it.
// named is a control plane the operator or the pipeline names: not
// flowctl's to run, and not observed.
func ObserveControlPlane(ctx context.Context, store *state.Store, named string) (*plan.ControlPlaneSeen, error) {
	if named != "" {
		return &plan.ControlPlaneSeen{}, nil
	}
	rec, err := ReadRecord(store)
	if err != nil {
		return nil, err
	}
	seen := &plan.ControlPlaneSeen{Managed: true}
	seen.Listen, _ = PreferredListen(store)
	switch {
	case rec == nil:
		seen.Detail = "it is not running"
	case !rec.Alive():
		seen.Detail = fmt.Sprintf("it is not running: pid %d exited", rec.Process.PID)
		if h, _ := os.Hostname(); h != rec.Host {
			seen.Detail = fmt.Sprintf("it is not running on this host (the last one ran on %s)", rec.Host)
		}
	default:
		seen.Running = true
		if err := answers(ctx, rec.Endpoint(), answerTimeout); err != nil {
			seen.Detail = fmt.Sprintf("pid %d does not answer on %s: %v", rec.Process.PID, rec.Endpoint(), err)
			seen.Listen = rec.GRPC
			break
		}
		seen.Answering = true
	}
	if rec != nil && !seen.Running && rec.GRPC != "" && seen.Listen != rec.GRPC {
		seen.Detail += fmt.Sprintf("; its address %s is taken: components learn the new one at their next start", rec.GRPC)
	}
	return seen, nil
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

// http2Preface is what an HTTP/2 client (gRPC) sends first: the
// connection preface and an empty SETTINGS frame.
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"

// answers reports whether the server at addr answers a connection: it
// sends the start of an HTTP/2 connection and waits for any reply (a gRPC
// server's SETTINGS, or a TLS server's alert). A process that is stopped
// or hung still has its connections accepted by the kernel, but never
// answers.
func answers(ctx context.Context, addr string, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := conn.Write([]byte(http2Preface)); err != nil {
		return err
	}
	var b [1]byte
	if _, err := conn.Read(b[:]); err != nil {
		return fmt.Errorf("no answer within %s", timeout)
	}
	return nil
}

// AutoListen is the gRPC address of a control plane flowctl starts:
// 127.0.0.1:8080, the ecosystem's default endpoint, when that is free,
// else a free loopback port (components are told where by
// FLOWCTL_ENDPOINT).
func AutoListen() string {
	if portFree(DefaultListen) {
		return DefaultListen
	}
	return "127.0.0.1:0"
}

// startChild runs `flowctl serve` for o.Store in the background and waits
// until it has recorded itself in state.
func startChild(ctx context.Context, o EnsureOptions) (*ControlPlane, error) {
	// 8080 may be taken between the check and serve's bind (another
	// pipeline's apply): then a free port it is.
	// The preferred address may be taken between the check and serve's
	// bind (another pipeline's apply): then a free port it is.
	listen, recorded := PreferredListen(o.Store)
	cp, err := startChildOn(ctx, o, listen)
	if err != nil && errors.Is(err, errAddrInUse) && listen != "127.0.0.1:0" {
		cp, err = startChildOn(ctx, o, "127.0.0.1:0")
	}
	if err == nil && recorded != "" && cp.Endpoint != DialAddr(recorded) {
		cp.Moved = recorded
	}
	return cp, err
}

// errAddrInUse marks a serve that could not bind its address.
var errAddrInUse = errors.New("address already in use")

// startChildOn starts `flowctl serve` listening on listen and waits for
// its record.
func startChildOn(ctx context.Context, o EnsureOptions, listen string) (*ControlPlane, error) {
	cmd, logf, err := childCommand(o, listen)
	if err != nil {
		return nil, fmt.Errorf("start the control plane: %w", err)
	}
	defer logf.Close()
	logPath := logf.Name()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the control plane: %w", err)
	}
	var waitErr error
	exited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(exited) }()

	wctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	rec, err := WaitRecord(wctx, o.Store, cmd.Process.Pid, exited)
	switch {
	case err == nil:
		return &ControlPlane{Endpoint: rec.Endpoint(), Started: true}, nil
	case errors.Is(err, ErrExited):
		// waitErr was written before exited closed.
		tail := lastLogLines(logPath, 5)
		if strings.Contains(tail, "address already in use") {
			return nil, fmt.Errorf("the control plane could not listen on %s: %w", listen, errAddrInUse)
		}
		return nil, fmt.Errorf("the control plane (flowctl serve) exited at start (%v): %s", waitErr, tail)
	}
	_ = cmd.Process.Kill()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return nil, fmt.Errorf("the control plane (flowctl serve) did not start within %s: %s", StartTimeout, lastLogLines(logPath, 5))
}

// childCommand is `flowctl serve` for o.Store on listen, in a session of
// its own, its output appended to the log it returns (LogPath), which the
// caller closes once the child has started.
func childCommand(o EnsureOptions, listen string) (*exec.Cmd, *os.File, error) {
	if o.Executable == nil {
		return nil, nil, errors.New("locate flowctl: no executable given")
	}
	exe, err := o.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("locate flowctl: %w", err)
	}
	statePath, err := filepath.Abs(o.Store.Path())
	if err != nil {
		return nil, nil, err
	}
	args := []string{"serve", "--state", statePath, "--listen", listen, "--http", "127.0.0.1:0"}
	if o.Pipeline != nil && o.Pipeline.Auth != "" {
		args = append(args, "--auth", o.Pipeline.Auth)
	}
	logf, err := os.OpenFile(LogPath(o.Store.Path()), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(exe, args...)
	// The state's location goes by the environment: a database's
	// connection string never shows in the child's arguments.
	cmd.Env = append(os.Environ(), o.Store.Location().Env()...)
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return cmd, logf, nil
}

// StopIfIdle stops the control plane flowctl runs for store once nothing
// of the pipeline runs or is pending: no record names an object that is
// not stopped (after a destroy; after a failed apply that started
// nothing). One that an operator runs in the foreground (`flowctl serve`
// in a terminal) is stopped too: it serves nothing any more. It reports
// whether it stopped one.
func StopIfIdle(store *state.Store) (bool, error) {
	idle, err := Idle(store)
	if err != nil || !idle {
		return false, err
	}
	rec, err := Running(store)
	if err != nil || rec == nil {
		return false, err
	}
	if rec.Process.PID == os.Getpid() {
		return false, nil // flowctl run serves in this process and stops it itself
	}
	return true, stopProcess(rec)
}

// Idle reports whether no component of store runs or is pending: every
// record is stopped or names no object.
func Idle(store *state.Store) (bool, error) {
	idle := true
	err := store.View(func(tx *state.Tx) error {
		recs, err := tx.Components()
		for _, r := range recs {
			if len(r.Handle) > 0 && r.Status != state.StatusStopped {
				idle = false
			}
		}
		return err
	})
	return idle, err
}

// stopProcess stops the control plane rec names: SIGTERM, then SIGKILL
// after stopTimeout.
func stopProcess(rec *Record) error {
	if err := procinfo.Signal(rec.Process, syscall.SIGTERM); err != nil {
		if !procinfo.Alive(rec.Process) {
			return nil
		}
		return fmt.Errorf("stop the control plane (pid %d): %w", rec.Process.PID, err)
	}
	// A stopped process (SIGSTOP) handles the SIGTERM once continued.
	_ = procinfo.Signal(rec.Process, syscall.SIGCONT)
	if !procinfo.WaitGone(context.Background(), rec.Process, stopTimeout) {
		_ = procinfo.Signal(rec.Process, syscall.SIGKILL)
	}
	return nil
}

// TokenSecret is the secret of component tokens for store, beside the
// state file (created 0600 on first use): the one serve verifies with,
// and the generation of it state records.
func TokenSecret(store *state.Store) (*tokens.Secret, uint64, error) {
	secret, err := tokens.LoadOrCreateSecret(tokens.DefaultSecretPath(store.Path()))
	if err != nil {
		return nil, 0, err
	}
	var gen uint64
	if err := store.View(func(tx *state.Tx) error { gen = tx.TokenGeneration(); return nil }); err != nil {
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

// portFree says whether addr can be listened on now (another process may
// take it before the caller does).
func portFree(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// InProcess is a control plane StartInProcess started, or found.
type InProcess struct {
	// Endpoint is where components reach it (host:port).
	Endpoint string
	// InProcess is false when another process already served the state
	// file and that one is used.
	InProcess bool
	// Done receives Run's end (nil at once for another process's).
	Done <-chan error
}

// StartInProcess runs the control plane of store's state file in this
// process, with the restart watcher, logging to LogPath, and returns once
// it listens; it ends with ctx. When another process already serves the
// file, that one is used. This is `flowctl run`'s control plane. p, when
// at hand, is the pipeline about to be applied (ExpectBridge).
func StartInProcess(ctx context.Context, store *state.Store, mode controlplane.AuthMode, p *config.Pipeline) (*InProcess, error) {
	done := make(chan error, 1)
	if err := ExpectBridge(store, p); err != nil {
		return nil, err
	}
	if rec, err := Running(store); err != nil {
		return nil, err
	} else if rec != nil {
		if err := AwaitBridge(ctx, store); err != nil {
			return nil, err
		}
		done <- nil
		return &InProcess{Endpoint: rec.Endpoint(), Done: done}, nil
	}
	statePath, err := filepath.Abs(store.Path())
	if err != nil {
		return nil, err
	}
	logPath := LogPath(store.Path())
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("control plane log: %w", err)
	}
	ready := make(chan Addrs, 1)
	go func() {
		listen, _ := PreferredListen(store)
		err := Run(ctx, Options{
			StatePath: statePath, State: store.Location(), Listen: listen, HTTPListen: "127.0.0.1:0", AuthMode: mode,
			Logger:        slog.New(slog.NewTextHandler(logf, nil)),
			Ready:         func(a Addrs) { ready <- a },
			MemoryLimit:   -1,
			DockerGateway: true,
			Watch:         true,
		})
		_ = logf.Close()
		done <- err
	}()
	select {
	case a := <-ready:
		return &InProcess{Endpoint: DialAddr(a.GRPC), InProcess: true, Done: done}, nil
	case err := <-done:
		done <- err
		if err == nil {
			err = errors.New("it stopped at once")
		}
		return nil, fmt.Errorf("start the control plane: %w", err)
	case <-time.After(StartTimeout):
		return nil, fmt.Errorf("start the control plane: not listening after %s (log: %s)", StartTimeout, logPath)
	}
}
