package relay

import (
	"strconv"
	"testing"
)

func TestLedgerSavesAPositionOnceEverySinkAcknowledgedIt(t *testing.T) {
	l := newLedger(map[string][]string{"source.a": {"sink.one", "sink.two"}})
	for i := 1; i <= 10; i++ {
		l.sent("source.a", strconv.Itoa(i))
	}
	if pos, ok := l.acked("source.a", "sink.one", "7"); ok {
		t.Fatalf("saved %s with one sink of two", pos)
	}
	if pos, ok := l.acked("source.a", "sink.two", "4"); !ok || pos != "4" {
		t.Fatalf("got %q %v, want 4: the lower of the two", pos, ok)
	}
	if pos, ok := l.acked("source.a", "sink.two", "9"); !ok || pos != "7" {
		t.Fatalf("got %q %v, want 7", pos, ok)
	}
	// An older acknowledgement (a sink fed by two paths) saves nothing.
	if pos, ok := l.acked("source.a", "sink.one", "5"); ok {
		t.Fatalf("saved %s going back", pos)
	}
	if pos, ok := l.acked("source.a", "sink.one", "10"); !ok || pos != "9" {
		t.Fatalf("got %q %v, want 9", pos, ok)
	}
	if _, ok := l.acked("source.a", "sink.one", "unknown"); ok {
		t.Fatal("saved a position never sent")
	}
}

func TestLedgerForgetsTheOldestPositionsBeyondMaxPending(t *testing.T) {
	l := newLedger(map[string][]string{"source.a": {"sink.one"}})
	for i := 1; i <= maxPending+10; i++ {
		l.sent("source.a", strconv.Itoa(i))
	}
	if s := l.sources["source.a"]; len(s.pending) != maxPending || s.oldest != 11 {
		t.Fatalf("%d pending from %d", len(s.pending), s.oldest)
	}
	if _, ok := l.acked("source.a", "sink.one", "5"); ok {
		t.Fatal("saved a forgotten position")
	}
	last := strconv.Itoa(maxPending + 10)
	if pos, ok := l.acked("source.a", "sink.one", last); !ok || pos != last {
		t.Fatalf("got %q %v, want %s", pos, ok, last)
	}
}
