package e2e

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// chain is a three-stage pipeline: source.src -> processor.mid -> sink.out.
func chain() []comp {
	delay := map[string]string{"TC_START_DELAY": "50ms"}
	return []comp{
		{kind: "source", id: "src", env: delay},
		{kind: "processor", id: "mid", inputs: []string{"source.src"}, env: map[string]string{"TC_START_DELAY": "50ms", "MODE": "one"}},
		{kind: "sink", id: "out", inputs: []string{"processor.mid"}, env: map[string]string{"UPSTREAM": "${processor.mid.address}"}},
	}
}

func TestLifecycleCreateNoChangesReplaceDestroy(t *testing.T) {
	f := newFixture(t)
	cs := chain()
	f.writePipeline(cs)

	if got, want := f.plan().actions(), []string{
		"create processor.mid (not_in_state)", "create sink.out (not_in_state)", "create source.src (not_in_state)",
	}; !slices.Equal(got, want) {
		t.Fatalf("first plan: %v, want %v", got, want)
	}
	r := f.apply()
	if !strings.Contains(r.out, "Apply complete! Components: 3 added, 0 changed, 0 destroyed.") {
		t.Fatalf("apply summary missing\n%s", r)
	}
	// Dependency order: each component starts after its upstream is ready.
	src, mid, out := strings.Index(r.out, "source.src: Creation complete"), strings.Index(r.out, "processor.mid: Creating..."), strings.Index(r.out, "sink.out: Creating...")
	if src < 0 || mid < src || out < mid {
		t.Fatalf("components did not start in dependency order\n%s", r)
	}
	f.assertConverged(addrs(cs))
	if got := f.plan().actions(); len(got) != 0 {
		t.Fatalf("plan after apply: %v, want no changes", got)
	}
	if r := f.run("plan"); !strings.Contains(r.out, "No changes.") {
		t.Fatalf("human plan after apply\n%s", r)
	}
	before := byAddr(procsOf(f.name))
	// The sink got its upstream's address, resolved at apply time.
	recs := f.records()
	envOut, err := os.ReadFile("/proc/" + itoa(before["sink.out"][0].id.PID) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	if want := "UPSTREAM=127.0.0.1:" + itoa(recs["processor.mid"].Ports["PORT"]); !strings.Contains(string(envOut), want+"\x00") {
		t.Errorf("sink.out's environment lacks %s", want)
	}

	// Edit one env value: that component is replaced, and the plan says why.
	cs[1].env["MODE"] = "two"
	f.writePipeline(cs)
	p := f.plan()
	if got, want := p.actions(), []string{"replace processor.mid (spec_changed)"}; !slices.Equal(got, want) {
		t.Fatalf("plan after edit: %v, want %v", got, want)
	}
	for _, c := range p.Changes {
		if c.Address == "processor.mid" && !slices.Equal(c.ForcedBy, []string{"env.MODE"}) {
			t.Errorf("forced_by %v, want [env.MODE]", c.ForcedBy)
		}
	}
	r = f.must(2, "plan", "-detailed-exitcode")
	for _, want := range []string{
		"processor.mid must be replaced (the configuration changed)",
		`~ env.MODE = "one" -> "two" # forces replacement`,
		"Plan: 0 to add, 0 to change, 1 to replace, 0 to destroy.",
	} {
		if !strings.Contains(r.out, want) {
			t.Errorf("human plan lacks %q\n%s", want, r)
		}
	}
	f.apply()
	f.assertConverged(addrs(cs))
	after := byAddr(procsOf(f.name))
	if after["processor.mid"][0].id == before["processor.mid"][0].id {
		t.Errorf("processor.mid was not replaced: still %v", after["processor.mid"][0].id)
	}
	for _, a := range []string{"source.src", "sink.out"} {
		if after[a][0].id != before[a][0].id {
			t.Errorf("%s was restarted (%v -> %v), though unchanged", a, before[a][0].id, after[a][0].id)
		}
	}

	r = f.must(0, "destroy", "-auto-approve")
	if !strings.Contains(r.out, "Destroy complete! Components: 3 destroyed.") {
		t.Fatalf("destroy summary missing\n%s", r)
	}
	// Dependents go first.
	if o, m, s := strings.Index(r.out, "sink.out: Destruction complete"), strings.Index(r.out, "processor.mid: Destroying"), strings.Index(r.out, "source.src: Destroying"); o < 0 || m < o || s < m {
		t.Errorf("destroy did not go in reverse dependency order\n%s", r)
	}
	f.assertNoProcesses()
	if recs := f.records(); len(recs) != 0 {
		t.Fatalf("state still records %d components after destroy", len(recs))
	}
	if got := f.plan().actions(); len(got) != 3 {
		t.Fatalf("plan after destroy: %v, want 3 creates", got)
	}
}

func TestPlanDetailedExitCode(t *testing.T) {
	f := newFixture(t)
	cs := chain()[:1]
	f.writePipeline(cs)
	f.must(2, "plan", "-detailed-exitcode")
	f.apply()
	f.must(0, "plan", "-detailed-exitcode")

	// A broken file is an error (1), and the error says where: file:line:col.
	f.write("pipeline.hcl", f.hcl(cs)+"\nsink \"broken\" {\n  command = [\"x\"\n}\n")
	r := f.must(1, "plan", "-detailed-exitcode")
	if !regexp.MustCompile(`pipeline\.hcl:\d+:\d+`).MatchString(r.err) {
		t.Fatalf("error does not name file:line:col\n%s", r)
	}
}

func TestBadPipelineFilesNamePosition(t *testing.T) {
	f := newFixture(t)
	cases := []struct{ name, file, content, want string }{
		{"hcl syntax", "pipeline.hcl", "pipeline \"p\" {\n  executor = \"process\"\n}\nsource \"a\" {\n  command = [\"x\"\n}\n", "pipeline.hcl:6:1"},
		{"hcl unknown argument", "pipeline.hcl", "pipeline \"p\" {}\nsource \"a\" {\n  command = [\"x\"]\n  bogus   = 1\n}\n", "pipeline.hcl:4:3"},
		{"yaml unknown input", "pipeline.yaml", "apiVersion: flowctl/v1\nkind: Pipeline\nmetadata:\n  name: p\nspec:\n  sources:\n    - id: a\n      command: [x]\n  sinks:\n    - id: s\n      command: [x]\n      inputs: [nope]\n", "pipeline.yaml:12:"},
		{"yaml wrong type", "pipeline.yaml", "apiVersion: flowctl/v1\nkind: Pipeline\nmetadata:\n  name: p\nspec:\n  sources:\n    - id: a\n      command: [x]\n      env: {A: [1]}\n", "pipeline.yaml:9:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, n := range []string{"pipeline.hcl", "pipeline.yaml"} {
				_ = os.Remove(f.path(n))
			}
			f.write(tc.file, tc.content)
			for _, args := range [][]string{{"plan"}, {"apply", "-auto-approve"}, {"plan", "-json"}} {
				r := f.run(args...)
				if r.code != 1 || !strings.Contains(r.err, tc.want) {
					t.Errorf("want exit 1 and %q on stderr\n%s", tc.want, r)
				}
			}
		})
	}
}

func TestApplyWithoutTerminalNeedsAutoApprove(t *testing.T) {
	f := newFixture(t)
	cs := chain()[:1]
	f.writePipeline(cs)
	r := f.must(1, "apply")
	if !strings.Contains(r.err, "no terminal to confirm on: run with -auto-approve") {
		t.Fatalf("unclear message\n%s", r)
	}
	if ps := procsOf(f.name); len(ps) != 0 {
		t.Fatalf("apply without approval started %v", ps)
	}
	f.apply()
	r = f.must(1, "destroy")
	if !strings.Contains(r.err, "no terminal to confirm on: run with -auto-approve") {
		t.Fatalf("unclear message\n%s", r)
	}
	f.assertConverged(addrs(cs))
}

func TestTargetAndReplace(t *testing.T) {
	f := newFixture(t)
	cs := []comp{
		{kind: "source", id: "a"},
		{kind: "source", id: "b"},
		{kind: "processor", id: "p", inputs: []string{"source.a"}},
		{kind: "sink", id: "s", inputs: []string{"processor.p", "source.b"}},
	}
	f.writePipeline(cs)

	// -target takes the target and what it depends on, nothing else.
	if got, want := f.plan("-target", "processor.p").actions(), []string{"create processor.p (not_in_state)", "create source.a (not_in_state)"}; !slices.Equal(got, want) {
		t.Fatalf("plan -target: %v, want %v", got, want)
	}
	f.apply("-target", "processor.p")
	if got := byAddr(procsOf(f.name)); len(got) != 2 || got["source.a"] == nil || got["processor.p"] == nil {
		t.Fatalf("after apply -target: %v", got)
	}
	r := f.must(1, "plan", "-target", "source.nope")
	if !strings.Contains(r.err, "source.nope is not a component") {
		t.Fatalf("unknown target\n%s", r)
	}
	f.apply()
	f.assertConverged(addrs(cs))

	// -replace replaces an up-to-date component, and only it.
	before := byAddr(procsOf(f.name))
	if got, want := f.plan("-replace", "source.b").actions(), []string{"replace source.b (replace_by_request)"}; !slices.Equal(got, want) {
		t.Fatalf("plan -replace: %v, want %v", got, want)
	}
	f.apply("-replace", "source.b")
	f.assertConverged(addrs(cs))
	after := byAddr(procsOf(f.name))
	for _, a := range addrs(cs) {
		if changed := after[a][0].id != before[a][0].id; changed != (a == "source.b") {
			t.Errorf("%s: replaced=%v", a, changed)
		}
	}

	// destroy -target takes the target and its dependents.
	f.must(0, "destroy", "-auto-approve", "-target", "processor.p")
	got := byAddr(procsOf(f.name))
	if len(got) != 2 || got["source.a"] == nil || got["source.b"] == nil {
		t.Fatalf("after destroy -target processor.p: %v", got)
	}
}

func TestDestroyFromStateFileAlone(t *testing.T) {
	f := newFixture(t)
	cs := chain()
	f.writePipeline(cs)
	f.apply()
	if err := os.Remove(f.path("pipeline.hcl")); err != nil {
		t.Fatal(err)
	}
	// Without a pipeline file or --state there is nothing to go on.
	r := f.must(1, "destroy", "-auto-approve")
	if !strings.Contains(r.err, "no pipeline file") {
		t.Fatalf("destroy without file\n%s", r)
	}
	r = f.runIn(t.TempDir(), "destroy", "-auto-approve", "--state", f.statePath())
	if r.code != 0 || !strings.Contains(r.out, "Destroy complete! Components: 3 destroyed.") {
		t.Fatalf("destroy --state\n%s", r)
	}
	f.assertNoProcesses()
}

func TestStateListShowRmThenAdopt(t *testing.T) {
	f := newFixture(t)
	cs := chain()
	f.writePipeline(cs)
	f.apply()
	r := f.must(0, "state", "list")
	if got := strings.Fields(r.out); !slices.Equal(got, addrs(cs)) {
		t.Fatalf("state list: %v, want %v", got, addrs(cs))
	}
	r = f.must(0, "state", "show", "processor.mid", "-json")
	var shown struct {
		Address, Status string
		Handle          json.RawMessage
	}
	if err := json.Unmarshal([]byte(r.out), &shown); err != nil {
		t.Fatal(err)
	}
	live := byAddr(procsOf(f.name))
	if shown.Address != "processor.mid" || shown.Status != "running" || childOf(shown.Handle) != live["processor.mid"][0].id {
		t.Fatalf("state show: %+v, live %+v", shown, live["processor.mid"])
	}
	if r := f.must(0, "state", "show", "processor.mid"); !strings.Contains(r.out, "status       running") {
		t.Errorf("state show (text)\n%s", r)
	}
	f.must(1, "state", "show", "processor.nope")

	r = f.must(0, "state", "rm", "processor.mid")
	if !strings.Contains(r.out, "Removed processor.mid from the state") {
		t.Fatalf("state rm\n%s", r)
	}
	if got := byAddr(procsOf(f.name)); len(got["processor.mid"]) != 1 {
		t.Fatalf("state rm stopped the component: %v", got)
	}
	// The process still runs and matches the file: adopt it, start no twin.
	if got, want := f.plan().actions(), []string{"adopt processor.mid (adopt_unrecorded)"}; !slices.Equal(got, want) {
		t.Fatalf("plan after state rm: %v, want %v", got, want)
	}
	f.apply()
	f.assertConverged(addrs(cs))
	if got := byAddr(procsOf(f.name))["processor.mid"][0].id; got != live["processor.mid"][0].id {
		t.Fatalf("adopt replaced the process: %v -> %v", live["processor.mid"][0].id, got)
	}

	// Forgotten and no longer in the file: an orphan, deleted.
	f.must(0, "state", "rm", "sink.out")
	f.writePipeline(cs[:2])
	if got, want := f.plan().actions(), []string{"delete-orphan sink.out (orphan)"}; !slices.Equal(got, want) {
		t.Fatalf("plan with an orphan: %v, want %v", got, want)
	}
	f.apply()
	f.assertConverged(addrs(cs[:2]))
}

func TestHistoryRecordsEachApply(t *testing.T) {
	f := newFixture(t)
	cs := chain()
	f.writePipeline(cs)
	f.apply()
	cs[1].env["MODE"] = "two"
	f.writePipeline(cs)
	f.apply()
	f.must(0, "destroy", "-auto-approve")

	r := f.must(0, "history", "-json", "-n", "0")
	var events []struct {
		Operation, Address, Action, Reason, Result string
		OpID                                       string `json:"op_id"`
	}
	if err := json.Unmarshal([]byte(r.out), &events); err != nil {
		t.Fatal(err)
	}
	var got []string
	ops := map[string]bool{}
	for _, e := range events {
		got = append(got, e.Operation+" "+e.Action+" "+e.Address+" "+e.Reason+" "+e.Result)
		ops[e.OpID] = true
	}
	want := []string{
		"apply create source.src not_in_state ok",
		"apply create processor.mid not_in_state ok",
		"apply create sink.out not_in_state ok",
		"apply replace processor.mid spec_changed ok",
		"destroy delete sink.out destroy_requested ok",
		"destroy delete processor.mid destroy_requested ok",
		"destroy delete source.src destroy_requested ok",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("history:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(ops) != 3 {
		t.Errorf("%d operation IDs, want 3 (one per command)", len(ops))
	}
	r = f.must(0, "history")
	if !strings.Contains(r.out, "OPERATION") || strings.Count(r.out, "\n") != len(want)+1 {
		t.Errorf("history (text)\n%s", r)
	}
}

func TestShowJSONAndTamperedPlanFile(t *testing.T) {
	f := newFixture(t)
	cs := chain()
	f.writePipeline(cs)
	f.must(0, "plan", "-out", "tf.plan")
	planned := f.plan()

	r := f.must(0, "show", "-json", "tf.plan")
	var shown struct {
		planJSONFields
		Summary map[string]int `json:"summary"`
	}
	if err := json.Unmarshal([]byte(r.out), &shown); err != nil {
		t.Fatal(err)
	}
	if shown.Pipeline != f.name || shown.Summary["create"] != 3 || len(shown.Changes) != 3 || shown.Lineage != planned.Lineage {
		t.Fatalf("show -json: %s", r.out)
	}
	if r := f.must(0, "show", "tf.plan"); !strings.Contains(r.out, "Plan: 3 to add") {
		t.Fatalf("show\n%s", r)
	}

	// One changed byte in the reviewed plan: refused, nothing runs.
	b, err := os.ReadFile(f.path("tf.plan"))
	if err != nil {
		t.Fatal(err)
	}
	tampered := strings.Replace(string(b), `"action": "create"`, `"action": "delete"`, 1)
	if tampered == string(b) {
		t.Fatal("nothing to tamper with")
	}
	f.write("tampered.plan", tampered)
	for _, args := range [][]string{{"apply", "tampered.plan"}, {"show", "tampered.plan"}} {
		r = f.must(1, args...)
		if !strings.Contains(r.err, "modified or is corrupt") {
			t.Fatalf("tampered plan\n%s", r)
		}
	}
	if ps := procsOf(f.name); len(ps) != 0 {
		t.Fatalf("a tampered plan started %v", ps)
	}

	// The plan as saved applies, without a prompt.
	r = f.must(0, "apply", "tf.plan")
	if !strings.Contains(r.out, "Apply complete! Components: 3 added") {
		t.Fatalf("apply PLANFILE\n%s", r)
	}
	f.assertConverged(addrs(cs))
}

// planJSONFields are the parts of plan JSON show -json is checked for.
type planJSONFields struct {
	Pipeline string            `json:"pipeline"`
	Lineage  string            `json:"lineage"`
	Changes  []json.RawMessage `json:"changes"`
}
