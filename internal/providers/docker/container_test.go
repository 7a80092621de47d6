package docker

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
)

func requestFor(t *testing.T, c *config.Component, env map[string]string) *createRequest {
	t.Helper()
	spec := providers.ComponentSpec{
		Pipeline: "pl", Lineage: "lin", InstanceID: "inst", SpecHash: "hash",
		Component: c, Env: env, WorkDir: "/work/pipes",
	}
	req, err := containerRequest(&spec, "img:1")
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestContainerRequestNamesLabelsAndNetwork(t *testing.T) {
	c := &config.Component{Kind: config.KindSource, ID: "ledger", Executor: "docker", Image: "img:1"}
	req := requestFor(t, c, nil)
	if req.Name != "pl-ledger" {
		t.Errorf("name %q", req.Name)
	}
	want := map[string]string{
		LabelPipeline: "pl", LabelComponent: "source.ledger", LabelSpecHash: "hash", LabelLineage: "lin", LabelInstance: "inst",
	}
	for k, v := range want {
		if req.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, req.Config.Labels[k], v)
		}
	}
	if req.Host.NetworkMode != "flowctl-pl" || req.Network.EndpointsConfig["flowctl-pl"] == nil {
		t.Errorf("network mode %q, endpoints %v", req.Host.NetworkMode, req.Network.EndpointsConfig)
	}
	if req.Host.RestartPolicy.Name != container.RestartPolicyDisabled {
		t.Errorf("restart policy %q, want no", req.Host.RestartPolicy.Name)
	}
	if !slices.Equal(req.Host.ExtraHosts, []string{"host.docker.internal:host-gateway"}) {
		t.Errorf("extra hosts %v", req.Host.ExtraHosts)
	}
	if req.Config.Image != "img:1" || req.Config.Entrypoint != nil || req.Config.Cmd != nil {
		t.Errorf("image %q entrypoint %v cmd %v: want the image's own", req.Config.Image, req.Config.Entrypoint, req.Config.Cmd)
	}
}

func TestContainerRequestCommandReplacesEntrypointArgsReplaceCmd(t *testing.T) {
	for _, tc := range []struct {
		cmd, args       []string
		entrypoint, run []string
	}{
		{cmd: []string{"/bin/x", "-v"}, entrypoint: []string{"/bin/x", "-v"}},
		{args: []string{"--serve"}, run: []string{"--serve"}},
		{cmd: []string{"/bin/x"}, args: []string{"a", "b"}, entrypoint: []string{"/bin/x"}, run: []string{"a", "b"}},
	} {
		c := &config.Component{Kind: config.KindSource, ID: "a", Executor: "docker", Image: "img:1", Command: tc.cmd, Args: tc.args}
		req := requestFor(t, c, nil)
		if !slices.Equal(req.Config.Entrypoint, tc.entrypoint) || !slices.Equal(req.Config.Cmd, tc.run) {
			t.Errorf("command %v args %v: entrypoint %v cmd %v", tc.cmd, tc.args, req.Config.Entrypoint, req.Config.Cmd)
		}
	}
}

func TestContainerRequestEnvIsPassedWithTheEndpointOnTheHostGateway(t *testing.T) {
	c := &config.Component{Kind: config.KindSource, ID: "a", Executor: "docker", Image: "img:1"}
	for endpoint, want := range map[string]string{
		"127.0.0.1:8080":  "host.docker.internal:8080",
		"localhost:9":     "host.docker.internal:9",
		"[::1]:8080":      "host.docker.internal:8080",
		"cp.example:8080": "cp.example:8080",
		"10.1.2.3:8080":   "10.1.2.3:8080",
		"not an endpoint": "not an endpoint",
	} {
		req := requestFor(t, c, map[string]string{"B": "2", "A": "1=x", EnvEndpoint: endpoint})
		wantEnv := []string{"A=1=x", "B=2", EnvEndpoint + "=" + want}
		if !slices.Equal(req.Config.Env, wantEnv) {
			t.Errorf("endpoint %q: env %v, want %v", endpoint, req.Config.Env, wantEnv)
		}
	}
}

func TestContainerRequestPortsVolumesResourcesStopTimeout(t *testing.T) {
	c := &config.Component{
		Kind: config.KindSource, ID: "a", Executor: "docker", Image: "img:1",
		Ports: []config.Port{
			{ContainerPort: 8080, HostPort: 18080, HostIP: "127.0.0.1", Protocol: "tcp"},
			{ContainerPort: 8080, HostPort: 18081, HostIP: "0.0.0.0", Protocol: "tcp"},
			{ContainerPort: 53, HostPort: 1053, Protocol: "udp"},
			{ContainerPort: 9000, Protocol: "tcp"},
		},
		Volumes: []config.Volume{
			{HostPath: "data", ContainerPath: "/data", ReadOnly: true},
			{HostPath: "/abs/cache", ContainerPath: "/cache"},
		},
		Resources:   config.Resources{CPULimit: 1500, MemoryLimit: 256 << 20, CPURequest: 250, MemoryRequest: 64 << 20},
		StopTimeout: config.Duration(2500 * time.Millisecond),
	}
	req := requestFor(t, c, nil)
	for _, p := range []nat.Port{"8080/tcp", "53/udp", "9000/tcp"} {
		if _, ok := req.Config.ExposedPorts[p]; !ok {
			t.Errorf("%s not exposed: %v", p, req.Config.ExposedPorts)
		}
	}
	if got := req.Host.PortBindings["8080/tcp"]; len(got) != 2 || got[0] != (nat.PortBinding{HostIP: "127.0.0.1", HostPort: "18080"}) || got[1] != (nat.PortBinding{HostIP: "0.0.0.0", HostPort: "18081"}) {
		t.Errorf("8080/tcp bindings %v", got)
	}
	if got := req.Host.PortBindings["53/udp"]; len(got) != 1 || got[0].HostIP != "127.0.0.1" {
		t.Errorf("a published port with no host_ip binds 127.0.0.1: %v", got)
	}
	if _, ok := req.Host.PortBindings["9000/tcp"]; ok {
		t.Errorf("a port without host_port was published")
	}
	if len(req.Host.Mounts) != 2 {
		t.Fatalf("mounts %v", req.Host.Mounts)
	}
	m0, m1 := req.Host.Mounts[0], req.Host.Mounts[1]
	if m0.Type != "bind" || m0.Source != filepath.Join("/work/pipes", "data") || m0.Target != "/data" || !m0.ReadOnly {
		t.Errorf("relative volume %+v", m0)
	}
	if m1.Source != "/abs/cache" || m1.ReadOnly {
		t.Errorf("absolute volume %+v", m1)
	}
	h := req.Host
	if h.NanoCPUs != 1_500_000_000 || h.Memory != 256<<20 || h.MemoryReservation != 64<<20 || h.CPUShares != 256 {
		t.Errorf("resources: nanocpus %d memory %d reservation %d shares %d", h.NanoCPUs, h.Memory, h.MemoryReservation, h.CPUShares)
	}
	if req.Config.StopTimeout == nil || *req.Config.StopTimeout != 3 {
		t.Errorf("stop timeout %v, want 3 (2.5s rounded up)", req.Config.StopTimeout)
	}
}

func TestComponentAddressIsTheContainerName(t *testing.T) {
	c := &config.Component{Kind: config.KindSource, ID: "ledger"}
	if got := New(Options{}).ComponentAddress("ttp", c, 8080); got != "ttp-ledger:8080" {
		t.Errorf("address %q", got)
	}
}

func TestLineWriterFormatsBothForms(t *testing.T) {
	var b strings.Builder
	w := &lineWriter{stream: "stderr", w: &b, timestamps: true}
	_, _ = w.Write([]byte("2026-01-02T03:04:05.000000001Z one\n2026-01-02T03:04:05.000000002Z tw"))
	_, _ = w.Write([]byte("o\n2026-01-02T03:04:05.000000003Z "))
	_ = w.flush()
	want := "2026-01-02T03:04:05.000000001Z stderr one\n2026-01-02T03:04:05.000000002Z stderr two\n2026-01-02T03:04:05.000000003Z stderr \n"
	if b.String() != want {
		t.Errorf("got %q\nwant %q", b.String(), want)
	}
	b.Reset()
	w = &lineWriter{stream: "stdout", w: &b}
	_, _ = w.Write([]byte("2026-01-02T03:04:05Z hello world\n"))
	if b.String() != "hello world\n" {
		t.Errorf("without timestamps: %q", b.String())
	}
}

func TestListedReadsStateHealthExitCodeAndPortsFromTheListEntry(t *testing.T) {
	labels := map[string]string{
		LabelPipeline: "pl", LabelComponent: "source.a", LabelSpecHash: "0123456789abcdef0123", LabelLineage: "lin",
		LabelInstance: "inst", LabelPorts: providers.FormatPorts(map[string]int{"PORT": 9000, "HEALTH_PORT": 8081}),
	}
	id := "abcdef0123456789abcdef"
	for _, tc := range []struct {
		state, status string
		running       bool
		health        string
		exit          *int
		detail        string
	}{
		{state: "running", status: "Up 3 seconds (healthy)", running: true, health: "healthy", detail: "running (container abcdef012345, healthy)"},
		{state: "running", status: "Up 1 second (health: starting)", running: true, health: "starting", detail: "running (container abcdef012345, starting)"},
		{state: "running", status: "Up 2 minutes", running: true, detail: "running (container abcdef012345)"},
		{state: "exited", status: "Exited (137) 5 seconds ago", exit: ptr(137), detail: "exited with code 137"},
		{state: "created", status: "Created", detail: "created but never started (container abcdef012345)"},
		{state: "dead", status: "Dead", detail: "dead (container abcdef012345)"},
	} {
		o := listed(container.Summary{ID: id, Names: []string{"/pl-a"}, Labels: labels, State: tc.state, Status: tc.status})
		if o.Running != tc.running || o.Health != tc.health || o.Detail != tc.detail || (o.ExitCode == nil) != (tc.exit == nil) || (o.ExitCode != nil && *o.ExitCode != *tc.exit) {
			t.Errorf("%s %q: %+v", tc.state, tc.status, o)
		}
		if o.Address != "source.a" || o.Lineage != "lin" || o.InstanceID != "inst" || o.Fingerprint != "container=abcdef012345,hash=0123456789ab" {
			t.Errorf("labels: %+v", o)
		}
		if o.Ports["PORT"] != 9000 || o.Ports["HEALTH_PORT"] != 8081 {
			t.Errorf("ports %v", o.Ports)
		}
		hd, err := decodeHandle(o.Handle)
		if err != nil || hd.ID != id || hd.Name != "pl-a" || hd.Lineage != "lin" {
			t.Errorf("handle %+v (%v)", hd, err)
		}
	}
}

func ptr(n int) *int { return &n }
