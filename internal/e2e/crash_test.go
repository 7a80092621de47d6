package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// crashDAG is the pipeline the kill -9 tests interrupt: three levels, six
// components, each ready 150 ms after it starts, so that every kill point
// (a start, a readiness wait, a stop) lasts long enough to be hit.
func crashDAG() []comp {
	env := func(extra ...string) map[string]string {
		m := map[string]string{"TC_START_DELAY": "150ms"}
		for i := 0; i+1 < len(extra); i += 2 {
			m[extra[i]] = extra[i+1]
		}
		return m
	}
	return []comp{
		{kind: "source", id: "s1", env: env()},
		{kind: "source", id: "s2", env: env("VERSION", "1")},
		{kind: "processor", id: "p1", inputs: []string{"source.s1", "source.s2"}, env: env("VERSION", "1")},
		{kind: "processor", id: "p2", inputs: []string{"source.s2"}, env: env()},
		{kind: "sink", id: "k1", inputs: []string{"processor.p1", "processor.p2"}, env: env("TC_STOP_DELAY", "300ms")},
		{kind: "sink", id: "k2", inputs: []string{"processor.p1"}, env: env()},
	}
}

// killPoint is one moment at which the CLI is killed.
type killPoint struct {
	name string
	// op is the command to interrupt.
	op []string
	// prepare runs before op (e.g. a first apply, an edit); nil writes the
	// pipeline file.
	prepare func(f *fixture, cs []comp) []comp
	// when reports, given the run records before op and now (file name ->
	// modification time), whether to kill now.
	when func(before, now map[string]time.Time) bool
	// delay after when holds, before the kill.
	delay time.Duration
}

func TestKillDashNineAnywhereThenPlanAndApplyConverge(t *testing.T) {
	n := len(crashDAG())
	applied := func(f *fixture, cs []comp) []comp {
		f.writePipeline(cs)
		f.apply()
		return cs
	}
	edited := func(f *fixture, cs []comp) []comp {
		applied(f, cs)
		cs[1].env["VERSION"] = "2" // source.s2
		cs[2].env["VERSION"] = "2" // processor.p1
		f.writePipeline(cs)
		return cs
	}
	var points []killPoint
	// Apply from nothing: right after the k-th start, and during the k-th
	// readiness wait.
	for k := 1; k <= n; k++ {
		points = append(points, killPoint{name: fmt.Sprintf("apply/after-start-%d", k), op: []string{"apply", "-auto-approve"},
			when: atLeast(k)})
	}
	for _, k := range []int{1, 2, 3, 5, 6} {
		points = append(points, killPoint{name: fmt.Sprintf("apply/readiness-wait-%d", k), op: []string{"apply", "-auto-approve"},
			when: atLeast(k), delay: 70 * time.Millisecond})
	}
	points = append(points, killPoint{name: "apply/before-any-start", op: []string{"apply", "-auto-approve"},
		when: always, delay: 10 * time.Millisecond})
	// Replacing two components (s2 then p1): after the first stop, and after
	// each new start.
	points = append(points,
		killPoint{name: "replace/after-first-stop", op: []string{"apply", "-auto-approve"}, prepare: edited, when: atMost(n - 1)},
		killPoint{name: "replace/after-first-restart", op: []string{"apply", "-auto-approve"}, prepare: edited, when: rewritten(1)},
		killPoint{name: "replace/readiness-wait-first", op: []string{"apply", "-auto-approve"}, prepare: edited, when: rewritten(1), delay: 70 * time.Millisecond},
		killPoint{name: "replace/after-second-restart", op: []string{"apply", "-auto-approve"}, prepare: edited, when: rewritten(2)},
	)
	// Destroy: after the k-th stop (sink.k1 takes 300 ms to stop, so k=0
	// with a delay kills during its grace period).
	points = append(points, killPoint{name: "destroy/during-stop-grace", op: []string{"destroy", "-auto-approve"}, prepare: applied,
		when: always, delay: 150 * time.Millisecond})
	for k := 1; k < n; k++ {
		points = append(points, killPoint{name: fmt.Sprintf("destroy/after-stop-%d", k), op: []string{"destroy", "-auto-approve"}, prepare: applied,
			when: atMost(n - k)})
	}
	if len(points) < 20 {
		t.Fatalf("only %d kill points", len(points))
	}

	for _, kp := range points {
		t.Run(kp.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			cs := crashDAG()
			if kp.prepare != nil {
				cs = kp.prepare(f, cs)
			} else {
				f.writePipeline(cs)
			}
			f.killDuring(kp)
			// Let what was under way settle: shims finish recording exits,
			// stopping components finish their grace period.
			time.Sleep(400 * time.Millisecond)

			p := f.plan()
			desired := map[string]string{}
			for _, c := range p.Changes {
				if c.SpecHash != "" {
					desired[c.Address] = c.SpecHash
				}
			}
			want, recordedLive := f.expectedRecovery(desired)
			got := normalise(p.actions(), recordedLive)
			if !slices.Equal(got, want) {
				t.Fatalf("plan after the kill proposes\n  %s\nwant\n  %s\nprocesses: %+v", strings.Join(p.actions(), "\n  "), strings.Join(want, "\n  "), procsOf(f.name))
			}
			t.Logf("plan after the kill: %v", p.actions())
			for _, a := range p.actions() {
				if !allowedAfterCrash(a, kp.prepare != nil) {
					t.Errorf("plan after a crash proposes %q", a)
				}
			}
			f.apply()
			f.assertConverged(addrs(cs))
		})
	}
}

// atLeast kills once there are k run records (starts write them).
func atLeast(k int) func(_, now map[string]time.Time) bool {
	return func(_, now map[string]time.Time) bool { return len(now) >= k }
}

// atMost kills once there are at most k run records (stops remove them).
func atMost(k int) func(_, now map[string]time.Time) bool {
	return func(_, now map[string]time.Time) bool { return len(now) <= k }
}

// rewritten kills once k run records were written anew (by new starts).
func rewritten(k int) func(before, now map[string]time.Time) bool {
	return func(before, now map[string]time.Time) bool {
		n := 0
		for name, mt := range now {
			if old, ok := before[name]; ok && !mt.Equal(old) {
				n++
			}
		}
		return n >= k
	}
}

func always(_, _ map[string]time.Time) bool { return true }

// killDuring runs kp.op and kills it with SIGKILL at kp's moment; the
// command must not finish first.
func (f *fixture) killDuring(kp killPoint) {
	f.t.Helper()
	before := f.runRecordTimes()
	cmd := f.command(f.t.Context(), f.dir, kp.op...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for !kp.when(before, f.runRecordTimes()) {
		select {
		case err := <-done:
			f.t.Fatalf("%v finished (%v) before the kill point\n%s", kp.op, err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			f.t.Fatalf("kill point never reached\n%s", out.String())
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(kp.delay)
	_ = cmd.Process.Kill()
	if err := <-done; err == nil {
		f.t.Fatalf("%v finished before the kill\n%s", kp.op, out.String())
	}
	progress := out.String()
	if i := strings.Index(progress, "\nPlan: "); i >= 0 {
		progress = progress[i+1:]
	}
	f.t.Logf("killed %v at %s; its output:\n%s", kp.op, kp.name, progress)
}

// runRecordTimes lists the run records (name -> modification time).
func (f *fixture) runRecordTimes() map[string]time.Time {
	ents, _ := os.ReadDir(f.runDir())
	out := map[string]time.Time{}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if fi, err := os.Stat(filepath.Join(f.runDir(), e.Name())); err == nil {
			out[e.Name()] = fi.ModTime()
		}
	}
	return out
}

// expectedRecovery is what a plan must propose given state, the live
// processes and the desired spec hashes: nothing for a component recorded
// as running whose recorded process lives with the desired spec; adopt for
// one recorded as still starting whose process lives, or for a live
// process with the desired spec that state does not record; replace for a
// recorded live process with another spec (an edit the interrupted apply
// did not get to); a start (create or restart) for a component with no
// live process; and delete-orphan for every other live process of the
// pipeline. Starts are written "start". recordedLive lists the components
// whose recorded process lives.
func (f *fixture) expectedRecovery(desired map[string]string) (want []string, recordedLive map[string]bool) {
	recs := f.records()
	live := byAddr(procsOf(f.name))
	var out []string
	recordedLive = map[string]bool{}
	for a, hash := range desired {
		rec := recs[a]
		ps := live[a]
		kept := -1
		if rec != nil {
			kept = slices.IndexFunc(ps, func(p proc) bool { return p.id == childOf(rec.Handle) })
		}
		recordedLive[a] = kept >= 0
		adoptable := slices.IndexFunc(ps, func(p proc) bool { return p.specHash == hash })
		switch {
		case kept >= 0 && (rec.SpecHash != hash || rec.Status == "failed"):
			out = append(out, "replace "+a)
		case kept >= 0 && rec.Status == "running":
		case kept >= 0 && rec.Status == "creating":
			out = append(out, "adopt "+a)
		case kept >= 0:
			f.t.Fatalf("%s: unexpected status %s", a, rec.Status)
		case adoptable >= 0:
			kept = adoptable
			out = append(out, "adopt "+a)
		default:
			out = append(out, "start "+a)
		}
		for i := range ps {
			if i != kept {
				out = append(out, "delete-orphan "+a)
			}
		}
	}
	for a, ps := range live {
		if _, ok := desired[a]; !ok {
			for range ps {
				out = append(out, "delete-orphan "+a)
			}
		}
	}
	sort.Strings(out)
	return out, recordedLive
}

// normalise turns plan actions into expectedRecovery's form: creating,
// restarting, or replacing an object whose process is gone all start one.
func normalise(actions []string, recordedLive map[string]bool) []string {
	var out []string
	for _, a := range actions {
		f := strings.Fields(a)
		switch {
		case f[0] == "create", f[0] == "restart", f[0] == "replace" && !recordedLive[f[1]]:
			f[0] = "start"
		}
		out = append(out, f[0]+" "+f[1])
	}
	sort.Strings(out)
	return out
}

// allowedAfterCrash: an interrupted apply or destroy leaves nothing a plan
// should update in place or delete; a replacement is for a component that
// never became ready, or, when the interrupted apply was itself applying
// an edit, for one it did not get to.
func allowedAfterCrash(action string, edited bool) bool {
	for _, ok := range []string{"adopt ", "create ", "delete-orphan ", "restart "} {
		if strings.HasPrefix(action, ok) {
			return true
		}
	}
	return strings.HasPrefix(action, "replace ") && (strings.HasSuffix(action, "(tainted)") || edited && strings.HasSuffix(action, "(spec_changed)"))
}
