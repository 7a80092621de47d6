package docker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/testutil/dockertest"
)

// rig is one test's provider, engine client, image and pipeline.
type rig struct {
	t        *testing.T
	p        *Provider
	cli      *client.Client
	image    string
	pipeline string
}

// newRig connects to the engine (skipping or failing the test without
// one), builds the test image and picks a pipeline name of the test's own.
// Its cleanup fails the test if any container or the network of the
// pipeline is left.
func newRig(t *testing.T, opts dockertest.ImageOptions) *rig {
	t.Helper()
	t.Parallel()
	cli := dockertest.Engine(t)
	r := &rig{t: t, p: New(Options{}), cli: cli, image: dockertest.TestImage(t, cli, opts), pipeline: dockertest.PipelineName(t, "dk-")}
	t.Cleanup(func() {
		_ = r.p.Close()
		if left := dockertest.RemovePipeline(cli, r.pipeline); len(left) > 0 && !t.Failed() {
			t.Errorf("left behind: %v", left)
		}
	})
	return r
}

// opTimeout bounds each engine operation of a test, so that a stalled
// engine fails the test instead of hanging it.
const opTimeout = 2 * time.Minute

// ctx is a context for one operation, ended with the test.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), opTimeout)
	t.Cleanup(cancel)
	return c
}

// spec is a source component id running the test image with env.
func (r *rig) spec(id string, env map[string]string, edit ...func(*config.Component)) providers.ComponentSpec {
	c := &config.Component{Kind: config.KindSource, ID: id, Executor: Name, Image: r.image, StopTimeout: config.Duration(2 * time.Second)}
	for _, e := range edit {
		e(c)
	}
	full := map[string]string{"FLOWCTL_COMPONENT_ID": id}
	for k, v := range env {
		full[k] = v
	}
	return providers.ComponentSpec{
		Pipeline: r.pipeline, Lineage: "lineage-1", InstanceID: "inst-" + id, SpecHash: c.SpecHash(nil),
		Component: c, Env: full, WorkDir: r.t.TempDir(),
	}
}

func (r *rig) start(spec providers.ComponentSpec) providers.Handle {
	r.t.Helper()
	h, err := r.p.Start(ctx(r.t), spec)
	if err != nil {
		r.t.Fatalf("start %s: %v", spec.Address(), err)
	}
	return h
}

func (r *rig) stop(h providers.Handle, grace time.Duration) {
	r.t.Helper()
	if err := r.p.Stop(ctx(r.t), h, grace); err != nil {
		r.t.Fatalf("stop: %v", err)
	}
}

func (r *rig) observe(h providers.Handle) providers.Observed {
	r.t.Helper()
	o, err := r.p.Observe(ctx(r.t), h)
	if err != nil {
		r.t.Fatalf("observe: %v", err)
	}
	return o
}

func (r *rig) inspect(h providers.Handle) container.InspectResponse {
	r.t.Helper()
	hd, err := decodeHandle(h)
	if err != nil {
		r.t.Fatal(err)
	}
	ins, err := r.cli.ContainerInspect(ctx(r.t), hd.ID)
	if err != nil {
		r.t.Fatalf("inspect: %v", err)
	}
	return ins
}

// waitLog waits until the container's log has a line containing want.
func (r *rig) waitLog(h providers.Handle, want string) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rc, err := r.p.Logs(ctx, h, providers.LogOptions{Follow: true})
	if err != nil {
		r.t.Fatalf("logs: %v", err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	var seen []string
	for sc.Scan() {
		if strings.Contains(sc.Text(), want) {
			return
		}
		seen = append(seen, sc.Text())
	}
	r.t.Fatalf("log never showed %q (%v); saw:\n%s", want, sc.Err(), strings.Join(seen, "\n"))
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// get polls url until it answers 200 and returns the body.
func get(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := c.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return strings.TrimSpace(string(b))
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStartRunsTheComponentOnThePipelineNetworkAndStopRemovesEverything(t *testing.T) {
	r := newRig(t, dockertest.ImageOptions{})
	hostPort := freePort(t)
	spec := r.spec("ledger", map[string]string{"HEALTH_PORT": "8081", "PORT": "9000", EnvEndpoint: "127.0.0.1:8080"}, func(c *config.Component) {
		c.Ports = []config.Port{{ContainerPort: 9000, HostPort: hostPort, HostIP: "127.0.0.1", Protocol: "tcp"}}
	})
	h := r.start(spec)

	o := r.observe(h)
	if !o.Exists || !o.Running || o.Address != "source.ledger" || o.Pipeline != r.pipeline || o.Lineage != "lineage-1" ||
		o.InstanceID != "inst-ledger" || o.SpecHash != spec.SpecHash || o.StartedAt.IsZero() || o.ExitCode != nil {
		t.Errorf("observed %+v", o)
	}
	if o.Ports["PORT"] != 9000 || o.Ports["HEALTH_PORT"] != 8081 {
		t.Errorf("ports read back %v", o.Ports)
	}
	ins := r.inspect(h)
	if !strings.HasPrefix(o.Fingerprint, "container="+ins.ID[:12]+",hash="+spec.SpecHash[:12]) {
		t.Errorf("fingerprint %q for container %s", o.Fingerprint, ins.ID)
	}
	if ins.Name != "/"+r.pipeline+"-ledger" {
		t.Errorf("container name %q", ins.Name)
	}
	if ins.HostConfig.RestartPolicy.Name != "no" {
		t.Errorf("restart policy %q", ins.HostConfig.RestartPolicy.Name)
	}
	if !slices.Contains(ins.Config.Env, EnvEndpoint+"=host.docker.internal:8080") {
		t.Errorf("env %v", ins.Config.Env)
	}
	if _, ok := ins.NetworkSettings.Networks[NetworkName(r.pipeline)]; !ok {
		t.Errorf("not on the pipeline network: %v", ins.NetworkSettings.Networks)
	}

	// Probes from the host reach the container's address on the network;
	// the published port answers on 127.0.0.1.
	host, err := r.p.HealthHost(ctx(t), h)
	if err != nil {
		t.Fatal(err)
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsLoopback() {
		t.Errorf("health host %q is not the container's address", host)
	}
	if body := get(t, "http://"+net.JoinHostPort(host, "8081")+"/health"); body != "ok" {
		t.Errorf("health answered %q", body)
	}
	if body := get(t, "http://127.0.0.1:"+strconv.Itoa(hostPort)+"/"); body != "ledger" {
		t.Errorf("published port answered %q", body)
	}

	r.stop(h, 2*time.Second)
	if o := r.observe(h); o.Exists {
		t.Errorf("after stop: %+v", o)
	}
	if cs := dockertest.Containers(t, r.cli, r.pipeline); len(cs) != 0 {
		t.Errorf("containers left: %v", cs)
	}
	dockertest.AssertNoNetwork(t, r.cli, NetworkName(r.pipeline))
	if err := r.p.Stop(ctx(t), h, time.Second); err != nil {
		t.Errorf("stopping a removed container: %v", err)
	}
}

func TestComponentsReachEachOtherByContainerName(t *testing.T) {
	r := newRig(t, dockertest.ImageOptions{})
	up := r.spec("up", map[string]string{"PORT": "9000"})
	hUp := r.start(up)
	addr := r.p.ComponentAddress(r.pipeline, up.Component, 9000)
	hDown := r.start(r.spec("down", map[string]string{"TC_DIAL": addr}))
	r.waitLog(hDown, "reached "+addr+": up")

	// The network stays while a container of the pipeline is left.
	r.stop(hUp, time.Second)
	if !dockertest.NetworkExists(t, r.cli, NetworkName(r.pipeline)) {
		t.Fatal("network removed while a container still uses it")
	}
	r.stop(hDown, time.Second)
	dockertest.AssertNoNetwork(t, r.cli, NetworkName(r.pipeline))
}

func TestListReportsEveryContainerOfThePipelineWithItsLineage(t *testing.T) {
	r := newRig(t, dockertest.ImageOptions{})
	a := r.start(r.spec("a", nil))
	other := r.spec("b", map[string]string{"TC_EXIT_AFTER": "10ms", "TC_EXIT_CODE": "3"})
	other.Lineage = "lineage-2"
	b := r.start(other)
	waitFor(t, "b to exit", func() bool { return !r.observe(b).Running })

	got, err := r.p.List(ctx(t), r.pipeline)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Address != "source.a" || got[1].Address != "source.b" {
		t.Fatalf("listed %+v", got)
	}
	if !got[0].Running || got[0].Lineage != "lineage-1" || got[0].Fingerprint != r.observe(a).Fingerprint {
		t.Errorf("a: %+v", got[0])
	}
	if got[1].Running || got[1].Lineage != "lineage-2" || got[1].ExitCode == nil || *got[1].ExitCode != 3 || got[1].Detail != "exited with code 3" {
		t.Errorf("b: %+v", got[1])
	}
	// The handle List gives works like the one Start gave.
	if o := r.observe(got[1].Handle); o.Fingerprint != got[1].Fingerprint {
		t.Errorf("observe(listed handle) = %+v", o)
	}
	if others, err := r.p.List(ctx(t), r.pipeline+"-x"); err != nil || len(others) != 0 {
		t.Errorf("another pipeline lists %v (%v)", others, err)
	}
	r.stop(a, time.Second)
	r.stop(got[1].Handle, time.Second)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var logLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z (stdout|stderr) (.*)$`)

func TestLogsDemultiplexStdoutAndStderrWithTimestamps(t *testing.T) {
	r := newRig(t, dockertest.ImageOptions{})
	h := r.start(r.spec("talker", map[string]string{
		"TC_PRINT": "out {n};stderr:err {n}", "TC_PRINT_INTERVAL": "5ms", "TC_PRINT_COUNT": "3",
	}))
	defer r.stop(h, time.Second)
	// The engine copies stdout and stderr separately, so each stream's
	// last line is awaited on its own.
	r.waitLog(h, "err 3")
	r.waitLog(h, "out 3")

	read := func(opts providers.LogOptions) []string {
		t.Helper()
		rc, err := r.p.Logs(ctx(t), h, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	var streams []string
	for _, l := range read(providers.LogOptions{Timestamps: true}) {
		m := logLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %q is not <timestamp> <stream> <text>", l)
		}
		if strings.HasPrefix(m[2], "out ") || strings.HasPrefix(m[2], "err ") {
			streams = append(streams, m[1]+":"+m[2])
		}
	}
	want := []string{"stdout:out 1", "stderr:err 1", "stdout:out 2", "stderr:err 2", "stdout:out 3", "stderr:err 3"}
	// Two streams are ordered by the engine's timestamps, so only each
	// stream's own order is certain.
	for _, s := range []string{"stdout:", "stderr:"} {
		var got, exp []string
		for _, x := range streams {
			if strings.HasPrefix(x, s) {
				got = append(got, x)
			}
		}
		for _, x := range want {
			if strings.HasPrefix(x, s) {
				exp = append(exp, x)
			}
		}
		if !slices.Equal(got, exp) {
			t.Errorf("%s lines %v, want %v", s, got, exp)
		}
	}
	if got := read(providers.LogOptions{Tail: 1}); len(got) != 1 || (got[0] != "out 3" && got[0] != "err 3") {
		t.Errorf("tail 1 without timestamps: %q", got)
	}
	if got := read(providers.LogOptions{Since: time.Now().Add(time.Hour)}); len(got) != 1 || got[0] != "" {
		t.Errorf("since the future: %q", got)
	}
}

func TestLogsFollowUntilClosed(t *testing.T) {
	r := newRig(t, dockertest.ImageOptions{})
	h := r.start(r.spec("talker", map[string]string{"TC_PRINT": "tick {n}", "TC_PRINT_INTERVAL": "20ms"}))
	defer r.stop(h, time.Second)
	rc, err := r.p.Logs(ctx(t), h, providers.LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(rc)
	for sc.Scan() {
		if sc.Text() == "tick 5" {
			break
		}
	}
	done := make(chan struct{})
	go func() {
		for sc.Scan() {
		}
		close(done)
	}()
	_ = rc.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("closing a followed log did not end it")
	}
}

func TestStopKillsAContainerThatIgnoresSIGTERMAfterGrace(t *testing.T) {
	r := newRig(t, dockertest.ImageOptions{})
	h := r.start(r.spec("stubborn", map[string]string{"TC_IGNORE_SIGTERM": "1"}))
	r.waitLog(h, "testcomponent ready")
	start := time.Now()
	r.stop(h, time.Second)
	// It ignores SIGTERM for ever: that the stop returned at all is the
	// SIGKILL after the grace.
	if el := time.Since(start); el < time.Second {
		t.Errorf("stop took %v, less than the 1s grace", el)
	}
	if r.observe(h).Exists {
		t.Error("container still exists")
	}
}

func TestStopWithoutGraceRemovesAtOnce(t *testing.T) {
	r := newRig(t, dockertest.ImageOptions{})
	h := r.start(r.spec("stubborn", map[string]string{"TC_IGNORE_SIGTERM": "1"}))
	start := time.Now()
	r.stop(h, 0)
	// A grace period would be the engine's default (10s): the stop must
	// not have waited one.
	if el := time.Since(start); el >= 10*time.Second {
		t.Errorf("stop without grace took %v: it waited a grace period", el)
	}
	if r.observe(h).Exists {
		t.Error("container still exists")
	}
}

func TestImageHealthcheckStatusIsObserved(t *testing.T) {
	r := newRig(t, dockertest.ImageOptions{Healthcheck: true})
	h := r.start(r.spec("checked", map[string]string{"HEALTH_PORT": "8081", "TC_START_DELAY": "500ms"}))
	defer r.stop(h, time.Second)
	if o := r.observe(h); o.Health != providers.HealthStarting {
		t.Errorf("health right after start: %q (%s)", o.Health, o.Detail)
	}
	waitFor(t, "healthy", func() bool { return r.observe(h).Health == providers.HealthHealthy })
	if o := r.observe(h); !strings.Contains(o.Detail, "healthy") {
		t.Errorf("detail %q", o.Detail)
	}
}

func TestImagePolicyIsCheckedBeforeStart(t *testing.T) {
	r := newRig(t, dockertest.ImageOptions{})
	ctx := ctx(t)
	absent := fmt.Sprintf("flowctl-test/absent:%d", time.Now().UnixNano())
	comp := func(edit func(*config.Component)) *config.Component {
		s := r.spec("img", nil, edit)
		return s.Component
	}

	err := r.p.Preflight(ctx, []*config.Component{comp(func(c *config.Component) { c.Image, c.Pull = absent, config.PullNever })})
	if err == nil || !strings.Contains(err.Error(), `source.img: image "`+absent+`" is not on the Docker engine, and pull = "never" forbids pulling it`) {
		t.Errorf("pull never: %v", err)
	}
	// No registry is reachable here: the pull fails, and the message has
	// the engine's reason.
	err = r.p.Preflight(ctx, []*config.Component{comp(func(c *config.Component) { c.Image = absent })})
	if err == nil || !strings.Contains(err.Error(), `source.img: image "`+absent+`" is not on the Docker engine and could not be pulled: `) {
		t.Errorf("pull missing: %v", err)
	}
	// pull = "always" pulls even an image the engine has (and here fails).
	err = r.p.Preflight(ctx, []*config.Component{comp(func(c *config.Component) { c.Pull = config.PullAlways })})
	if err == nil || !strings.Contains(err.Error(), `source.img: image "`+r.image+`" (pull = "always"): `) {
		t.Errorf("pull always: %v", err)
	}
	// A component with no image is refused before anything starts.
	err = r.p.Preflight(ctx, []*config.Component{comp(func(c *config.Component) { c.Image, c.Command = "", []string{"/tc"} })})
	if err == nil || !strings.Contains(err.Error(), "source.img: the docker executor needs an image") {
		t.Errorf("no image: %v", err)
	}
	ins, err := r.cli.ImageInspect(ctx, r.image)
	if err != nil {
		t.Fatal(err)
	}
	wrong := "sha256:" + strings.Repeat("0", 64)
	err = r.p.Preflight(ctx, []*config.Component{comp(func(c *config.Component) { c.ImageID = wrong })})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("source.img: image %q is %s on the Docker engine, but image_id pins %s", r.image, ins.ID, wrong)) {
		t.Errorf("image_id mismatch: %v", err)
	}
	// Start checks too, and leaves nothing behind when it refuses.
	if _, err := r.p.Start(ctx, r.spec("img", nil, func(c *config.Component) { c.ImageID = wrong })); err == nil {
		t.Error("start with a mismatched image_id succeeded")
	}
	if cs := dockertest.Containers(t, r.cli, r.pipeline); len(cs) != 0 {
		t.Errorf("a refused start left %d containers", len(cs))
	}

	pinned := r.spec("img", nil, func(c *config.Component) { c.ImageID = ins.ID; c.Pull = config.PullNever })
	if err := r.p.Preflight(ctx, []*config.Component{pinned.Component}); err != nil {
		t.Fatalf("matching image_id: %v", err)
	}
	h := r.start(pinned)
	defer r.stop(h, time.Second)
	if got := r.inspect(h).Config.Image; got != ins.ID {
		t.Errorf("a pinned container runs %q, want the image ID %s", got, ins.ID)
	}
}

func TestEngineUnreachableNamesTheSocket(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent.sock")
	p := New(Options{})
	c := &config.Component{Kind: config.KindSource, ID: "a", Executor: Name, Image: "x:1"}
	_, listErr := p.List(ctx(t), "pl")
	_, startErr := p.Start(ctx(t), providers.ComponentSpec{Pipeline: "pl", Component: c})
	pfErr := p.Preflight(ctx(t), []*config.Component{c})
	for _, err := range []error{listErr, startErr, pfErr} {
		var ue *EngineUnreachableError
		if !errors.As(err, &ue) {
			t.Fatalf("error %v is not an EngineUnreachableError", err)
		}
		if msg := err.Error(); !strings.Contains(msg, "cannot reach the Docker engine at unix:///nonexistent.sock (from DOCKER_HOST)") {
			t.Errorf("message does not name the socket: %s", msg)
		}
	}
	if _, err := New(Options{Host: "unix:///elsewhere.sock"}).List(ctx(t), "pl"); err == nil || !strings.Contains(err.Error(), "unix:///elsewhere.sock (configured)") {
		t.Errorf("configured host: %v", err)
	}
}

func TestDefaultSocketIsNamedWhenDockerHostIsUnset(t *testing.T) {
	t.Setenv("DOCKER_HOST", "")
	os.Unsetenv("DOCKER_HOST")
	host, source := New(Options{}).engineHost()
	if host != "unix:///var/run/docker.sock" || source != "the default socket" {
		t.Errorf("engine host %q (%s)", host, source)
	}
}

func TestANameTakenByAForeignContainerIsExplained(t *testing.T) {
	r := newRig(t, dockertest.ImageOptions{})
	ctx := ctx(t)
	name := ContainerName(r.pipeline, "taken")
	resp, err := r.cli.ContainerCreate(ctx, &container.Config{Image: r.image}, nil, nil, nil, name)
	if err != nil {
		t.Fatal(err)
	}
	defer r.cli.ContainerRemove(ctx, resp.ID, container.RemoveOptions{Force: true})
	_, err = r.p.Start(ctx, r.spec("taken", nil))
	if err == nil || !strings.Contains(err.Error(), "the container name "+name+" is taken by container "+resp.ID[:12]+", which flowctl did not create") {
		t.Errorf("start over a foreign container: %v", err)
	}
	// The network made for it goes once no container of the pipeline is
	// left (the foreign one carries no pipeline label).
	_ = r.cli.NetworkRemove(ctx, NetworkName(r.pipeline))
}

func TestExitedContainerReportsItsExitCode(t *testing.T) {
	r := newRig(t, dockertest.ImageOptions{})
	h := r.start(r.spec("brief", map[string]string{"TC_EXIT_AFTER": "10ms", "TC_EXIT_CODE": "7"}))
	waitFor(t, "exit", func() bool { return !r.observe(h).Running })
	o := r.observe(h)
	if !o.Exists || o.ExitCode == nil || *o.ExitCode != 7 || o.Detail != "exited with code 7" {
		t.Errorf("observed %+v", o)
	}
	r.stop(h, time.Second)
}

func TestStopForReplaceKeepsTheNetworkForTheNextInstance(t *testing.T) {
	r := newRig(t, dockertest.ImageOptions{})
	spec := r.spec("again", nil)
	h := r.start(spec)
	id := r.inspect(h).NetworkSettings.Networks[NetworkName(r.pipeline)].NetworkID
	if err := r.p.StopForReplace(ctx(t), h, time.Second); err != nil {
		t.Fatal(err)
	}
	if o := r.observe(h); o.Exists {
		t.Errorf("after StopForReplace: %+v", o)
	}
	if !dockertest.NetworkExists(t, r.cli, NetworkName(r.pipeline)) {
		t.Fatal("StopForReplace removed the network")
	}
	next := r.start(spec)
	if got := r.inspect(next).NetworkSettings.Networks[NetworkName(r.pipeline)].NetworkID; got != id {
		t.Errorf("the next instance is on network %s, want the same %s", got, id)
	}
	r.stop(next, time.Second)
	dockertest.AssertNoNetwork(t, r.cli, NetworkName(r.pipeline))
}
