//go:build linux

package shim

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flowctl/flowctl/internal/procinfo"
)

// A component may start processes that leave its process group and
// session (setsid, a daemonising double fork). The shim is a child
// subreaper (PR_SET_CHILD_SUBREAPER): such a process, orphaned, becomes the
// shim's child instead of init's, so it stays below the shim in the
// process tree, where the shim (after the component exits) and Stop find
// and stop it.

// Bounds of the shim's stop of the component's descendants once the
// component has exited: SIGTERM, descendantGrace for them to leave, then
// SIGKILL and descendantKillWait.
const (
	descendantGrace    = 2 * time.Second
	descendantKillWait = time.Second
)

// Descendant is a live process below another in the process tree.
type Descendant struct {
	procinfo.Identity
	PGID    int    `json:"pgid"`
	Command string `json:"command"`
}

// becomeSubreaper makes the calling process the reaper of its orphaned
// descendants.
func becomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// Descendants lists the live processes below pid (zombies left out) by
// following the kernel's lists of each thread's children
// (/proc/PID/task/TID/children) down from pid, instead of reading every
// process on the machine: a stop of one component among thousands reads
// the few files of its own processes. Like a scan, it is a snapshot: a
// process forked meanwhile may be missed (the shim, their subreaper, stops
// it once the component has ended).
func Descendants(pid int) []Descendant {
	var out []Descendant
	queue := []int{pid}
	seen := map[int]bool{pid: true}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range childrenOf(p) {
			if seen[c] {
				continue
			}
			seen[c] = true
			st, err := procinfo.ReadStat(c)
			if err != nil || st.PPID != p {
				continue // gone, or its pid taken since
			}
			queue = append(queue, c)
			if st.State != 'Z' && st.State != 'X' {
				out = append(out, Descendant{Identity: procinfo.Identity{PID: st.PID, StartTicks: st.StartTicks}, PGID: st.PGID, Command: CommandLine(st.PID)})
			}
		}
	}
	return out
}

// childrenOf lists the children of every thread of pid (an orphan the
// subreaper adopts may be given to any of its threads).
func childrenOf(pid int) []int {
	dir := "/proc/" + strconv.Itoa(pid) + "/task/"
	tids, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []int
	for _, t := range tids {
		b, err := os.ReadFile(dir + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// CommandLine is the command line of pid, as ps shows it ("" when gone).
func CommandLine(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		return strings.TrimSpace(string(comm))
	}
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// StopProcesses sends SIGTERM to each of ps, waits up to grace for them to
// leave, then SIGKILLs those left and waits up to killWait. reap, when not
// nil, is called while waiting (the shim reaps its adopted children). It
// returns those still alive.
func StopProcesses(ps []Descendant, grace, killWait time.Duration, reap func()) []Descendant {
	for _, d := range ps {
		_ = procinfo.Signal(d.Identity, syscall.SIGTERM)
	}
	left := waitAllGone(ps, grace, reap)
	for _, d := range left {
		_ = procinfo.Signal(d.Identity, syscall.SIGKILL)
	}
	return waitAllGone(left, killWait, reap)
}

// waitAllGone polls until none of ps is alive or d has passed; it returns
// those still alive.
func waitAllGone(ps []Descendant, d time.Duration, reap func()) []Descendant {
	deadline := time.Now().Add(d)
	step := 5 * time.Millisecond
	for {
		if reap != nil {
			reap()
		}
		var left []Descendant
		for _, p := range ps {
			if procinfo.Alive(p.Identity) {
				left = append(left, p)
			}
		}
		if len(left) == 0 || !time.Now().Before(deadline) {
			return left
		}
		ps = left
		time.Sleep(step)
		step = min(step*2, 50*time.Millisecond)
	}
}

// reapAdopted reaps every exited child of the shim: the component's
// descendants it adopted as subreaper. Call it only once the component
// itself has been reaped (cmd.Wait).
func reapAdopted() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}

// hasChildren says whether the calling process has a child, alive or not
// yet reaped; it reaps those that have exited.
func hasChildren() bool {
	reapAdopted()
	var ws unix.WaitStatus
	for {
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		switch {
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.ECHILD):
			return false
		case err != nil:
			return true // unknown: look
		case pid == 0:
			return true // a child runs
		}
		// One exited between reapAdopted and here, now reaped: ask again.
	}
}

// stopDescendants stops whatever is left below the shim once the component
// has exited, new processes started meanwhile included, and returns those
// it could not stop.
func stopDescendants(diag *diagLog) []Descendant {
	var survivors []Descendant
	for round := 0; round < 3; round++ {
		if !hasChildren() {
			// As subreaper the shim is the parent, or an ancestor through a
			// child, of every process below it: with no child there is
			// none, and no scan of every process on the machine is needed.
			break
		}
		ds := Descendants(os.Getpid())
		if len(ds) == 0 {
			break
		}
		for _, d := range ds {
			diag.printf("stopping descendant pid %d (%s), left behind by the component", d.PID, d.Command)
		}
		survivors = StopProcesses(ds, descendantGrace, descendantKillWait, reapAdopted)
		if len(survivors) > 0 {
			break
		}
	}
	for _, d := range survivors {
		diag.printf("could not stop descendant pid %d (%s)", d.PID, d.Command)
	}
	reapAdopted()
	return survivors
}
