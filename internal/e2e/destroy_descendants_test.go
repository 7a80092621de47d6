package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/procinfo"
)

// Issue 13, finding 8: destroy reported success while a component's setsid
// descendant still ran; only a second destroy found it, as an orphan. The
// shim is the subreaper of the component's processes and destroy stops
// every one of them.
func TestDestroyStopsASetsidDescendant(t *testing.T) {
	f := newFixture(t)
	f.write("pipeline.hcl", fmt.Sprintf(`pipeline %q {
  executor = "process"
}

source "escaper" {
  command = ["/bin/sh", "-c", "setsid sleep 200003 & exec sleep 200000"]
}
`, f.name))
	f.apply()
	waitFor(t, 10*time.Second, "the setsid descendant", func() bool { return len(sleepers(f.name, "200003")) == 1 })
	if st, err := procinfo.ReadStat(sleepers(f.name, "200003")[0]); err != nil || st.SID != st.PID {
		t.Fatalf("the descendant did not start a session of its own: %+v %v", st, err)
	}
	r := f.must(0, "destroy", "-auto-approve")
	if left := sleepers(f.name, "2000"); len(left) > 0 {
		t.Fatalf("destroy succeeded and left pids %v running\n%s", left, r)
	}
	if got := f.plan("-destroy").actions(); len(got) != 0 {
		t.Fatalf("a second destroy would find: %v", got)
	}
}

// sleepers are the live processes of pipeline whose command is `sleep N…`.
func sleepers(pipeline, arg string) []int {
	var out []int
	for _, pid := range markedBy("FLOWCTL_PIPELINE=" + pipeline) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && strings.HasPrefix(strings.ReplaceAll(string(b), "\x00", " "), "sleep "+arg) {
			out = append(out, pid)
		}
	}
	return out
}
