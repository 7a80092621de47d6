package e2e

// End-to-end tests of the nomad executor: the flowctl binary against the
// Nomad API emulator (nomadtest), which runs in the test process and is
// handed to flowctl through NOMAD_ADDR. No Nomad agent runs, and nothing
// the emulator "runs" executes: these tests pin what flowctl asks of
// Nomad and what it makes of the answers.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/flowctl/flowctl/internal/providers/nomad/nomadtest"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/testutil"
	"github.com/flowctl/flowctl/internal/testutil/dockertest"
)

// nomadFixture is a fixture whose pipeline runs (partly) on the emulator.
type nomadFixture struct {
	*fixture
	emu *nomadtest.Emulator
	api *api.Client
}

// newNomadFixture starts an emulator and makes the fixture. Its cleanup,
// which runs before the fixture's, destroys the pipeline through the
// emulator and fails the test if any job of the pipeline is left.
func newNomadFixture(t *testing.T, opts nomadtest.Options) *nomadFixture {
	t.Helper()
	emu := nomadtest.Start(t, opts)
	c, err := api.NewClient(&api.Config{Address: emu.URL()})
	if err != nil {
		t.Fatal(err)
	}
	nf := &nomadFixture{fixture: newFixture(t), emu: emu, api: c}
	t.Cleanup(func() {
		if _, err := os.Stat(nf.statePath()); err == nil {
			empty := t.TempDir()
			if r := nf.nomadIn(empty, nil, "destroy", "-auto-approve", "-lock-timeout", "10s", "--state", nf.statePath()); r.code != 0 {
				t.Errorf("cleanup: %s", r)
			}
		}
		for _, id := range emu.JobIDs() {
			if strings.Contains(id, nf.name) {
				t.Errorf("cleanup: job %s was left after destroy", id)
			}
		}
	})
	return nf
}

// nomadIn runs flowctl in dir with NOMAD_ADDR set to the emulator (and
// env after it).
func (nf *nomadFixture) nomadIn(dir string, env []string, args ...string) result {
	nf.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := nf.command(ctx, dir, args...)
	cmd.Env = append(cmd.Env, "NOMAD_ADDR="+nf.emu.URL())
	cmd.Env = append(cmd.Env, env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{args: args, out: out.String(), err: errb.String(), elapsed: time.Since(start)}
	if ee, ok := err.(interface{ ExitCode() int }); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		nf.t.Fatalf("run flowctl %v: %v", args, err)
	}
	if ctx.Err() != nil {
		nf.t.Fatalf("flowctl %v did not finish within %v\n%s", args, commandTimeout, r)
	}
	return r
}

// nomad runs flowctl in the pipeline's folder against the emulator and
// fails the test unless it exits with code.
func (nf *nomadFixture) nomad(code int, args ...string) result {
	nf.t.Helper()
	r := nf.nomadIn(nf.dir, nil, args...)
	if r.code != code {
		nf.t.Fatalf("want exit %d\n%s", code, r)
	}
	return r
}

// nomadPlan runs `plan -json` against the emulator.
func (nf *nomadFixture) nomadPlan(args ...string) planned {
	nf.t.Helper()
	r := nf.nomad(0, append([]string{"plan", "-json"}, args...)...)
	var p planned
	if err := json.Unmarshal([]byte(r.out), &p); err != nil {
		nf.t.Fatalf("decode plan -json: %v\n%s", err, r)
	}
	return p
}

func (nf *nomadFixture) jobID(id string) string { return nf.name + "-" + id }

// job is the emulator's job of component id; the test fails without one.
func (nf *nomadFixture) job(id string) *api.Job {
	nf.t.Helper()
	j := nf.emu.Job(nf.jobID(id))
	if j == nil {
		nf.t.Fatalf("no job %s; jobs: %v", nf.jobID(id), nf.emu.JobIDs())
	}
	return j
}

// nomadHandle is what state records of a nomad component.
type nomadHandle struct {
	JobID          string `json:"job_id"`
	JobModifyIndex uint64 `json:"job_modify_index"`
}

func handleOf(t testing.TB, rec *state.Record) nomadHandle {
	t.Helper()
	var h nomadHandle
	if err := json.Unmarshal(rec.Handle, &h); err != nil || h.JobID == "" {
		t.Fatalf("%s: handle %s is not a nomad job (%v)", rec.Address, rec.Handle, err)
	}
	return h
}

// assertNomadConverged checks the end of a successful apply: plan has
// nothing to do, state records exactly want, each running, and each nomad
// component's job is the one state records, live, with this state's
// lineage.
func (nf *nomadFixture) assertNomadConverged(want []string) {
	nf.t.Helper()
	if r := nf.nomadIn(nf.dir, nil, "plan", "-detailed-exitcode"); r.code != 0 {
		nf.t.Fatalf("plan after apply is not empty\n%s", r)
	}
	recs := nf.records()
	var got []string
	for a := range recs {
		got = append(got, a)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		nf.t.Fatalf("state records %v, want %v", got, want)
	}
	lineage := nf.meta().Lineage
	for _, a := range want {
		rec := recs[a]
		if rec.Status != state.StatusRunning {
			nf.t.Errorf("%s: status %s (%s), want running", a, rec.Status, rec.StatusReason)
		}
		if rec.Provider != "nomad" {
			continue
		}
		h := handleOf(nf.t, rec)
		j := nf.emu.Job(h.JobID)
		switch {
		case j == nil:
			nf.t.Errorf("%s: state records job %s, which Nomad does not have", a, h.JobID)
		case *j.Stop || *j.Status == "dead":
			nf.t.Errorf("%s: job %s is %s (stop %v)", a, h.JobID, *j.Status, *j.Stop)
		case *j.JobModifyIndex != h.JobModifyIndex:
			nf.t.Errorf("%s: state records job modify index %d, the job has %d", a, h.JobModifyIndex, *j.JobModifyIndex)
		case j.Meta["flowctl-lineage"] != lineage || j.Meta["flowctl-spec-hash"] != rec.SpecHash || j.Meta["flowctl-component"] != a:
			nf.t.Errorf("%s: job meta %v (lineage %s, spec hash %s)", a, j.Meta, lineage, rec.SpecHash)
		}
	}
}

const nomadLifecyclePipeline = `pipeline %q {
  executor = "nomad"
  nomad {
    datacenters = ["dc1"]
  }
}

source "src" {
  image = "example/src:1"
  env   = { MODE = %q }
}

processor "mid" {
  command = ["/usr/local/bin/mid", "--fast"]
  inputs  = [source.src]
  env     = { UPSTREAM = "${source.src.address}" }
  resources {
    cpu    = "250m"
    memory = "64Mi"
  }
}
`

func TestNomadLifecyclePlanApplyNoOpReplaceDestroy(t *testing.T) {
	t.Parallel()
	nf := newNomadFixture(t, nomadtest.Options{})
	nf.write("pipeline.hcl", fmt.Sprintf(nomadLifecyclePipeline, nf.name, "one"))
	want := []string{"processor.mid", "source.src"}

	if got, want := nf.nomadPlan().actions(), []string{"create processor.mid (not_in_state)", "create source.src (not_in_state)"}; !slices.Equal(got, want) {
		t.Fatalf("first plan: %v, want %v", got, want)
	}
	r := nf.nomad(0, "apply", "-auto-approve")
	if !strings.Contains(r.out, "Apply complete! Components: 2 added, 0 changed, 0 destroyed.") {
		t.Fatalf("apply summary missing\n%s", r)
	}
	if src, mid := strings.Index(r.out, "source.src: Creation complete"), strings.Index(r.out, "processor.mid: Creating..."); src < 0 || mid < src {
		t.Fatalf("not in dependency order\n%s", r)
	}
	nf.assertNomadConverged(want)

	// What the components became.
	src, mid := nf.job("src"), nf.job("mid")
	if d := src.TaskGroups[0].Tasks[0].Driver; d != "docker" {
		t.Errorf("source.src runs on %s, want docker", d)
	}
	task := mid.TaskGroups[0].Tasks[0]
	if task.Driver != "raw_exec" || task.Config["command"] != "/usr/local/bin/mid" || fmt.Sprint(task.Config["args"]) != "[--fast]" {
		t.Errorf("processor.mid: driver %s, config %v", task.Driver, task.Config)
	}
	if *task.Resources.CPU != 250 || *task.Resources.MemoryMB != 64 {
		t.Errorf("processor.mid: resources cpu %d, memory %d", *task.Resources.CPU, *task.Resources.MemoryMB)
	}
	if !slices.Equal(mid.Datacenters, []string{"dc1"}) {
		t.Errorf("datacenters %v", mid.Datacenters)
	}
	// The processor was handed its upstream's address: the node of its
	// allocation and the PORT flowctl gave it.
	srcPort := nf.records()["source.src"].Ports["PORT"]
	if got, want := task.Env["UPSTREAM"], "127.0.0.1:"+strconv.Itoa(srcPort); got != want {
		t.Errorf("processor.mid's UPSTREAM = %q, want %q", got, want)
	}
	if r := nf.nomad(0, "plan"); !strings.Contains(r.out, "No changes.") {
		t.Fatalf("plan after apply\n%s", r)
	}

	// An env change replaces that component only.
	before := *src.JobModifyIndex
	midBefore := *mid.JobModifyIndex
	nf.write("pipeline.hcl", fmt.Sprintf(nomadLifecyclePipeline, nf.name, "two"))
	p := nf.nomadPlan()
	if got, want := p.actions(), []string{"replace source.src (spec_changed)"}; !slices.Equal(got, want) {
		t.Fatalf("plan after env edit: %v, want %v", got, want)
	}
	r = nf.nomad(0, "apply", "-auto-approve")
	if !strings.Contains(r.out, "source.src: Replacement complete") {
		t.Errorf("apply after env edit\n%s", r)
	}
	nf.assertNomadConverged(want)
	if after := nf.job("src"); *after.JobModifyIndex == before || after.TaskGroups[0].Tasks[0].Env["MODE"] != "two" {
		t.Errorf("source.src was not registered again: index %d -> %d, env %v", before, *after.JobModifyIndex, after.TaskGroups[0].Tasks[0].Env)
	}
	if *nf.job("mid").JobModifyIndex != midBefore {
		t.Errorf("processor.mid was registered again")
	}

	r = nf.nomad(0, "destroy", "-auto-approve")
	if !strings.Contains(r.out, "Destroy complete! Components: 2 destroyed.") {
		t.Fatalf("destroy\n%s", r)
	}
	if ids := nf.emu.JobIDs(); len(ids) != 0 {
		t.Errorf("jobs left after destroy: %v", ids)
	}
	if recs := nf.records(); len(recs) != 0 {
		t.Errorf("state still records %v", recs)
	}
}

func TestNomadDriftIsPlannedAndRepaired(t *testing.T) {
	t.Parallel()
	nf := newNomadFixture(t, nomadtest.Options{})
	var b strings.Builder
	fmt.Fprintf(&b, "pipeline %q {\n  executor = \"nomad\"\n}\n", nf.name)
	for _, id := range []string{"gone", "stopped", "kept"} {
		fmt.Fprintf(&b, "\nsource %q {\n  image = \"example/%s:1\"\n}\n", id, id)
	}
	nf.write("pipeline.hcl", b.String())
	nf.nomad(0, "apply", "-auto-approve")
	want := []string{"source.gone", "source.kept", "source.stopped"}
	nf.assertNomadConverged(want)
	lineage := nf.meta().Lineage

	// Purged and stopped outside flowctl.
	if _, _, err := nf.api.Jobs().Deregister(nf.jobID("gone"), true, nil); err != nil {
		t.Fatal(err)
	}
	if err := nf.emu.StopJob(nf.jobID("stopped")); err != nil {
		t.Fatal(err)
	}
	// A job of the pipeline that state does not know: an orphan. And one
	// of another state of the same pipeline: foreign, never touched.
	register := func(id, lin string) {
		j := nf.job("kept")
		j.ID, j.Name = new(nf.jobID(id)), new(nf.jobID(id))
		j.Meta = map[string]string{"flowctl-pipeline": nf.name, "flowctl-component": "source." + id, "flowctl-lineage": lin, "flowctl-spec-hash": "feed"}
		if _, _, err := nf.api.Jobs().Register(j, nil); err != nil {
			t.Fatal(err)
		}
	}
	register("stray", lineage)
	register("foreign", "another-lineage")
	t.Cleanup(func() { _, _, _ = nf.api.Jobs().Deregister(nf.jobID("foreign"), true, nil) })

	p := nf.nomadPlan()
	wantActions := []string{
		"create source.gone (deleted_outside)",
		"delete-orphan source.stray (orphan)",
		"restart source.stopped (exited)",
	}
	if got := p.actions(); !slices.Equal(got, wantActions) {
		t.Fatalf("plan after drift: %v, want %v", got, wantActions)
	}
	r := nf.nomad(0, "plan")
	for _, s := range []string{"source.gone", "deleted outside flowctl", "another-lineage"} {
		if !strings.Contains(r.out, s) {
			t.Errorf("human plan lacks %q\n%s", s, r)
		}
	}
	nf.nomad(0, "apply", "-auto-approve")
	nf.assertNomadConverged(want)
	if nf.emu.Job(nf.jobID("stray")) != nil {
		t.Errorf("the orphan job is still there")
	}
	if j := nf.emu.Job(nf.jobID("foreign")); j == nil || *j.Stop {
		t.Errorf("the foreign job was touched: %+v", j)
	}
	nf.nomad(0, "destroy", "-auto-approve")
	if ids := nf.emu.JobIDs(); len(ids) != 1 || !strings.HasSuffix(ids[0], nf.jobID("foreign")) {
		t.Errorf("after destroy: %v, want only the foreign job", ids)
	}
	if _, _, err := nf.api.Jobs().Deregister(nf.jobID("foreign"), true, nil); err != nil {
		t.Fatal(err)
	}
}

func TestNomadJobChangedBetweenPlanAndApplyIsRefused(t *testing.T) {
	t.Parallel()
	nf := newNomadFixture(t, nomadtest.Options{})
	pipeline := "pipeline %q {\n  executor = \"nomad\"\n}\n\nsource \"src\" {\n  image = \"example/src:1\"\n  env = { MODE = %q }\n}\n"
	nf.write("pipeline.hcl", fmt.Sprintf(pipeline, nf.name, "one"))
	nf.nomad(0, "apply", "-auto-approve")
	nf.write("pipeline.hcl", fmt.Sprintf(pipeline, nf.name, "two"))
	nf.nomad(0, "plan", "-out", "change.plan")
	recBefore := nf.records()["source.src"]

	// Someone runs a changed job in between.
	if err := nf.emu.ModifyJob(nf.jobID("src"), func(j *api.Job) { j.Meta["touched"] = "by hand" }); err != nil {
		t.Fatal(err)
	}
	r := nf.nomadIn(nf.dir, nil, "apply", "change.plan")
	if r.code != 1 || !strings.Contains(r.err, "source.src changed since the plan was made") {
		t.Fatalf("want the saved plan refused as stale\n%s", r)
	}
	if j := nf.job("src"); j.Meta["touched"] != "by hand" || j.TaskGroups[0].Tasks[0].Env["MODE"] != "one" {
		t.Errorf("the job changed by hand was overwritten: meta %v, env %v", j.Meta, j.TaskGroups[0].Tasks[0].Env)
	}
	if rec := nf.records()["source.src"]; string(rec.Handle) != string(recBefore.Handle) || rec.SpecHash != recBefore.SpecHash {
		t.Errorf("state changed: %+v, was %+v", rec, recBefore)
	}
}

func TestNomadCrashLoopingComponentFailsTheApply(t *testing.T) {
	t.Parallel()
	// The task dies before Nomad would count it healthy.
	nf := newNomadFixture(t, nomadtest.Options{CrashAfter: 20 * time.Millisecond, HealthyAfter: time.Second})
	nf.write("pipeline.hcl", fmt.Sprintf(`pipeline %q {
  executor = "nomad"
}

source "bad" {
  image = "example/bad:1"
  restart {
    max_retries = 2
    backoff {
      initial = "50ms"
    }
  }
}

sink "after" {
  image  = "example/after:1"
  inputs = [source.bad]
}
`, nf.name))
	nf.emu.CrashLoop(nf.jobID("bad"), 2)
	r := nf.nomadIn(nf.dir, nil, "apply", "-auto-approve")
	// Caught while Nomad restarts it, or once Nomad gave up on it.
	if r.code != 1 || !strings.Contains(r.err, "source.bad: create failed: ") ||
		!(strings.Contains(r.err, "crash-looping: restarted") || strings.Contains(r.err, "exited with code 2 after 2 restarts")) {
		t.Fatalf("want the apply to fail at source.bad\n%s", r)
	}
	if strings.Contains(r.out, "sink.after: Creating...") || nf.emu.Job(nf.jobID("after")) != nil {
		t.Errorf("sink.after was started after its input failed\n%s", r)
	}
	rec := nf.records()["source.bad"]
	if rec == nil || rec.Status != state.StatusFailed {
		t.Fatalf("source.bad in state: %+v", rec)
	}
	// Nomad gives up after max_retries restarts; the next plan replaces
	// the failed component.
	waitFor(t, time.Minute, "the allocation to fail", func() bool {
		j := nf.emu.Job(nf.jobID("bad"))
		return j != nil && *j.Status == "dead"
	})
	allocs := nf.emu.Allocations(nf.jobID("bad"))
	if len(allocs) != 1 || allocs[0].ClientStatus != "failed" || allocs[0].TaskStates["bad"].Restarts != 2 {
		t.Errorf("allocations: %+v", allocs)
	}
	if got, want := nf.nomadPlan().actions(), []string{"create sink.after (not_in_state)", "replace source.bad (tainted)"}; !slices.Equal(got, want) {
		t.Errorf("plan after the crash loop: %v, want %v", got, want)
	}
}

func TestNomadUnreachableFailsBeforeTouchingState(t *testing.T) {
	t.Parallel()
	nf := newNomadFixture(t, nomadtest.Options{})
	pipeline := "pipeline %q {\n  executor = \"nomad\"\n}\n\nsource \"a\" {\n  image = \"example/a:1\"\n  env = { MODE = %q }\n}\n"
	nf.write("pipeline.hcl", fmt.Sprintf(pipeline, nf.name, "one"))
	nf.nomad(0, "apply", "-auto-approve")

	snapshot := func() string {
		st, err := state.Open(nf.statePath(), "")
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		err = st.View(func(tx *state.Tx) error {
			m := tx.Meta()
			fmt.Fprintf(&b, "lineage=%s serial=%d\n", m.Lineage, m.Serial)
			recs, err := tx.Components()
			for _, r := range recs {
				j, _ := json.Marshal(r)
				b.Write(j)
				b.WriteByte('\n')
			}
			hist, _ := tx.History(0)
			fmt.Fprintf(&b, "history=%d\n", len(hist))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	before := snapshot()
	nf.write("pipeline.hcl", fmt.Sprintf(pipeline, nf.name, "two"))
	for _, args := range [][]string{{"plan"}, {"apply", "-auto-approve"}, {"destroy", "-auto-approve"}} {
		r := nf.nomadIn(nf.dir, []string{"NOMAD_ADDR=http://127.0.0.1:1"}, args...)
		if r.code != 1 || !strings.Contains(r.err, "cannot reach the Nomad API at http://127.0.0.1:1 (NOMAD_ADDR)") {
			t.Errorf("want exit 1 and an error naming the address\n%s", r)
		}
	}
	if after := snapshot(); after != before {
		t.Errorf("state changed\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if j := nf.job("a"); j.TaskGroups[0].Tasks[0].Env["MODE"] != "one" {
		t.Errorf("the job changed: %v", j.TaskGroups[0].Tasks[0].Env)
	}
}

// TestNomadProcessAndDockerComponentsApplyInOneDAG runs a process source, a
// nomad processor and a docker sink in one plan. Without a Docker engine
// the sink is left out (and the test says so).
func TestNomadProcessAndDockerComponentsApplyInOneDAG(t *testing.T) {
	t.Parallel()
	if _, err := execOutput("docker", "info"); err != nil {
		t.Logf("docker info failed (%v): planning and applying without the docker sink", err)
		runMixed(t, newNomadFixture(t, nomadtest.Options{}), "")
		return
	}
	cli := dockertest.Engine(t)
	image := dockertest.TestImage(t, cli, dockertest.ImageOptions{})
	// Registered before the fixture, so that it runs after its destroy.
	var name string
	t.Cleanup(func() {
		if left := dockertest.RemovePipeline(cli, name); name != "" && len(left) > 0 {
			t.Errorf("cleanup: the destroy left %v of pipeline %s", left, name)
		}
	})
	nf := newNomadFixture(t, nomadtest.Options{})
	name = nf.name
	runMixed(t, nf, image)
}

func runMixed(t *testing.T, nf *nomadFixture, image string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "pipeline %q {\n  executor = \"nomad\"\n}\n", nf.name)
	fmt.Fprintf(&b, "\nsource \"src\" {\n  executor = \"process\"\n  command = [%q]\n  health {\n    http = \"/health\"\n  }\n}\n", nf.tc)
	b.WriteString("\nprocessor \"mid\" {\n  image  = \"example/mid:1\"\n  inputs = [source.src]\n  env    = { UPSTREAM = \"${source.src.address}\" }\n}\n")
	want := []string{"processor.mid", "source.src"}
	if image != "" {
		fmt.Fprintf(&b, "\nsink \"out\" {\n  executor = \"docker\"\n  image    = %q\n  inputs   = [processor.mid]\n  env      = { UPSTREAM = \"${processor.mid.address}\" }\n  stop_timeout = \"2s\"\n  health {\n    http = \"/health\"\n    interval = \"1s\"\n  }\n}\n", image)
		want = append(want, "sink.out")
		slices.Sort(want)
	}
	nf.write("pipeline.hcl", b.String())
	var creates []string
	for _, a := range want {
		creates = append(creates, "create "+a+" (not_in_state)")
	}
	if got := nf.nomadPlan().actions(); !slices.Equal(got, creates) {
		t.Fatalf("plan: %v, want %v", got, creates)
	}
	r := nf.nomad(0, "apply", "-auto-approve")
	order := []string{"source.src: Creation complete", "processor.mid: Creating...", "processor.mid: Creation complete"}
	if image != "" {
		order = append(order, "sink.out: Creating...")
	}
	last := -1
	for _, s := range order {
		i := strings.Index(r.out, s)
		if i < last {
			t.Fatalf("%q out of dependency order\n%s", s, r)
		}
		last = i
	}
	nf.assertNomadConverged(want)
	recs := nf.records()
	if recs["source.src"].Provider != "process" || recs["processor.mid"].Provider != "nomad" || (image != "" && recs["sink.out"].Provider != "docker") {
		t.Errorf("providers: %s, %s", recs["source.src"].Provider, recs["processor.mid"].Provider)
	}
	// Each was handed its upstream's address as its executor knows it.
	mid := nf.job("mid").TaskGroups[0].Tasks[0]
	if got, want := mid.Env["UPSTREAM"], "127.0.0.1:"+strconv.Itoa(recs["source.src"].Ports["PORT"]); got != want {
		t.Errorf("processor.mid's UPSTREAM = %q, want %q", got, want)
	}
	if image != "" {
		out := docker(t, "inspect", "-f", "{{range .Config.Env}}{{println .}}{{end}}", nf.name+"-out")
		if want := "UPSTREAM=127.0.0.1:" + strconv.Itoa(recs["processor.mid"].Ports["PORT"]); !strings.Contains(out, want) {
			t.Errorf("sink.out's env lacks %s:\n%s", want, out)
		}
	}
	nf.nomad(0, "destroy", "-auto-approve")
	if ids := nf.emu.JobIDs(); len(ids) != 0 {
		t.Errorf("jobs left: %v", ids)
	}
	nf.assertNoProcesses()
}

// TestNomadExamplePlansAgainstTheEmulator plans examples/nomad, both forms,
// asking Nomad (the emulator) what runs: no -refresh=false.
func TestNomadExamplePlansAgainstTheEmulator(t *testing.T) {
	t.Parallel()
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	nf := newNomadFixture(t, nomadtest.Options{})
	for _, file := range []string{"pipeline.hcl", "pipeline.yaml"} {
		src, err := os.ReadFile(filepath.Join(root, "examples", "nomad", file))
		if err != nil {
			t.Fatal(err)
		}
		sub := filepath.Join(nf.dir, strings.TrimPrefix(filepath.Ext(file), "."))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sub, file), src, 0o644); err != nil {
			t.Fatal(err)
		}
		r := nf.nomadIn(sub, nil, "plan", "-json", file)
		if r.code != 0 {
			t.Fatalf("%s", r)
		}
		var p planned
		if err := json.Unmarshal([]byte(r.out), &p); err != nil {
			t.Fatalf("decode plan -json: %v\n%s", err, r)
		}
		want := []string{"create processor.ttp-processor (not_in_state)", "create sink.consumer-app (not_in_state)", "create source.stellar-live-source (not_in_state)"}
		if got := p.actions(); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", file, got, want)
		}
	}
	listed := 0
	for _, r := range nf.emu.Requests() {
		if r.Path == "/v1/jobs" && r.Query.Get("prefix") == "nomad-ttp-" {
			listed++
		}
	}
	// Each plan runs in a new folder: before its state file is created,
	// flowctl asks once whether jobs of the pipeline run (a lost state
	// file), then the plan lists once. Never once per component.
	if listed != 4 {
		t.Errorf("the plans listed the pipeline's jobs %d times, want 4 (2 per plan in a new folder): %+v", listed, nf.emu.Requests())
	}
}

// TestNomadCrashLoopShowsInStatus: a component Nomad keeps restarting is
// shown as such, with what Nomad says of it.
func TestNomadCrashLoopShowsInStatus(t *testing.T) {
	t.Parallel()
	nf := newNomadFixture(t, nomadtest.Options{CrashAfter: 20 * time.Millisecond})
	nf.write("pipeline.hcl", fmt.Sprintf(`pipeline %q {
  executor = "nomad"
}

source "a" {
  image = "example/a:1"
  restart {
    max_retries = -1
    backoff {
      initial = "300ms"
    }
  }
}
`, nf.name))
	nf.nomad(0, "apply", "-auto-approve")
	nf.emu.CrashLoop(nf.jobID("a"), 3)
	var last result
	waitFor(t, time.Minute, "status to show the crash loop", func() bool {
		last = nf.nomad(0, "status")
		return strings.Contains(last.out, "crash-looping: restarted") && strings.Contains(last.out, "last exit code 3")
	})
	if !strings.Contains(last.out, "source.a") {
		t.Errorf("status\n%s", last)
	}
}

// TestNomadLogsAreReadThroughTheAllocationFilesystem: `flowctl logs` shows
// what a Nomad component wrote, read through Nomad's client fs API.
func TestNomadLogsAreReadThroughTheAllocationFilesystem(t *testing.T) {
	t.Parallel()
	nf := newNomadFixture(t, nomadtest.Options{})
	nf.write("pipeline.hcl", fmt.Sprintf("pipeline %q {\n  executor = \"nomad\"\n}\n\nsource \"a\" {\n  image = \"example/a:1\"\n}\n", nf.name))
	nf.nomad(0, "apply", "-auto-approve")
	if err := nf.emu.WriteLog(nf.jobID("a"), "stdout", "hello from the cluster\n"); err != nil {
		t.Fatal(err)
	}
	if err := nf.emu.WriteLog(nf.jobID("a"), "stderr", "a warning\n"); err != nil {
		t.Fatal(err)
	}
	r := nf.nomad(0, "logs", "--tail", "10")
	for _, want := range []string{"hello from the cluster", "a warning"} {
		if !strings.Contains(r.out, want) {
			t.Errorf("logs lack %q\n%s", want, r)
		}
	}
	asked := false
	for _, q := range nf.emu.Requests() {
		asked = asked || strings.HasPrefix(q.Path, "/v1/client/fs/logs/")
	}
	if !asked {
		t.Error("the logs were not read through /v1/client/fs/logs")
	}
}
