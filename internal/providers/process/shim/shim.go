//go:build linux

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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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
	diag := &diagLog{w: os.Stderr}
	specF, statusF, err := protocolFiles()
	if err != nil {
		diag.printf("%v", err)
		return 2
	}
	status := &reporter{f: statusF}
	spec, err := readSpec(specF)
	if err != nil {
		return status.fail(diag, err)
	}
	diag.name(spec.Address)
	if err := becomeSubreaper(); err != nil {
		return status.fail(diag, fmt.Errorf("become the subreaper of the component's processes: %w", err))
	}
	c, err := startChild(spec)
	if err != nil {
		return status.fail(diag, err)
	}
	status.report(Status{Record: c.rec})
	diag.printf("started %s (%s)", spec.Args[0], c.rec.Child)
	c.supervise(diag)
	return 0
}

// protocolFiles returns the spec and status descriptors Start passed.
func protocolFiles() (specF, statusF *os.File, err error) {
	// The descriptors were inherited without close-on-exec: set it, or the
	// component would inherit them too and hold the status pipe open.
	for _, fd := range []int{specFD, statusFD} {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return nil, nil, fmt.Errorf("file descriptor %d is not open: this command is run by flowctl only", fd)
		}
		syscall.CloseOnExec(fd)
	}
	return os.NewFile(specFD, "spec"), os.NewFile(statusFD, "status"), nil
}

// readSpec reads and checks the spec Start wrote on specF, and closes it.
func readSpec(specF *os.File) (*Spec, error) {
	b, err := io.ReadAll(io.LimitReader(specF, maxSpec))
	_ = specF.Close()
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	var spec Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		return nil, fmt.Errorf("decode spec: %w", err)
	}
	if spec.Path == "" || len(spec.Args) == 0 || spec.RecordPath == "" || spec.LogPath == "" {
		return nil, errors.New("incomplete spec")
	}
	return &spec, nil
}

// maxSpec bounds the spec read from Start.
const maxSpec = 64 << 20

// reporter sends the one Status Start waits for, then closes the status
// descriptor: later reports are dropped.
type reporter struct {
	once sync.Once
	f    *os.File
}

func (r *reporter) report(st Status) {
	r.once.Do(func() {
		_ = json.NewEncoder(r.f).Encode(st)
		_ = r.f.Close()
	})
}

// fail reports err as the reason the component did not start, in the
// diagnostics and to Start, and returns the shim's exit code.
func (r *reporter) fail(diag *diagLog, err error) int {
	msg := err.Error()
	diag.printf("%s", msg)
	r.report(Status{Error: msg})
	return 1
}

// diagLog writes the shim's own diagnostics, one timestamped line each,
// naming the component once the spec has said which it is.
type diagLog struct {
	w       io.Writer
	address string
	named   bool
}

func (d *diagLog) name(address string) { d.address, d.named = address, true }

func (d *diagLog) printf(format string, a ...any) {
	who := fmt.Sprintf("flowctl-shim[%d]", os.Getpid())
	if d.named {
		who += " " + d.address
	}
	fmt.Fprintf(d.w, "%s %s: %s\n", time.Now().UTC().Format(tsLayout), who, fmt.Sprintf(format, a...))
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
