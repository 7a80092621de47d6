package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/state"
)

// Finding 5 of #13: a Docker replace whose new container cannot start is
// left as it failed, shown with the apply's error, and never rolled back
// to the old container by the watcher.
func TestDayTwoAFailedDockerReplaceIsNeverRolledBack(t *testing.T) {
	df := newDockerFixture(t)
	always := "  restart {\n    policy = \"always\"\n    backoff {\n      initial = \"100ms\"\n    }\n  }\n"
	cs := []dcomp{
		{kind: "source", id: "a", extra: always},
		{kind: "source", id: "b", extra: always},
	}
	df.writeDocker(cs)
	df.apply()
	// The new spec runs a binary the image does not have: the engine
	// refuses to start the container.
	cs[0].extra = always + "  command = [\"/no-such-binary\"]\n"
	df.writeDocker(cs)
	r := df.run("apply", "-auto-approve")
	if r.code != 1 || !strings.Contains(r.err, "source.a") {
		t.Fatalf("the replace should fail:\n%s", r)
	}
	failed := df.records()["source.a"]
	if failed.Status != state.StatusFailed || !strings.HasPrefix(failed.StatusReason, "replace failed: ") || len(failed.Handle) != 0 {
		t.Fatalf("record after the failed replace: %+v", failed)
	}

	// The watcher has looked since: it restarted b, killed after the
	// apply.
	b := df.records()["source.b"]
	docker(t, "kill", containerOf(b.Handle))
	waitFor(t, 60*time.Second, "the watcher to restart source.b", func() bool {
		r := df.records()["source.b"]
		return r.InstanceID != b.InstanceID && r.Status == state.StatusRunning
	})
	if evs := df.restarts("source.a"); len(evs) != 0 {
		t.Fatalf("the watcher rolled source.a back: %+v", evs[0])
	}
	if n := len(df.boxes()["source.a"]); n != 0 {
		t.Fatalf("source.a has %d containers after its failed replace; want none", n)
	}
	st := df.status()
	for _, c := range st.Components {
		if c.Address == "source.a" && (c.State != "failed" || !strings.HasPrefix(c.Detail, "replace failed: ")) {
			t.Fatalf("status of source.a: %+v", c)
		}
	}
	// The next apply tries the new spec again; plan says so.
	if p := df.plan(); !strings.Contains(strings.Join(p.actions(), "\n"), "source.a") {
		t.Fatalf("plan after the failed replace: %v", p.actions())
	}
}
