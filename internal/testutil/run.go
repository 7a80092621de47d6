package testutil

import (
	"bytes"
	"os/exec"
	"testing"
	"time"
)

// Timed runs bin with args in dir (env, when not nil, is its whole
// environment), fails tb with the command's output when it fails, and
// returns how long it ran: a benchmark's timing of one flowctl command.
func Timed(tb testing.TB, dir string, env []string, bin string, args ...string) time.Duration {
	tb.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env = dir, env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		tb.Fatalf("%s %v: %v\n%s", bin, args, err, out.String())
	}
	return time.Since(start)
}
