package e2e

// End-to-end tests of the docker executor: the flowctl binary against the
// real Docker engine, with images built locally FROM scratch from the test
// component (dockertest); nothing is ever pulled. Without an engine these
// tests skip, and fail in CI (CI=true).

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/testutil/dockertest"
)

// dockerFixture is a fixture whose pipeline runs on Docker.
type dockerFixture struct {
	*fixture
	cli   *client.Client
	image string
}

// newDockerFixture connects to the engine and builds the test image. Its
// cleanup runs after the fixture's (which destroys the pipeline): any
// container or network of the pipeline left then fails the test.
func newDockerFixture(t *testing.T) *dockerFixture {
	t.Helper()
	cli := dockertest.Engine(t)
	df := &dockerFixture{cli: cli, image: dockertest.TestImage(t, cli, dockertest.ImageOptions{})}
	t.Cleanup(func() {
		if df.fixture == nil {
			return
		}
		if left := dockertest.RemovePipeline(cli, df.name); len(left) > 0 {
			t.Errorf("cleanup: the destroy left %v of pipeline %s", left, df.name)
		}
	})
	df.fixture = newFixture(t)
	return df
}

// dcomp is one component of a generated docker pipeline.
type dcomp struct {
	kind, id string
	// process runs the test component as a local process instead.
	process bool
	image   string // "" is the test image
	inputs  []string
	env     map[string]string
	// health is the body of the health block; "" means `http = "/health"`,
	// "-" means no health block.
	health string
	// extra is more HCL for the block, as is.
	extra string
}

func (c dcomp) addr() string { return c.kind + "." + c.id }

func daddrs(cs []dcomp) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.addr())
	}
	sort.Strings(out)
	return out
}

// writeDocker writes pipeline.hcl: executor docker, the components cs.
func (df *dockerFixture) writeDocker(cs []dcomp) {
	var b strings.Builder
	fmt.Fprintf(&b, "pipeline %q {\n  executor = \"docker\"\n}\n", df.name)
	for _, c := range cs {
		fmt.Fprintf(&b, "\n%s %q {\n", c.kind, c.id)
		if c.process {
			fmt.Fprintf(&b, "  executor = \"process\"\n  command  = [%q]\n", df.tc)
		} else {
			img := c.image
			if img == "" {
				img = df.image
			}
			fmt.Fprintf(&b, "  image = %q\n  stop_timeout = \"2s\"\n", img)
		}
		if len(c.inputs) > 0 {
			fmt.Fprintf(&b, "  inputs = [%s]\n", strings.Join(c.inputs, ", "))
		}
		writeEnvBlock(&b, c.env)
		switch c.health {
		case "-":
		case "":
			b.WriteString("  health {\n    http = \"/health\"\n    interval = \"1s\"\n  }\n")
		default:
			fmt.Fprintf(&b, "  health {\n%s\n  }\n", c.health)
		}
		b.WriteString(c.extra)
		b.WriteString("}\n")
	}
	df.write("pipeline.hcl", b.String())
}

// box is a live container of the pipeline.
type box struct {
	id, addr, hash, lineage, state string
}

// boxes lists the containers of the pipeline, by address.
func (df *dockerFixture) boxes() map[string][]box {
	df.t.Helper()
	out := map[string][]box{}
	for _, c := range dockertest.Containers(df.t, df.cli, df.name) {
		b := box{id: c.ID, addr: c.Labels[dockertest.LabelComponent], hash: c.Labels[dockertest.LabelSpecHash],
			lineage: c.Labels[dockertest.LabelLineage], state: string(c.State)}
		out[b.addr] = append(out[b.addr], b)
	}
	return out
}

// containerOf is the container ID a docker handle names.
func containerOf(h json.RawMessage) string {
	var hd struct {
		ID string `json:"container_id"`
	}
	_ = json.Unmarshal(h, &hd)
	return hd.ID
}

func (df *dockerFixture) network() string { return "flowctl-" + df.name }

// assertDockerConverged checks the end of a successful apply: plan has
// nothing to do, state records exactly want, each running, and each
// component has exactly one container, running, the one state records.
func (df *dockerFixture) assertDockerConverged(want []string) {
	df.t.Helper()
	if r := df.run("plan", "-detailed-exitcode"); r.code != 0 {
		df.t.Fatalf("plan after apply is not empty\n%s", r)
	}
	recs := df.records()
	var got []string
	for a := range recs {
		got = append(got, a)
	}
	sort.Strings(got)
	if !slices.Equal(got, want) {
		df.t.Fatalf("state records %v, want %v", got, want)
	}
	live := df.boxes()
	lineage := df.meta().Lineage
	for a, bs := range live {
		// Another state's containers are foreign: never ours to judge.
		live[a] = slices.DeleteFunc(bs, func(b box) bool { return b.lineage != lineage })
		if len(live[a]) == 0 {
			delete(live, a)
		}
	}
	for _, a := range want {
		rec := recs[a]
		if rec.Status != state.StatusRunning {
			df.t.Errorf("%s: status %s (%s), want running", a, rec.Status, rec.StatusReason)
		}
		if rec.Provider != "docker" {
			continue
		}
		bs := live[a]
		if len(bs) != 1 || bs[0].state != "running" {
			df.t.Errorf("%s: containers %+v, want one running", a, bs)
			continue
		}
		if id := containerOf(rec.Handle); id != bs[0].id {
			df.t.Errorf("%s: state records container %s, the live one is %s", a, id, bs[0].id)
		}
	}
	for a, bs := range live {
		if recs[a] == nil {
			df.t.Errorf("containers of %s, which state does not record: %+v", a, bs)
		}
	}
}

// assertNothingLeft checks that destroy removed every container and the
// network.
func (df *dockerFixture) assertNothingLeft() {
	df.t.Helper()
	if bs := df.boxes(); len(bs) > 0 {
		df.t.Errorf("containers left: %+v", bs)
	}
	dockertest.AssertNoNetwork(df.t, df.cli, df.network())
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := execOutput("docker", args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

func TestDockerLifecyclePlanApplyNoOpReplaceDestroy(t *testing.T) {
	t.Parallel()
	df := newDockerFixture(t)
	cs := []dcomp{
		{kind: "source", id: "src", env: map[string]string{"PORT": "9000"}},
		{kind: "processor", id: "mid", inputs: []string{"source.src"}, env: map[string]string{"TC_DIAL": "${source.src.address}", "MODE": "one"}},
	}
	df.writeDocker(cs)
	if got, want := df.plan().actions(), []string{"create processor.mid (not_in_state)", "create source.src (not_in_state)"}; !slices.Equal(got, want) {
		t.Fatalf("first plan: %v, want %v", got, want)
	}
	r := df.apply()
	if !strings.Contains(r.out, "Apply complete! Components: 2 added, 0 changed, 0 destroyed.") {
		t.Fatalf("apply summary missing\n%s", r)
	}
	if src, mid := strings.Index(r.out, "source.src: Creation complete"), strings.Index(r.out, "processor.mid: Creating..."); src < 0 || mid < src {
		t.Fatalf("not in dependency order\n%s", r)
	}
	df.assertDockerConverged(daddrs(cs))
	if !dockertest.NetworkExists(t, df.cli, df.network()) {
		t.Fatalf("no network %s", df.network())
	}
	// The processor reached its upstream by container name.
	logs := docker(t, "logs", df.name+"-mid")
	if want := "reached " + df.name + "-src:9000: src"; !strings.Contains(logs, want) {
		t.Errorf("processor.mid's log lacks %q:\n%s", want, logs)
	}
	if r := df.run("plan"); !strings.Contains(r.out, "No changes.") {
		t.Fatalf("plan after apply\n%s", r)
	}

	// An env change replaces that component only.
	before := df.boxes()
	cs[1].env["MODE"] = "two"
	df.writeDocker(cs)
	if got, want := df.plan().actions(), []string{"replace processor.mid (spec_changed)"}; !slices.Equal(got, want) {
		t.Fatalf("plan after env edit: %v, want %v", got, want)
	}
	df.apply()
	df.assertDockerConverged(daddrs(cs))
	after := df.boxes()
	if after["processor.mid"][0].id == before["processor.mid"][0].id || after["source.src"][0].id != before["source.src"][0].id {
		t.Errorf("env edit: before %+v, after %+v", before, after)
	}

	// An image change replaces it too.
	other := dockertest.TestImage(t, df.cli, dockertest.ImageOptions{Healthcheck: true})
	cs[0].image = other
	df.writeDocker(cs)
	p := df.plan()
	if got, want := p.actions(), []string{"replace source.src (spec_changed)"}; !slices.Equal(got, want) {
		t.Fatalf("plan after image edit: %v, want %v", got, want)
	}
	for _, c := range p.Changes {
		if c.Address == "source.src" && !slices.Equal(c.ForcedBy, []string{"image"}) {
			t.Errorf("forced by %v, want [image]", c.ForcedBy)
		}
	}
	df.apply()
	df.assertDockerConverged(daddrs(cs))
	if img := docker(t, "inspect", "-f", "{{.Config.Image}}", df.name+"-src"); img != other {
		t.Errorf("source.src runs %s, want %s", img, other)
	}

	r = df.must(0, "destroy", "-auto-approve")
	if !strings.Contains(r.out, "Destroy complete! Components: 2 destroyed.") {
		t.Fatalf("destroy\n%s", r)
	}
	df.assertNothingLeft()
	if recs := df.records(); len(recs) != 0 {
		t.Errorf("state still records %v", recs)
	}
}

// neverRestart is the restart block of a component the restart watcher
// must leave as it ends.
const neverRestart = "  restart {\n    policy = \"never\"\n  }\n"

func TestDockerDriftIsPlannedAndRepaired(t *testing.T) {
	t.Parallel()
	df := newDockerFixture(t)
	cs := []dcomp{
		// Left as they end (no restart watcher repairs behind the plan).
		{kind: "source", id: "gone", health: "-", extra: neverRestart},
		{kind: "source", id: "stopped", health: "-", extra: neverRestart},
		{kind: "source", id: "relabelled", health: "-", extra: neverRestart},
	}
	df.writeDocker(cs)
	df.apply()
	df.assertDockerConverged(daddrs(cs))
	lineage := df.meta().Lineage

	docker(t, "rm", "-f", df.name+"-gone")
	docker(t, "stop", "-t", "1", df.name+"-stopped")
	// A container of the pipeline that state does not know: an orphan.
	docker(t, "run", "-d", "--name", df.name+"-stray", "--network", df.network(),
		"--label", "io.flowctl.pipeline="+df.name, "--label", "io.flowctl.component=source.stray",
		"--label", "io.flowctl.lineage="+lineage, "--label", "io.flowctl.spec-hash=feed", df.image)
	// One of another state of the same pipeline: foreign, never touched.
	foreign := docker(t, "run", "-d", "--name", df.name+"-foreign",
		"--label", "io.flowctl.pipeline="+df.name, "--label", "io.flowctl.component=source.foreign",
		"--label", "io.flowctl.lineage=another-lineage", df.image)
	t.Cleanup(func() { _, _ = execOutput("docker", "rm", "-f", foreign) })
	// The recorded container of source.relabelled carries another spec hash
	// than state records. Docker labels cannot change, so: a container made
	// by hand with another hash, which state names (as after restoring a
	// state backup taken when it ran).
	docker(t, "rm", "-f", df.name+"-relabelled")
	hand := docker(t, "run", "-d", "--name", df.name+"-relabelled", "--network", df.network(),
		"--label", "io.flowctl.pipeline="+df.name, "--label", "io.flowctl.component=source.relabelled",
		"--label", "io.flowctl.lineage="+lineage, "--label", "io.flowctl.spec-hash=0123456789abcdef", df.image)
	df.pointStateAt("source.relabelled", hand)

	p := df.plan()
	want := []string{
		"create source.gone (deleted_outside)",
		"delete-orphan source.stray (orphan)",
		"replace source.relabelled (changed_outside)",
		"restart source.stopped (exited)",
	}
	if got := p.actions(); !slices.Equal(got, want) {
		t.Fatalf("plan after drift: %v, want %v", got, want)
	}
	r := df.run("plan")
	for _, s := range []string{"source.gone", "deleted outside flowctl", "another-lineage"} {
		if !strings.Contains(r.out, s) {
			t.Errorf("human plan lacks %q\n%s", s, r)
		}
	}
	df.apply()
	df.assertDockerConverged(daddrs(cs))
	if st := docker(t, "inspect", "-f", "{{.State.Status}}", foreign); st != "running" {
		t.Errorf("the foreign container is %s", st)
	}
	df.must(0, "destroy", "-auto-approve")
	if bs := df.boxes(); len(bs) != 1 || len(bs["source.foreign"]) != 1 {
		t.Errorf("after destroy: %+v, want only the foreign container", bs)
	}
	// The foreign container is not on the network: it goes.
	dockertest.AssertNoNetwork(t, df.cli, df.network())
	docker(t, "rm", "-f", foreign)
}

// pointStateAt makes state record container id as addr's object.
func (df *dockerFixture) pointStateAt(addr, id string) {
	df.t.Helper()
	st, err := state.Open(df.statePath(), "")
	if err != nil {
		df.t.Fatal(err)
	}
	err = st.Update(func(tx *state.Tx) error {
		rec, err := tx.Component(addr)
		if err != nil || rec == nil {
			return fmt.Errorf("%s not in state (%v)", addr, err)
		}
		var h map[string]any
		if err := json.Unmarshal(rec.Handle, &h); err != nil {
			return err
		}
		h["container_id"] = id
		rec.Handle, _ = json.Marshal(h)
		return tx.PutComponent(rec)
	})
	if err != nil {
		df.t.Fatal(err)
	}
}

func freeHostPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestDockerAndProcessComponentsApplyInOnePlan(t *testing.T) {
	t.Parallel()
	df := newDockerFixture(t)
	hostPort := freeHostPort(t)
	cs := []dcomp{
		{kind: "source", id: "up", env: map[string]string{"PORT": "9000"},
			extra: fmt.Sprintf("  port {\n    container_port = 9000\n    host_port = %d\n  }\n", hostPort)},
		// A container reaches another by ${source.up.address}.
		{kind: "processor", id: "mid", inputs: []string{"source.up"}, env: map[string]string{"TC_DIAL": "${source.up.address}"}},
		// A local process reaches the container through its published port.
		{kind: "sink", id: "local", process: true, inputs: []string{"processor.mid"},
			env: map[string]string{"TC_DIAL": fmt.Sprintf("127.0.0.1:%d", hostPort)}},
	}
	df.writeDocker(cs)
	r := df.apply()
	order := []string{"source.up: Creation complete", "processor.mid: Creating...", "processor.mid: Creation complete", "sink.local: Creating..."}
	last := -1
	for _, s := range order {
		i := strings.Index(r.out, s)
		if i < last {
			t.Fatalf("%q out of dependency order\n%s", s, r)
		}
		last = i
	}
	df.assertDockerConverged(daddrs(cs))
	recs := df.records()
	if recs["sink.local"].Provider != "process" || recs["source.up"].Provider != "docker" {
		t.Errorf("providers: %s, %s", recs["sink.local"].Provider, recs["source.up"].Provider)
	}
	logs, err := os.ReadFile(filepath.Join(df.dir, ".flowctl", "logs", "sink.local.log"))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("reached 127.0.0.1:%d: up", hostPort); !strings.Contains(string(logs), want) {
		t.Errorf("sink.local's log lacks %q\n%s", want, logs)
	}
	if out := docker(t, "logs", df.name+"-mid"); !strings.Contains(out, "reached "+df.name+"-up:9000: up") {
		t.Errorf("processor.mid did not reach source.up by name:\n%s", out)
	}
	df.must(0, "destroy", "-auto-approve")
	df.assertNothingLeft()
	df.assertNoProcesses()
}

func TestDockerImageHealthcheckGatesReadiness(t *testing.T) {
	t.Parallel()
	df := newDockerFixture(t)
	checked := dockertest.TestImage(t, df.cli, dockertest.ImageOptions{Healthcheck: true})
	// No health block: readiness is the image's HEALTHCHECK turning healthy,
	// 1.5s after the start here.
	cs := []dcomp{
		{kind: "source", id: "slow", image: checked, health: "-", env: map[string]string{"TC_START_DELAY": "1500ms"}},
		{kind: "sink", id: "after", inputs: []string{"source.slow"}, health: "-"},
	}
	df.writeDocker(cs)
	r := df.apply()
	i := strings.Index(r.out, "source.slow: Creation complete after ")
	if i < 0 {
		t.Fatalf("no completion line\n%s", r)
	}
	var secs float64
	if _, err := fmt.Sscanf(strings.TrimSuffix(strings.Fields(r.out[i+len("source.slow: Creation complete after "):])[0], "s"), "%g", &secs); err != nil || secs < 1.5 {
		t.Errorf("source.slow was ready after %gs (%v), before its health check could pass\n%s", secs, err, r)
	}
	if strings.Index(r.out, "sink.after: Creating...") < i {
		t.Errorf("sink.after started before source.slow was healthy\n%s", r)
	}
	df.assertDockerConverged(daddrs(cs))

	// One that never becomes healthy fails the apply, and what depends on
	// it is not started.
	cs[0].env = map[string]string{"TC_NEVER_HEALTHY": "1"}
	df.writeDocker(cs)
	r = df.must(1, "apply", "-auto-approve")
	if !strings.Contains(r.err, "source.slow: replace failed: not ready: its own health check reports it unhealthy") {
		t.Errorf("apply of a never-healthy image\n%s", r)
	}
	df.must(0, "destroy", "-auto-approve")
	df.assertNothingLeft()
}

func TestDockerEngineUnreachableFailsBeforeTouchingState(t *testing.T) {
	t.Parallel()
	df := newDockerFixture(t)
	cs := []dcomp{{kind: "source", id: "a", health: "-"}}
	df.writeDocker(cs)
	df.apply()

	snapshot := func() string {
		st, err := state.Open(df.statePath(), "")
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
	cs[0].env = map[string]string{"CHANGED": "1"}
	df.writeDocker(cs)
	for _, args := range [][]string{{"plan"}, {"apply", "-auto-approve"}, {"destroy", "-auto-approve"}} {
		r := df.runWithEnv([]string{"DOCKER_HOST=unix:///nonexistent.sock"}, args...)
		if r.code != 1 || !strings.Contains(r.err, "cannot reach the Docker engine at unix:///nonexistent.sock (from DOCKER_HOST)") {
			t.Errorf("want exit 1 and an error naming the socket\n%s", r)
		}
	}
	if after := snapshot(); after != before {
		t.Errorf("state changed\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// A pipeline of process components needs no engine.
	other := t.TempDir()
	if err := os.WriteFile(other+"/pipeline.hcl", []byte(fmt.Sprintf("pipeline \"p%d\" {}\nsource \"p\" {\n  command = [%q]\n}\n", os.Getpid(), df.tc)), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := df.runInWithEnv(other, []string{"DOCKER_HOST=unix:///nonexistent.sock"}, "plan"); r.code != 0 {
		t.Errorf("a process-only plan needs the Docker engine\n%s", r)
	}
	df.must(0, "destroy", "-auto-approve")
	df.assertNothingLeft()
}

// runWithEnv runs flowctl in the pipeline's folder with extra environment.
func (df *dockerFixture) runWithEnv(env []string, args ...string) result {
	df.t.Helper()
	return df.runInWithEnv(df.dir, env, args...)
}

func (df *dockerFixture) runInWithEnv(dir string, env []string, args ...string) result {
	df.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := df.command(ctx, dir, args...)
	cmd.Env = append(cmd.Env, env...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{args: args, out: out.String(), err: errb.String(), elapsed: time.Since(start)}
	if ee, ok := err.(interface{ ExitCode() int }); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		df.t.Fatalf("run flowctl %v: %v", args, err)
	}
	return r
}

// --- kill -9 ---

// dockerCrashDAG: two sources, a processor on both, each ready ~200ms
// after it starts; the processor takes 1s to stop.
func dockerCrashDAG() []dcomp {
	return []dcomp{
		{kind: "source", id: "s1", env: map[string]string{"TC_START_DELAY": "200ms"}},
		{kind: "source", id: "s2", env: map[string]string{"TC_START_DELAY": "200ms", "VERSION": "1"}},
		{kind: "processor", id: "p1", inputs: []string{"source.s1", "source.s2"}, env: map[string]string{"TC_START_DELAY": "200ms", "TC_STOP_DELAY": "1s"}},
	}
}

// dockerKillPoint is one moment at which the CLI is killed, told by the
// pipeline's containers.
type dockerKillPoint struct {
	name    string
	op      []string
	prepare func(df *dockerFixture, cs []dcomp) []dcomp
	// when reports, given the containers before op and now, whether to
	// kill now.
	when  func(before, now map[string][]box) bool
	delay time.Duration
}

func countBoxes(bs map[string][]box, pred func(box) bool) int {
	n := 0
	for _, list := range bs {
		for _, b := range list {
			if pred(b) {
				n++
			}
		}
	}
	return n
}

func created(k int) func(_, now map[string][]box) bool {
	return func(_, now map[string][]box) bool { return countBoxes(now, func(box) bool { return true }) >= k }
}

func running(k int) func(_, now map[string][]box) bool {
	return func(_, now map[string][]box) bool {
		return countBoxes(now, func(b box) bool { return b.state == "running" }) >= k
	}
}

func atMostBoxes(k int) func(_, now map[string][]box) bool {
	return func(_, now map[string][]box) bool { return countBoxes(now, func(box) bool { return true }) <= k }
}

// newBoxes holds once k containers exist that did not before.
func newBoxes(k int) func(before, now map[string][]box) bool {
	return func(before, now map[string][]box) bool {
		old := map[string]bool{}
		for _, list := range before {
			for _, b := range list {
				old[b.id] = true
			}
		}
		return countBoxes(now, func(b box) bool { return !old[b.id] }) >= k
	}
}

func TestDockerKillDashNineMidApplyNeverDuplicates(t *testing.T) {
	t.Parallel()
	applied := func(df *dockerFixture, cs []dcomp) []dcomp {
		df.writeDocker(cs)
		df.apply()
		return cs
	}
	edited := func(df *dockerFixture, cs []dcomp) []dcomp {
		applied(df, cs)
		cs[1].env["VERSION"] = "2" // source.s2
		// A readiness wait long enough to be killed in whatever the
		// engine's speed (a quiet engine starts a container in 0.2 s).
		cs[1].env["TC_START_DELAY"] = "3s"
		df.writeDocker(cs)
		return cs
	}
	apply := []string{"apply", "-auto-approve"}
	destroy := []string{"destroy", "-auto-approve"}
	points := []dockerKillPoint{
		{name: "apply/before-any-container", op: apply, when: func(_, _ map[string][]box) bool { return true }, delay: 20 * time.Millisecond},
		{name: "apply/after-create-1", op: apply, when: created(1)},
		{name: "apply/after-create-2", op: apply, when: created(2)},
		{name: "apply/after-create-3", op: apply, when: created(3)},
		{name: "apply/running-1", op: apply, when: running(1)},
		{name: "apply/readiness-wait-2", op: apply, when: running(2), delay: 100 * time.Millisecond},
		{name: "apply/running-3", op: apply, when: running(3)},
		{name: "replace/after-old-removed", op: apply, prepare: edited, when: atMostBoxes(2)},
		{name: "replace/after-new-created", op: apply, prepare: edited, when: newBoxes(1)},
		{name: "replace/readiness-wait", op: apply, prepare: edited, when: newBoxes(1), delay: 600 * time.Millisecond},
		{name: "destroy/during-stop-grace", op: destroy, prepare: applied, when: func(_, _ map[string][]box) bool { return true }, delay: 300 * time.Millisecond},
		{name: "destroy/after-remove-1", op: destroy, prepare: applied, when: atMostBoxes(2)},
		{name: "destroy/after-remove-2", op: destroy, prepare: applied, when: atMostBoxes(1)},
	}
	// The engine serialises much of its work: a few at a time is as fast.
	sem := make(chan struct{}, 3)
	var mu sync.Mutex
	for _, kp := range points {
		t.Run(kp.name, func(t *testing.T) {
			t.Parallel()
			sem <- struct{}{}
			defer func() { <-sem }()
			df := newDockerFixture(t)
			cs := dockerCrashDAG()
			if kp.prepare != nil {
				cs = kp.prepare(df, cs)
			} else {
				df.writeDocker(cs)
			}
			df.killDockerDuring(kp)
			df.settle()

			p := df.plan()
			desired := map[string]string{}
			for _, c := range p.Changes {
				if c.SpecHash != "" {
					desired[c.Address] = c.SpecHash
				}
			}
			got := p.actions()
			want, recordedRunning := df.expectedDockerRecovery(desired)
			if norm := normaliseDocker(got, recordedRunning); !slices.Equal(norm, want) {
				t.Fatalf("plan after the kill proposes\n  %s\nwant\n  %s\ncontainers: %+v", strings.Join(got, "\n  "), strings.Join(want, "\n  "), df.boxes())
			}
			mu.Lock()
			t.Logf("plan after the kill: %v", got)
			mu.Unlock()
			for _, a := range got {
				if !allowedAfterCrash(a, kp.prepare != nil) {
					t.Errorf("plan after a crash proposes %q", a)
				}
			}
			df.apply()
			df.assertDockerConverged(daddrs(cs))
		})
	}
}

// killDockerDuring runs kp.op and kills it with SIGKILL at kp's moment.
func (df *dockerFixture) killDockerDuring(kp dockerKillPoint) {
	df.t.Helper()
	before := df.boxes()
	cmd := df.command(df.t.Context(), df.dir, kp.op...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		df.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for !kp.when(before, df.boxes()) {
		select {
		case err := <-done:
			df.t.Fatalf("%v finished (%v) before the kill point\n%s", kp.op, err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			df.t.Fatalf("kill point never reached\n%s", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(kp.delay)
	_ = cmd.Process.Kill()
	if err := <-done; err == nil {
		df.t.Fatalf("%v finished before the kill\n%s", kp.op, out.String())
	}
	df.t.Logf("killed %v at %s; its output:\n%s", kp.op, kp.name, out.String())
}

// settle waits until what the killed command had asked of the engine is
// done: the pipeline's containers stay the same, none in transition, for
// a while.
func (df *dockerFixture) settle() {
	df.t.Helper()
	key := func() string {
		var parts []string
		for _, list := range df.boxes() {
			for _, b := range list {
				parts = append(parts, b.id+"="+b.state)
			}
		}
		sort.Strings(parts)
		return strings.Join(parts, ",")
	}
	last, since := key(), time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for time.Since(since) < 3*time.Second {
		if time.Now().After(deadline) {
			df.t.Fatalf("containers never settled: %s", last)
		}
		time.Sleep(100 * time.Millisecond)
		k := key()
		if k != last || strings.Contains(k, "=removing") || strings.Contains(k, "=restarting") {
			last, since = k, time.Now()
		}
	}
}

// expectedDockerRecovery is what a plan must propose given state, the live
// containers and the desired spec hashes (see expectedRecovery, its
// process twin): nothing for a component recorded as running whose
// recorded container runs with the desired spec; adopt for one recorded as
// still starting whose container runs, or for an unrecorded running
// container with the desired spec; replace for a recorded running
// container with another spec; a start for a component with no running
// container; delete-orphan for every other container of the pipeline. A
// recorded container that has exited or was never started is restarted
// ("start"); any other container that is not running is an orphan.
func (df *dockerFixture) expectedDockerRecovery(desired map[string]string) (want []string, recordedRunning map[string]bool) {
	recs := df.records()
	live := df.boxes()
	var out []string
	recordedRunning = map[string]bool{}
	for a, hash := range desired {
		rec := recs[a]
		bs := live[a]
		kept := -1
		if rec != nil {
			kept = slices.IndexFunc(bs, func(b box) bool { return b.id == containerOf(rec.Handle) })
		}
		keptRunning := kept >= 0 && bs[kept].state == "running"
		recordedRunning[a] = keptRunning
		adoptable := slices.IndexFunc(bs, func(b box) bool {
			return b.hash == hash && b.state == "running" && (rec == nil || b.id != containerOf(rec.Handle))
		})
		switch {
		case keptRunning && (rec.SpecHash != hash || rec.Status == state.StatusFailed):
			out = append(out, "replace "+a)
		case keptRunning && rec.Status == state.StatusRunning:
		case keptRunning && rec.Status == state.StatusCreating:
			out = append(out, "adopt "+a)
		case keptRunning:
			df.t.Fatalf("%s: unexpected status %s", a, rec.Status)
		case kept >= 0:
			// Recorded, not running: restarted (or replaced) in place.
			out = append(out, "start "+a)
		case adoptable >= 0:
			kept = adoptable
			out = append(out, "adopt "+a)
		default:
			out = append(out, "start "+a)
		}
		for i := range bs {
			if i != kept {
				out = append(out, "delete-orphan "+a)
			}
		}
	}
	for a, bs := range live {
		if _, ok := desired[a]; !ok {
			for range bs {
				out = append(out, "delete-orphan "+a)
			}
		}
	}
	sort.Strings(out)
	return out, recordedRunning
}

// normaliseDocker writes creates, restarts, and replaces of a recorded
// container that does not run, as "start", and drops reasons.
func normaliseDocker(actions []string, recordedRunning map[string]bool) []string {
	var out []string
	for _, a := range actions {
		f := strings.Fields(a)
		switch {
		case f[0] == "create", f[0] == "restart", f[0] == "replace" && !recordedRunning[f[1]]:
			f[0] = "start"
		}
		out = append(out, f[0]+" "+f[1])
	}
	sort.Strings(out)
	return out
}

// execOutput runs a command and returns its combined output.
func execOutput(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	b, err := cmd.CombinedOutput()
	return string(b), err
}

func TestDockerComponentRegistersThroughTheHostGateway(t *testing.T) {
	t.Parallel()
	df := newDockerFixture(t)
	sdkImage := dockertest.TestImage(t, df.cli, dockertest.ImageOptions{SDK: true})
	cs := []dcomp{{kind: "source", id: "reg", image: sdkImage, health: "-", extra: "  register = true\n"}}
	df.writeDocker(cs)
	df.apply()
	df.assertDockerConverged(daddrs(cs))
	st, err := state.Open(df.statePath(), "")
	if err != nil {
		t.Fatal(err)
	}
	regs, err := controlplane.ReadRegistrations(st, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(regs) != 1 || regs[0].Component != "source.reg" || regs[0].AttributedBy != controlplane.ByToken || !regs[0].Healthy {
		t.Fatalf("registrations: %+v", regs)
	}
	df.must(0, "destroy", "-auto-approve")
	df.assertNothingLeft()
}
