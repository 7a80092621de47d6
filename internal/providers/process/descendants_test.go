//go:build linux

package process

import (
	"strings"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/providers"
)

// withCommand is the fixture's spec running argv instead of the test
// component.
func (f *fixture) withCommand(id string, argv ...string) providers.ComponentSpec {
	s := f.spec(id, nil)
	c := *s.Component
	c.Command = argv
	s.Component = &c
	return s
}

// running lists the pipeline's live processes whose command line has
// marker.
func (f *fixture) running(marker string) []string {
	var out []string
	for _, l := range leftovers(f.pipeline, f.dir) {
		if strings.Contains(l, marker) {
			out = append(out, l)
		}
	}
	return out
}

func TestStopStopsADescendantThatCalledSetsid(t *testing.T) {
	f := setup(t)
	h := f.start(f.withCommand("escaper", "/bin/sh", "-c", "setsid sleep 200003 & exec sleep 200000"))
	eventually(t, 5*time.Second, "the setsid descendant", func() bool { return len(f.running(": sleep 200003")) == 1 })
	f.stop(h, 2*time.Second)
	if left := f.running("sleep 200"); len(left) > 0 {
		t.Fatalf("still running after Stop returned:\n%s", strings.Join(left, "\n"))
	}
}

func TestADescendantIsStoppedWhenTheComponentExitsOnItsOwn(t *testing.T) {
	f := setup(t)
	h := f.start(f.withCommand("leaver", "/bin/sh", "-c", "setsid sleep 200013 & sleep 0.5; exit 3"))
	eventually(t, 5*time.Second, "the setsid descendant", func() bool { return len(f.running(": sleep 200013")) == 1 })
	eventually(t, 10*time.Second, "the component's exit", func() bool { return !f.observe(h).Running })
	// The shim, the descendant's reaper once the component exited, stops
	// it before it records the exit.
	if left := f.running("sleep 200013"); len(left) > 0 {
		t.Fatalf("the descendant outlived its component:\n%s", strings.Join(left, "\n"))
	}
}
