package logs

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/providertest"
)

// following runs Run with Follow in the background; stop cancels it and
// returns its error.
func following(t *testing.T, inv Inventory, ex *providertest.Provider, opts Options) (c *collector, stop func() error) {
	t.Helper()
	c = &collector{}
	opts.Follow = true
	if opts.Tail == 0 {
		opts.Tail = -1
	}
	opts.Relist, opts.Lag, opts.MaxHold = 5*time.Millisecond, 20*time.Millisecond, time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, inv, readersOf(ex), opts, c.emit) }()
	var stopped bool
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after its context ended")
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	return c, stop
}

func has(want ...string) func([]string) bool {
	return func(got []string) bool {
		for _, w := range want {
			if !slices.Contains(got, w) {
				return false
			}
		}
		return true
	}
}

// now stamps a line with the wall clock, as an executor does when it
// reads a component's output.
func now(stream, text string) string { return stamp(time.Now(), stream, text) }

func TestFollowMarksARestartBeforeTheNewInstancesLinesInOneLog(t *testing.T) {
	// The process executor: one log file for every instance, so the log
	// being followed just goes on; the handle changes.
	ex := providertest.New("fake")
	log := providertest.NewLog(now("stdout", "old one"))
	ex.SetLog(providers.Handle("a1"), log)
	ex.SetLog(providers.Handle("a2"), log)
	inv := &fakeInventory{}
	inv.put(Instance{Address: "source.a", Provider: "fake", Handle: providers.Handle("a1"), InstanceID: "a-1", SpecHash: "h1"})
	c, stop := following(t, inv, ex, Options{})
	c.waitFor(t, "the backlog", has("source.a: old one"))

	log.Add(now("stderr", "old two"), now("stderr", "exiting with code 2"))
	c.waitFor(t, "old lines", has("source.a: exiting with code 2"))
	// The watcher writes the new record and its history event together,
	// then the new instance logs.
	inv.restart(Instance{Address: "source.a", Provider: "fake", Handle: providers.Handle("a2"), InstanceID: "a-2", SpecHash: "h1", StartedAt: time.Now()},
		Line{Time: time.Now(), Component: "source.a", Stream: StreamMarker, Text: "--- restarted (exited code=2), attempt 3 ---"})
	log.Add(now("stdout", "new one"), now("stdout", "new two"))
	c.waitFor(t, "new lines", has("source.a: new two"))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"source.a: old one",
		"source.a: old two",
		"source.a: exiting with code 2",
		"source.a: --- restarted (exited code=2), attempt 3 ---",
		"source.a: new one",
		"source.a: new two",
	}
	sameLines(t, c.texts(), want)
}

func TestFollowMovesToTheReplacementsLogWhenTheOldOneEnds(t *testing.T) {
	// Docker: every container has a log of its own, which ends when the
	// container stops.
	ex := providertest.New("fake")
	old := providertest.NewLog(now("stdout", "container one"))
	ex.SetLog(providers.Handle("c1"), old)
	inv := &fakeInventory{}
	inv.put(Instance{Address: "processor.p", Provider: "fake", Handle: providers.Handle("c1"), InstanceID: "p-1", SpecHash: "h1"})
	c, stop := following(t, inv, ex, Options{})
	c.waitFor(t, "the backlog", has("processor.p: container one"))
	old.Add(now("stdout", "received terminated"))
	old.End()

	fresh := providertest.NewLog()
	ex.SetLog(providers.Handle("c2"), fresh)
	// An apply replaced it: no history event yet (apply records it once
	// the instance is ready), but the spec hash changed.
	inv.put(Instance{Address: "processor.p", Provider: "fake", Handle: providers.Handle("c2"), InstanceID: "p-2", SpecHash: "h2", StartedAt: time.Now()})
	fresh.Add(now("stdout", "container two"))
	c.waitFor(t, "the new container's line", has("processor.p: container two"))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"processor.p: container one",
		"processor.p: received terminated",
		"processor.p: --- replaced (spec changed) ---",
		"processor.p: container two",
	}
	sameLines(t, c.texts(), want)
}

func TestFollowMarksAComponentDestroyedAndAppliedAgain(t *testing.T) {
	for _, pause := range []struct {
		name string
		wait time.Duration
	}{{"at once", 0}, {"after the grace for a gone component", goneGrace + 200*time.Millisecond}} {
		t.Run(pause.name, func(t *testing.T) {
			// The process executor: one log file across runs.
			ex := providertest.New("fake")
			log := providertest.NewLog(now("stdout", "run one"))
			ex.SetLog(providers.Handle("a1"), log)
			ex.SetLog(providers.Handle("a2"), log)
			inv := &fakeInventory{}
			inv.put(Instance{Address: "source.a", Provider: "fake", Handle: providers.Handle("a1"), InstanceID: "a-1", SpecHash: "h1"})
			c, stop := following(t, inv, ex, Options{})
			c.waitFor(t, "the backlog", has("source.a: run one"))

			log.Add(now("stdout", "run one terminated"))
			c.waitFor(t, "the last line of run one", has("source.a: run one terminated"))
			inv.remove("source.a", Line{Time: time.Now(), Component: "source.a", Stream: StreamMarker, Text: "--- destroyed ---", kind: markerRemoved})
			c.waitFor(t, "the removal", has("source.a: --- destroyed ---"))
			if pause.wait > 0 {
				time.Sleep(pause.wait) // let the follower drop the gone component
			}
			inv.put(Instance{Address: "source.a", Provider: "fake", Handle: providers.Handle("a2"), InstanceID: "a-2", SpecHash: "h1", StartedAt: time.Now()})
			log.Add(now("stdout", "run two"))
			c.waitFor(t, "run two", has("source.a: run two"))
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			want := []string{
				"source.a: run one",
				"source.a: run one terminated",
				"source.a: --- destroyed ---",
				"source.a: --- new instance ---",
				"source.a: run two",
			}
			sameLines(t, c.texts(), want)
		})
	}
}

func TestFollowPicksUpComponentsCreatedLater(t *testing.T) {
	ex := providertest.New("fake")
	ex.SetLog(providers.Handle("a1"), providertest.NewLog(now("stdout", "a")))
	inv := &fakeInventory{}
	inv.put(Instance{Address: "source.a", Provider: "fake", Handle: providers.Handle("a1"), InstanceID: "a-1"})
	c, stop := following(t, inv, ex, Options{})
	c.waitFor(t, "the backlog", has("source.a: a"))

	// sink.b's log file holds a line of an earlier life, destroyed before.
	b := providertest.NewLog(stamp(time.Now().Add(-time.Hour), "stdout", "b, an earlier life"))
	ex.SetLog(providers.Handle("b1"), b)
	started := time.Now()
	inv.put(Instance{Address: "sink.b", Provider: "fake", Handle: providers.Handle("b1"), InstanceID: "b-1", StartedAt: started})
	b.Add(stamp(started.Add(time.Millisecond), "stdout", "b starting"))
	c.waitFor(t, "the new component", has("sink.b: b starting"))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := c.texts(); slices.Contains(got, "sink.b: b, an earlier life") {
		t.Fatalf("showed a line from before the component was created: %q", got)
	}
}

func TestFollowNeverRepeatsTheBacklog(t *testing.T) {
	ex := providertest.New("fake")
	ts := time.Now()
	log := providertest.NewLog(stamp(ts, "stdout", "one"), stamp(ts, "stdout", "two, same time"))
	ex.SetLog(providers.Handle("a1"), log)
	inv := &fakeInventory{}
	inv.put(Instance{Address: "source.a", Provider: "fake", Handle: providers.Handle("a1"), InstanceID: "a-1"})
	c, stop := following(t, inv, ex, Options{})
	c.waitFor(t, "the backlog", has("source.a: two, same time"))
	log.Add(stamp(ts, "stdout", "three, same time again"), now("stdout", "four"))
	c.waitFor(t, "new lines", has("source.a: four"))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	want := []string{"source.a: one", "source.a: two, same time", "source.a: three, same time again", "source.a: four"}
	if got := c.texts(); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	// The log was read once for the backlog and once to follow, from the
	// backlog's last line on.
	asks := ex.LogRequests()
	if len(asks) != 2 || asks[0].Follow || !asks[1].Follow || !asks[1].Since.Equal(ts) {
		t.Fatalf("asked %+v", asks)
	}
}

func TestFollowWithTailZeroShowsOnlyWhatComesNext(t *testing.T) {
	ex := providertest.New("fake")
	log := providertest.NewLog(stamp(time.Now().Add(-time.Minute), "stdout", "old"))
	ex.SetLog(providers.Handle("a1"), log)
	inv := &fakeInventory{}
	inv.put(Instance{Address: "source.a", Provider: "fake", Handle: providers.Handle("a1"), InstanceID: "a-1"})
	c := &collector{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, inv, readersOf(ex), Options{Follow: true, Tail: 0, Relist: 5 * time.Millisecond, Lag: 10 * time.Millisecond}, c.emit)
	}()
	// Wait until it follows, then log.
	deadline := time.Now().Add(10 * time.Second)
	for len(ex.LogRequests()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	log.Add(now("stdout", "new"))
	c.waitFor(t, "the new line", has("source.a: new"))
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := c.texts(); !slices.Equal(got, []string{"source.a: new"}) {
		t.Fatalf("got %q", got)
	}
}

func TestCancellingAFollowEmitsWhatWasHeldAndReturnsNil(t *testing.T) {
	ex := providertest.New("fake")
	log := providertest.NewLog()
	ex.SetLog(providers.Handle("a1"), log)
	inv := &fakeInventory{}
	inv.put(Instance{Address: "source.a", Provider: "fake", Handle: providers.Handle("a1"), InstanceID: "a-1"})
	// State reads stamped far in the past: nothing is ever released by
	// the watermark, and MaxHold is a minute.
	inv.setNow(time.Now().Add(-time.Hour))
	c, stop := following(t, inv, ex, Options{})
	deadline := time.Now().Add(10 * time.Second)
	for len(ex.LogRequests()) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	log.Add(now("stdout", "held"))
	for log.Delivered() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if got := c.texts(); len(got) != 0 {
		t.Fatalf("released before the end: %q", got)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := c.texts(); !slices.Equal(got, []string{"source.a: held"}) {
		t.Fatalf("got %q", got)
	}
}
