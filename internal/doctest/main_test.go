package doctest

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/procinfo"
)

// TestMain first removes what an earlier run left behind when it was
// killed (at its -timeout, say) before its cleanup: the processes and
// containers of pipelines renamed by a test process that is gone.
func TestMain(m *testing.M) {
	sweepAbandoned()
	os.Exit(m.Run())
}

// abandoned matches the names renamePipelines gives; the group is the pid
// of the test process, in hex.
var abandoned = regexp.MustCompile(`-doctest-([0-9a-f]+)\b`)

// gone reports whether the test process named by a hex pid no longer runs.
func gone(hexPID string) bool {
	pid, err := strconv.ParseInt(hexPID, 16, 64)
	if err != nil {
		return false
	}
	exe, err := os.Readlink("/proc/" + strconv.FormatInt(pid, 10) + "/exe")
	return err != nil || !strings.HasSuffix(exe, ".test")
}

func sweepAbandoned() {
	pids, _ := procinfo.PIDs()
	for _, pid := range pids {
		if pid == os.Getpid() {
			continue
		}
		env, _ := procinfo.Environ(pid)
		cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		text := strings.Join(env, "\n") + "\n" + strings.ReplaceAll(string(cmdline), "\x00", " ")
		if m := abandoned.FindStringSubmatch(text); m != nil && gone(m[1]) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "ps", "-a", "--filter", "label=io.flowctl.pipeline", "--format", `{{.ID}} {{.Label "io.flowctl.pipeline"}}`).Output()
	if err != nil {
		return // no Docker engine: nothing of it to sweep
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if m := abandoned.FindStringSubmatch(f[1]); m != nil && gone(m[1]) {
			_ = exec.CommandContext(ctx, "docker", "rm", "-f", f[0]).Run()
			_ = exec.CommandContext(ctx, "docker", "network", "rm", "flowctl-"+f[1]).Run()
		}
	}
}
