package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/procinfo"
	"github.com/flowctl/flowctl/internal/serve"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/testutil"
	"github.com/flowctl/flowctl/internal/testutil/k8stest"
)

// commandTimeout bounds one flowctl command: far above what any takes, so
// that a hang fails the test instead of stalling the run.
const commandTimeout = 90 * time.Second

// fixture is one pipeline in its own folder, with its own name.
type fixture struct {
	t       testing.TB
	flowctl string
	tc      string // the test component
	dir     string
	name    string
}

var fixtureSeq atomic.Int64

// newFixture builds the binaries and makes an empty folder for a pipeline
// named after the test. Its cleanup destroys the pipeline, kills whatever
// still carries its name, and fails the test if anything did.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	bins := testutil.BuildBinaries(t, testutil.WithFlowctl())
	f := &fixture{t: t, flowctl: bins.Flowctl, tc: bins.TestComponent, dir: t.TempDir(), name: pipelineName(t.Name())}
	t.Cleanup(f.cleanup)
	return f
}

// TestMain first kills what an earlier run of these tests left behind: a
// test process killed at its -timeout runs no cleanup, and the components
// of its pipelines would run on.
func TestMain(m *testing.M) {
	sweepAbandoned()
	os.Exit(k8stest.Main(m)) // m.Run, then stop the Kubernetes test cluster if a test started one
}

// ownPipeline matches the pipeline names pipelineName makes; the group is
// the pid of the test process that made it, in hex.
var ownPipeline = regexp.MustCompile(`^FLOWCTL_PIPELINE=e2e-.*-([0-9a-f]+)-[0-9]+$`)

// sweepAbandoned kills the components of pipelines named by a test process
// that no longer runs. (Their shims then record the exit and leave.)
func sweepAbandoned() {
	pids, _ := procinfo.PIDs()
	for _, pid := range pids {
		env, err := procinfo.Environ(pid)
		if err != nil || !slices.Contains(env, "FLOWCTL_MANAGED_BY=process-shim") {
			continue
		}
		for _, kv := range env {
			m := ownPipeline.FindStringSubmatch(kv)
			if m == nil {
				continue
			}
			owner, err := strconv.ParseInt(m[1], 16, 64)
			if exe, _ := os.Readlink("/proc/" + strconv.FormatInt(owner, 10) + "/exe"); err == nil && !strings.HasSuffix(exe, ".test") {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			break
		}
	}
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

// pipelineName is unique per test and per test process: the /proc scans
// must never see another test's components.
func pipelineName(test string) string {
	n := strings.Trim(nonName.ReplaceAllString(strings.ToLower(test), "-"), "-")
	suffix := fmt.Sprintf("-%x-%d", os.Getpid(), fixtureSeq.Add(1))
	if max := 63 - len("e2e-") - len(suffix); len(n) > max {
		n = n[len(n)-max:]
	}
	return "e2e-" + strings.Trim(n, "-") + suffix
}

func (f *fixture) path(name string) string { return filepath.Join(f.dir, name) }

func (f *fixture) statePath() string {
	return filepath.Join(f.dir, ".flowctl", f.name+".state.db")
}

func (f *fixture) runDir() string { return filepath.Join(f.dir, ".flowctl", "run") }

func (f *fixture) write(name, content string) {
	f.t.Helper()
	if err := os.WriteFile(f.path(name), []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// comp is one component of a generated pipeline; each runs the test
// component.
type comp struct {
	kind, id string
	inputs   []string // addresses
	env      map[string]string
	// health is the body of the health block; "" means `http = "/health"`,
	// "-" means no health block.
	health string
}

func (c comp) addr() string { return c.kind + "." + c.id }

func addrs(cs []comp) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.addr())
	}
	sort.Strings(out)
	return out
}

// hcl renders a pipeline of cs named f.name.
func (f *fixture) hcl(cs []comp) string {
	var b strings.Builder
	fmt.Fprintf(&b, "pipeline %q {\n  executor = \"process\"\n}\n", f.name)
	for _, c := range cs {
		fmt.Fprintf(&b, "\n%s %q {\n  command = [%q]\n", c.kind, c.id, f.tc)
		if len(c.inputs) > 0 {
			fmt.Fprintf(&b, "  inputs  = [%s]\n", strings.Join(c.inputs, ", "))
		}
		writeEnvBlock(&b, c.env)
		switch c.health {
		case "-":
		case "":
			b.WriteString("  health {\n    http = \"/health\"\n  }\n")
		default:
			fmt.Fprintf(&b, "  health {\n%s\n  }\n", c.health)
		}
		b.WriteString("}\n")
	}
	return b.String()
}

// writePipeline writes pipeline.hcl with the components cs.
func (f *fixture) writePipeline(cs []comp) { f.write("pipeline.hcl", f.hcl(cs)) }

// result is one finished flowctl command.
type result struct {
	args     []string
	out, err string
	code     int
	elapsed  time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("flowctl %s: exit %d after %v\n--- stdout\n%s--- stderr\n%s", strings.Join(r.args, " "), r.code, r.elapsed.Round(time.Millisecond), r.out, r.err)
}

// command prepares flowctl with args in dir: no terminal on stdin, no
// colour, the caller's environment otherwise.
func (f *fixture) command(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, f.flowctl, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// runIn runs flowctl in dir and returns how it ended.
func (f *fixture) runIn(dir string, args ...string) result {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := f.command(ctx, dir, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{args: args, out: out.String(), err: errb.String(), elapsed: time.Since(start)}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		f.t.Fatalf("run flowctl %v: %v", args, err)
	}
	if ctx.Err() != nil {
		f.t.Fatalf("flowctl %v did not finish within %v\n%s", args, commandTimeout, r)
	}
	return r
}

// run runs flowctl in the pipeline's folder.
func (f *fixture) run(args ...string) result {
	f.t.Helper()
	return f.runIn(f.dir, args...)
}

// must runs flowctl and fails the test unless it exits with code.
func (f *fixture) must(code int, args ...string) result {
	f.t.Helper()
	r := f.run(args...)
	if r.code != code {
		f.t.Fatalf("want exit %d\n%s", code, r)
	}
	return r
}

// planned is `plan -json` as the tests read it.
type planned struct {
	Pipeline string `json:"pipeline"`
	Lineage  string `json:"lineage"`
	Serial   uint64 `json:"serial"`
	Changes  []struct {
		Address  string          `json:"address"`
		Action   string          `json:"action"`
		Reason   string          `json:"reason"`
		SpecHash string          `json:"spec_hash"`
		ForcedBy []string        `json:"forced_by"`
		Handle   json.RawMessage `json:"handle"`
	} `json:"changes"`
}

// actions lists the changes that do something as "ACTION ADDRESS (REASON)",
// sorted.
func (p planned) actions() []string {
	var out []string
	for _, c := range p.Changes {
		if c.Action != "no-op" {
			out = append(out, fmt.Sprintf("%s %s (%s)", c.Action, c.Address, c.Reason))
		}
	}
	sort.Strings(out)
	return out
}

// plan runs `plan -json` with extra args and decodes it.
func (f *fixture) plan(args ...string) planned {
	f.t.Helper()
	r := f.must(0, append([]string{"plan", "-json"}, args...)...)
	var p planned
	if err := json.Unmarshal([]byte(r.out), &p); err != nil {
		f.t.Fatalf("decode plan -json: %v\n%s", err, r)
	}
	return p
}

// apply runs `apply -auto-approve` and requires success.
func (f *fixture) apply(args ...string) result {
	f.t.Helper()
	return f.must(0, append([]string{"apply", "-auto-approve"}, args...)...)
}

// records reads the state file's component records by address.
func (f *fixture) records() map[string]*state.Record {
	f.t.Helper()
	if _, err := os.Stat(f.statePath()); errors.Is(err, fs.ErrNotExist) {
		return map[string]*state.Record{} // plan and a refused apply create none
	}
	st, err := state.Open(f.statePath(), "")
	if err != nil && strings.Contains(err.Error(), "created but never initialised") {
		// An apply killed between bbolt's first pages and flowctl's first
		// transaction: the next command finishes the creation.
		return map[string]*state.Record{}
	}
	if err != nil {
		f.t.Fatalf("open state: %v", err)
	}
	out := map[string]*state.Record{}
	err = st.View(func(tx *state.Tx) error {
		recs, err := tx.Components()
		for _, r := range recs {
			out[r.Address] = r
		}
		return err
	})
	if err != nil {
		f.t.Fatalf("read state: %v", err)
	}
	return out
}

func (f *fixture) meta() state.Meta {
	f.t.Helper()
	st, err := state.Open(f.statePath(), "")
	if err != nil {
		f.t.Fatalf("open state: %v", err)
	}
	var m state.Meta
	if err := st.View(func(tx *state.Tx) error { m = tx.Meta(); return nil }); err != nil {
		f.t.Fatalf("read state: %v", err)
	}
	return m
}

// childOf is the component process a process-executor handle names.
func childOf(h json.RawMessage) procinfo.Identity {
	var hd struct {
		Child procinfo.Identity `json:"child"`
	}
	_ = json.Unmarshal(h, &hd)
	return hd.Child
}

// proc is a live component process of a pipeline, found in /proc.
type proc struct {
	id       procinfo.Identity
	addr     string
	lineage  string
	instance string
	specHash string
}

// procsOf scans /proc for the live components of pipeline: processes
// marked by the process executor and leaders of their process group (a
// component's own children inherit its environment but not its group).
func procsOf(pipeline string) []proc {
	pids, _ := procinfo.PIDs()
	var out []proc
	for _, pid := range pids {
		env, err := procinfo.Environ(pid)
		if err != nil || !slices.Contains(env, "FLOWCTL_PIPELINE="+pipeline) || !slices.Contains(env, "FLOWCTL_MANAGED_BY=process-shim") {
			continue
		}
		st, err := procinfo.ReadStat(pid)
		if err != nil || st.PGID != pid || st.State == 'Z' || st.State == 'X' {
			continue
		}
		p := proc{id: procinfo.Identity{PID: pid, StartTicks: st.StartTicks}}
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "FLOWCTL_COMPONENT_ADDRESS":
				p.addr = v
			case "FLOWCTL_LINEAGE":
				p.lineage = v
			case "FLOWCTL_INSTANCE_ID":
				p.instance = v
			case "FLOWCTL_SPEC_HASH":
				p.specHash = v
			}
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].addr < out[j].addr || out[i].addr == out[j].addr && out[i].id.PID < out[j].id.PID
	})
	return out
}

// byAddr groups procs by component address.
func byAddr(ps []proc) map[string][]proc {
	out := map[string][]proc{}
	for _, p := range ps {
		out[p.addr] = append(out[p.addr], p)
	}
	return out
}

// markedBy lists every live process whose environment has one of marks
// (components, their children, and shims, which carry their run record's
// path).
func markedBy(marks ...string) []int {
	pids, _ := procinfo.PIDs()
	var out []int
	for _, pid := range pids {
		if pid == os.Getpid() {
			continue
		}
		env, err := procinfo.Environ(pid)
		if err != nil {
			continue
		}
		for _, kv := range env {
			if slices.ContainsFunc(marks, func(m string) bool { return strings.HasPrefix(kv, m) }) {
				if id, err := procinfo.Of(pid); err == nil && procinfo.Alive(id) {
					out = append(out, pid)
				}
				break
			}
		}
	}
	return out
}

// killAll kills (SIGKILL) every process of the pipeline: components first,
// then the shims of this folder. It returns what it found.
func (f *fixture) killAll() []int {
	var found []int
	for _, marks := range [][]string{
		{"FLOWCTL_PIPELINE=" + f.name},
		{"FLOWCTL_SHIM_RECORD=" + f.dir + "/"},
	} {
		pids := markedBy(marks...)
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		found = append(found, pids...)
		deadline := time.Now().Add(5 * time.Second)
		for len(markedBy(marks...)) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	return found
}

// cleanup destroys the pipeline from its state file alone (the pipeline
// file may be gone or broken), then kills what is left; anything left
// fails the test, as flowctl should have stopped it.
func (f *fixture) cleanup() {
	if _, err := os.Stat(f.statePath()); err == nil {
		empty, err := os.MkdirTemp("", "e2e-cleanup-")
		if err == nil {
			r := f.runIn(empty, "destroy", "-auto-approve", "-lock-timeout", "10s", "--state", f.statePath())
			if r.code != 0 {
				f.t.Logf("cleanup: %s", r)
			}
			_ = os.RemoveAll(empty)
		}
	}
	if left := f.killAll(); len(left) > 0 {
		f.t.Errorf("cleanup: processes of pipeline %s were left running after destroy: %v", f.name, left)
	}
	if rec := f.serveRecord(); rec != nil && rec.Alive() {
		f.t.Errorf("cleanup: the control plane of pipeline %s (pid %d) was left running after destroy", f.name, rec.Process.PID)
		_ = procinfo.Signal(rec.Process, syscall.SIGKILL)
	}
}

// serveRecord is the control plane recorded in the fixture's state (nil
// when none or no state).
func (f *fixture) serveRecord() *serve.Record {
	if _, err := os.Stat(f.statePath()); err != nil {
		return nil
	}
	st, err := state.Open(f.statePath(), "")
	if err != nil {
		return nil
	}
	rec, _ := serve.ReadRecord(st)
	return rec
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// assertConverged checks the end state of a successful apply: plan sees
// nothing to do (-detailed-exitcode exits 0), state records exactly want,
// each running, and each component has exactly one live process, the one
// state records.
func (f *fixture) assertConverged(want []string) {
	f.t.Helper()
	if r := f.run("plan", "-detailed-exitcode"); r.code != 0 {
		f.t.Fatalf("plan after apply is not empty\n%s", r)
	}
	recs := f.records()
	var got []string
	for a := range recs {
		got = append(got, a)
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		f.t.Fatalf("state records %v, want %v", got, want)
	}
	live := byAddr(procsOf(f.name))
	for _, a := range want {
		rec := recs[a]
		if rec.Status != state.StatusRunning {
			f.t.Errorf("%s: status %s (%s), want running", a, rec.Status, rec.StatusReason)
		}
		ps := live[a]
		if len(ps) != 1 {
			f.t.Errorf("%s: %d live processes, want 1: %+v", a, len(ps), ps)
			continue
		}
		if id := childOf(rec.Handle); id != ps[0].id {
			f.t.Errorf("%s: state records %v, the live process is %v", a, id, ps[0].id)
		}
	}
	for a, ps := range live {
		if recs[a] == nil {
			f.t.Errorf("live processes of %s, which state does not record: %+v", a, ps)
		}
	}
}

// assertNoProcesses checks that nothing of the pipeline runs.
func (f *fixture) assertNoProcesses() {
	f.t.Helper()
	if ps := procsOf(f.name); len(ps) > 0 {
		f.t.Fatalf("processes of %s still running: %+v", f.name, ps)
	}
	if pids := markedBy("FLOWCTL_SHIM_RECORD=" + f.dir + "/"); len(pids) > 0 {
		f.t.Fatalf("shims of %s still running: %v", f.name, pids)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// writeEnvBlock writes a component's env attribute, keys sorted, when it
// has any.
func writeEnvBlock(b *strings.Builder, env map[string]string) {
	if len(env) == 0 {
		return
	}
	b.WriteString("  env = {\n")
	for _, k := range slices.Sorted(maps.Keys(env)) {
		fmt.Fprintf(b, "    %s = %q\n", k, env[k])
	}
	b.WriteString("  }\n")
}
