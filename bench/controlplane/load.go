package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/tokens"
	flowctlpb "github.com/flowctl/flowctl/proto/gen/flowctl"
	flowctlv1 "github.com/flowctl/flowctl/proto/gen/flowctl/v1"
)

// component is one simulated component, with its own connection as in the
// wild.
type component struct {
	i         int
	legacy    bool
	ctx       context.Context // carries the token, if any
	conn      *grpc.ClientConn
	cpLegacy  flowctlpb.ControlPlaneClient
	cpV1      flowctlv1.ControlPlaneServiceClient
	serviceID string
	raw       *rawConn // -client raw: the heartbeat connection
}

type result struct {
	N              int         `json:"n"`
	Protocol       string      `json:"protocol"`
	Client         string      `json:"client"`
	Tokens         bool        `json:"tokens"`
	Rate           string      `json:"rate"`
	Concurrency    int         `json:"concurrency,omitempty"`
	Server         string      `json:"server"`
	ConnectTime    float64     `json:"connect_seconds"`
	RawConnectTime float64     `json:"raw_connect_seconds,omitempty"`
	Registered     int         `json:"registered"`
	RegisterErrors int         `json:"register_errors"`
	RegisterTime   float64     `json:"register_seconds"`
	RegisterP50ms  float64     `json:"register_p50_ms"`
	RegisterP99ms  float64     `json:"register_p99_ms"`
	Heartbeats     int         `json:"heartbeats"`
	HeartbeatErrs  int         `json:"heartbeat_errors"`
	Seconds        float64     `json:"seconds"`
	PerSecond      float64     `json:"heartbeats_per_second"`
	Offered        float64     `json:"offered_per_second,omitempty"`
	P50ms          float64     `json:"p50_ms"`
	P90ms          float64     `json:"p90_ms"`
	P99ms          float64     `json:"p99_ms"`
	P999ms         float64     `json:"p999_ms"`
	Maxms          float64     `json:"max_ms"`
	FirstErrors    []string    `json:"first_errors,omitempty"`
	ClientCPU      float64     `json:"client_cpu_seconds"`
	HBServerCPU    float64     `json:"heartbeat_phase_server_cpu_seconds"`
	HBClientCPU    float64     `json:"heartbeat_phase_client_cpu_seconds"`
	ServerStats    serverStats `json:"server_stats"`
}

func loadMain(c config) error {
	if c.clientCPUProfile != "" {
		f, err := os.Create(c.clientCPUProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	res, err := run(c)
	if res != nil {
		report(c, res)
	}
	return err
}

// run performs one benchmark.
func run(c config) (*result, error) {
	if c.n <= 0 {
		return nil, errors.New("-n must be positive")
	}
	switch c.protocol {
	case "v1", "legacy", "both":
	default:
		return nil, fmt.Errorf("-protocol %q: want v1, legacy or both", c.protocol)
	}
	switch c.client {
	case "":
		c.client = "grpc"
	case "grpc", "raw":
	default:
		return nil, fmt.Errorf("-client %q: want grpc or raw", c.client)
	}
	res := result{N: c.n, Protocol: c.protocol, Client: c.client, Tokens: c.tokens, Rate: c.rate.String()}
	if c.rate == 0 {
		res.Rate = "max"
		res.Concurrency = c.concurrency
	}

	secretFile := c.secretFile
	stop := func() (serverStats, error) { return serverStats{}, nil }
	serverCPU := func() float64 { return 0 }
	addr := c.addr
	if addr == "" {
		dir, err := os.MkdirTemp("", "flowctl-cp-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if secretFile == "" {
			secretFile = filepath.Join(dir, tokens.SecretFileName)
		}
		if _, err := tokens.LoadOrCreateSecret(secretFile); err != nil {
			return nil, err
		}
		if c.inprocess {
			srv, gs, lis, err := startServer("127.0.0.1:0", dir, c.n, c.tokens, secretFile)
			if err != nil {
				return nil, err
			}
			addr = lis.Addr().String()
			res.Server = "in-process (RSS not reported)"
			stop = func() (serverStats, error) {
				gs.Stop()
				srv.Close()
				m := srv.Metrics()
				return serverStats{Metrics: &m}, nil
			}
		} else {
			h, err := spawnServer(c, dir, secretFile)
			if err != nil {
				return nil, err
			}
			addr = h.addr
			res.Server = "separate process, pid " + strconv.Itoa(h.pid)
			stop = h.stop
			serverCPU = func() float64 { return procCPU(h.pid) }
		}
	} else {
		res.Server = addr
		if c.tokens && secretFile == "" {
			return nil, errors.New("-tokens with -addr needs -token-secret-file (the server's secret)")
		}
	}

	var issuer *tokens.Issuer
	if c.tokens {
		secret, err := tokens.LoadSecret(secretFile)
		if err != nil {
			return nil, err
		}
		issuer = tokens.NewIssuer(secret)
	}
	expected := benchComponents(c.n)
	comps := make([]*component, c.n)
	for i := range comps {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		defer conn.Close()
		cp := &component{i: i, conn: conn, ctx: context.Background(),
			cpLegacy: flowctlpb.NewControlPlaneClient(conn), cpV1: flowctlv1.NewControlPlaneServiceClient(conn)}
		cp.legacy = c.protocol == "legacy" || c.protocol == "both" && i%2 == 1
		if issuer != nil {
			e := expected[i]
			tok, err := issuer.Issue(tokens.Subject{Address: e.Address, Pipeline: benchPipeline, Lineage: benchLineage, InstanceID: e.InstanceID})
			if err != nil {
				return nil, err
			}
			cp.ctx = metadata.NewOutgoingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok))
		}
		comps[i] = cp
	}

	errs := &errorLog{}
	cpu0 := selfCPU()

	// Connect first, so that registration latency is the server's, not
	// TCP and HTTP/2 set-up's.
	connStart := time.Now()
	eachBounded(comps, connectConcurrency, func(cp *component) {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		defer cancel()
		cp.conn.Connect()
		for st := cp.conn.GetState(); st != connectivity.Ready; st = cp.conn.GetState() {
			if !cp.conn.WaitForStateChange(ctx, st) {
				errs.add("connect", ctx.Err())
				return
			}
		}
	})
	res.ConnectTime = time.Since(connStart).Seconds()

	// Registration: as components start, with bounded concurrency.
	regLat := make([]time.Duration, c.n)
	regStart := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < max(1, c.regConc); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= c.n {
					return
				}
				t := time.Now()
				err := register(comps[i], expected[i], c.timeout)
				regLat[i] = time.Since(t)
				if err != nil {
					errs.add("register", err)
				}
			}
		}()
	}
	wg.Wait()
	res.RegisterTime = time.Since(regStart).Seconds()
	var okRegs []time.Duration
	for i, cp := range comps {
		if cp.serviceID != "" {
			okRegs = append(okRegs, regLat[i])
		}
	}
	res.Registered = len(okRegs)
	res.RegisterErrors = c.n - len(okRegs)
	slices.Sort(okRegs)
	res.RegisterP50ms, res.RegisterP99ms = ms(pct(okRegs, 50)), ms(pct(okRegs, 99))
	live := slices.DeleteFunc(slices.Clone(comps), func(cp *component) bool { return cp.serviceID == "" })
	if len(live) == 0 {
		st, _ := stop()
		res.ServerStats = st
		res.FirstErrors = errs.first()
		return &res, errors.New("no component registered")
	}

	if c.client == "raw" {
		// Heartbeats on raw connections: the registration ones are no
		// longer needed.
		t := time.Now()
		for _, cp := range comps {
			cp.conn.Close()
		}
		eachBounded(live, connectConcurrency, func(cp *component) {
			md, _ := metadata.FromOutgoingContext(cp.ctx)
			raw, err := dialRaw(addr, md, c.timeout)
			if err != nil {
				errs.add("connect", err)
				raw = &rawConn{err: err} // its heartbeats fail
			}
			cp.raw = raw
		})
		defer func() {
			for _, cp := range live {
				if cp.raw.conn != nil {
					cp.raw.Close()
				}
			}
		}()
		res.RawConnectTime = time.Since(t).Seconds()
	}

	// Heartbeats.
	srvCPU0, cliCPU0 := serverCPU(), selfCPU()
	var lats [][]time.Duration
	var okCount, errCount atomic.Int64
	start := time.Now()
	end := start.Add(c.duration)
	// One deadline for the whole run instead of a timer per call.
	runCtx, cancelRun := context.WithDeadline(context.Background(), end.Add(c.timeout))
	defer cancelRun()
	if c.rate > 0 {
		res.Offered = float64(len(live)) / c.rate.Seconds()
		lats = make([][]time.Duration, len(live))
		for k, cp := range live {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Spread the components over the first interval.
				time.Sleep(time.Duration(rand.Int64N(int64(c.rate))))
				tick := time.NewTicker(c.rate)
				defer tick.Stop()
				buf := make([]time.Duration, 0, int(c.duration/c.rate)+2)
				b := newBeater(cp, runCtx)
				stop := time.NewTimer(time.Until(end))
				defer stop.Stop()
			loop:
				for time.Now().Before(end) {
					t := time.Now()
					err := b.beat()
					d := time.Since(t)
					if err != nil {
						errCount.Add(1)
						errs.add("heartbeat", err)
					} else {
						okCount.Add(1)
						buf = append(buf, d)
					}
					select {
					case <-tick.C:
					case <-stop.C:
						break loop
					}
				}
				lats[k] = buf
			}()
		}
	} else {
		lats = make([][]time.Duration, c.concurrency)
		for w := 0; w < c.concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]time.Duration, 0, 1<<16)
				beaters := map[int]*beater{}
				for j := w; time.Now().Before(end); j += c.concurrency {
					k := j % len(live)
					b := beaters[k]
					if b == nil {
						b = newBeater(live[k], runCtx)
						beaters[k] = b
					}
					t := time.Now()
					err := b.beat()
					d := time.Since(t)
					if err != nil {
						errCount.Add(1)
						errs.add("heartbeat", err)
					} else {
						okCount.Add(1)
						buf = append(buf, d)
					}
				}
				lats[w] = buf
			}()
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	if c.rate > 0 {
		// Every component stops at end: the window is the duration.
		elapsed = c.duration
	}
	res.ClientCPU = selfCPU() - cpu0
	res.HBServerCPU, res.HBClientCPU = serverCPU()-srvCPU0, selfCPU()-cliCPU0

	st, err := stop()
	if err != nil {
		errs.add("server", err)
	}
	res.ServerStats = st

	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	res.Heartbeats, res.HeartbeatErrs = int(okCount.Load()), int(errCount.Load())
	res.Seconds = elapsed.Seconds()
	res.PerSecond = float64(res.Heartbeats) / elapsed.Seconds()
	res.P50ms, res.P90ms, res.P99ms, res.P999ms = ms(pct(all, 50)), ms(pct(all, 90)), ms(pct(all, 99)), ms(pct(all, 99.9))
	if len(all) > 0 {
		res.Maxms = ms(all[len(all)-1])
	}
	res.FirstErrors = errs.first()
	return &res, nil
}

func register(cp *component, e controlplane.ExpectedComponent, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(cp.ctx, timeout)
	defer cancel()
	if cp.legacy {
		// An older component: no id, a health endpoint on its HEALTH_PORT.
		ack, err := cp.cpLegacy.Register(ctx, &flowctlpb.ServiceInfo{
			ServiceType:      flowctlpb.ServiceType(1 + cp.i%3),
			InputEventTypes:  []string{"stellar.ledger"},
			OutputEventTypes: []string{"token.transfer"},
			HealthEndpoint:   "http://localhost:" + strconv.Itoa(e.HealthPort) + "/health",
			MaxInflight:      100,
		})
		if err != nil {
			return err
		}
		cp.serviceID = ack.GetServiceId()
		return nil
	}
	// An SDK component: ComponentInfo.id from FLOWCTL_COMPONENT_ID.
	resp, err := cp.cpV1.RegisterComponent(ctx, &flowctlv1.RegisterRequest{Component: &flowctlv1.ComponentInfo{
		Id:               e.ID,
		Name:             e.ID,
		Version:          "1.0.0",
		Type:             flowctlv1.ComponentType(1 + cp.i%3),
		InputEventTypes:  []string{"stellar.ledger"},
		OutputEventTypes: []string{"token.transfer"},
		Endpoint:         "127.0.0.1:" + strconv.Itoa(e.HealthPort+10000),
		Metadata:         map[string]string{"network": "testnet"},
	}})
	if err != nil {
		return err
	}
	cp.serviceID = resp.GetServiceId()
	return nil
}

// beater sends one component's heartbeats from one goroutine, reusing its
// request messages (the load generator should cost little next to the
// server).
type beater struct {
	cp     *component
	ctx    context.Context
	end    time.Time // deadline of the run, for the raw client
	legacy *flowctlpb.ServiceHeartbeat
	v1     *flowctlv1.HeartbeatRequest
	beats  int
}

func newBeater(cp *component, runCtx context.Context) *beater {
	b := &beater{cp: cp, ctx: runCtx}
	b.end, _ = runCtx.Deadline()
	if md, ok := metadata.FromOutgoingContext(cp.ctx); ok {
		b.ctx = metadata.NewOutgoingContext(runCtx, md)
	}
	if cp.legacy {
		b.legacy = &flowctlpb.ServiceHeartbeat{
			ServiceId: cp.serviceID,
			Timestamp: &timestamppb.Timestamp{},
			Metrics:   map[string]float64{"events_processed": 0, "lag_seconds": 0.25},
		}
	} else {
		b.v1 = &flowctlv1.HeartbeatRequest{
			ServiceId: cp.serviceID,
			Status:    flowctlv1.HealthStatus_HEALTH_STATUS_UNKNOWN, // what SDK components send
			Metrics:   map[string]string{"events_processed": "0"},
		}
	}
	return b
}

// connectConcurrency bounds the connections being set up at once.
const connectConcurrency = 64

// eachBounded calls fn for every component, at most n at a time, and
// returns when all calls have.
func eachBounded(comps []*component, n int, fn func(*component)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, n)
	for _, cp := range comps {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(cp)
		}()
	}
	wg.Wait()
}

func (b *beater) beat() error {
	b.beats++
	var err error
	if b.legacy != nil {
		now := time.Now()
		b.legacy.Timestamp.Seconds, b.legacy.Timestamp.Nanos = now.Unix(), int32(now.Nanosecond())
		b.legacy.Metrics["events_processed"] = float64(b.beats)
		if b.cp.raw != nil {
			return b.cp.raw.call(flowctlpb.ControlPlane_Heartbeat_FullMethodName, b.legacy, b.end)
		}
		_, err = b.cp.cpLegacy.Heartbeat(b.ctx, b.legacy)
	} else {
		b.v1.Metrics["events_processed"] = strconv.Itoa(b.beats)
		if b.cp.raw != nil {
			return b.cp.raw.call(flowctlv1.ControlPlaneService_Heartbeat_FullMethodName, b.v1, b.end)
		}
		_, err = b.cp.cpV1.Heartbeat(b.ctx, b.v1)
	}
	return err
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

type errorLog struct {
	mu    sync.Mutex
	seen  map[string]int
	order []string
}

func (e *errorLog) add(what string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.seen == nil {
		e.seen = map[string]int{}
	}
	k := what + ": " + err.Error()
	if _, ok := e.seen[k]; !ok {
		e.order = append(e.order, k)
	}
	e.seen[k]++
}

func (e *errorLog) first() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for i, k := range e.order {
		if i == 5 {
			break
		}
		out = append(out, fmt.Sprintf("%s (×%d)", k, e.seen[k]))
	}
	return out
}

func report(c config, r *result) {
	if c.jsonOut {
		b, _ := json.MarshalIndent(r, "", "  ")
		fmt.Println(string(b))
		return
	}
	fmt.Printf("control plane benchmark: n=%d protocol=%s client=%s tokens=%v rate=%s", r.N, r.Protocol, r.Client, r.Tokens, r.Rate)
	if r.Concurrency > 0 {
		fmt.Printf(" concurrency=%d", r.Concurrency)
	}
	fmt.Printf(" duration=%s\nserver: %s\n", c.duration, r.Server)
	fmt.Printf("connections:  %d in %.2fs", r.N, r.ConnectTime)
	if r.Client == "raw" {
		fmt.Printf("; %d raw heartbeat connections in %.2fs", r.Registered, r.RawConnectTime)
	}
	fmt.Println()
	fmt.Printf("registration: %d ok, %d failed in %.2fs; latency p50 %.2fms p99 %.2fms\n", r.Registered, r.RegisterErrors, r.RegisterTime, r.RegisterP50ms, r.RegisterP99ms)
	fmt.Printf("heartbeats:   %d ok, %d failed in %.1fs = %.0f/s", r.Heartbeats, r.HeartbeatErrs, r.Seconds, r.PerSecond)
	if r.Offered > 0 {
		fmt.Printf(" (offered %.0f/s)", r.Offered)
	}
	fmt.Printf("\nlatency:      p50 %.2fms  p90 %.2fms  p99 %.2fms  p99.9 %.2fms  max %.2fms\n", r.P50ms, r.P90ms, r.P99ms, r.P999ms, r.Maxms)
	s := r.ServerStats
	if s.PeakRSSKiB > 0 {
		fmt.Printf("server:       peak RSS %.1f MiB (VmHWM), RSS at end %.1f MiB, CPU %.2fs, state file %.2f MiB\n",
			float64(s.PeakRSSKiB)/1024, float64(s.RSSKiB)/1024, s.CPUSeconds, float64(s.StateBytes)/(1<<20))
	}
	if m := s.Metrics; m != nil {
		var refusals uint64
		for _, v := range m.Refusals {
			refusals += v
		}
		fmt.Printf("server metrics: registrations %d, heartbeats %d, alive %d/%d, unmanaged %d, unauthenticated %d, refusals %d, state flushes %d (errors %d)\n",
			m.Registrations, m.Heartbeats, m.Alive, m.Registered, m.Unmanaged, m.Unauthenticated, refusals, m.Flushes, m.FlushErrors)
	}
	fmt.Printf("client:       CPU %.2fs\n", r.ClientCPU)
	if r.Heartbeats > 0 {
		fmt.Printf("CPU per heartbeat (heartbeat phase): client %.0fµs", r.HBClientCPU*1e6/float64(r.Heartbeats))
		if r.HBServerCPU > 0 {
			fmt.Printf(", server %.0fµs (server busy %.0f%% of one core)", r.HBServerCPU*1e6/float64(r.Heartbeats), 100*r.HBServerCPU/r.Seconds)
		}
		fmt.Println()
	}
	fmt.Printf("machine:      %d CPUs, load average at end %s\n", runtime.NumCPU(), loadavg())
	for _, e := range r.FirstErrors {
		fmt.Println("error:", e)
	}
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
