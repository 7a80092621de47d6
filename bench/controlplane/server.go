package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/tokens"
)

const (
	benchPipeline  = "bench"
	benchLineage   = "bench-lineage"
	baseHealthPort = 20000
)

var kinds = []string{"source", "processor", "sink"}

// benchComponents is the pipeline both sides agree on: component i is
// <kind>.c<i>, instance i-<i>, HEALTH_PORT 20000+i.
func benchComponents(n int) []controlplane.ExpectedComponent {
	out := make([]controlplane.ExpectedComponent, n)
	for i := range out {
		id := fmt.Sprintf("c%05d", i)
		out[i] = controlplane.ExpectedComponent{
			Address:    kinds[i%3] + "." + id,
			ID:         id,
			HealthPort: baseHealthPort + i,
			InstanceID: fmt.Sprintf("i-%05d", i),
		}
	}
	return out
}

type serverHandle struct {
	addr string
	stop func() (serverStats, error)
	pid  int
}

type serverStats struct {
	PeakRSSKiB   int64                         `json:"peak_rss_kib,omitempty"`
	RSSKiB       int64                         `json:"rss_kib,omitempty"`
	CPUSeconds   float64                       `json:"cpu_seconds,omitempty"`
	StateBytes   int64                         `json:"state_bytes,omitempty"`
	Metrics      *controlplane.MetricsSnapshot `json:"metrics,omitempty"`
	MetricsError string                        `json:"-"`
}

// startServer builds a control plane on a state file in dir.
func startServer(listen, dir string, n int, tokensOn bool, secretFile string) (*controlplane.Server, *grpc.Server, net.Listener, error) {
	store, err := state.Open(filepath.Join(dir, "bench.state.db"), benchPipeline)
	if err != nil {
		return nil, nil, nil, err
	}
	secret, err := tokens.LoadOrCreateSecret(secretFile)
	if err != nil {
		return nil, nil, nil, err
	}
	mode := controlplane.AuthPermissive
	if tokensOn {
		mode = controlplane.AuthRequired
	}
	srv, err := controlplane.New(controlplane.Options{
		Store:    store,
		Verifier: tokens.NewVerifier(secret, benchPipeline, benchLineage),
		Issuer:   tokens.NewIssuer(secret),
		AuthMode: mode,
		Expected: controlplane.NewStaticExpected(benchComponents(n)...),
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return nil, nil, nil, err
	}
	lis, err := net.Listen("tcp", listen)
	if err != nil {
		srv.Close()
		return nil, nil, nil, err
	}
	gs := grpc.NewServer(controlplane.GRPCServerOptions()...)
	srv.Register(gs)
	go gs.Serve(lis)
	return srv, gs, lis, nil
}

// serveMain is -serve: run until SIGINT/SIGTERM or stdin closes, then print
// the server's metrics as a JSON line "METRICS {...}".
func serveMain(c config) error {
	// What flowctl serve does too: a soft memory limit, so that the garbage
	// collector's headroom does not push the resident set past the budget
	// (GOMEMLIMIT, when set, wins).
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(controlplane.DefaultMemoryLimit)
	}
	dir := c.stateDir
	if dir == "" {
		d, err := os.MkdirTemp("", "flowctl-cp-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	secretFile := c.secretFile
	if secretFile == "" {
		secretFile = filepath.Join(dir, tokens.SecretFileName)
	}
	srv, gs, lis, err := startServer(c.listen, dir, c.n, c.tokens, secretFile)
	if err != nil {
		return err
	}
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	fmt.Printf("LISTEN %s\n", lis.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	stdinClosed := make(chan struct{})
	if os.Getenv("FLOWCTL_BENCH_CHILD") == "1" {
		go func() { io.Copy(io.Discard, os.Stdin); close(stdinClosed) }()
	}
	select {
	case <-sig:
	case <-stdinClosed:
	}
	if c.memProfile != "" {
		if f, err := os.Create(c.memProfile); err == nil {
			runtime.GC()
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fmt.Fprintf(os.Stderr, "server memory: heap in use %.1f MiB, stacks %.1f MiB, runtime total (Sys) %.1f MiB, goroutines %d, GC cycles %d\n",
		float64(ms.HeapInuse)/(1<<20), float64(ms.StackInuse)/(1<<20), float64(ms.Sys)/(1<<20), runtime.NumGoroutine(), ms.NumGC)
	gs.Stop()
	srv.Close()
	m := srv.Metrics()
	b, _ := json.Marshal(m)
	fmt.Printf("METRICS %s\n", b)
	return nil
}

// spawnServer re-executes this program with -serve and waits for its
// address.
func spawnServer(c config, dir, secretFile string) (*serverHandle, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"-serve", "-listen", "127.0.0.1:0", "-n", strconv.Itoa(c.n), "-state-dir", dir, "-token-secret-file", secretFile}
	if c.tokens {
		args = append(args, "-tokens")
	}
	if c.cpuProfile != "" {
		args = append(args, "-server-cpuprofile", c.cpuProfile)
	}
	if c.memProfile != "" {
		args = append(args, "-server-memprofile", c.memProfile)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), "FLOWCTL_BENCH_CHILD=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	addrCh := make(chan string, 1)
	metricsCh := make(chan string, 1)
	go func() {
		for lines.Scan() {
			l := lines.Text()
			switch {
			case strings.HasPrefix(l, "LISTEN "):
				addrCh <- strings.TrimPrefix(l, "LISTEN ")
			case strings.HasPrefix(l, "METRICS "):
				metricsCh <- strings.TrimPrefix(l, "METRICS ")
			}
		}
		close(metricsCh)
	}()
	var addr string
	select {
	case addr = <-addrCh:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		return nil, errors.New("the server process did not start")
	}
	pid := cmd.Process.Pid
	h := &serverHandle{addr: addr, pid: pid}
	h.stop = func() (serverStats, error) {
		var st serverStats
		st.PeakRSSKiB, st.RSSKiB = procRSS(pid)
		st.CPUSeconds = procCPU(pid)
		stdin.Close() // the server stops and prints its metrics
		select {
		case m, ok := <-metricsCh:
			if ok {
				var ms controlplane.MetricsSnapshot
				if err := json.Unmarshal([]byte(m), &ms); err == nil {
					st.Metrics = &ms
				}
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
		}
		err := cmd.Wait()
		if fi, e := os.Stat(filepath.Join(dir, "bench.state.db")); e == nil {
			st.StateBytes = fi.Size()
		}
		return st, err
	}
	return h, nil
}

// procRSS reads VmHWM (peak resident set) and VmRSS of pid, in KiB.
func procRSS(pid int) (hwm, rss int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmHWM:":
			hwm = v
		case "VmRSS:":
			rss = v
		}
	}
	return hwm, rss
}

// procCPU reads the user+system CPU seconds of pid.
func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	// Fields after the command name (which is in parentheses and may hold spaces).
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}
