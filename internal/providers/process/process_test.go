//go:build linux

package process

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/apply"
	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/health"
	"github.com/flowctl/flowctl/internal/procinfo"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/process/shim"
	"github.com/flowctl/flowctl/internal/testutil"
	"github.com/flowctl/flowctl/pkg/contract"
)

func TestMain(m *testing.M) {
	// The test binary doubles as the shim and as a short-lived "CLI" that
	// starts a component and exits.
	switch {
	case os.Getenv("FLOWCTL_TEST_SHIM") == "1":
		os.Exit(shim.Main(os.Args[1:]))
	case os.Getenv("FLOWCTL_TEST_STARTER") == "1":
		os.Exit(starterMain())
	}
	os.Exit(m.Run())
}

// starterMain starts the component described by FLOWCTL_TEST_STARTER_SPEC
// in FLOWCTL_TEST_STARTER_DIR, prints the handle and exits.
func starterMain() int {
	var spec providers.ComponentSpec
	if err := json.Unmarshal([]byte(os.Getenv("FLOWCTL_TEST_STARTER_SPEC")), &spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	p := New(shimOptions(os.Getenv("FLOWCTL_TEST_STARTER_DIR")))
	h, err := p.Start(context.Background(), spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(string(h))
	return 0
}

func shimOptions(dir string) Options {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	// GORACE: a race-enabled binary otherwise sleeps 1 s when it exits.
	return Options{Dir: dir, ShimCommand: []string{exe}, ShimEnv: []string{"FLOWCTL_TEST_SHIM=1", "GORACE=atexit_sleep_ms=0"}}
}

type fixture struct {
	t        *testing.T
	p        *Provider
	dir      string
	pipeline string
	bin      string
}

// setup makes a provider over a fresh state folder, with a pipeline name
// of its own, and checks at the end that no process of that pipeline (nor
// any shim of that folder) is left.
func setup(t *testing.T, tweak ...func(*Options)) *fixture {
	t.Helper()
	bins := testutil.BuildBinaries(t)
	dir := t.TempDir()
	opts := shimOptions(dir)
	for _, f := range tweak {
		f(&opts)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	f := &fixture{t: t, p: New(opts), dir: dir, pipeline: "test-" + hex.EncodeToString(rnd[:]), bin: bins.TestComponent}
	t.Cleanup(func() { assertNothingLeft(t, f.pipeline, dir) })
	return f
}

// leftovers lists live processes carrying the pipeline marker, or shims
// keeping a record under dir.
func leftovers(pipeline, dir string) []string {
	var out []string
	pids, _ := procinfo.PIDs()
	for _, pid := range pids {
		env, err := procinfo.Environ(pid)
		if err != nil {
			continue
		}
		id, err := procinfo.Of(pid)
		if err != nil || !procinfo.Alive(id) {
			continue
		}
		for _, kv := range env {
			if kv == contract.EnvPipeline+"="+pipeline || strings.HasPrefix(kv, EnvShimRecord+"="+dir+"/") {
				cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				out = append(out, fmt.Sprintf("pid %d: %s", pid, strings.ReplaceAll(string(cmd), "\x00", " ")))
				break
			}
		}
	}
	return out
}

func assertNothingLeft(t *testing.T, pipeline, dir string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		left := leftovers(pipeline, dir)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("processes left behind:\n%s", strings.Join(left, "\n"))
			for _, l := range left {
				var pid int
				fmt.Sscanf(l, "pid %d:", &pid)
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// spec describes a test component; env adds TC_* knobs. It injects what
// the engine injects.
func (f *fixture) spec(id string, env map[string]string) providers.ComponentSpec {
	f.t.Helper()
	hp, err := apply.FreePort()
	if err != nil {
		f.t.Fatal(err)
	}
	c := &config.Component{Kind: config.KindSource, ID: id, Command: []string{f.bin}}
	s := providers.ComponentSpec{
		Pipeline: f.pipeline, Lineage: "lineage-1", InstanceID: "inst-" + id, SpecHash: "hash-" + id,
		Component: c, WorkDir: f.dir, Ports: map[string]int{contract.EnvHealthPort: hp},
		Env: map[string]string{
			contract.EnvHealthPort:       strconv.Itoa(hp),
			contract.EnvPipeline:         f.pipeline,
			contract.EnvLineage:          "lineage-1",
			contract.EnvInstanceID:       "inst-" + id,
			contract.EnvSpecHash:         "hash-" + id,
			contract.EnvComponentAddress: c.Address(),
		},
	}
	for k, v := range env {
		s.Env[k] = v
	}
	return s
}

func (f *fixture) start(s providers.ComponentSpec) providers.Handle {
	f.t.Helper()
	h, err := f.p.Start(context.Background(), s)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = f.p.Stop(context.Background(), h, 0) })
	return h
}

func (f *fixture) stop(h providers.Handle, grace time.Duration) {
	f.t.Helper()
	if err := f.p.Stop(context.Background(), h, grace); err != nil {
		f.t.Fatal(err)
	}
}

// waitReady waits for the component's /health, failing early if it exits.
func (f *fixture) waitReady(s providers.ComponentSpec, h providers.Handle) health.Result {
	f.t.Helper()
	probe, err := health.FromConfig(&config.Health{Type: "http", Path: "/health"}, "127.0.0.1", s.Ports[contract.EnvHealthPort], s.WorkDir, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := health.Wait(ctx, probe, &config.Health{Interval: config.Duration(time.Second), FailureThreshold: 10}, f.alive(h))
	if err != nil {
		f.t.Fatalf("not ready: %v", err)
	}
	return res
}

func (f *fixture) alive(h providers.Handle) func() error {
	return func() error {
		o, err := f.p.Observe(context.Background(), h)
		if err != nil {
			return err
		}
		if !o.Running {
			return errors.New(o.Detail)
		}
		return nil
	}
}

func (f *fixture) observe(h providers.Handle) providers.Observed {
	f.t.Helper()
	o, err := f.p.Observe(context.Background(), h)
	if err != nil {
		f.t.Fatal(err)
	}
	return o
}

func (f *fixture) logs(h providers.Handle, opts providers.LogOptions) string {
	f.t.Helper()
	r, err := f.p.Logs(context.Background(), h, opts)
	if err != nil {
		f.t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

// eventually polls cond for up to d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func decode(t *testing.T, h providers.Handle) handle {
	t.Helper()
	hd, err := decodeHandle(h)
	if err != nil {
		t.Fatal(err)
	}
	return hd
}

var lineRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr|flowctl) `)

// TestLifecycle follows one component from start to stop; each step
// checks what the design promises at that point.
func TestLifecycle(t *testing.T) {
	f := setup(t)
	s := f.spec("ledger", map[string]string{
		"TC_START_DELAY":    "150ms",
		"TC_PRINT":          "tick {n};stderr:warn {n}",
		"TC_PRINT_INTERVAL": "20ms",
		"TC_DUMP_ENV":       "1",
		"USER_VAR":          "hello world",
	})
	t0 := time.Now()
	h := f.start(s)
	hd := decode(t, h)
	checkHandleNamesItsFiles(t, f, hd)

	f.waitReady(s, h)
	if d := time.Since(t0); d < 150*time.Millisecond {
		t.Fatalf("ready after %v, before the start delay", d)
	}
	checkObservedRunning(t, f, h, hd)
	checkRunRecord(t, f, hd)
	plain := checkTimestampedLogs(t, f, h)
	checkExactEnvironment(t, s, plain)
	checkShimSessionAndChildGroup(t, hd)
	checkGracefulStop(t, f, h, hd)
}

func checkHandleNamesItsFiles(t *testing.T, f *fixture, hd handle) {
	t.Helper()
	if hd.Address != "source.ledger" || hd.RunRecord != filepath.Join(f.dir, "run", "source.ledger.json") ||
		hd.LogPath != filepath.Join(f.dir, "logs", "source.ledger.log") || hd.Child.PID == 0 || hd.Shim.PID == 0 {
		t.Fatalf("handle = %+v", hd)
	}
}

func checkObservedRunning(t *testing.T, f *fixture, h providers.Handle, hd handle) {
	t.Helper()
	o := f.observe(h)
	if !o.Exists || !o.Running || o.ExitCode != nil || o.Signal != "" || o.ExitPending || o.SpecHash != "hash-ledger" ||
		o.Pipeline != f.pipeline || o.Lineage != "lineage-1" || o.InstanceID != "inst-ledger" || o.Address != "source.ledger" {
		t.Fatalf("observed = %+v", o)
	}
	if o.Fingerprint != fmt.Sprintf("pid=%d,start=%d", hd.Child.PID, hd.Child.StartTicks) {
		t.Fatalf("fingerprint = %q", o.Fingerprint)
	}
	if d := time.Since(o.StartedAt); d < 0 || d > 10*time.Second {
		t.Fatalf("started at %v", o.StartedAt)
	}
	// The ports come from the run record; a record of an older shim,
	// without them, has them read from the process's environment.
	rec, err := readRecord(hd.RunRecord)
	if err != nil || rec == nil || rec.Ports[contract.EnvHealthPort] == 0 || o.Ports[contract.EnvHealthPort] != rec.Ports[contract.EnvHealthPort] {
		t.Fatalf("ports: observed %v, recorded %+v (%v)", o.Ports, rec, err)
	}
	want := rec.Ports[contract.EnvHealthPort]
	rec.Ports = nil
	if err := shim.WriteRecord(hd.RunRecord, rec); err != nil {
		t.Fatal(err)
	}
	if o := f.observe(h); o.Ports[contract.EnvHealthPort] != want {
		t.Fatalf("ports of a record without them: %v, want %s %d", o.Ports, contract.EnvHealthPort, want)
	}
}

// checkRunRecord: the run record holds what the design says.
func checkRunRecord(t *testing.T, f *fixture, hd handle) {
	t.Helper()
	rec, err := readRecord(hd.RunRecord)
	if err != nil || rec == nil {
		t.Fatalf("record: %v %v", rec, err)
	}
	if rec.Pipeline != f.pipeline || rec.Child != hd.Child || rec.Shim != hd.Shim || rec.Command != f.bin || rec.StartedAt.IsZero() || rec.BootID == "" {
		t.Fatalf("record = %+v", rec)
	}
	if fi, _ := os.Stat(hd.RunRecord); fi.Mode().Perm() != 0o600 {
		t.Fatalf("record mode %v", fi.Mode())
	}
}

// checkTimestampedLogs: the log holds timestamped lines from both streams;
// without Timestamps only the text is returned, which it returns.
func checkTimestampedLogs(t *testing.T, f *fixture, h providers.Handle) string {
	t.Helper()
	eventually(t, 5*time.Second, "log lines", func() bool {
		l := f.logs(h, providers.LogOptions{Timestamps: true})
		return strings.Contains(l, "stdout tick 3") && strings.Contains(l, "stderr warn 3")
	})
	logs := f.logs(h, providers.LogOptions{Timestamps: true})
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !lineRE.MatchString(l) {
			t.Fatalf("log line without timestamp and stream: %q", l)
		}
	}
	plain := f.logs(h, providers.LogOptions{})
	if !strings.Contains(plain, "\ntick 1\n") || strings.Contains(plain, "stdout ") {
		t.Fatalf("logs without timestamps:\n%s", plain)
	}
	return plain
}

// checkExactEnvironment: the environment the component dumped to its log
// is exactly spec.Env, plus PATH and the markers.
func checkExactEnvironment(t *testing.T, s providers.ComponentSpec, plain string) {
	t.Helper()
	var got []string
	for _, l := range strings.Split(plain, "\n") {
		if kv, ok := strings.CutPrefix(l, "env "); ok {
			k, _, _ := strings.Cut(kv, "=")
			got = append(got, k)
		}
	}
	var want []string
	for k := range s.Env {
		want = append(want, k)
	}
	want = append(want, "PATH", EnvManagedBy, EnvRunRecord)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("component environment keys:\n got %v\nwant %v", got, want)
	}
	if !strings.Contains(plain, "env USER_VAR=hello world\n") || !strings.Contains(plain, "env PATH="+os.Getenv("PATH")+"\n") {
		t.Fatalf("environment values:\n%s", plain)
	}
}

// checkShimSessionAndChildGroup: a separate session for the shim, a group
// of its own for the child.
func checkShimSessionAndChildGroup(t *testing.T, hd handle) {
	t.Helper()
	shimStat, _ := procinfo.ReadStat(hd.Shim.PID)
	childStat, _ := procinfo.ReadStat(hd.Child.PID)
	if shimStat.SID != hd.Shim.PID || childStat.PGID != hd.Child.PID || childStat.SID != hd.Shim.PID || childStat.PPID != hd.Shim.PID {
		t.Fatalf("shim %+v child %+v", shimStat, childStat)
	}
}

func checkGracefulStop(t *testing.T, f *fixture, h providers.Handle, hd handle) {
	t.Helper()
	// An hour's stop timeout: only a graceful exit on SIGTERM ends the stop
	// (if it did not, the test would hang until go test's timeout).
	f.stop(h, time.Hour)
	if procinfo.Alive(hd.Child) || procinfo.Alive(hd.Shim) {
		t.Fatal("still alive after Stop")
	}
	if o := f.observe(h); o.Exists || o.Running {
		t.Fatalf("after stop: %+v", o)
	}
	if ents, _ := os.ReadDir(filepath.Join(f.dir, "run")); len(ents) != 0 {
		t.Fatalf("files left in run/: %v", ents)
	}
	if l := f.logs(h, providers.LogOptions{}); !strings.Contains(l, "received terminated, shutting down") {
		t.Fatalf("graceful shutdown not logged:\n%s", l)
	}
	// Stopping again is fine.
	f.stop(h, time.Second)
}

func TestRelativeCommandResolvesAgainstWorkDir(t *testing.T) {
	f := setup(t)
	work := filepath.Join(f.dir, "pipeline")
	if err := os.MkdirAll(filepath.Join(work, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(f.bin, filepath.Join(work, "bin", "tc")); err != nil {
		t.Fatal(err)
	}
	s := f.spec("rel", nil)
	s.WorkDir = work
	s.Component.Command = []string{"./bin/tc"}
	h := f.start(s)
	f.waitReady(s, h)
	rec, _ := readRecord(decode(t, h).RunRecord)
	if rec.Command != filepath.Join(work, "bin", "tc") || rec.Args[0] != "./bin/tc" || rec.WorkDir != work {
		t.Fatalf("record = %+v", rec)
	}
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", rec.Child.PID)); err != nil || cwd != work {
		t.Fatalf("cwd = %q, %v", cwd, err)
	}
	f.stop(h, 5*time.Second)
}

func TestIgnoredSIGTERMIsKilledAfterGrace(t *testing.T) {
	f := setup(t)
	s := f.spec("stubborn", map[string]string{"TC_IGNORE_SIGTERM": "1", "TC_GRANDCHILD": "1"})
	h := f.start(s)
	f.waitReady(s, h)
	eventually(t, 5*time.Second, "the grandchild", func() bool {
		return strings.Contains(f.logs(h, providers.LogOptions{}), "grandchild running")
	})
	t0 := time.Now()
	f.stop(h, 300*time.Millisecond)
	took := time.Since(t0)
	// It ignores SIGTERM for ever: that the stop returned at all is the
	// SIGKILL after the grace period.
	if took < 300*time.Millisecond {
		t.Fatalf("stop took %v, less than the grace period", took)
	}
	if !strings.Contains(f.logs(h, providers.LogOptions{}), "ignoring terminated") {
		t.Fatal("SIGTERM was not delivered")
	}
	// assertNothingLeft checks the grandchild is gone too.
}

func TestStopCutShortByContext(t *testing.T) {
	f := setup(t)
	s := f.spec("stubborn", map[string]string{"TC_IGNORE_SIGTERM": "1"})
	h := f.start(s)
	f.waitReady(s, h)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	// The stop timeout is an hour: only ctx can cut the stop short.
	if err := f.p.Stop(ctx, h, time.Hour); err != nil {
		t.Fatal(err)
	}
}

func TestCrashIsRecordedAndObserved(t *testing.T) {
	f := setup(t)
	s := f.spec("crasher", map[string]string{"TC_EXIT_AFTER": "300ms", "TC_EXIT_CODE": "3", "TC_NEVER_HEALTHY": "1"})
	h := f.start(s)

	// Waiting for readiness ends as soon as the component exits.
	probe, _ := health.FromConfig(&config.Health{Type: "http"}, "127.0.0.1", s.Ports[contract.EnvHealthPort], "", nil)
	res, err := health.Wait(context.Background(), probe, &config.Health{StartPeriod: config.Duration(time.Minute)}, f.alive(h))
	// ErrStopped (not ErrUnhealthy after the minute's start period) says the
	// exit ended the wait.
	if !errors.Is(err, health.ErrStopped) || !strings.Contains(err.Error(), "exited with code 3") {
		t.Fatalf("wait: %v after %v", err, res.Elapsed)
	}

	checkCrashRecorded(t, f, h)
	checkRestartOverExitedInstance(t, f, h)
}

// checkCrashRecorded: the exit with code 3 is in the observation, the run
// record, the list and the log.
func checkCrashRecorded(t *testing.T, f *fixture, h providers.Handle) {
	t.Helper()
	eventually(t, 5*time.Second, "the exit to be recorded", func() bool { return f.observe(h).ExitCode != nil })
	o := f.observe(h)
	if !o.Exists || o.Running || *o.ExitCode != 3 || o.Signal != "" || o.ExitPending ||
		o.Detail != "exited with code 3" || o.SpecHash != "hash-crasher" {
		t.Fatalf("observed = %+v", o)
	}
	rec, _ := readRecord(decode(t, h).RunRecord)
	if rec.ExitedAt == nil || rec.ExitedAt.Before(rec.StartedAt) {
		t.Fatalf("record = %+v", rec)
	}
	list, err := f.p.List(context.Background(), f.pipeline)
	if err != nil || len(list) != 1 || list[0].ExitCode == nil || *list[0].ExitCode != 3 || list[0].Running {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if !strings.Contains(f.logs(h, providers.LogOptions{}), "exiting with code 3") {
		t.Fatal("stderr not logged")
	}
}

// checkRestartOverExitedInstance: a restart over an exited instance is
// allowed, and the old handle no longer touches the new instance.
func checkRestartOverExitedInstance(t *testing.T, f *fixture, old providers.Handle) {
	t.Helper()
	h2 := f.start(f.spec("crasher", map[string]string{"TC_EXIT_AFTER": "100ms", "TC_EXIT_CODE": "0"}))
	f.stop(old, time.Second)
	if o := f.observe(h2); !o.Exists {
		t.Fatalf("new instance lost its record: %+v", o)
	}
	eventually(t, 5*time.Second, "the clean exit", func() bool { return f.observe(h2).ExitCode != nil })
	if o := f.observe(h2); *o.ExitCode != 0 || o.Detail != "exited with code 0" {
		t.Fatalf("observed = %+v", o)
	}
	f.stop(h2, time.Second)
	if _, err := os.Stat(decode(t, h2).RunRecord); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("record left: %v", err)
	}
}

func TestKilledBySignalIsObserved(t *testing.T) {
	f := setup(t)
	s := f.spec("victim", nil)
	h := f.start(s)
	hd := decode(t, h)
	if err := syscall.Kill(hd.Child.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the exit to be recorded", func() bool { return f.observe(h).ExitCode != nil })
	if o := f.observe(h); *o.ExitCode != 128+9 || o.Signal != "SIGKILL" || o.ExitPending || o.Detail != "killed by SIGKILL" {
		t.Fatalf("observed = %+v", o)
	}
	f.stop(h, time.Second)
}

// TestObserveTellsHowAComponentEnded pins the typed exit facts observe
// derives from a run record: the exit code, the signal that killed the
// component, and an exit the shim has not recorded yet.
func TestObserveTellsHowAComponentEnded(t *testing.T) {
	self, err := procinfo.Self()
	if err != nil {
		t.Fatal(err)
	}
	// The test process stands for a live shim; the same pid with another
	// start time is a process that has ended.
	dead := procinfo.Identity{PID: self.PID, StartTicks: self.StartTicks + 1}
	code := func(c int) *int { return &c }
	for _, tc := range []struct {
		name        string
		shim        procinfo.Identity
		exitCode    *int
		signal      string
		wantCode    *int
		wantSignal  string
		wantPending bool
		wantDetail  string
	}{
		{"exited with a code", dead, code(3), "", code(3), "", false, "exited with code 3"},
		{"killed by a signal", dead, code(128 + 9), "SIGKILL", code(128 + 9), "SIGKILL", false, "killed by SIGKILL"},
		{"exit being recorded", self, nil, "", nil, "", true, "exited (the shim is recording the exit status)"},
		{"exit never recorded", dead, nil, "", nil, "", false, "exited (exit status unknown: the shim is gone)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hd := handle{Address: "source.gone", RunRecord: "/nonexistent/run/source.gone.json", BootID: currentBootID(), Shim: tc.shim, Child: dead}
			rec := &runRecord{Address: hd.Address, Pipeline: "p", BootID: hd.BootID, Shim: tc.shim, Child: dead, ExitCode: tc.exitCode, Signal: tc.signal}
			o := observe(hd, rec)
			if !o.Exists || o.Running || o.Signal != tc.wantSignal || o.ExitPending != tc.wantPending || o.Detail != tc.wantDetail {
				t.Fatalf("observed = %+v", o)
			}
			if (o.ExitCode == nil) != (tc.wantCode == nil) || (o.ExitCode != nil && *o.ExitCode != *tc.wantCode) {
				t.Fatalf("exit code = %v, want %v", o.ExitCode, tc.wantCode)
			}
		})
	}
}

// TestObserveReportsAnExitStillBeingRecorded: Observe waits a moment for a
// live shim to record its component's exit, then reports it as pending
// rather than waiting on.
func TestObserveReportsAnExitStillBeingRecorded(t *testing.T) {
	self, err := procinfo.Self()
	if err != nil {
		t.Fatal(err)
	}
	dead := procinfo.Identity{PID: self.PID, StartTicks: self.StartTicks + 1}
	p := New(Options{Dir: t.TempDir()})
	path := p.RunRecordPath("source.ending")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	rec := &runRecord{Version: shim.RecordVersion, Address: "source.ending", Pipeline: "p", BootID: currentBootID(), Shim: self, Child: dead}
	if err := shim.WriteRecord(path, rec); err != nil {
		t.Fatal(err)
	}
	o, err := p.Observe(context.Background(), encodeHandle(handleOf(rec, path)))
	if err != nil {
		t.Fatal(err)
	}
	if !o.Exists || o.Running || !o.ExitPending || o.ExitCode != nil || o.Signal != "" {
		t.Fatalf("observed = %+v", o)
	}
}

func TestStartFailures(t *testing.T) {
	f := setup(t)
	garbage := filepath.Join(f.dir, "garbage")
	if err := os.WriteFile(garbage, []byte("\x00\x01\x02\x03 not a program"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		command []string
		workDir string
		want    []string
	}{
		{"missing relative", []string{"./bin/missing"}, "", []string{`"./bin/missing"`, "no such file or directory"}},
		{"missing on PATH", []string{"no-such-command-xyz"}, "", []string{`"no-such-command-xyz"`, "not found"}},
		{"not executable format", []string{"./garbage"}, "", []string{"./garbage", "exec format error"}},
		{"no working directory", []string{f.bin}, filepath.Join(f.dir, "nope"), []string{"working directory", "no such file or directory"}},
		{"no command", nil, "", []string{"needs a command"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := f.spec("bad", nil)
			s.Component.Command = tc.command
			if tc.workDir != "" {
				s.WorkDir = tc.workDir
			}
			_, err := f.p.Start(context.Background(), s)
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if !strings.HasPrefix(err.Error(), "start source.bad: ") {
				t.Errorf("error %q does not name the component", err)
			}
			if _, err := os.Stat(f.p.RunRecordPath("source.bad")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a run record exists: %v", err)
			}
			if l := leftovers(f.pipeline, f.dir); len(l) > 0 {
				// The shim may take a moment to exit after reporting.
				assertNothingLeft(t, f.pipeline, f.dir)
			}
			list, err := f.p.List(context.Background(), f.pipeline)
			if err != nil || len(list) != 0 {
				t.Errorf("list = %+v, %v", list, err)
			}
		})
	}
}

func TestStartTimeoutLeavesNothing(t *testing.T) {
	f := setup(t, func(o *Options) { o.StartTimeout = time.Millisecond })
	s := f.spec("slow", nil)
	_, err := f.p.Start(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), "did not report") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(f.p.RunRecordPath("source.slow")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a run record exists: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.p.opts.StartTimeout = time.Minute
	if _, err := f.p.Start(ctx, s); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	// assertNothingLeft checks the shims and components are gone.
}

func TestStartRefusesARunningInstance(t *testing.T) {
	f := setup(t)
	s := f.spec("once", nil)
	h := f.start(s)
	if _, err := f.p.Start(context.Background(), s); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("err = %v", err)
	}
	if o := f.observe(h); !o.Running {
		t.Fatalf("first instance: %+v", o)
	}
	f.stop(h, 5*time.Second)
}

func TestComponentOutlivesItsStarter(t *testing.T) {
	f := setup(t)
	s := f.spec("survivor", nil)
	b, _ := json.Marshal(s)
	exe, _ := os.Executable()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0", "FLOWCTL_TEST_STARTER=1", "FLOWCTL_TEST_STARTER_SPEC="+string(b), "FLOWCTL_TEST_STARTER_DIR="+f.dir)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("starter: %v\n%s", err, out)
	}
	h := providers.Handle(strings.TrimSpace(string(out)))
	hd := decode(t, h)
	// The starter is gone; the component is not, and is ready.
	f.waitReady(s, h)
	if o := f.observe(h); !o.Running {
		t.Fatalf("observed = %+v", o)
	}
	self, _ := procinfo.ReadStat(os.Getpid())
	shimStat, err := procinfo.ReadStat(hd.Shim.PID)
	if err != nil {
		t.Fatal(err)
	}
	if shimStat.SID == self.SID || shimStat.SID != hd.Shim.PID {
		t.Fatalf("shim session %d, test session %d", shimStat.SID, self.SID)
	}
	if shimStat.PPID == cmd.Process.Pid {
		t.Fatalf("shim still a child of the exited starter")
	}
	f.stop(h, 5*time.Second)
}

func TestListFindsAComponentWhoseRecordWasLost(t *testing.T) {
	f := setup(t)
	s := f.spec("lost", nil)
	h := f.start(s)
	kept := f.start(f.spec("kept", map[string]string{"TC_GRANDCHILD": "1"}))
	f.waitReady(s, h)
	hd := decode(t, h)
	if err := os.Remove(hd.RunRecord); err != nil {
		t.Fatal(err)
	}
	// Observe through the old handle still sees it, from /proc.
	if o := f.observe(h); !o.Running || o.SpecHash != "hash-lost" || !strings.Contains(o.Detail, "record is missing") {
		t.Fatalf("observed = %+v", o)
	}
	eventually(t, 5*time.Second, "the grandchild", func() bool {
		return strings.Contains(f.logs(kept, providers.LogOptions{}), "grandchild running")
	})

	lost := checkListFindsTheLostOne(t, f, hd)
	checkOtherFoldersAndPipelines(t, f)
	// The handle from List stops it.
	f.stop(lost.Handle, 5*time.Second)
	f.stop(kept, 5*time.Second)
	if list, _ := f.p.List(context.Background(), f.pipeline); len(list) != 0 {
		t.Fatalf("list after stop = %+v", list)
	}
}

// checkListFindsTheLostOne: List reports the component with a record and,
// from /proc, the one whose record was lost (hd), with a handle as good as
// the one Start returned; the kept one's grandchild is not listed.
func checkListFindsTheLostOne(t *testing.T, f *fixture, hd handle) providers.Observed {
	t.Helper()
	list, err := f.p.List(context.Background(), f.pipeline)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("list = %+v", list)
	}
	if list[0].Address != "source.kept" || !list[0].Running {
		t.Fatalf("kept = %+v", list[0])
	}
	lost := list[1]
	if lost.Address != "source.lost" || !lost.Exists || !lost.Running || lost.SpecHash != "hash-lost" ||
		lost.Lineage != "lineage-1" || lost.InstanceID != "inst-lost" || lost.Pipeline != f.pipeline || lost.StartedAt.IsZero() {
		t.Fatalf("lost = %+v", lost)
	}
	lh := decode(t, lost.Handle)
	if lh.Child != hd.Child || lh.Shim != hd.Shim || lh.RunRecord != hd.RunRecord || lh.LogPath != hd.LogPath {
		t.Fatalf("handle from list = %+v, want %+v", lh, hd)
	}
	if d := lost.StartedAt.Sub(time.Now()); d > time.Second || d < -time.Minute {
		t.Fatalf("started at %v", lost.StartedAt)
	}
	return lost
}

// checkOtherFoldersAndPipelines: a provider over another state folder
// finds both components too, as their records say; another pipeline sees
// nothing.
func checkOtherFoldersAndPipelines(t *testing.T, f *fixture) {
	t.Helper()
	other := New(shimOptions(t.TempDir()))
	if l, err := other.List(context.Background(), f.pipeline); err != nil || len(l) != 2 ||
		l[0].Address != "source.kept" || !strings.HasPrefix(l[0].Detail, "running") || l[1].Address != "source.lost" {
		t.Fatalf("list from another folder = %+v, %v", l, err)
	}
	if other, _ := f.p.List(context.Background(), f.pipeline+"-other"); len(other) != 0 {
		t.Fatalf("other pipeline: %+v", other)
	}
}

func TestLogRotationAndTail(t *testing.T) {
	f := setup(t, func(o *Options) { o.LogMaxSize = 2048; o.LogMaxFiles = 3 })
	s := f.spec("chatty", map[string]string{
		"TC_PRINT": "line {n} " + strings.Repeat("x", 40), "TC_PRINT_INTERVAL": "1ms", "TC_PRINT_COUNT": "300",
	})
	h := f.start(s)
	hd := decode(t, h)
	eventually(t, 10*time.Second, "line 300", func() bool {
		return strings.Contains(f.logs(h, providers.LogOptions{Tail: 1}), "line 300 ")
	})
	for _, suffix := range []string{"", ".1", ".2"} {
		fi, err := os.Stat(hd.LogPath + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 2048 {
			t.Fatalf("%s is %d bytes", suffix, fi.Size())
		}
	}
	if _, err := os.Stat(hd.LogPath + ".3"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("more than 3 files: %v", err)
	}
	tail := strings.Split(strings.TrimSpace(f.logs(h, providers.LogOptions{Tail: 5})), "\n")
	for i, l := range tail {
		if !strings.HasPrefix(l, fmt.Sprintf("line %d ", 296+i)) {
			t.Fatalf("tail 5:\n%s", strings.Join(tail, "\n"))
		}
	}
	// All that is kept is in order and contiguous, across the files.
	all := strings.Split(strings.TrimSpace(f.logs(h, providers.LogOptions{})), "\n")
	prev := -1
	for _, l := range all {
		var n int
		if _, err := fmt.Sscanf(l, "line %d ", &n); err != nil {
			continue
		}
		if prev >= 0 && n != prev+1 {
			t.Fatalf("line %d follows line %d", n, prev)
		}
		prev = n
	}
	if prev != 300 || len(all) < 40 {
		t.Fatalf("last line %d, %d lines", prev, len(all))
	}
	// A tail longer than what exists returns everything; Since filters by time.
	if got := f.logs(h, providers.LogOptions{Tail: 100000}); got != strings.Join(all, "\n")+"\n" {
		t.Fatal("a long tail differs from the whole log")
	}
	if got := f.logs(h, providers.LogOptions{Since: time.Now().Add(time.Hour)}); got != "" {
		t.Fatalf("since the future: %q", got)
	}
	withTS := strings.Split(strings.TrimSpace(f.logs(h, providers.LogOptions{Timestamps: true})), "\n")
	mid, _ := time.Parse(time.RFC3339Nano, strings.Fields(withTS[len(withTS)/2])[0])
	since := strings.Split(strings.TrimSpace(f.logs(h, providers.LogOptions{Since: mid, Timestamps: true})), "\n")
	if len(since) == 0 || len(since) > len(withTS)-len(withTS)/2+5 {
		t.Fatalf("since: %d of %d lines", len(since), len(withTS))
	}
	for _, l := range since {
		ts, _ := time.Parse(time.RFC3339Nano, strings.Fields(l)[0])
		if ts.Before(mid) {
			t.Fatalf("line before since: %s", l)
		}
	}
	f.stop(h, 5*time.Second)
}

func TestLogsFollow(t *testing.T) {
	f := setup(t, func(o *Options) { o.LogMaxSize = 1024; o.LogMaxFiles = 4 })
	s := f.spec("ticker", map[string]string{"TC_PRINT": "tick {n}", "TC_PRINT_INTERVAL": "10ms"})
	h := f.start(s)
	defer f.stop(h, 5*time.Second)
	eventually(t, 5*time.Second, "tick 1", func() bool {
		return strings.Contains(f.logs(h, providers.LogOptions{}), "tick 1\n")
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := f.p.Logs(ctx, h, providers.LogOptions{Follow: true, Tail: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sc := bufio.NewScanner(r)
	prev := -1
	// About 16 lines fit in 1 KiB: 150 lines cross several rotations.
	for prev < 150 {
		if !sc.Scan() {
			t.Fatalf("follow ended after tick %d: %v", prev, sc.Err())
		}
		var n int
		if _, err := fmt.Sscanf(sc.Text(), "tick %d", &n); err != nil {
			t.Fatalf("unexpected line %q", sc.Text())
		}
		if prev >= 0 && n != prev+1 {
			t.Fatalf("tick %d follows tick %d", n, prev)
		}
		prev = n
	}
	// Cancelling the context ends the stream.
	cancel()
	done := make(chan struct{})
	go func() {
		for sc.Scan() {
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("follow did not end with its context")
	}
}

func TestLogsOfUnknownComponent(t *testing.T) {
	f := setup(t)
	h := encodeHandle(handle{Address: "source.x", RunRecord: f.p.RunRecordPath("source.x"), LogPath: f.p.LogPath("source.x"), Child: procinfo.Identity{PID: 1}})
	if _, err := f.p.Logs(context.Background(), h, providers.LogOptions{}); err == nil {
		t.Fatal("no error for a missing log")
	}
}

func TestRecycledPidIsNotSignalled(t *testing.T) {
	f := setup(t)
	victim := exec.Command("sleep", "30")
	victim.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = victim.Process.Kill(); _ = victim.Wait() }()
	real, err := procinfo.Of(victim.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	// A handle whose pids now belong to processes that started at another
	// time: what a recycled pid looks like.
	fake := procinfo.Identity{PID: real.PID, StartTicks: real.StartTicks - 1}
	self, _ := procinfo.Self()
	h := encodeHandle(handle{
		Address: "source.old", RunRecord: f.p.RunRecordPath("source.old"), LogPath: f.p.LogPath("source.old"),
		BootID: currentBootID(), Child: fake, Shim: procinfo.Identity{PID: self.PID, StartTicks: self.StartTicks + 1},
	})
	if err := f.p.Stop(context.Background(), h, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := signalGroup(currentBootID(), fake, syscall.SIGKILL); !errors.Is(err, errNotOurs) {
		t.Fatalf("signalGroup = %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if !procinfo.Alive(real) {
		t.Fatal("the process now holding the pid was signalled")
	}
	if o := f.observe(h); o.Exists || o.Running {
		t.Fatalf("observed = %+v", o)
	}
	// An identity from another boot names nothing either.
	if alive("another-boot", real) {
		t.Fatal("identity from another boot is alive")
	}
}
