package serve

import (
	"encoding/json"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/state"
)

func TestAControlPlaneListensAgainWhereTheLastOneDidUnlessItIsTaken(t *testing.T) {
	store := newState(t)
	s := start(t, store, Options{})
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if rec, _ := ReadRecord(store); rec != nil {
		t.Fatalf("a clean stop left its record: %+v", rec)
	}
	listen, recorded := PreferredListen(store)
	if recorded != s.addrs.GRPC || listen != s.addrs.GRPC {
		t.Fatalf("PreferredListen = %s (recorded %s); want the last one's %s", listen, recorded, s.addrs.GRPC)
	}
	// Taken: another address, and the recorded one said.
	l, err := net.Listen("tcp", s.addrs.GRPC)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	listen, recorded = PreferredListen(store)
	if recorded != s.addrs.GRPC || listen == s.addrs.GRPC {
		t.Fatalf("PreferredListen with %s taken = %s (recorded %s)", s.addrs.GRPC, listen, recorded)
	}
	seen, err := ObserveControlPlane(t.Context(), store, "")
	if err != nil {
		t.Fatal(err)
	}
	if !seen.Managed || seen.Running || seen.Detail != "it is not running" || seen.Listen != listen {
		t.Fatalf("seen %+v", seen)
	}
}

func TestObserveControlPlaneTellsRunningDeadAndMute(t *testing.T) {
	store := newState(t)
	if seen, err := ObserveControlPlane(t.Context(), store, "127.0.0.1:1"); err != nil || seen.Managed {
		t.Fatalf("a named control plane is not flowctl's: %+v, %v", seen, err)
	}
	s := start(t, store, Options{})
	seen, err := ObserveControlPlane(t.Context(), store, "")
	if err != nil || !seen.Running || !seen.Answering {
		t.Fatalf("a serving control plane: %+v, %v", seen, err)
	}
	// A listener that accepts and never answers, recorded as the serve.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	rec, _ := ReadRecord(store)
	rec.GRPC = mute.Addr().String()
	putRecord(t, store, rec)
	seen, err = ObserveControlPlane(t.Context(), store, "")
	if err != nil || !seen.Running || seen.Answering || !strings.Contains(seen.Detail, "does not answer on "+mute.Addr().String()) {
		t.Fatalf("a mute control plane: %+v, %v", seen, err)
	}
	// A record of a process that is gone.
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	rec.Process.PID, rec.Process.StartTicks = os.Getpid(), 1
	putRecord(t, store, rec)
	seen, err = ObserveControlPlane(t.Context(), store, "")
	if err != nil || seen.Running || !strings.HasPrefix(seen.Detail, "it is not running: pid ") {
		t.Fatalf("a dead control plane: %+v, %v", seen, err)
	}
}

func TestIdleWhenNoRecordNamesARunningObject(t *testing.T) {
	store := newState(t)
	for _, tc := range []struct {
		rec  *state.Record
		idle bool
	}{
		{nil, true},
		{&state.Record{Address: "source.a", Handle: []byte(`{}`), Status: state.StatusStopped}, true},
		{&state.Record{Address: "source.b", Status: state.StatusFailed, StatusReason: "replace failed: no image"}, true},
		{&state.Record{Address: "source.c", Handle: []byte(`{}`), Status: state.StatusFailed}, false},
	} {
		if tc.rec != nil {
			if err := store.Update(func(tx *state.Tx) error { return tx.PutComponent(tc.rec) }); err != nil {
				t.Fatal(err)
			}
		}
		if idle, err := Idle(store); err != nil || idle != tc.idle {
			t.Fatalf("with %+v: idle %t (%v), want %t", tc.rec, idle, err, tc.idle)
		}
	}
}

// putRecord overwrites the serve record.
func putRecord(t *testing.T, store *state.Store, rec *Record) {
	t.Helper()
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Update(func(tx *state.Tx) error { return tx.PutData(RecordNamespace, RecordKey, b) }); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkObserveControlPlane is what every plan pays to see the control
// plane: the serve record, and an answer from a live one.
func BenchmarkObserveControlPlane(b *testing.B) {
	store := newState(b)
	start(b, store, Options{})
	for b.Loop() {
		seen, err := ObserveControlPlane(b.Context(), store, "")
		if err != nil || !seen.Answering {
			b.Fatalf("%+v %v", seen, err)
		}
	}
}
