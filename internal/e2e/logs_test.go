package e2e

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chattyPipeline is one source printing "VERSION tick N" every 20ms and a
// sink printing "sink tick N"; an edit of version replaces the source.
func chattyPipeline(version string) []comp {
	return []comp{
		{kind: "source", id: "talk", env: map[string]string{"TC_PRINT": version + " tick {n}", "TC_PRINT_INTERVAL": "20ms"}},
		{kind: "sink", id: "ear", inputs: []string{"source.talk"}, env: map[string]string{"TC_PRINT": "stderr:sink tick {n}", "TC_PRINT_INTERVAL": "30ms"}},
	}
}

// indexOfLine is the index of the first line of out that equals line.
func indexOfLine(lines []string, line string) int {
	for i, l := range lines {
		if l == line {
			return i
		}
	}
	return -1
}

// checkReplacementOrder checks that every line of source.talk's old
// instance comes before the replacement marker and every line of the new
// one after it, each once, each instance's ticks in order.
func checkReplacementOrder(t *testing.T, what, out string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	marker := indexOfLine(lines, "source.talk | --- replaced (spec changed) ---")
	if marker < 0 {
		t.Fatalf("%s: no replacement marker\n%s", what, out)
	}
	var starts []int
	ticks := regexp.MustCompile(`^source\.talk \| (v[12]) tick (\d+)$`)
	last := map[string]int{}
	for i, l := range lines {
		if strings.HasPrefix(l, "source.talk | testcomponent starting") {
			starts = append(starts, i)
		}
		if l == "source.talk | received terminated, shutting down" && i > marker {
			t.Fatalf("%s: the old instance's last words after the marker\n%s", what, out)
		}
		m := ticks.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if (m[1] == "v1") != (i < marker) {
			t.Fatalf("%s: %q on the wrong side of the marker\n%s", what, l, out)
		}
		n, _ := strconv.Atoi(m[2])
		if n != last[m[1]]+1 {
			t.Fatalf("%s: %s tick %d after tick %d\n%s", what, m[1], n, last[m[1]], out)
		}
		last[m[1]] = n
	}
	if len(starts) != 2 || starts[0] > marker || starts[1] < marker {
		t.Fatalf("%s: instances started at lines %v, marker at %d\n%s", what, starts, marker, out)
	}
	if last["v1"] == 0 || last["v2"] == 0 {
		t.Fatalf("%s: ticks %v\n%s", what, last, out)
	}
}

func TestLogsFollowsAReplacementInOrderWithItsMarkerAndStopsOnInterrupt(t *testing.T) {
	f := newFixture(t)
	f.writePipeline(chattyPipeline("v1"))
	f.apply()

	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	follow := f.command(ctx, f.dir, "logs", "-f")
	var out, errb syncBuffer
	follow.Stdout, follow.Stderr = &out, &errb
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "old lines while following", func() bool {
		return strings.Contains(out.String(), "source.talk | v1 tick 5\n") && strings.Contains(out.String(), "sink.ear    | sink tick 3\n")
	})

	f.writePipeline(chattyPipeline("v2"))
	f.apply()
	waitFor(t, 30*time.Second, "new lines while following", func() bool {
		return strings.Contains(out.String(), "source.talk | v2 tick 5\n")
	})

	if err := follow.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := follow.Wait()
	if err != nil {
		t.Fatalf("logs -f after SIGINT: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	if ctx.Err() != nil {
		t.Fatal("logs -f did not stop on SIGINT")
	}
	checkReplacementOrder(t, "logs -f", out.String())

	// Afterwards, the whole log from the file: the same order, the
	// marker from the history.
	r := f.must(0, "logs", "source.talk")
	checkReplacementOrder(t, "logs", r.out)
	if strings.Contains(r.out, "sink.ear") {
		t.Fatalf("logs source.talk shows sink.ear\n%s", r.out)
	}

	// -o json: one object per line.
	r = f.must(0, "logs", "-o", "json", "--tail", "3", "sink.ear")
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(lines) != 3 {
		t.Fatalf("--tail 3 -o json: %d lines\n%s", len(lines), r.out)
	}
	for _, l := range lines {
		if !regexp.MustCompile(`^\{"time":"[^"]+","component":"sink\.ear","stream":"stderr","line":"sink tick \d+"\}$`).MatchString(l) {
			t.Fatalf("json line %q", l)
		}
	}
}

func TestLogsFollowPicksUpAComponentCreatedLater(t *testing.T) {
	f := newFixture(t)
	cs := chattyPipeline("v1")
	f.writePipeline(cs[:1])
	f.apply()

	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	// From the state file alone, in another folder.
	follow := f.command(ctx, t.TempDir(), "logs", "-f", "--state", f.statePath())
	var out, errb syncBuffer
	follow.Stdout, follow.Stderr = &out, &errb
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the source's lines", func() bool { return strings.Contains(out.String(), "source.talk | v1 tick 3\n") })
	f.writePipeline(cs)
	f.apply()
	waitFor(t, 30*time.Second, "the sink created later", func() bool {
		return regexp.MustCompile(`(?m)^sink\.ear +\| sink tick 3$`).MatchString(out.String())
	})
	_ = follow.Process.Signal(syscall.SIGINT)
	if err := follow.Wait(); err != nil {
		t.Fatalf("logs -f: %v\n%s", err, errb.String())
	}
	if strings.Contains(out.String(), "--- ") {
		t.Fatalf("a marker for a component that was only created\n%s", out.String())
	}
}

func TestDockerLogsFollowAContainerReplacementMergedWithAProcess(t *testing.T) {
	df := newDockerFixture(t)
	cs := func(version string) []dcomp {
		return []dcomp{
			{kind: "source", id: "talk", env: map[string]string{"TC_PRINT": version + " tick {n}", "TC_PRINT_INTERVAL": "20ms"}},
			{kind: "sink", id: "ear", process: true, inputs: []string{"source.talk"}, env: map[string]string{"TC_PRINT": "sink tick {n}", "TC_PRINT_INTERVAL": "30ms"}},
		}
	}
	df.writeDocker(cs("v1"))
	df.apply()

	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	follow := df.command(ctx, df.dir, "logs", "-f")
	var out, errb syncBuffer
	follow.Stdout, follow.Stderr = &out, &errb
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "both executors' lines", func() bool {
		return strings.Contains(out.String(), "source.talk | v1 tick 5\n") && strings.Contains(out.String(), "sink.ear    | sink tick 3\n")
	})
	df.writeDocker(cs("v2"))
	df.apply()
	waitFor(t, 60*time.Second, "the new container's lines", func() bool {
		return strings.Contains(out.String(), "source.talk | v2 tick 5\n")
	})
	_ = follow.Process.Signal(syscall.SIGINT)
	if err := follow.Wait(); err != nil {
		t.Fatalf("logs -f: %v\n%s", err, errb.String())
	}
	checkReplacementOrder(t, "logs -f", out.String())
	df.must(0, "destroy", "-auto-approve")
}

// checkRestartOrder checks source.crashy's lines around the watcher's
// first restart: the first instance's (its start, its ticks in order, its
// last words) all before the marker, the second instance's start and ticks
// in order after it.
func checkRestartOrder(t *testing.T, what, out string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	marker := indexOfLine(lines, "source.crashy | --- restarted (exited code=2), attempt 1 ---")
	if marker < 0 {
		t.Fatalf("%s: no restart marker\n%s", what, out)
	}
	// The second instance's lines end at the next restart, if there was one.
	end := len(lines)
	for i := marker + 1; i < len(lines); i++ {
		if strings.HasPrefix(lines[i], "source.crashy | --- restarted ") {
			end = i
			break
		}
	}
	tick := regexp.MustCompile(`^source\.crashy \| tick (\d+)$`)
	for n, part := range [][]string{lines[:marker], lines[marker+1 : end]} {
		if len(part) == 0 || !strings.HasPrefix(part[0], "source.crashy | testcomponent starting pid=") {
			t.Fatalf("%s: instance %d does not begin with its start\n%s", what, n+1, out)
		}
		last := 0
		for _, l := range part[1:] {
			m := tick.FindStringSubmatch(l)
			if m == nil {
				continue
			}
			if k, _ := strconv.Atoi(m[1]); k != last+1 {
				t.Fatalf("%s: instance %d: tick %d after tick %d\n%s", what, n+1, k, last, out)
			}
			last++
		}
		if last < 3 {
			t.Fatalf("%s: instance %d printed %d ticks\n%s", what, n+1, last, out)
		}
	}
	if indexOfLine(lines[:marker], "source.crashy | exiting with code 2") < 0 {
		t.Fatalf("%s: the first instance's last words are not before the marker\n%s", what, out)
	}
}

func TestLogsFollowsAComponentAcrossAWatcherRestart(t *testing.T) {
	f := newFixture(t)
	f.write("pipeline.hcl", crashyPipeline(f, `    TC_PRINT          = "tick {n}"
    TC_PRINT_INTERVAL = "30ms"
    TC_EXIT_AFTER     = "1500ms"
    TC_EXIT_CODE      = "2"`, "200ms"))
	f.apply()

	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	follow := f.command(ctx, f.dir, "logs", "-f")
	var out, errb syncBuffer
	follow.Stdout, follow.Stderr = &out, &errb
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the restarted instance's lines", func() bool {
		s := out.String()
		i := strings.Index(s, "--- restarted (exited code=2), attempt 1 ---")
		return i >= 0 && strings.Contains(s[i:], "source.crashy | tick 3\n")
	})
	if err := follow.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := follow.Wait(); err != nil {
		t.Fatalf("logs -f after SIGINT: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	if ctx.Err() != nil {
		t.Fatal("logs -f did not stop on SIGINT")
	}
	checkRestartOrder(t, "logs -f", out.String())
	// The file and the history tell the same afterwards.
	checkRestartOrder(t, "logs", f.must(0, "logs", "source.crashy").out)
}
