package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"

	"github.com/flowctl/flowctl/internal/testutil/dockertest"
)

// watchEnds runs WatchEnds for the rig's pipeline until the test ends and
// returns its signals.
func (r *rig) watchEnds() <-chan struct{} {
	r.t.Helper()
	sig := make(chan struct{}, 16)
	wctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.p.WatchEnds(wctx, r.pipeline, func() { sig <- struct{}{} }, nil)
	}()
	r.t.Cleanup(func() { cancel(); <-done })
	return sig
}

func receive(t *testing.T, sig <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-sig:
	case <-time.After(opTimeout):
		t.Fatalf("no signal for %s", what)
	}
}

func drain(sig <-chan struct{}) {
	for {
		select {
		case <-sig:
		default:
			return
		}
	}
}

func TestWatchEndsSignalsWhenAContainerOfThePipelineIsKilled(t *testing.T) {
	r := newRig(t, dockertest.ImageOptions{})
	// The start reaches the engine, which lets WatchEnds subscribe.
	h := r.start(r.spec("victim", nil))
	sig := r.watchEnds()
	receive(t, sig, "the subscription")
	hd, _ := decodeHandle(h)
	if err := r.cli.ContainerKill(ctx(t), hd.ID, "KILL"); err != nil {
		t.Fatal(err)
	}
	receive(t, sig, "the container's death")
	// The engine records the exit before it reports the death: what the
	// restart watcher observes on the signal is the end.
	if o := r.observe(h); o.Running || o.ExitCode == nil || *o.ExitCode != 137 {
		t.Fatalf("observed on the signal: %+v", o)
	}
	drain(sig)
	if err := r.cli.ContainerRemove(ctx(t), hd.ID, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	receive(t, sig, "the container's removal")
	r.stop(h, 0)
}

func TestWatchEndsNeverTouchesAnEngineTheProviderHasNotReached(t *testing.T) {
	// Another engine serves this "engine": any request fails the test.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("request to the engine: %s %s", r.Method, r.URL)
	}))
	defer srv.Close()
	p := New(Options{Host: "tcp://" + srv.Listener.Addr().String()})
	wctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	signalled := false
	p.WatchEnds(wctx, "pl", func() { signalled = true }, nil)
	if signalled {
		t.Error("signalled without an engine")
	}
}

// fakeEngine answers the ping and, on every subscription to /events, sends
// one die event and ends the stream; it records the filters asked for.
type fakeEngine struct {
	mu            sync.Mutex
	subscriptions int
	filters       string
}

func (f *fakeEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Api-Version", "1.41")
	switch {
	case strings.HasSuffix(r.URL.Path, "/_ping"):
		_, _ = io.WriteString(w, "OK")
	case strings.HasSuffix(r.URL.Path, "/events"):
		f.mu.Lock()
		f.subscriptions++
		f.filters = r.URL.Query().Get("filters")
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(events.Message{Type: events.ContainerEventType, Action: events.ActionDie, Actor: events.Actor{ID: "c1"}})
		w.(http.Flusher).Flush()
	default:
		http.NotFound(w, r)
	}
}

func TestWatchEndsResubscribesWhenTheStreamBreaks(t *testing.T) {
	fe := &fakeEngine{}
	srv := httptest.NewServer(fe)
	defer srv.Close()
	p := New(Options{Host: "tcp://" + srv.Listener.Addr().String()})
	defer p.Close()
	if _, err := p.api(context.Background()); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	sig := make(chan struct{}, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.WatchEnds(wctx, "pl", func() { sig <- struct{}{} }, nil)
	}()
	// Each subscription signals once for itself and once for its event.
	for i := range 4 {
		receive(t, sig, fmt.Sprintf("signal %d", i+1))
	}
	cancel()
	<-done
	fe.mu.Lock()
	defer fe.mu.Unlock()
	if fe.subscriptions < 2 {
		t.Errorf("%d subscriptions, want a new one after the stream ended", fe.subscriptions)
	}
	var got map[string]map[string]bool
	if err := json.Unmarshal([]byte(fe.filters), &got); err != nil {
		t.Fatalf("filters %q: %v", fe.filters, err)
	}
	want := map[string]map[string]bool{
		"type":  {"container": true},
		"label": {"io.flowctl.pipeline=pl": true},
		"event": {"die": true, "oom": true, "destroy": true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("filters %v, want %v", got, want)
	}
}
