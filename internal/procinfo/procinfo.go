//go:build linux

// Package procinfo identifies processes by pid and start time, read from
// /proc, so that a recycled pid is never mistaken for the process flowctl
// started.
package procinfo

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Identity names one process for its whole life: the kernel may reuse a pid,
// never a pid together with its start time.
type Identity struct {
	PID int `json:"pid"`
	// StartTicks is field 22 of /proc/PID/stat: clock ticks after boot.
	StartTicks uint64 `json:"start_ticks"`
}

// String renders the identity as "pid=42 start=1234".
func (id Identity) String() string { return fmt.Sprintf("pid=%d start=%d", id.PID, id.StartTicks) }

// ErrNoProcess means no process has the pid.
var ErrNoProcess = errors.New("no such process")

// Stat is what flowctl reads of /proc/PID/stat.
type Stat struct {
	PID        int
	State      byte // R, S, D, Z, T, ...
	PPID       int
	PGID       int
	SID        int
	StartTicks uint64
}

// ReadStat parses /proc/PID/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := readSmall("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Stat{}, fmt.Errorf("pid %d: %w", pid, ErrNoProcess)
		}
		return Stat{}, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	return parseStat(pid, string(b))
}

// readSmall reads a small /proc file with one open, one read and one close
// (os.ReadFile also stats it, registers it with the poller and reads
// again for the end): a scan of every process on a machine running
// thousands of them (a destroy, a plan's refresh) reads thousands of
// these. A file that fills the buffer is read again whole.
func readSmall(path string) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	for err == syscall.EINTR {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var buf [1024]byte
	n, err := syscall.Read(fd, buf[:])
	for err == syscall.EINTR {
		n, err = syscall.Read(fd, buf[:])
	}
	_ = syscall.Close(fd)
	if err != nil {
		return nil, &os.PathError{Op: "read", Path: path, Err: err}
	}
	if n == len(buf) {
		return os.ReadFile(path)
	}
	return append([]byte(nil), buf[:n]...), nil
}

func parseStat(pid int, s string) (Stat, error) {
	// The command name (field 2) is in parentheses and may hold spaces and
	// parentheses itself; everything after the last ')' is space-separated.
	end := strings.LastIndexByte(s, ')')
	if end < 0 || end+2 > len(s) {
		return Stat{}, fmt.Errorf("parse stat of pid %d: malformed", pid)
	}
	f := strings.Fields(s[end+2:])
	// f[0] is field 3 (state); field N is f[N-3].
	if len(f) < 20 {
		return Stat{}, fmt.Errorf("parse stat of pid %d: %d fields", pid, len(f)+2)
	}
	st := Stat{PID: pid, State: f[0][0]}
	var err error
	num := func(i int) int {
		v, e := strconv.Atoi(f[i])
		if e != nil && err == nil {
			err = e
		}
		return v
	}
	st.PPID, st.PGID, st.SID = num(1), num(2), num(3)
	st.StartTicks, _ = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return Stat{}, fmt.Errorf("parse stat of pid %d: %w", pid, err)
	}
	return st, nil
}

// Of returns the identity of the running process pid.
func Of(pid int) (Identity, error) {
	st, err := ReadStat(pid)
	if err != nil {
		return Identity{}, err
	}
	return Identity{PID: pid, StartTicks: st.StartTicks}, nil
}

// Self returns the identity of the calling process.
func Self() (Identity, error) { return Of(os.Getpid()) }

// Alive reports whether the process id names still exists and has not
// exited (a zombie counts as gone).
func Alive(id Identity) bool {
	st, err := ReadStat(id.PID)
	if err != nil {
		return false
	}
	return st.StartTicks == id.StartTicks && st.State != 'Z' && st.State != 'X'
}

// Environ returns the environment of process pid (readable for processes of
// the same user).
func Environ(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return nil, fmt.Errorf("read environ of pid %d: %w", pid, err)
	}
	var out []string
	for _, kv := range strings.Split(string(b), "\x00") {
		if kv != "" {
			out = append(out, kv)
		}
	}
	return out, nil
}

// PIDs lists the pids of every process on the machine.
func PIDs() ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list /proc: %w", err)
	}
	var out []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out, nil
}

// ErrGone is returned by Signal when the process an identity names is no
// longer there.
var ErrGone = errors.New("process is gone")

// Signal sends sig to the process id names, if it still is that process
// (a reused pid is never signalled).
func Signal(id Identity, sig syscall.Signal) error {
	if !Alive(id) {
		return ErrGone
	}
	return syscall.Kill(id.PID, sig)
}
