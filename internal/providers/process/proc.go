//go:build linux

package process

import (
	"bufio"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/flowctl/flowctl/internal/procinfo"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat start times; it is 100
// on every Linux architecture flowctl runs on.
const clockTicks = 100

// bootInfo is what identifies this boot of the machine and dates its
// processes; either is zero when /proc does not say.
type bootInfo struct {
	id   string
	time time.Time
}

// thisBoot reads bootInfo once: it cannot change while flowctl runs.
var thisBoot = sync.OnceValue(readBoot)

func readBoot() bootInfo {
	var b bootInfo
	if raw, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		b.id = strings.TrimSpace(string(raw))
	}
	f, err := os.Open("/proc/stat")
	if err != nil {
		return b
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "btime "); ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				b.time = time.Unix(n, 0)
			}
			break
		}
	}
	return b
}

// currentBootID identifies this boot of the machine ("" if unknown).
func currentBootID() string { return thisBoot().id }

// startTimeOf converts start ticks to wall time (zero if unknown).
func startTimeOf(ticks uint64) time.Time {
	bt := thisBoot().time
	if bt.IsZero() {
		return time.Time{}
	}
	return bt.Add(time.Duration(ticks) * time.Second / clockTicks).UTC()
}

// alive reports whether id names a live process of this boot. A record
// from another boot names nothing, whatever runs under its pid now.
func alive(boot string, id procinfo.Identity) bool {
	if id.PID <= 0 {
		return false
	}
	if boot != "" && currentBootID() != "" && boot != currentBootID() {
		return false
	}
	return procinfo.Alive(id)
}

// errNotOurs means the pid no longer names the process the identity was
// taken of: nothing was signalled.
var errNotOurs = errors.New("process is gone (its pid is free or names another process)")

// signalGroup sends sig to the process group led by id, after checking that
// id is still the live process it was. The child is made leader of its own
// group (pgid = its pid) and the shim reaps it only after killing what is
// left of the group, so while the identity matches the group is ours. (The
// window between the check and the kill is that of two system calls.)
func signalGroup(boot string, id procinfo.Identity, sig syscall.Signal) error {
	if !alive(boot, id) {
		return errNotOurs
	}
	st, err := procinfo.ReadStat(id.PID)
	if err != nil || st.StartTicks != id.StartTicks {
		return errNotOurs
	}
	if st.PGID != id.PID {
		// Not a group leader (any more): signal the process alone.
		return syscall.Kill(id.PID, sig)
	}
	if err := syscall.Kill(-id.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// signalProcess sends sig to the process id names, if it still does.
func signalProcess(boot string, id procinfo.Identity, sig syscall.Signal) error {
	if !alive(boot, id) {
		return errNotOurs
	}
	if err := syscall.Kill(id.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// envMap turns K=V entries into a map (last wins).
func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			m[k] = v
		}
	}
	return m
}
