// Package providertest is an in-memory providers.Provider for the tests of
// the packages that drive providers (plan, apply, watch, logs). Its objects
// live in a map: Start makes one, Stop removes it, and a test says what
// Observe reports of each (running, exited with a code, killed by a signal,
// gone, relabelled). Every call is recorded in order with the component it
// was about, failures are injected per component address, and the optional
// capabilities are switched on by the test. It runs nothing, so a test of a
// decision needs no executor and no binary.
//
// It is not a _test file so that the tests of every package can share it;
// no production code imports it.
package providertest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
)

// Operations of a recorded Call.
const (
	OpStart     = "start"
	OpStop      = "stop"
	OpObserve   = "observe"
	OpList      = "list"
	OpLogs      = "logs"
	OpPreflight = "preflight"
)

// Call is one provider call, as recorded.
type Call struct {
	Op string
	// Address is the component the call was about; for List, the
	// pipeline; for Preflight, the components' addresses joined by commas.
	Address string
	// Handle is the object's handle (Stop, Observe, Logs) or the one Start
	// returned; empty for a Start that failed.
	Handle string
}

// String is "start source.a": the form tests compare call logs in.
func (c Call) String() string { return c.Op + " " + c.Address }

// object is one object the provider holds, and when it was made.
type object struct {
	obs providers.Observed
	seq int
}

// Provider is the fake. Its zero value is not usable; call New. It is safe
// for concurrent use, as the engine calls it from several goroutines.
type Provider struct {
	name string

	mu      sync.Mutex
	seq     int
	objects map[string]*object // by handle
	owners  map[string]string  // handle -> address, kept after the object goes
	specs   map[string][]providers.ComponentSpec
	logs    map[string]*Log // by handle
	asks    []providers.LogOptions
	calls   []Call
	quiet   bool

	failStart  map[string]error
	failStop   map[string]error
	neverReady map[string]bool

	restartsItself bool
	hostEnv        []string
	preflightErr   error
	onObserve      func(providers.Observed)
}

// The capabilities the fake offers. Each is off until the test switches it
// on: RestartsItself reports false and HostEnv passes nothing by default,
// which the engine treats as a provider without the capability.
var (
	_ providers.Provider      = (*Provider)(nil)
	_ providers.SelfRestarter = (*Provider)(nil)
	_ providers.HostEnvPasser = (*Provider)(nil)
	_ providers.Preflighter   = (*Provider)(nil)
)

// New returns an empty provider called name. Pipelines loaded by the
// config package name only the real executors, so a test registers the
// fake under one of their names ("process").
func New(name string) *Provider {
	return &Provider{
		name:       name,
		objects:    map[string]*object{},
		owners:     map[string]string{},
		specs:      map[string][]providers.ComponentSpec{},
		logs:       map[string]*Log{},
		failStart:  map[string]error{},
		failStop:   map[string]error{},
		neverReady: map[string]bool{},
	}
}

// Name implements providers.Provider.
func (p *Provider) Name() string { return p.name }

// record appends a call; the caller holds p.mu.
func (p *Provider) record(op, addr string, h []byte) {
	if !p.quiet {
		p.calls = append(p.calls, Call{Op: op, Address: addr, Handle: string(h)})
	}
}

// HandleOf is the handle the fake gives the object of fingerprint fp.
func HandleOf(fp string) providers.Handle {
	b, _ := json.Marshal(fp)
	return b
}

// Start implements providers.Provider: the new object runs at once (unless
// NeverReady says otherwise), labelled as spec says, with the fingerprint
// "<address>#<n>".
func (p *Provider) Start(_ context.Context, spec providers.ComponentSpec) (providers.Handle, error) {
	addr := spec.Address()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.failStart[addr]; err != nil {
		p.record(OpStart, addr, nil)
		return nil, err
	}
	p.seq++
	fp := fmt.Sprintf("%s#%d", addr, p.seq)
	h := HandleOf(fp)
	p.record(OpStart, addr, h)
	o := providers.Observed{
		Address: addr, Exists: true, Running: true, SpecHash: spec.SpecHash,
		Pipeline: spec.Pipeline, Lineage: spec.Lineage, InstanceID: spec.InstanceID,
		Handle: h, Fingerprint: fp, Ports: maps.Clone(spec.Ports),
	}
	if p.neverReady[addr] {
		o.Health = providers.HealthUnhealthy
	}
	p.objects[string(h)] = &object{obs: o, seq: p.seq}
	p.owners[string(h)] = addr
	p.specs[addr] = append(p.specs[addr], spec)
	return h, nil
}

// Stop implements providers.Provider: the object is gone afterwards.
// Stopping an object that is already gone is not an error.
func (p *Provider) Stop(_ context.Context, h providers.Handle, _ time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	addr := p.owners[string(h)]
	p.record(OpStop, addr, h)
	if err := p.failStop[addr]; err != nil {
		return err
	}
	delete(p.objects, string(h))
	return nil
}

// Observe implements providers.Provider: what the test set of the object,
// or an Observed that does not exist once it is gone.
func (p *Provider) Observe(_ context.Context, h providers.Handle) (providers.Observed, error) {
	p.mu.Lock()
	p.record(OpObserve, p.owners[string(h)], h)
	var o providers.Observed
	if obj, ok := p.objects[string(h)]; ok {
		o = copyObserved(obj.obs)
	}
	hook := p.onObserve
	p.mu.Unlock()
	if hook != nil {
		hook(o)
	}
	return o, nil
}

// List implements providers.Provider: every existing object labelled with
// pipeline, by address then fingerprint.
func (p *Provider) List(_ context.Context, pipeline string) ([]providers.Observed, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.record(OpList, pipeline, nil)
	var out []providers.Observed
	for _, obj := range p.objects {
		if obj.obs.Exists && obj.obs.Pipeline == pipeline {
			out = append(out, copyObserved(obj.obs))
		}
	}
	slices.SortFunc(out, func(a, b providers.Observed) int {
		return cmp.Or(strings.Compare(a.Address, b.Address), strings.Compare(a.Fingerprint, b.Fingerprint))
	})
	return out, nil
}

// Logs implements providers.Provider from the Log SetLog gave the handle.
func (p *Provider) Logs(ctx context.Context, h providers.Handle, opts providers.LogOptions) (io.ReadCloser, error) {
	p.mu.Lock()
	p.record(OpLogs, p.owners[string(h)], h)
	p.asks = append(p.asks, opts)
	l := p.logs[string(h)]
	p.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("no log for handle %s", h)
	}
	return l.open(ctx, opts), nil
}

// RestartsItself implements providers.SelfRestarter; false until
// SetRestartsItself.
func (p *Provider) RestartsItself() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restartsItself
}

// SetRestartsItself makes the fake an executor that restarts and checks
// its components itself (as Nomad does).
func (p *Provider) SetRestartsItself(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.restartsItself = on
}

// HostEnv implements providers.HostEnvPasser; nothing until SetHostEnv.
func (p *Provider) HostEnv() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.hostEnv)
}

// SetHostEnv names the host variables the fake's components inherit.
func (p *Provider) SetHostEnv(names ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hostEnv = slices.Clone(names)
}

// Preflight implements providers.Preflighter: the error FailPreflight set.
func (p *Provider) Preflight(_ context.Context, components []*config.Component) error {
	addrs := make([]string, len(components))
	for i, c := range components {
		addrs[i] = c.Address()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.record(OpPreflight, strings.Join(addrs, ","), nil)
	return p.preflightErr
}

// FailPreflight makes Preflight refuse every apply with err (nil: accept).
func (p *Provider) FailPreflight(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.preflightErr = err
}

// FailStart makes every Start of addr fail with err (nil: succeed again).
func (p *Provider) FailStart(addr string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failStart[addr] = err
}

// FailStop makes every Stop of addr's objects fail with err; the object
// stays.
func (p *Provider) FailStop(addr string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failStop[addr] = err
}

// NeverReady makes the objects Start makes of addr run but report their
// own health check unhealthy, so that they never become ready.
func (p *Provider) NeverReady(addr string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.neverReady[addr] = true
}

// OnObserve calls f, outside the fake's lock, with what each Observe
// returns, before the caller sees it: a test looks at the world (state,
// say) at the moment the caller asks.
func (p *Provider) OnObserve(f func(providers.Observed)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.onObserve = f
}

// Put adds an object as o describes it, as if made outside this test's
// engine (an earlier apply, another state file), and returns its handle.
// An empty Fingerprint becomes "<address>#<n>", an empty Handle
// HandleOf(Fingerprint).
func (p *Provider) Put(o providers.Observed) providers.Handle {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seq++
	if o.Fingerprint == "" {
		o.Fingerprint = fmt.Sprintf("%s#%d", o.Address, p.seq)
	}
	if len(o.Handle) == 0 {
		o.Handle = HandleOf(o.Fingerprint)
	}
	p.objects[string(o.Handle)] = &object{obs: copyObserved(o), seq: p.seq}
	p.owners[string(o.Handle)] = o.Address
	return slices.Clone(o.Handle)
}

// Set changes what Observe reports of the object h names. It panics when
// there is no such object: the test is wrong.
func (p *Provider) Set(h providers.Handle, f func(o *providers.Observed)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	obj, ok := p.objects[string(h)]
	if !ok {
		panic(fmt.Sprintf("providertest: no object %s", h))
	}
	f(&obj.obs)
}

// Exit makes the object h names exit with code.
func (p *Provider) Exit(h providers.Handle, code int) {
	p.Set(h, func(o *providers.Observed) {
		o.Running, o.ExitCode, o.Detail = false, &code, fmt.Sprintf("exited with code %d", code)
	})
}

// Kill makes the object h names end by signal ("SIGKILL").
func (p *Provider) Kill(h providers.Handle, signal string) {
	p.Set(h, func(o *providers.Observed) {
		o.Running, o.Signal, o.Detail = false, signal, "killed by "+signal
	})
}

// Remove deletes the object h names behind the engine's back.
func (p *Provider) Remove(h providers.Handle) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.objects, string(h))
}

// Current returns the handle of addr's newest existing object.
func (p *Provider) Current(addr string) (providers.Handle, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var best *object
	for _, obj := range p.objects {
		if obj.obs.Address == addr && (best == nil || obj.seq > best.seq) {
			best = obj
		}
	}
	if best == nil {
		return nil, false
	}
	return slices.Clone(best.obs.Handle), true
}

// Object returns what Observe would report of h, without recording a call.
func (p *Provider) Object(h providers.Handle) (providers.Observed, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	obj, ok := p.objects[string(h)]
	if !ok {
		return providers.Observed{}, false
	}
	return copyObserved(obj.obs), true
}

// Specs returns every spec addr was started with, oldest first.
func (p *Provider) Specs(addr string) []providers.ComponentSpec {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.specs[addr])
}

// SetLog serves l as the log of the object h names (which need not exist).
func (p *Provider) SetLog(h providers.Handle, l *Log) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.logs[string(h)] = l
}

// LogRequests returns the options of every Logs call so far.
func (p *Provider) LogRequests() []providers.LogOptions {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.asks)
}

// Calls returns every call so far, in order.
func (p *Provider) Calls() []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

// Ops returns the calls of the operations named, in order, as Call.String
// writes them: Ops(OpStart, OpStop) gives ["stop sink.c", "start sink.d"].
func (p *Provider) Ops(ops ...string) []string {
	var out []string
	for _, c := range p.Calls() {
		if slices.Contains(ops, c.Op) {
			out = append(out, c.String())
		}
	}
	return out
}

// ResetCalls forgets the calls so far.
func (p *Provider) ResetCalls() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = nil
}

// Quiet stops recording calls, for benchmarks: a call log grows with every
// iteration and its allocations would be counted as the code's.
func (p *Provider) Quiet() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.quiet = true
}

// copyObserved copies o deeply enough that neither copy changes the other.
func copyObserved(o providers.Observed) providers.Observed {
	o.Handle = slices.Clone(o.Handle)
	o.Ports = maps.Clone(o.Ports)
	if o.ExitCode != nil {
		c := *o.ExitCode
		o.ExitCode = &c
	}
	return o
}
