package health

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/config"
)

func dur(d time.Duration) config.Duration { return config.Duration(d) }

// server answers /health with 503 until ready is set, then 200.
func server(t *testing.T) (port int, ready *atomic.Bool, hits *atomic.Int64) {
	t.Helper()
	ready, hits = new(atomic.Bool), new(atomic.Int64)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
			return
		}
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("warming up\n" + strings.Repeat("x", 1000)))
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(ts.Close)
	_, p, _ := net.SplitHostPort(ts.Listener.Addr().String())
	port, _ = strconv.Atoi(p)
	return port, ready, hits
}

func TestHTTPProbe(t *testing.T) {
	port, ready, _ := server(t)
	p, err := FromConfig(&config.Health{Type: "http", Path: "/health"}, "127.0.0.1", port, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "warming up") {
		t.Fatalf("err = %v, want 503 with a body excerpt", err)
	}
	if len(err.Error()) > 500 {
		t.Fatalf("error is not short: %d bytes", len(err.Error()))
	}
	ready.Store(true)
	out, err := p.(OutputProbe).CheckOutput(context.Background())
	if err != nil || !strings.HasPrefix(out, "200") {
		t.Fatalf("out=%q err=%v", out, err)
	}

	// A full URL is probed as is (the port in the config is ignored).
	p, _ = FromConfig(&config.Health{Type: "http", URL: "http://127.0.0.1:" + strconv.Itoa(port) + "/nope"}, "", 1, "", nil)
	if err := p.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("err = %v, want 404", err)
	}
	// Nobody listening.
	p, _ = FromConfig(&config.Health{Type: "http"}, "127.0.0.1", closedPort(t), "", nil)
	if err := p.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("err = %v, want connection refused", err)
	}
}

func TestHTTPProbeTimeout(t *testing.T) {
	block := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer ts.Close()
	defer close(block)
	p := &HTTP{URL: ts.URL + "/health"}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	// The handler answers only when the test ends: only ctx can end Check.
	err := p.Check(ctx)
	if err == nil {
		t.Fatal("a check past its context's deadline succeeded")
	}
}

func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

func TestTCPProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	p, err := FromConfig(&config.Health{Type: "tcp", Port: port}, "127.0.0.1", 1, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	p, _ = FromConfig(&config.Health{Type: "tcp"}, "127.0.0.1", closedPort(t), "", nil)
	if err := p.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("err = %v", err)
	}
}

func TestExecProbe(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "check.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho line1\necho line2 >&2\necho \"dir=$(pwd) foo=$FOO\"\nexit ${CODE:-0}\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	h := &config.Health{Type: "exec", Command: []string{"./check.sh"}}
	p, err := FromConfig(h, "", 0, dir, []string{"FOO=bar"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.(OutputProbe).CheckOutput(context.Background())
	if err != nil || !strings.Contains(out, "dir="+dir+" foo=bar") {
		t.Fatalf("out=%q err=%v", out, err)
	}
	p, _ = FromConfig(h, "", 0, dir, []string{"FOO=bar", "CODE=3"})
	err = p.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "line2") {
		t.Fatalf("err = %v, want exit status 3 with the output", err)
	}

	// A command that hangs is killed, with its process group, at the timeout.
	h = &config.Health{Type: "exec", Command: []string{"sh", "-c", "sleep 30 & sleep 30"}, Timeout: dur(200 * time.Millisecond)}
	p, _ = FromConfig(h, "", 0, dir, nil)
	err = p.Check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v, want a timeout", err)
	}

	p, _ = FromConfig(&config.Health{Type: "exec", Command: []string{"no-such-command-xyz"}}, "", 0, dir, []string{})
	if err := p.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "no-such-command-xyz") {
		t.Fatalf("err = %v", err)
	}
}

func TestFromConfigErrors(t *testing.T) {
	if p, err := FromConfig(nil, "", 0, "", nil); p != nil || err != nil {
		t.Fatalf("nil block: %v %v", p, err)
	}
	for _, h := range []*config.Health{
		{Type: "http"}, // no port at all
		{Type: "tcp"},
		{Type: "exec"},
		{Type: "grpc"},
		{Type: "http", URL: "not a url"},
	} {
		if _, err := FromConfig(h, "127.0.0.1", 0, "", nil); err == nil {
			t.Errorf("%+v: no error", h)
		}
	}
}

// fakeProbe fails until failUntil has passed, and records check times.
type fakeProbe struct {
	start     time.Time
	failUntil time.Duration
	failAfter time.Duration // 0: never starts failing again
	calls     atomic.Int64
}

func (f *fakeProbe) Check(ctx context.Context) error {
	f.calls.Add(1)
	e := time.Since(f.start)
	if e < f.failUntil || (f.failAfter > 0 && e >= f.failAfter) {
		return errors.New("not yet")
	}
	return nil
}

func TestWaitPassesSoonAfterReady(t *testing.T) {
	port, ready, _ := server(t)
	p, _ := FromConfig(&config.Health{Type: "http"}, "127.0.0.1", port, "", nil)
	time.AfterFunc(200*time.Millisecond, func() { ready.Store(true) })
	// An hour's interval: were it to delay the first success, the test
	// would hang until go test's timeout.
	h := &config.Health{Interval: dur(time.Hour), Timeout: dur(time.Second), FailureThreshold: 3, SuccessThreshold: 1}
	res, err := Wait(context.Background(), p, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Elapsed < 200*time.Millisecond {
		t.Fatalf("ready after %v, before the server was", res.Elapsed)
	}
	if res.Attempts < 3 || !strings.HasPrefix(res.Output, "200") || res.LastErr != nil {
		t.Fatalf("result = %+v", res)
	}
}

func TestWaitFirstCheckIsImmediate(t *testing.T) {
	f := &fakeProbe{start: time.Now()}
	res, err := Wait(context.Background(), f, &config.Health{Interval: dur(time.Hour)}, nil)
	if err != nil || res.Attempts != 1 { // an hour's interval: a delayed first check would hang
		t.Fatalf("res=%+v err=%v", res, err)
	}
}

func TestWaitFailsAfterThreshold(t *testing.T) {
	port, _, _ := server(t)
	p, _ := FromConfig(&config.Health{Type: "http"}, "127.0.0.1", port, "", nil)
	h := &config.Health{Interval: dur(50 * time.Millisecond), Timeout: dur(time.Second), FailureThreshold: 3, SuccessThreshold: 1}
	res, err := Wait(context.Background(), p, h, nil)
	if !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("err = %v", err)
	}
	// Three counted failures, one per interval after the (empty) start period.
	if res.Elapsed < 150*time.Millisecond {
		t.Fatalf("failed after %v, before three 50ms intervals", res.Elapsed)
	}
	if res.LastErr == nil || !strings.Contains(res.Output, "503") {
		t.Fatalf("result = %+v", res)
	}
}

func TestWaitRespectsStartPeriod(t *testing.T) {
	// Failing for 400ms with a 300ms start period and interval 50ms x 3:
	// without the start period it would fail at ~150ms.
	f := &fakeProbe{start: time.Now(), failUntil: 400 * time.Millisecond}
	h := &config.Health{StartPeriod: dur(300 * time.Millisecond), Interval: dur(50 * time.Millisecond), Timeout: dur(time.Second), FailureThreshold: 3, SuccessThreshold: 1}
	res, err := Wait(context.Background(), f, h, nil)
	if err != nil {
		t.Fatalf("err = %v after %+v", err, res)
	}
	if res.Elapsed < 400*time.Millisecond {
		t.Fatalf("elapsed %v", res.Elapsed)
	}

	// A component that never passes fails at StartPeriod + threshold × interval.
	f = &fakeProbe{start: time.Now(), failUntil: time.Hour}
	res, err = Wait(context.Background(), f, h, nil)
	if !errors.Is(err, ErrUnhealthy) || res.Elapsed < 450*time.Millisecond || res.Elapsed > time.Second {
		t.Fatalf("err=%v after %v, want failure at ~450ms", err, res.Elapsed)
	}
}

func TestWaitSuccessThreshold(t *testing.T) {
	f := &fakeProbe{start: time.Now()}
	h := &config.Health{Interval: dur(50 * time.Millisecond), SuccessThreshold: 3, FailureThreshold: 3}
	res, err := Wait(context.Background(), f, h, nil)
	if err != nil || res.Attempts != 3 || res.Elapsed < 100*time.Millisecond {
		t.Fatalf("res=%+v err=%v", res, err)
	}
	// A failure resets the consecutive successes: passes at 0, fails from 30ms.
	f = &fakeProbe{start: time.Now(), failAfter: 30 * time.Millisecond}
	res, err = Wait(context.Background(), f, h, nil)
	if !errors.Is(err, ErrUnhealthy) {
		t.Fatalf("res=%+v err=%v", res, err)
	}
}

func TestWaitStopsWhenNotAlive(t *testing.T) {
	f := &fakeProbe{start: time.Now(), failUntil: time.Hour}
	// An hour's interval: only the liveness poll, between checks, can end
	// this wait (if it could not, the test would hang).
	h := &config.Health{StartPeriod: dur(time.Hour), Interval: dur(time.Hour)}
	var n atomic.Int64
	alive := func() error {
		if n.Add(1) > 3 {
			return errors.New("exited with code 2")
		}
		return nil
	}
	res, err := Wait(context.Background(), f, h, alive)
	if !errors.Is(err, ErrStopped) || !strings.Contains(err.Error(), "exited with code 2") || !strings.Contains(err.Error(), "not yet") {
		t.Fatalf("err = %v", err)
	}
	// Dead before the first check: no check at all.
	res, err = Wait(context.Background(), f, h, func() error { return errors.New("gone") })
	if !errors.Is(err, ErrStopped) || res.Attempts != 0 {
		t.Fatalf("res=%+v err=%v", res, err)
	}
}

func TestWaitContext(t *testing.T) {
	f := &fakeProbe{start: time.Now(), failUntil: time.Hour}
	h := &config.Health{StartPeriod: dur(time.Hour), Interval: dur(time.Second)}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	res, err := Wait(ctx, f, h, nil)
	if !errors.Is(err, context.DeadlineExceeded) || res.Elapsed > time.Second || !strings.Contains(err.Error(), "not yet") {
		t.Fatalf("res=%+v err=%v", res, err)
	}
}

func TestWaitPerCheckTimeout(t *testing.T) {
	// A server that never answers: each check ends at Timeout and counts as a failure.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	p := &HTTP{URL: "http://" + l.Addr().String() + "/health"}
	h := &config.Health{Interval: dur(50 * time.Millisecond), Timeout: dur(100 * time.Millisecond), FailureThreshold: 2}
	res, err := Wait(context.Background(), p, h, nil)
	if !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("res=%+v err=%v", res, err)
	}
}

func TestWaitExecProbe(t *testing.T) {
	dir := t.TempDir()
	flag := filepath.Join(dir, "ready")
	time.AfterFunc(150*time.Millisecond, func() { _ = os.WriteFile(flag, nil, 0o644) })
	p, _ := FromConfig(&config.Health{Type: "exec", Command: []string{"test", "-e", "ready"}}, "", 0, dir, []string{})
	res, err := Wait(context.Background(), p, &config.Health{Interval: dur(10 * time.Second)}, nil)
	if err != nil || res.Elapsed > time.Second {
		t.Fatalf("res=%+v err=%v", res, err)
	}
}
