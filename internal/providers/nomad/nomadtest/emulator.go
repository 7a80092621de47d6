// Package nomadtest is an emulator of the part of Nomad's HTTP API that
// flowctl's nomad executor uses, for tests on machines where no Nomad agent
// can run. It is an emulator, not Nomad: it plays one server and one client
// node in a single in-process HTTP server on 127.0.0.1, and nothing it
// "runs" executes.
//
// # What it emulates
//
// These endpoints, with the JSON shapes of Nomad's API documentation (it
// encodes the types of github.com/hashicorp/nomad/api, which mirror them)
// and the X-Nomad-Index, X-Nomad-LastContact and X-Nomad-KnownLeader
// headers the client reads:
//
//	GET    /v1/status/leader
//	PUT    /v1/jobs, /v1/job/:id       register; EnforceIndex as Nomad: index 0
//	                                    registers only a new job, any other
//	                                    only the job at that job modify index;
//	                                    refusals are HTTP 500 "Enforcing job
//	                                    modify index N: ..."
//	PUT    /v1/validate/job            the validation register does first
//	GET    /v1/jobs                    prefix, namespace (or *), meta=true
//	GET    /v1/job/:id
//	DELETE /v1/job/:id                 purge=false stops the job (a new job
//	                                    modify index), purge=true removes it
//	GET    /v1/job/:id/allocations     all=false leaves out the allocations
//	                                    of an earlier job of the same ID
//	GET    /v1/allocation/:id
//	GET    /v1/node/:id                the one node, whose HTTPAddr is this
//	                                    server, so client calls come back here
//	GET    /v1/client/fs/logs/:alloc   task, type, origin, offset, follow,
//	                                    plain; frames as Nomad streams them
//
// Registration validates what Nomad would refuse of the jobs flowctl
// writes (restart and reschedule policies, update strategy, ports,
// services and checks, resources, the drivers' required config).
//
// Each allocation lives through Nomad's lifecycle on a clock of its own:
// pending for Options.StartDelay, then running; Options.HealthyAfter
// later its deployment health is set (healthy, or unhealthy when a check
// failure was injected); a task that exits is restarted as the group's
// restart block says (attempts, interval, delay, mode), and an allocation
// that runs out of attempts fails and is rescheduled as the reschedule
// block says, or the job dies. Stopping a job kills its tasks
// (Options.StopDelay) and completes its allocations.
//
// Faults are injected by the test: Crash and CrashLoop (a task exits with
// a code once, or every time it starts), FailChecks (its service check
// fails), FailNext (the next requests answer an HTTP error), SetLatency
// (slow answers), and changes made "outside flowctl": StopJob, ModifyJob.
//
// # What it does not emulate
//
// Scheduling (every allocation is placed at once on the one node, whatever
// its datacenters, constraints, resources or port collisions),
// evaluations and deployments as objects (only each allocation's
// DeploymentStatus), in-place updates (a new job version replaces every
// allocation), blocking queries (index and wait are ignored), ACL
// policies (with Options.Token set, a request without that token is
// refused; nothing finer), regions (jobs are kept by namespace only),
// drivers (a task is a state machine; its logs are what the test writes
// with WriteLog), log rotation, gzip, and every endpoint not listed above
// (404).
package nomadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"
)

// Options tune the emulator's clock.
type Options struct {
	// StartDelay is how long an allocation stays pending (default 20ms).
	StartDelay time.Duration
	// HealthyAfter is how long after its task starts an allocation's
	// deployment health is set (default 20ms): it stands in for the update
	// block's min_healthy_time, which the emulator does not wait.
	HealthyAfter time.Duration
	// CrashAfter is how long a crash-looping task runs before it exits
	// (default 20ms).
	CrashAfter time.Duration
	// StopDelay is how long a task takes to stop (default 10ms).
	StopDelay time.Duration
	// RescheduleDelay, when set, replaces the reschedule policy's delay
	// (at least 5s in Nomad), so that tests need not wait for it.
	RescheduleDelay time.Duration
	// Token, when set, is the only ACL token accepted; every request
	// without it gets 403.
	Token string
}

// Emulator is a running emulated Nomad.
type Emulator struct {
	srv  *httptest.Server
	opts Options
	node *api.Node

	mu     sync.Mutex
	index  uint64
	seq    int
	jobs   map[jobKey]*job
	allocs map[string]*alloc
	faults []*fault
	// Behaviour injected by job ID, for jobs registered now and later.
	crashLoops    map[string]int
	failingChecks map[string]bool
	latency       time.Duration
	requests      []Request
	// changed is closed (and replaced) whenever state changes, to wake log
	// followers.
	changed chan struct{}
}

// Request is one request the emulator answered.
type Request struct {
	Method, Path string
	Query        url.Values
	// Token reports whether an ACL token was sent (never its value).
	Token bool
}

type jobKey struct{ namespace, id string }

// Start starts an emulator that stops with t's cleanup.
func Start(t testing.TB, opts Options) *Emulator {
	t.Helper()
	e := New(opts)
	t.Cleanup(e.Close)
	return e
}

// New starts an emulator on a loopback port; Close stops it.
func New(opts Options) *Emulator {
	if opts.StartDelay <= 0 {
		opts.StartDelay = 20 * time.Millisecond
	}
	if opts.HealthyAfter <= 0 {
		opts.HealthyAfter = 20 * time.Millisecond
	}
	if opts.CrashAfter <= 0 {
		opts.CrashAfter = 20 * time.Millisecond
	}
	if opts.StopDelay <= 0 {
		opts.StopDelay = 10 * time.Millisecond
	}
	e := &Emulator{
		opts: opts, jobs: map[jobKey]*job{}, allocs: map[string]*alloc{}, changed: make(chan struct{}), index: 10,
		crashLoops: map[string]int{}, failingChecks: map[string]bool{},
	}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	host := strings.TrimPrefix(e.srv.URL, "http://")
	e.node = &api.Node{
		ID: "9a4c5e2b-0000-4000-8000-000000000001", Name: "emulated-node", Datacenter: "dc1",
		HTTPAddr: host, Status: "ready", SchedulingEligibility: "eligible",
		Attributes: map[string]string{"driver.docker": "1", "driver.raw_exec": "1", "unique.network.ip-address": "127.0.0.1"},
	}
	return e
}

// URL is the emulator's address, for NOMAD_ADDR.
func (e *Emulator) URL() string { return e.srv.URL }

// Close stops the server; streams in flight end.
func (e *Emulator) Close() {
	e.srv.CloseClientConnections()
	e.srv.Close()
}

// Requests lists every request answered so far.
func (e *Emulator) Requests() []Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Request(nil), e.requests...)
}

type fault struct {
	method, prefix string
	n, status      int
}

// FailNext makes the next n requests whose method is method (any when
// empty) and whose path starts with prefix answer status, with a body
// saying the failure is emulated.
func (e *Emulator) FailNext(method, prefix string, n, status int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.faults = append(e.faults, &fault{method: method, prefix: prefix, n: n, status: status})
}

// SetLatency delays every answer by d (0: none).
func (e *Emulator) SetLatency(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.latency = d
}

func (e *Emulator) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	e.requests = append(e.requests, Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Token: r.Header.Get("X-Nomad-Token") != ""})
	latency := e.latency
	var failWith int
	for _, f := range e.faults {
		if f.n > 0 && (f.method == "" || f.method == r.Method) && strings.HasPrefix(r.URL.Path, f.prefix) {
			f.n--
			failWith = f.status
			break
		}
	}
	e.mu.Unlock()
	if latency > 0 {
		select {
		case <-time.After(latency):
		case <-r.Context().Done():
			return
		}
	}
	if failWith != 0 {
		http.Error(w, fmt.Sprintf("emulated failure (%d)", failWith), failWith)
		return
	}
	if e.opts.Token != "" && r.Header.Get("X-Nomad-Token") != e.opts.Token {
		http.Error(w, "Permission denied", http.StatusForbidden)
		return
	}
	e.route(w, r)
}

// route dispatches to the emulated endpoints.
func (e *Emulator) route(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	ns := namespaceOf(r)
	switch {
	case p == "/v1/status/leader" && r.Method == http.MethodGet:
		e.reply(w, strconv.Quote(strings.TrimPrefix(e.srv.URL, "http://")), true)
	case p == "/v1/jobs" && r.Method == http.MethodGet:
		e.listJobs(w, r)
	case p == "/v1/jobs" && (r.Method == http.MethodPut || r.Method == http.MethodPost):
		e.register(w, r, "")
	case p == "/v1/validate/job" && (r.Method == http.MethodPut || r.Method == http.MethodPost):
		e.validate(w, r)
	case strings.HasPrefix(p, "/v1/job/"):
		rest := strings.TrimPrefix(p, "/v1/job/")
		id, sub, _ := strings.Cut(rest, "/")
		if uid, err := url.PathUnescape(id); err == nil {
			id = uid
		}
		switch {
		case sub == "" && r.Method == http.MethodGet:
			e.readJob(w, ns, id)
		case sub == "" && (r.Method == http.MethodPut || r.Method == http.MethodPost):
			e.register(w, r, id)
		case sub == "" && r.Method == http.MethodDelete:
			e.deregister(w, r, ns, id)
		case sub == "allocations" && r.Method == http.MethodGet:
			e.jobAllocations(w, r, ns, id)
		default:
			http.NotFound(w, r)
		}
	case strings.HasPrefix(p, "/v1/allocation/") && r.Method == http.MethodGet:
		e.readAlloc(w, strings.TrimPrefix(p, "/v1/allocation/"))
	case strings.HasPrefix(p, "/v1/node/") && r.Method == http.MethodGet:
		if strings.TrimPrefix(p, "/v1/node/") != e.node.ID {
			http.Error(w, "node not found", http.StatusNotFound)
			return
		}
		e.reply(w, e.node, true)
	case strings.HasPrefix(p, "/v1/client/fs/logs/") && r.Method == http.MethodGet:
		e.logs(w, r, strings.TrimPrefix(p, "/v1/client/fs/logs/"))
	default:
		http.NotFound(w, r)
	}
}

func namespaceOf(r *http.Request) string {
	if ns := r.URL.Query().Get("namespace"); ns != "" {
		return ns
	}
	return api.DefaultNamespace
}

// reply writes v as JSON with the index headers.
func (e *Emulator) reply(w http.ResponseWriter, v any, query bool) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	e.mu.Lock()
	idx := e.index
	e.mu.Unlock()
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Nomad-Index", strconv.FormatUint(idx, 10))
	if query {
		h.Set("X-Nomad-LastContact", "0")
		h.Set("X-Nomad-KnownLeader", "true")
	}
	_, _ = w.Write(b)
}

// notify wakes whoever waits for a change; e.mu is held.
func (e *Emulator) notify() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// nextID makes an ID shaped like Nomad's UUIDs; e.mu is held.
func (e *Emulator) nextID() string {
	e.seq++
	return fmt.Sprintf("%08x-e000-4000-8000-%012x", e.seq, e.seq)
}

// wait blocks until state changes, ctx ends or d passes.
func (e *Emulator) wait(ctx context.Context, d time.Duration) {
	e.mu.Lock()
	ch := e.changed
	e.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-ctx.Done():
	case <-t.C:
	}
}

// hostIP is the address ports are allocated on.
const hostIP = "127.0.0.1"

// sortedKeys of a map with string keys.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
