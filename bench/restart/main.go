// Command restart measures the restart watcher's restart latency: from a
// component's end to it running and healthy again, with a zero initial
// backoff delay, for the process executor and for the docker executor.
//
//	go run ./bench/restart -process 30 -docker 15
//
// For each executor it applies a pipeline of one source (the test
// component, ready at once, /health on its HEALTH_PORT; restart policy
// always, backoff initial 0s) under a `flowctl serve --log-level debug` of
// its own, then N times: waits until the component runs and answers 200,
// kills it, and times
//
//   - healthy: from the end to the first 200 OK from /health of the new
//     instance (probed every -probe-every): a process's on 127.0.0.1 at its
//     HEALTH_PORT, which is kept across restarts; a container's at its
//     address on the pipeline network (found by inspecting the container
//     the engine's start event names), as flowctl's own probes reach it;
//   - recorded: from the end to the state file recording the new instance
//     as running (read every 20 ms once healthy: a coarser figure, as
//     reading the state earlier would make serve's writes wait for the
//     file lock).
//
// The end of a process component is its kill (SIGKILL to the component
// process, taken just before the syscall); the end of a container is the
// time of the engine's die event for it (after `docker kill`), in the
// engine's clock, which is the host's. For a container it also reports when
// the engine's start event for the new one came (started).
//
// Beside flowctl it times a floor (unless -floor=false): the same restart
// done by hand, with nothing of flowctl — for a process, this program
// waiting for the killed process and starting the component again itself;
// for a container, the Docker client removing the dead container on its
// die event and creating and starting its successor (same image, name and
// network), as the docker executor does. flowctl's restarts and the
// floor's alternate, so that the machine's load weighs on both alike.
//
// Nothing is pulled: the docker image is the test component FROM scratch,
// built here. With -keep the work folder stays, with each pipeline's
// serve.log (the watcher's timestamps; -v prints each end's time to read
// beside them).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/flowctl/flowctl/internal/procinfo"
	"github.com/flowctl/flowctl/internal/serve"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/testutil"
	"github.com/flowctl/flowctl/internal/testutil/dockertest"
)

const addr = "source.r"

type config struct {
	nProcess, nDocker int
	probeEvery        time.Duration
	settle            time.Duration
	keep, floor       bool
	verbose           bool
	dir               string
	flowctl, tc       string
	image             string
	cli               *client.Client
}

func main() {
	var cfg config
	flag.IntVar(&cfg.nProcess, "process", 30, "restarts of the process component (0: skip)")
	flag.IntVar(&cfg.nDocker, "docker", 15, "restarts of the docker component (0: skip)")
	flag.DurationVar(&cfg.probeEvery, "probe-every", time.Millisecond, "health probe period while waiting for the restart")
	flag.DurationVar(&cfg.settle, "settle", 300*time.Millisecond, "pause between a component's recorded start and its next kill")
	flag.BoolVar(&cfg.floor, "floor", true, "also time each restart done by hand, without flowctl")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the work folder (pipelines, state, serve.log)")
	flag.BoolVar(&cfg.verbose, "v", false, "print when each end happened (UTC), to read beside serve.log")
	flag.Parse()
	if err := run(&cfg); err != nil {
		fmt.Fprintln(os.Stderr, "restart bench:", err)
		os.Exit(1)
	}
}

// sample is one timed restart; recorded and started are zero when the
// subject has no such mark.
type sample struct {
	end                      time.Time
	healthy, recorded, start time.Duration
}

// subject is one way of restarting a component.
type subject interface {
	name() string
	// restart ends the running instance and times its successor.
	restart(ctx context.Context) (sample, error)
	close()
}

func run(cfg *config) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "flowctl-restart-bench-")
	if err != nil {
		return err
	}
	cfg.dir = dir
	if cfg.keep {
		fmt.Println("work folder:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if err := build(cfg); err != nil {
		return err
	}
	var reports []string
	if cfg.nProcess > 0 {
		r, err := measure(ctx, cfg, cfg.nProcess, func() (subject, error) { return newFlowctl(ctx, cfg, "process") },
			func() (subject, error) { return newDirectProcess(cfg) })
		if err != nil {
			return fmt.Errorf("process: %w", err)
		}
		reports = append(reports, r...)
	}
	if cfg.nDocker > 0 {
		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err == nil {
			_, err = cli.Ping(ctx)
		}
		if err != nil {
			return fmt.Errorf("docker: no engine (-docker 0 skips it): %w", err)
		}
		defer cli.Close()
		cfg.cli = cli
		bin, err := os.ReadFile(cfg.tc)
		if err != nil {
			return err
		}
		cfg.image = "flowctl-bench/tc:latest"
		dockerfile := "FROM scratch\nCOPY tc /tc\nENV TC_LISTEN_HOST=0.0.0.0\nENTRYPOINT [\"/tc\"]\n"
		if err := dockertest.BuildImage(ctx, cli, cfg.image, dockerfile, map[string][]byte{"tc": bin}); err != nil {
			return fmt.Errorf("build image: %w", err)
		}
		r, err := measure(ctx, cfg, cfg.nDocker, func() (subject, error) { return newFlowctl(ctx, cfg, "docker") },
			func() (subject, error) { return newDirectContainer(ctx, cfg) })
		if err != nil {
			return fmt.Errorf("docker: %w", err)
		}
		reports = append(reports, r...)
	}
	fmt.Println()
	fmt.Println(strings.Join(reports, "\n"))
	return nil
}

// measure sets up flowctl's subject and the floor's, then restarts them n
// times each, alternately, and reports both.
func measure(ctx context.Context, cfg *config, n int, withFlowctl, floor func() (subject, error)) ([]string, error) {
	var subjects []subject
	defer func() {
		for _, s := range subjects {
			s.close()
		}
	}()
	s, err := withFlowctl()
	if err != nil {
		return nil, err
	}
	subjects = append(subjects, s)
	if cfg.floor {
		s, err := floor()
		if err != nil {
			return nil, fmt.Errorf("floor: %w", err)
		}
		subjects = append(subjects, s)
	}
	samples := make([][]sample, len(subjects))
	for i := 0; i < n; i++ {
		for j := range subjects {
			k := (i + j) % len(subjects)
			s := subjects[k]
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			sm, err := s.restart(ctx)
			if err != nil {
				return nil, fmt.Errorf("%s, restart %d: %w", s.name(), i+1, err)
			}
			samples[k] = append(samples[k], sm)
			line := fmt.Sprintf("%-16s %2d  healthy %9s", s.name(), i+1, round(sm.healthy))
			if cfg.verbose {
				line = sm.end.UTC().Format("15:04:05.000 ") + line
			}
			if sm.recorded > 0 {
				line += fmt.Sprintf("  recorded %9s", round(sm.recorded))
			}
			if sm.start > 0 {
				line += fmt.Sprintf("  (engine start event %9s, then %9s to healthy)", round(sm.start), round(sm.healthy-sm.start))
			}
			fmt.Println(line)
		}
	}
	var out []string
	for k, s := range subjects {
		var healthy, recorded, started []time.Duration
		for _, sm := range samples[k] {
			healthy = append(healthy, sm.healthy)
			if sm.recorded > 0 {
				recorded = append(recorded, sm.recorded)
			}
			if sm.start > 0 {
				started = append(started, sm.start)
			}
		}
		out = append(out, fmt.Sprintf("%-16s n=%-3d healthy:  %s", s.name(), len(healthy), summary(healthy)))
		if len(recorded) > 0 {
			out = append(out, fmt.Sprintf("%-22s recorded: %s", "", summary(recorded)))
		}
		if len(started) > 0 {
			out = append(out, fmt.Sprintf("%-22s started:  %s", "", summary(started)))
		}
	}
	return out, nil
}

// build compiles flowctl, its shim and the test component (static, for
// the image) into the work folder.
func build(cfg *config) error {
	root, err := testutil.ModuleRoot()
	if err != nil {
		return err
	}
	bin := filepath.Join(cfg.dir, "bin")
	cfg.flowctl, cfg.tc = filepath.Join(bin, "flowctl"), filepath.Join(bin, "tc")
	for _, b := range []struct{ out, pkg string }{
		{cfg.flowctl, "./cmd/flowctl"}, {filepath.Join(bin, "flowctl-shim"), "./cmd/flowctl-shim"}, {cfg.tc, "./internal/testutil/testcomponent"},
	} {
		cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
		cmd.Dir, cmd.Env = root, append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return nil
}

// --- flowctl ---

// flowctlSubject is one executor's pipeline under its own serve.
type flowctlSubject struct {
	cfg      *config
	executor string
	pname    string
	dir      string
	store    *state.Store
	serve    *exec.Cmd
}

func newFlowctl(ctx context.Context, cfg *config, executor string) (subject, error) {
	s := &flowctlSubject{cfg: cfg, executor: executor, pname: fmt.Sprintf("bench-restart-%s-%d", executor, os.Getpid())}
	s.dir = filepath.Join(cfg.dir, executor)
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	if err := s.writePipeline(); err != nil {
		return nil, err
	}
	if err := s.startServe(ctx); err != nil {
		return nil, err
	}
	if out, err := s.flowctl("apply", "-auto-approve"); err != nil {
		s.close()
		return nil, fmt.Errorf("apply: %v\n%s", err, out)
	}
	return s, nil
}

func (s *flowctlSubject) name() string { return "flowctl " + s.executor }

func (s *flowctlSubject) writePipeline() error {
	restart := "  restart {\n    policy = \"always\"\n    backoff {\n      initial = \"0s\"\n    }\n  }\n"
	var body string
	switch s.executor {
	case "process":
		body = fmt.Sprintf("source \"r\" {\n  command = [%q]\n  health {\n    http = \"/health\"\n  }\n%s}\n", s.cfg.tc, restart)
	case "docker":
		body = fmt.Sprintf("source \"r\" {\n  image = %q\n  stop_timeout = \"1s\"\n  env = {\n    HEALTH_PORT = %q\n  }\n"+
			"  health {\n    http = \"/health\"\n  }\n%s}\n", s.cfg.image, containerHealthPort, restart)
	}
	p := fmt.Sprintf("pipeline %q {\n  executor = %q\n}\n\n%s", s.pname, s.executor, body)
	return os.WriteFile(filepath.Join(s.dir, "pipeline.hcl"), []byte(p), 0o644)
}

// startServe runs `flowctl serve --log-level debug` for the pipeline,
// logging to serve.log, and waits until it has recorded itself (apply then
// uses it rather than start one).
func (s *flowctlSubject) startServe(ctx context.Context) error {
	// The state file is created here, as serve would for the pipeline, so
	// that there is a file to watch for serve's record.
	store, err := state.Open(filepath.Join(s.dir, ".flowctl", s.pname+".state.db"), s.pname)
	if err != nil {
		return err
	}
	s.store = store
	logf, err := os.Create(filepath.Join(s.dir, "serve.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.cfg.flowctl, "serve", "--listen", "127.0.0.1:0", "--http", "none", "--log-level", "debug")
	cmd.Dir, cmd.Stdout, cmd.Stderr = s.dir, logf, logf
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	if err := cmd.Start(); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if _, err := serve.WaitRecord(wctx, s.store, cmd.Process.Pid, nil); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return err
	}
	s.serve = cmd
	return nil
}

func (s *flowctlSubject) close() {
	// destroy stops serve too, as nothing is left for it.
	if out, err := s.flowctl("destroy", "-auto-approve"); err != nil {
		fmt.Fprintf(os.Stderr, "destroy: %v\n%s", err, out)
	}
	if s.serve != nil {
		_ = s.serve.Process.Signal(syscall.SIGTERM)
		_ = s.serve.Wait()
	}
	if s.cfg.cli != nil && s.executor == "docker" {
		dockertest.RemovePipeline(s.cfg.cli, s.pname)
	}
}

func (s *flowctlSubject) flowctl(args ...string) ([]byte, error) {
	cmd := exec.Command(s.cfg.flowctl, args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	return cmd.CombinedOutput()
}

func (s *flowctlSubject) record() *state.Record {
	var rec *state.Record
	_ = s.store.View(func(tx *state.Tx) error {
		var err error
		rec, err = tx.Component(addr)
		return err
	})
	return rec
}

// waitRunning waits until state records an instance other than prior as
// running.
func (s *flowctlSubject) waitRunning(ctx context.Context, prior string) (*state.Record, error) {
	var rec *state.Record
	err := poll(ctx, 20*time.Millisecond, time.Minute, "the component to run", func() bool {
		rec = s.record()
		return rec != nil && rec.InstanceID != prior && rec.Status == state.StatusRunning
	})
	return rec, err
}

func (s *flowctlSubject) restart(ctx context.Context) (sample, error) {
	before, err := s.waitRunning(ctx, "")
	if err != nil {
		return sample{}, err
	}
	var sm sample
	switch s.executor {
	case "process":
		var h struct {
			Child procinfo.Identity `json:"child"`
		}
		if err := json.Unmarshal(before.Handle, &h); err != nil || h.Child.PID == 0 {
			return sample{}, fmt.Errorf("no component process in the handle %s (%v)", before.Handle, err)
		}
		p := prober{host: "127.0.0.1", port: before.Ports["HEALTH_PORT"]}
		if err := p.waitHealthy(ctx); err != nil {
			return sample{}, err
		}
		time.Sleep(s.cfg.settle)
		if !procinfo.Alive(h.Child) {
			return sample{}, fmt.Errorf("component process %d is not alive", h.Child.PID)
		}
		sm.end = time.Now()
		if err := syscall.Kill(h.Child.PID, syscall.SIGKILL); err != nil {
			return sample{}, fmt.Errorf("kill %d: %w", h.Child.PID, err)
		}
		up, err := p.healthyAfterEnd(ctx, s.cfg.probeEvery)
		if err != nil {
			return sample{}, err
		}
		sm.healthy = up.Sub(sm.end)
	case "docker":
		var h struct {
			ID string `json:"container_id"`
		}
		if err := json.Unmarshal(before.Handle, &h); err != nil || h.ID == "" {
			return sample{}, fmt.Errorf("no container in the handle %s (%v)", before.Handle, err)
		}
		if sm, err = containerRestart(ctx, s.cfg, s.pname, h.ID, nil); err != nil {
			return sample{}, err
		}
	}
	if _, err := s.waitRunning(ctx, before.InstanceID); err != nil {
		return sample{}, err
	}
	sm.recorded = time.Since(sm.end)
	return sm, nil
}

// --- floors ---

// directProcess is the process floor: the test component run by this
// program, restarted by it as soon as its wait for the killed one returns.
type directProcess struct {
	cfg   *config
	probe prober
	cmd   *exec.Cmd
}

func newDirectProcess(cfg *config) (subject, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	d := &directProcess{cfg: cfg, probe: prober{host: "127.0.0.1", port: port}}
	return d, d.start()
}

func (d *directProcess) name() string { return "floor process" }

func (d *directProcess) start() error {
	d.cmd = exec.Command(d.cfg.tc)
	d.cmd.Env = append(os.Environ(), fmt.Sprintf("HEALTH_PORT=%d", d.probe.port))
	return d.cmd.Start()
}

func (d *directProcess) restart(ctx context.Context) (sample, error) {
	if err := d.probe.waitHealthy(ctx); err != nil {
		return sample{}, err
	}
	time.Sleep(d.cfg.settle)
	end := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return sample{}, err
	}
	_ = d.cmd.Wait()
	if err := d.start(); err != nil {
		return sample{}, err
	}
	up, err := d.probe.healthyAfterEnd(ctx, d.cfg.probeEvery)
	if err != nil {
		return sample{}, err
	}
	return sample{end: end, healthy: up.Sub(end)}, nil
}

func (d *directProcess) close() {
	if d.cmd != nil && d.cmd.Process != nil {
		_ = d.cmd.Process.Kill()
		_ = d.cmd.Wait()
	}
}

// directContainer is the docker floor: on the die event of the killed
// container, the Docker client removes it, then creates and starts its
// successor (same image, name and network).
type directContainer struct {
	cfg   *config
	pname string
	id    string
}

func newDirectContainer(ctx context.Context, cfg *config) (subject, error) {
	d := &directContainer{cfg: cfg, pname: fmt.Sprintf("bench-restart-floor-%d", os.Getpid())}
	if _, err := cfg.cli.NetworkCreate(ctx, "flowctl-"+d.pname, network.CreateOptions{Driver: "bridge", Labels: map[string]string{"io.flowctl.pipeline": d.pname}}); err != nil {
		return nil, err
	}
	if err := d.create(ctx); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

func (d *directContainer) name() string { return "floor docker" }

func (d *directContainer) create(ctx context.Context) error {
	netName := "flowctl-" + d.pname
	resp, err := d.cfg.cli.ContainerCreate(ctx, &container.Config{
		Image:  d.cfg.image,
		Env:    []string{"HEALTH_PORT=" + containerHealthPort, "FLOWCTL_PIPELINE=" + d.pname},
		Labels: map[string]string{"io.flowctl.pipeline": d.pname, "io.flowctl.component": addr},
	}, &container.HostConfig{
		NetworkMode:   container.NetworkMode(netName),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
		ExtraHosts:    []string{"host.docker.internal:host-gateway"},
	}, &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netName: {}}}, nil, d.pname+"-r")
	if err != nil {
		return err
	}
	d.id = resp.ID
	return d.cfg.cli.ContainerStart(ctx, resp.ID, container.StartOptions{})
}

func (d *directContainer) restart(ctx context.Context) (sample, error) {
	return containerRestart(ctx, d.cfg, d.pname, d.id, func() error {
		if err := d.cfg.cli.ContainerRemove(ctx, d.id, container.RemoveOptions{Force: true}); err != nil {
			return err
		}
		return d.create(ctx)
	})
}

func (d *directContainer) close() { dockertest.RemovePipeline(d.cfg.cli, d.pname) }

// containerHealthPort is the HEALTH_PORT inside the containers.
const containerHealthPort = "8081"

// containerRestart waits until container id of pipeline answers 200, kills
// it, and times its successor: replace, when not nil, starts it by hand on
// the die event; otherwise flowctl's watcher does.
func containerRestart(ctx context.Context, cfg *config, pipeline, id string, replace func() error) (sample, error) {
	port, _ := strconv.Atoi(containerHealthPort)
	ip, err := containerIP(ctx, cfg.cli, id, pipeline)
	if err != nil {
		return sample{}, err
	}
	if err := (prober{host: ip, port: port}).waitHealthy(ctx); err != nil {
		return sample{}, err
	}
	time.Sleep(cfg.settle)
	w := watchContainers(ctx, cfg.cli, filters.Arg("label", "io.flowctl.pipeline="+pipeline))
	defer w.stop()
	if err := cfg.cli.ContainerKill(ctx, id, "KILL"); err != nil {
		return sample{}, fmt.Errorf("docker kill %s: %w", id[:12], err)
	}
	die, err := w.next(events.ActionDie, id)
	if err != nil {
		return sample{}, err
	}
	end := time.Unix(0, die.TimeNano)
	if replace != nil {
		if err := replace(); err != nil {
			return sample{}, err
		}
	}
	start, err := w.next(events.ActionStart, "")
	if err != nil {
		return sample{}, err
	}
	if ip, err = containerIP(ctx, cfg.cli, start.Actor.ID, pipeline); err != nil {
		return sample{}, err
	}
	up, err := (prober{host: ip, port: port}).firstOK(ctx, cfg.probeEvery)
	if err != nil {
		return sample{}, err
	}
	return sample{end: end, healthy: up.Sub(end), start: time.Unix(0, start.TimeNano).Sub(end)}, nil
}

// containerIP is the container's address on the pipeline's network.
func containerIP(ctx context.Context, cli *client.Client, id, pipeline string) (string, error) {
	ins, err := cli.ContainerInspect(ctx, id)
	if err != nil {
		return "", err
	}
	if ins.NetworkSettings != nil {
		if ep := ins.NetworkSettings.Networks["flowctl-"+pipeline]; ep != nil && ep.IPAddress != "" {
			return ep.IPAddress, nil
		}
	}
	return "", fmt.Errorf("container %s has no address on network flowctl-%s", id[:12], pipeline)
}

// --- probing, events ---

// prober checks http://host:port/health.
type prober struct {
	host string
	port int
}

var probeClient = &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func (p prober) ok(ctx context.Context) bool {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(p.host, strconv.Itoa(p.port))+"/health", nil)
	resp, err := probeClient.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (p prober) waitHealthy(ctx context.Context) error {
	return poll(ctx, 5*time.Millisecond, time.Minute, "the component to answer 200", func() bool { return p.ok(ctx) })
}

// firstOK probes every period until /health answers 200, and returns when
// it did.
func (p prober) firstOK(ctx context.Context, every time.Duration) (time.Time, error) {
	var at time.Time
	err := poll(ctx, every, time.Minute, "the new instance to answer 200", func() bool {
		ok := p.ok(ctx)
		at = time.Now()
		return ok
	})
	return at, err
}

// healthyAfterEnd probes every period until /health has failed once (the
// instance that was killed is gone) and then answers 200 (the new one is
// ready), and returns when it did.
func (p prober) healthyAfterEnd(ctx context.Context, every time.Duration) (time.Time, error) {
	var at time.Time
	down := false
	err := poll(ctx, every, time.Minute, "the new instance to answer 200", func() bool {
		ok := p.ok(ctx)
		at = time.Now()
		if !ok {
			down = true
		}
		return ok && down
	})
	return at, err
}

// containerEvents is a subscription to die and start events of containers.
type containerEvents struct {
	msgs   <-chan events.Message
	errs   <-chan error
	cancel context.CancelFunc
}

func watchContainers(ctx context.Context, cli *client.Client, which filters.KeyValuePair) *containerEvents {
	ectx, cancel := context.WithTimeout(ctx, time.Minute)
	msgs, errs := cli.Events(ectx, events.ListOptions{Filters: filters.NewArgs(which,
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("event", string(events.ActionDie)),
		filters.Arg("event", string(events.ActionStart)),
	)})
	return &containerEvents{msgs: msgs, errs: errs, cancel: cancel}
}

// next returns the next action event (of container id, unless id is
// empty).
func (w *containerEvents) next(action events.Action, id string) (events.Message, error) {
	for {
		select {
		case m := <-w.msgs:
			if m.Action == action && (id == "" || m.Actor.ID == id) {
				return m, nil
			}
		case err := <-w.errs:
			return events.Message{}, fmt.Errorf("docker events: %w", err)
		}
	}
}

func (w *containerEvents) stop() { w.cancel() }

// poll calls cond every period until it holds, ctx ends or limit passes.
func poll(ctx context.Context, period, limit time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(period)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// summary gives p50, p90, p99 (nearest rank), min and max.
func summary(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no samples"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	pct := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(i, 0)]
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  (min %s, max %s)", round(pct(0.5)), round(pct(0.9)), round(pct(0.99)), round(s[0]), round(s[len(s)-1]))
}

func round(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Millisecond)
}
