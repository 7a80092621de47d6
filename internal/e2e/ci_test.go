package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/state"
)

// job runs flowctl in dir as a CI job on its own machine would: its own
// working directory and HOME.
func (f *fixture) job(dir, home string, args ...string) result {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := f.command(ctx, dir, args...)
	cmd.Env = append(cmd.Env, "HOME="+home)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{args: args, out: out.String(), err: errb.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		f.t.Fatalf("run flowctl %v: %v", args, err)
	}
	return r
}

// ls lists a folder's entries, hidden ones included.
func ls(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// event is one line of apply -json / destroy -json.
type event struct {
	Type    string         `json:"type"`
	Address string         `json:"address"`
	Action  string         `json:"action"`
	Message string         `json:"message"`
	OK      *bool          `json:"ok"`
	Counts  map[string]int `json:"counts"`
	Changes map[string]int `json:"changes"`
}

// events parses a -json stream: every line of stdout must be one object.
func events(t *testing.T, r result) []event {
	t.Helper()
	var out []event
	for _, line := range strings.Split(strings.TrimSpace(r.out), "\n") {
		var ev event
		if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Type == "" {
			t.Fatalf("stdout line %q is not an event (%v)\n%s", line, err, r)
		}
		out = append(out, ev)
	}
	if len(out) < 2 || (out[0].Type != "start" && out[0].Type != "error") || out[len(out)-1].Type != "summary" {
		t.Fatalf("a stream starts with start (or an error) and ends with summary\n%s", r)
	}
	return out
}

func completed(evs []event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type == "change_complete" {
			out = append(out, ev.Address)
		}
	}
	slices.Sort(out)
	return out
}

// TestSavedPlanMovesBetweenCheckouts stands for a pull request's CI: job A
// plans in its checkout with no state and saves the plan; job B, another
// checkout with another HOME, applies that plan file.
func TestSavedPlanMovesBetweenCheckouts(t *testing.T) {
	f := newFixture(t) // f.dir is job B's checkout: the state ends there
	cs := chain()
	cs[0].env["TOKEN"] = "${var.token}"
	// A sensitive value: its spec hash needs a key, which plan must not
	// write either.
	src := f.hcl(cs) + "\nvariable \"token\" {\n  default   = \"s3cret-value\"\n  sensitive = true\n}\n"
	jobA, homeA, homeB := t.TempDir(), t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(jobA, "pipeline.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	f.write("pipeline.hcl", src)

	r := f.job(jobA, homeA, "plan", "-out", "saved.plan")
	if r.code != 0 {
		t.Fatalf("job A's plan\n%s", r)
	}
	if got := ls(t, jobA); !slices.Equal(got, []string{"pipeline.hcl", "saved.plan"}) {
		t.Fatalf("plan with no state wrote into its folder: %v", got)
	}
	saved, err := os.ReadFile(filepath.Join(jobA, "saved.plan"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(saved, []byte(jobA)) || bytes.Contains(saved, []byte("s3cret")) || !bytes.Contains(saved, []byte(`"pipeline_file": "pipeline.hcl"`)) {
		t.Fatalf("the plan names job A's checkout, holds the secret or no relative pipeline file:\n%s", saved)
	}

	// A checkout where the pipeline file is not: the error names it, and
	// nothing is written.
	jobC := t.TempDir()
	copyFile(t, filepath.Join(jobA, "saved.plan"), filepath.Join(jobC, "saved.plan"))
	r = f.job(jobC, homeB, "apply", "saved.plan")
	if r.code != 1 || !strings.Contains(r.err, "the plan was made for the pipeline file pipeline.hcl, which is not at "+filepath.Join(jobC, "pipeline.hcl")) {
		t.Fatalf("apply without the pipeline file\n%s", r)
	}
	if got := ls(t, jobC); !slices.Equal(got, []string{"saved.plan"}) {
		t.Fatalf("a refused apply wrote into its folder: %v", got)
	}

	// A second pull request's plan, also made before any state exists.
	if r := f.job(jobA, homeA, "plan", "-out", "second.plan"); r.code != 0 {
		t.Fatalf("second plan\n%s", r)
	}

	// Job B applies job A's plan, as a stream of events.
	copyFile(t, filepath.Join(jobA, "saved.plan"), f.path("saved.plan"))
	r = f.job(f.dir, homeB, "apply", "-json", "saved.plan")
	if r.code != 0 {
		t.Fatalf("job B's apply of job A's plan\n%s", r)
	}
	evs := events(t, r)
	last := evs[len(evs)-1]
	if last.OK == nil || !*last.OK || last.Counts["added"] != 3 || evs[0].Changes["create"] != 3 {
		t.Fatalf("summary %+v, start %+v\n%s", last, evs[0], r)
	}
	if got := completed(evs); !slices.Equal(got, addrs(cs)) {
		t.Fatalf("change_complete events for %v, want %v\n%s", got, addrs(cs), r)
	}
	f.assertConverged(addrs(cs))

	// Another plan made with no state, before job B's apply, is stale
	// once that apply made a state.
	copyFile(t, filepath.Join(jobA, "second.plan"), f.path("second.plan"))
	r = f.job(f.dir, homeB, "apply", "-json", "second.plan")
	evs = events(t, r)
	if r.code != 1 || evs[0].Type != "error" || !strings.Contains(evs[0].Message, "the plan was made with no state, and there is now a state with lineage "+f.meta().Lineage) || *evs[1].OK {
		t.Fatalf("a no-state plan applied over a state: want an error event, then a summary not ok\n%s", r)
	}

	// A plan made against the state, for a checkout where there is none.
	f.must(0, "plan", "-out", "third.plan")
	lineage := f.meta().Lineage
	r = f.job(f.dir, homeB, "destroy", "-json", "-auto-approve")
	if r.code != 0 {
		t.Fatalf("destroy -json\n%s", r)
	}
	evs = events(t, r)
	if last := evs[len(evs)-1]; last.Counts["destroyed"] != 3 || !*last.OK {
		t.Fatalf("destroy summary %+v\n%s", last, r)
	}

	// Applied in a checkout where there is no state: refused, naming the
	// lineage and where it looked, and nothing is created there.
	jobD := t.TempDir()
	copyFile(t, f.path("pipeline.hcl"), filepath.Join(jobD, "pipeline.hcl"))
	copyFile(t, f.path("third.plan"), filepath.Join(jobD, "third.plan"))
	r = f.job(jobD, homeA, "apply", "third.plan")
	if r.code != 1 || !strings.Contains(r.err, "the plan was made against the state with lineage "+lineage+", and there is no state at "+filepath.Join(jobD, ".flowctl", f.name+".state.db")) {
		t.Fatalf("a plan made against a state, applied where there is none\n%s", r)
	}
	if got := ls(t, jobD); !slices.Equal(got, []string{"pipeline.hcl", "third.plan"}) {
		t.Fatalf("a refused apply wrote into its folder: %v", got)
	}
}

// restartedByWatcher kills addr's process and waits until the watcher has
// started a new instance and seen it ready.
func (f *fixture) restartedByWatcher(t *testing.T, addr string) {
	t.Helper()
	before := f.records()[addr].InstanceID
	procs := byAddr(procsOf(f.name))[addr]
	if len(procs) != 1 {
		t.Fatalf("%s runs as %v", addr, procs)
	}
	if err := syscall.Kill(procs[0].id.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 90*time.Second, "the watcher to restart "+addr, func() bool {
		rec := f.records()[addr]
		return rec != nil && rec.InstanceID != before && rec.Status == state.StatusRunning
	})
}

// TestSavedPlanStaysAppliableWhenTheWatcherRestartsAComponentItLeavesAlone
// saves a plan that changes sink.out only, lets the watcher restart
// source.src, and applies the plan; a plan whose own component was
// restarted is refused.
func TestSavedPlanStaysAppliableWhenTheWatcherRestartsAComponentItLeavesAlone(t *testing.T) {
	f := newFixture(t)
	cs := chain()
	f.writePipeline(cs)
	f.apply()

	cs[2].env["LEVEL"] = "debug"
	f.writePipeline(cs)
	f.must(0, "plan", "-out", "saved.plan")
	f.restartedByWatcher(t, "source.src")
	if r := f.run("apply", "saved.plan"); r.code != 0 {
		t.Fatalf("a restart of a component the plan leaves alone made it stale\n%s", r)
	}
	f.assertConverged(addrs(cs))

	cs[2].env["LEVEL"] = "info"
	f.writePipeline(cs)
	f.must(0, "plan", "-out", "second.plan")
	f.restartedByWatcher(t, "sink.out")
	r := f.must(1, "apply", "second.plan")
	if !strings.Contains(r.err, "sink.out, which the plan changes, was restarted since the plan was made") {
		t.Fatalf("a plan whose component was restarted\n%s", r)
	}
}
