package e2e

import (
	"strings"
	"testing"
	"time"
)

// lineIndexes lists the indexes of the lines of out that start with
// prefix.
func lineIndexes(out, prefix string) []int {
	var at []int
	for i, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			at = append(at, i)
		}
	}
	return at
}

// checkRuns checks that out (flowctl logs of one component) holds runs
// separated by the markers between them: each run's lines (from its
// "testcomponent starting") wholly between the markers around it.
func checkRuns(t *testing.T, what, out, addr string, markers ...string) {
	t.Helper()
	starts := lineIndexes(out, addr+" | testcomponent starting")
	if len(starts) != len(markers)+1 {
		t.Fatalf("%s: %d runs, want %d\n%s", what, len(starts), len(markers)+1, out)
	}
	prev := -1
	for i, m := range markers {
		at := lineIndexes(out, addr+" | "+m)
		if len(at) == 0 {
			t.Fatalf("%s: no marker %q\n%s", what, m, out)
		}
		idx := -1
		for _, a := range at {
			if a > prev {
				idx = a
				break
			}
		}
		if idx < 0 || idx < starts[i] || idx > starts[i+1] {
			t.Fatalf("%s: marker %q (lines %v) is not between run %d (line %d) and run %d (line %d)\n%s", what, m, at, i+1, starts[i], i+2, starts[i+1], out)
		}
		prev = idx
	}
}

// A component destroyed and applied again writes to the log it wrote
// before (the process executor's file): logs separates the two runs.
func TestLogsSeparateTheRunsOfADestroyedAndAppliedAgainComponent(t *testing.T) {
	f := newFixture(t)
	f.writePipeline(chattyPipeline("v1"))
	f.apply()
	waitFor(t, 60*time.Second, "the first run's ticks", func() bool {
		return strings.Contains(f.must(0, "logs", "source.talk").out, "source.talk | v1 tick 3\n")
	})
	f.must(0, "destroy", "-auto-approve")
	f.writePipeline(chattyPipeline("v2"))
	f.apply()
	var out string
	waitFor(t, 60*time.Second, "the second run's ticks", func() bool {
		out = f.must(0, "logs", "source.talk").out
		return strings.Contains(out, "source.talk | v2 tick 3\n")
	})
	checkRuns(t, "logs", out, "source.talk", "--- destroyed ---")
	checkRuns(t, "logs", out, "source.talk", "--- created by apply ---")
	if d, c := lineIndexes(out, "source.talk | --- destroyed ---"), lineIndexes(out, "source.talk | --- created by apply ---"); len(d) != 1 || len(c) != 1 || d[0] > c[0] {
		t.Fatalf("want one destroyed marker, then one created marker\n%s", out)
	}
}

// A docker component's container goes at a replacement, and its log with
// it: flowctl keeps its last lines, and logs shows them before the
// replacement's marker; a destroy and apply again likewise.
func TestDockerLogsKeepTheLinesOfReplacedAndDestroyedContainers(t *testing.T) {
	df := newDockerFixture(t)
	cs := func(version string) []dcomp {
		return []dcomp{{kind: "source", id: "talk", env: map[string]string{"TC_PRINT": version + " tick {n}", "TC_PRINT_INTERVAL": "20ms"}}}
	}
	logsUntil := func(what, line string) string {
		var out string
		waitFor(t, 60*time.Second, what, func() bool {
			out = df.must(0, "logs").out
			return strings.Contains(out, line)
		})
		return out
	}
	df.writeDocker(cs("v1"))
	df.apply()
	logsUntil("the first container's ticks", "source.talk | v1 tick 5\n")
	df.writeDocker(cs("v2"))
	df.apply()
	out := logsUntil("the second container's ticks", "source.talk | v2 tick 5\n")
	checkReplacementOrder(t, "logs after a replacement", out)

	df.must(0, "destroy", "-auto-approve")
	df.writeDocker(cs("v3"))
	df.apply()
	out = logsUntil("the third container's ticks", "source.talk | v3 tick 3\n")
	checkRuns(t, "logs after destroy and apply", out, "source.talk", "--- replaced (spec changed) ---", "--- destroyed ---")
	checkRuns(t, "logs after destroy and apply", out, "source.talk", "--- replaced (spec changed) ---", "--- created by apply ---")
	if tail := df.must(0, "logs", "--tail", "3").out; strings.Count(tail, "\n") != 3 || !strings.Contains(tail, "v3 tick") {
		t.Errorf("--tail 3 across kept and live lines:\n%s", tail)
	}
	df.must(0, "destroy", "-auto-approve")
}

// The watcher restarts a crashed docker component in a new container: the
// lines of the one that crashed stay, before the restart's marker.
func TestDockerLogsKeepTheCrashedContainersLinesAcrossAWatcherRestart(t *testing.T) {
	df := newDockerFixture(t)
	df.writeDocker([]dcomp{{kind: "source", id: "crashy", health: "-",
		env:   map[string]string{"TC_PRINT": "tick {n}", "TC_PRINT_INTERVAL": "30ms", "TC_EXIT_AFTER": "1500ms", "TC_EXIT_CODE": "2"},
		extra: "  restart {\n    policy      = \"on-failure\"\n    max_retries = 3\n    backoff {\n      initial = \"200ms\"\n      max     = \"10s\"\n    }\n  }\n"}})
	df.apply()
	var out string
	waitFor(t, 90*time.Second, "the restarted container's lines", func() bool {
		out = df.must(0, "logs", "source.crashy").out
		i := strings.Index(out, "--- restarted (exited code=2), attempt 1 ---")
		return i >= 0 && strings.Contains(out[i:], "source.crashy | tick 3\n")
	})
	checkRestartOrder(t, "logs", out)
	df.must(0, "destroy", "-auto-approve")
}
