package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/testutil/pgtest"
)

// pgFixture is a fixture whose pipeline keeps its state in a real
// PostgreSQL server (backend "pg"), the connection string in PG_CONN_STR.
type pgFixture struct {
	*fixture
	srv *pgtest.Server
}

// newPGFixture starts the server and sets PG_CONN_STR before the fixture
// exists, so that both outlive the fixture's cleanup; a cleanup of its own
// destroys the pipeline (the fixture's looks for a state file).
func newPGFixture(t *testing.T) *pgFixture {
	srv := pgtest.Start(t)
	t.Setenv(state.EnvPGConnStr, srv.ConnStr)
	f := &pgFixture{fixture: newFixture(t), srv: srv}
	t.Cleanup(func() {
		if _, err := os.Stat(f.path("pipeline.hcl")); err == nil {
			if r := f.run("destroy", "-auto-approve", "-lock-timeout", "10s"); r.code != 0 {
				t.Logf("cleanup: %s", r)
			}
		}
	})
	return f
}

// writePipeline writes pipeline.hcl with cs and a backend "pg" block.
func (f *pgFixture) writePipeline(cs []comp) {
	src := strings.Replace(f.hcl(cs), "  executor = \"process\"\n", "  executor = \"process\"\n  backend \"pg\" {\n    schema_name = \"e2e\"\n  }\n", 1)
	f.write("pipeline.hcl", src)
}

func (f *pgFixture) store() *state.Store {
	f.t.Helper()
	st, err := state.OpenPG(state.PGConfig{ConnStr: f.srv.ConnStr, Schema: "e2e"}, f.statePath(), f.name, state.IfExists())
	if err != nil {
		f.t.Fatalf("open the pg state: %v", err)
	}
	return st
}

func (f *pgFixture) pgMeta() state.Meta {
	f.t.Helper()
	var m state.Meta
	if err := f.store().View(func(tx *state.Tx) error { m = tx.Meta(); return nil }); err != nil {
		f.t.Fatal(err)
	}
	return m
}

// assertConverged is fixture.assertConverged on the database's records.
func (f *pgFixture) assertConverged(want []string) {
	f.t.Helper()
	if r := f.run("plan", "-detailed-exitcode"); r.code != 0 {
		f.t.Fatalf("plan after apply is not empty\n%s", r)
	}
	var recs []*state.Record
	if err := f.store().View(func(tx *state.Tx) error { var err error; recs, err = tx.Components(); return err }); err != nil {
		f.t.Fatal(err)
	}
	live := byAddr(procsOf(f.name))
	if len(recs) != len(want) {
		f.t.Fatalf("the database records %d components, want %v", len(recs), want)
	}
	for i, r := range recs {
		if r.Address != want[i] || r.Status != state.StatusRunning {
			f.t.Errorf("record %s: status %s, want %s running", r.Address, r.Status, want[i])
		}
		if ps := live[r.Address]; len(ps) != 1 || childOf(r.Handle) != ps[0].id {
			f.t.Errorf("%s: live processes %+v, the database records %v", r.Address, ps, childOf(r.Handle))
		}
	}
}

func (f *pgFixture) assertNoPassword(what, text string) {
	f.t.Helper()
	if strings.Contains(text, f.srv.Password) {
		f.t.Errorf("%s shows the database password:\n%s", what, text)
	}
}

func TestPGBackendAppliesShowsAndDestroysWithNoStateFile(t *testing.T) {
	f := newPGFixture(t)
	cs := []comp{{kind: "source", id: "a"}, {kind: "sink", id: "b", inputs: []string{"source.a"}}}
	f.writePipeline(cs)
	p := f.must(0, "plan", "-json")
	f.assertNoPassword("plan -json", p.out+p.err)
	a := f.apply()
	f.assertNoPassword("apply", a.out+a.err)
	f.assertConverged(addrs(cs))
	if _, err := os.Stat(f.statePath()); err == nil {
		t.Fatalf("a state file was written at %s with the pg backend", f.statePath())
	}
	m := f.pgMeta()
	if m.Pipeline != f.name || m.Serial == 0 {
		t.Fatalf("the database's meta = %+v", m)
	}
	for _, args := range [][]string{{"status"}, {"state", "list"}, {"state", "show", "-json", "source.a"}, {"history"}} {
		r := f.must(0, args...)
		f.assertNoPassword(strings.Join(args, " "), r.out+r.err)
	}
	if r := f.must(0, "state", "list"); !strings.Contains(r.out, "sink.b") || !strings.Contains(r.out, "source.a") {
		t.Fatalf("state list:\n%s", r)
	}
	if r := f.must(0, "status"); !strings.Contains(r.out, fmt.Sprintf("(state pg workspace %q (schema e2e at 127.0.0.1:%d/postgres)", f.name, f.srv.Port)) {
		t.Errorf("status does not say where the state is:\n%s", r)
	}
	logs, _ := filepath.Glob(filepath.Join(f.dir, ".flowctl", "*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		f.assertNoPassword(l, string(b))
	}
	f.must(0, "destroy", "-auto-approve")
	f.assertNoProcesses()
	var n int
	_ = f.store().View(func(tx *state.Tx) error { recs, err := tx.Components(); n = len(recs); return err })
	if n != 0 {
		t.Fatalf("the database still records %d components after destroy", n)
	}
}

// TestPGBackendKilledApplyNeedsNoForceUnlock: an apply killed (-9) while
// it holds the lock leaves no lock behind; the next apply proceeds at once
// and converges.
func TestPGBackendKilledApplyNeedsNoForceUnlock(t *testing.T) {
	f := newPGFixture(t)
	cs := []comp{{kind: "source", id: "slow", env: map[string]string{"TC_START_DELAY": "3s"}}, {kind: "sink", id: "b", inputs: []string{"source.slow"}}}
	f.writePipeline(cs)
	a := f.start("apply", "-auto-approve")
	waitFor(t, 30*time.Second, "the apply to hold the lock", func() bool {
		st, err := state.OpenPG(state.PGConfig{ConnStr: f.srv.ConnStr, Schema: "e2e"}, f.statePath(), f.name, state.IfExists())
		if err != nil {
			return false
		}
		h, _ := st.LockHolder()
		return h != nil && h.PID == a.cmd.Process.Pid
	})
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	a.wait(t)
	// No force-unlock and no lock timeout: the lock went with the killed
	// apply's session (the server may take a moment to see it closed).
	var r result
	waitFor(t, 30*time.Second, "an apply to get past the lock", func() bool {
		r = f.run("apply", "-auto-approve")
		return !strings.Contains(r.err, "locked by another operation")
	})
	if r.code != 0 {
		t.Fatalf("the apply after the killed one failed\n%s", r)
	}
	if strings.Contains(r.err, "force-unlock") {
		t.Errorf("the apply asks for a force-unlock:\n%s", r)
	}
	f.assertConverged(addrs(cs))
}

// TestStateMigrateFileToPGAndBackKeepsLineageAndSerial: a pipeline applied
// on a file moves to the database and back; the plan after each move sees
// nothing to do, and lineage and serial are the file's.
func TestStateMigrateFileToPGAndBackKeepsLineageAndSerial(t *testing.T) {
	f := newPGFixture(t)
	cs := []comp{{kind: "source", id: "a"}}
	f.fixture.writePipeline(cs)
	f.apply()
	// A change planned and saved on the file, to apply after the move.
	cs[0].env = map[string]string{"MODE": "two"}
	f.fixture.writePipeline(cs)
	f.must(0, "plan", "-out", "saved.plan")
	before := f.meta()

	f.writePipeline(cs) // now with backend "pg"
	r := f.must(0, "state", "migrate", "--to", "pg")
	f.assertNoPassword("state migrate", r.out+r.err)
	if !strings.Contains(r.out, before.Lineage) {
		t.Errorf("migrate does not name the lineage:\n%s", r)
	}
	if m := f.pgMeta(); m.Lineage != before.Lineage || m.Serial != before.Serial {
		t.Fatalf("the database has lineage %s serial %d, the file had %s serial %d", m.Lineage, m.Serial, before.Lineage, before.Serial)
	}
	// The plan saved against the file applies to the same state in the
	// database: it is bound to the lineage, not the backend.
	if r := f.run("apply", "saved.plan"); r.code != 0 {
		t.Fatalf("the plan saved before the move\n%s", r)
	}
	f.assertConverged(addrs(cs))
	before = f.pgMeta()
	if r := f.run("state", "migrate", "--to", "pg"); r.code == 0 || !strings.Contains(r.err, "already holds a state") {
		t.Fatalf("a second migration over the first:\n%s", r)
	}

	back := f.path("back.state.db")
	f.must(0, "state", "migrate", "--to", "file", "--state", back)
	st, err := state.Open(back, f.name)
	if err != nil {
		t.Fatal(err)
	}
	var m state.Meta
	_ = st.View(func(tx *state.Tx) error { m = tx.Meta(); return nil })
	if m.Lineage != before.Lineage || m.Serial != before.Serial {
		t.Fatalf("back in a file: lineage %s serial %d, want %s serial %d", m.Lineage, m.Serial, before.Lineage, before.Serial)
	}
	// The file the pipeline started with is left as it was: remove it, so
	// that the fixture's cleanup destroys through the database only.
	if err := os.Remove(f.statePath()); err != nil {
		t.Fatal(err)
	}
}

func (f *pgFixture) record(addr string) *state.Record {
	f.t.Helper()
	var r *state.Record
	if err := f.store().View(func(tx *state.Tx) error { var err error; r, err = tx.Component(addr); return err }); err != nil {
		f.t.Fatal(err)
	}
	return r
}

// killAndWaitForRestart kills addr's process and waits for the watcher
// (in the control plane apply started, on the database) to record a new
// running instance.
func (f *pgFixture) killAndWaitForRestart(addr string) {
	f.t.Helper()
	before := f.record(addr)
	if err := syscall.Kill(childOf(before.Handle).PID, syscall.SIGKILL); err != nil {
		f.t.Fatal(err)
	}
	waitFor(f.t, 60*time.Second, "a new running instance of "+addr, func() bool {
		var r *state.Record
		err := f.store().View(func(tx *state.Tx) error { var err error; r, err = tx.Component(addr); return err })
		return err == nil && r != nil && r.InstanceID != before.InstanceID && r.Status == state.StatusRunning
	})
}

// TestPGBackendWatcherRestartsAcrossADatabaseRestart: the control plane
// and its restart watcher work on the database, and go on after the
// database restarts under them.
func TestPGBackendWatcherRestartsAcrossADatabaseRestart(t *testing.T) {
	f := newPGFixture(t)
	const addr = "source.a"
	cs := []comp{{kind: "source", id: "a", env: map[string]string{"TC_START_DELAY": "100ms"}}}
	f.writePipeline(cs)
	f.apply()
	f.killAndWaitForRestart(addr)
	f.srv.Restart()
	f.killAndWaitForRestart(addr)
	var restarts int
	_ = f.store().View(func(tx *state.Tx) error {
		evs, err := tx.History(0)
		for _, ev := range evs {
			if ev.Operation == "restart" && ev.Address == addr && ev.Action == "restart" {
				restarts++
			}
		}
		return err
	})
	if restarts != 2 {
		t.Fatalf("%d restart events in the database's history, want 2", restarts)
	}
	f.assertConverged(addrs(cs))
	logs, _ := filepath.Glob(filepath.Join(f.dir, ".flowctl", "*.log"))
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		f.assertNoPassword(l, string(b))
	}
}

// TestPGBackendTwoCIJobsShareOneState stands for CI on two machines: two
// checkouts with HOMEs of their own and one database. Job A plans and
// saves; job B applies that plan; while B applies the next change, A's
// apply is refused naming B; B is killed (-9) mid-apply, and A's next
// apply proceeds without force-unlock and converges.
func TestPGBackendTwoCIJobsShareOneState(t *testing.T) {
	f := newPGFixture(t) // f.dir is job B's checkout
	jobA, homeA, homeB := t.TempDir(), t.TempDir(), t.TempDir()
	cs := chain()
	// A sensitive value: its spec hash is keyed, and the key must be the
	// same on both machines (it is kept in the database).
	cs[0].env["TOKEN"] = "${var.token}"
	write := func() {
		f.writePipeline(cs)
		f.write("pipeline.hcl", string(must(os.ReadFile(f.path("pipeline.hcl"))))+"\nvariable \"token\" {\n  default   = \"s3cret-value\"\n  sensitive = true\n}\n")
		copyFile(t, f.path("pipeline.hcl"), filepath.Join(jobA, "pipeline.hcl"))
	}
	write()

	if r := f.job(jobA, homeA, "plan", "-out", "saved.plan"); r.code != 0 {
		t.Fatalf("job A's plan\n%s", r)
	}
	copyFile(t, filepath.Join(jobA, "saved.plan"), f.path("saved.plan"))
	if r := f.job(f.dir, homeB, "apply", "saved.plan"); r.code != 0 {
		t.Fatalf("job B's apply of job A's plan\n%s", r)
	}
	lineage := f.pgMeta().Lineage
	if r := f.job(jobA, homeA, "plan", "-detailed-exitcode"); r.code != 0 {
		t.Fatalf("job A sees what job B applied as changes to make\n%s", r)
	}

	// The next change: job B applies it, slowly; job A's apply meanwhile
	// is refused, naming B's apply as the holder.
	cs[1].env["MODE"] = "two"
	cs[1].env["TC_START_DELAY"] = "3s"
	write()
	b := f.start("apply", "-auto-approve")
	waitFor(t, 30*time.Second, "job B's apply to replace processor.mid", func() bool { return strings.Contains(b.out.String(), "Replacing...") })
	r := f.job(jobA, homeA, "apply", "-auto-approve")
	if m := lockIDPattern.FindStringSubmatch(r.err); r.code != 1 || m == nil || m[2] != "apply" || m[3] != fmt.Sprint(b.cmd.Process.Pid) {
		t.Fatalf("job A's apply while job B holds the lock: want a refusal naming pid %d\n%s", b.cmd.Process.Pid, r)
	}
	if !strings.Contains(r.err, "The lock ends with that operation, however it ends.") {
		t.Errorf("the refusal does not say the lock ends with its holder:\n%s", r)
	}

	// Job B dies mid-apply; job A goes on without force-unlock.
	if err := b.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	b.wait(t)
	waitFor(t, 30*time.Second, "job A's apply to get past the lock", func() bool {
		r = f.job(jobA, homeA, "apply", "-auto-approve")
		return !strings.Contains(r.err, "locked by another operation")
	})
	if r.code != 0 {
		t.Fatalf("job A's apply after job B was killed\n%s", r)
	}
	if r := f.job(jobA, homeA, "plan", "-detailed-exitcode"); r.code != 0 {
		t.Fatalf("job A's plan after its apply is not empty\n%s", r)
	}
	if m := f.pgMeta(); m.Lineage != lineage {
		t.Fatalf("the lineage moved from %s to %s", lineage, m.Lineage)
	}
	live := byAddr(procsOf(f.name))
	for _, a := range addrs(cs) {
		if rec := f.record(a); rec == nil || rec.Status != state.StatusRunning || len(live[a]) != 1 || childOf(rec.Handle) != live[a][0].id {
			t.Errorf("%s: record %+v, live %+v", a, rec, live[a])
		}
	}
	// No job left a state file, or a key of its own, in its checkout.
	for _, dir := range []string{jobA, f.dir} {
		for _, name := range []string{f.name + ".state.db", "spec-hash-key"} {
			if _, err := os.Stat(filepath.Join(dir, ".flowctl", name)); err == nil {
				t.Errorf("%s was written in %s", name, dir)
			}
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestPGBackendPlanAppliedToAnotherWorkspaceNamesBoth: a plan saved
// against one workspace, applied where the pipeline's backend now names
// another, is refused naming both.
func TestPGBackendPlanAppliedToAnotherWorkspaceNamesBoth(t *testing.T) {
	f := newPGFixture(t)
	cs := []comp{{kind: "source", id: "a"}}
	f.writePipeline(cs)
	f.apply()
	f.must(0, "destroy", "-auto-approve") // the state stays, nothing runs
	f.must(0, "plan", "-out", "saved.plan")

	other := strings.Replace(string(must(os.ReadFile(f.path("pipeline.hcl")))), `schema_name = "e2e"`, `schema_name = "e2e"`+"\n    workspace   = \"other\"", 1)
	f.write("pipeline.hcl", other)
	f.apply() // a state of its own in workspace "other"
	f.must(0, "destroy", "-auto-approve")

	r := f.run("apply", "saved.plan")
	if r.code != 1 || !strings.Contains(r.err, fmt.Sprintf(`the plan was made against pg workspace %q (schema e2e), this is pg workspace "other" (schema e2e)`, f.name)) {
		t.Fatalf("a plan applied to another workspace: want a refusal naming both\n%s", r)
	}
}
