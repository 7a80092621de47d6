package nomad

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/pkg/contract"
)

// Job meta keys: what flowctl reads back from a job (see the package doc).
const (
	MetaPipeline  = "flowctl-pipeline"
	MetaComponent = "flowctl-component"
	MetaSpecHash  = "flowctl-spec-hash"
	MetaLineage   = "flowctl-lineage"
	MetaInstance  = "flowctl-instance"
	// MetaPorts holds PORT and HEALTH_PORT as "HEALTH_PORT=8081,PORT=9000".
	MetaPorts = "flowctl-ports"
)

// Port labels of the ports flowctl assigns.
const (
	LabelPort   = "flowctl_port"
	LabelHealth = "flowctl_health"
)

// Task drivers.
const (
	DriverDocker = "docker"
	DriverRaw    = "raw_exec"
)

// Translation constants (see the package doc).
const (
	// restartInterval is the window Nomad counts restart attempts in when a
	// policy has a limit: long enough that the limit is, in practice, the
	// component's max_retries.
	restartInterval = 30 * time.Minute
	// unlimitedAttempts is how many quick restarts an unlimited policy
	// allows per backoff.max window before Nomad waits the window out.
	unlimitedAttempts = 3
	// rescheduleMinDelay is Nomad's shortest reschedule delay.
	rescheduleMinDelay = 5 * time.Second
	// restartMinInterval is Nomad's shortest restart interval.
	restartMinInterval = 5 * time.Second
	// taskHealthyTime is how long a task without a check must run to be
	// healthy.
	taskHealthyTime  = 5 * time.Second
	healthyDeadline  = 5 * time.Minute
	progressDeadline = 10 * time.Minute
	checkName        = "flowctl-health"
	// mhzPerCore converts millicores to MHz: a core counts as 1000 MHz.
	mhzPerCore = 1000
)

// JobID is the Nomad job of component id in pipeline.
func JobID(pipeline, id string) string { return pipeline + "-" + id }

// Job builds the Nomad job spec.Component becomes, in the datacenters,
// region and namespace of conn. It talks to nobody, so that tests can pin
// it (testdata/jobs/*.json).
func Job(spec *providers.ComponentSpec, conn Connection) (*api.Job, error) {
	c := spec.Component
	if c == nil {
		return nil, errors.New("no component")
	}
	id := JobID(spec.Pipeline, c.ID)
	job := &api.Job{
		ID:          new(id),
		Name:        new(id),
		Type:        new(api.JobTypeService),
		Datacenters: conn.datacenters(),
		Meta: map[string]string{
			MetaPipeline:  spec.Pipeline,
			MetaComponent: spec.Address(),
			MetaSpecHash:  spec.SpecHash,
			MetaLineage:   spec.Lineage,
			MetaInstance:  spec.InstanceID,
			MetaPorts:     providers.FormatPorts(spec.Ports),
		},
	}
	if conn.Region != "" {
		job.Region = new(conn.Region)
	}
	if conn.Namespace != "" {
		job.Namespace = new(conn.Namespace)
	}
	task, err := taskOf(spec)
	if err != nil {
		return nil, err
	}
	group := &api.TaskGroup{
		Name:             new(c.ID),
		Count:            new(c.Replicas),
		Tasks:            []*api.Task{task},
		RestartPolicy:    restartPolicy(c.Restart),
		ReschedulePolicy: reschedulePolicy(c.Restart),
		Update:           updateStrategy(c),
		Networks:         networks(spec, task.Driver),
	}
	if s := service(spec); s != nil {
		group.Services = []*api.Service{s}
	}
	job.TaskGroups = []*api.TaskGroup{group}
	return job, nil
}

// taskOf is the one task of the job: the docker driver for an image, the
// raw_exec driver for a command.
func taskOf(spec *providers.ComponentSpec) (*api.Task, error) {
	c := spec.Component
	t := &api.Task{
		Name:        c.ID,
		Env:         copyEnv(spec.Env),
		Resources:   resources(c.Resources),
		KillTimeout: new(c.StopTimeout.D()),
		// Nomad's default is SIGINT; flowctl stops components with SIGTERM.
		KillSignal: "SIGTERM",
	}
	switch {
	case c.Image != "":
		t.Driver = DriverDocker
		cfg := map[string]any{"image": c.Image}
		if len(c.Command) > 0 {
			cfg["entrypoint"] = append([]string(nil), c.Command...)
		}
		if len(c.Args) > 0 {
			cfg["args"] = append([]string(nil), c.Args...)
		}
		if labels := portLabels(spec); len(labels) > 0 {
			cfg["ports"] = labels
		}
		if c.PullPolicy() == config.PullAlways {
			cfg["force_pull"] = true
		}
		if len(c.Volumes) > 0 {
			var mounts []map[string]any
			for _, v := range c.Volumes {
				mounts = append(mounts, map[string]any{"type": "bind", "source": v.HostPath, "target": v.ContainerPath, "readonly": v.ReadOnly})
			}
			cfg["mount"] = mounts
		}
		t.Config = cfg
	case len(c.Command) > 0:
		t.Driver = DriverRaw
		cfg := map[string]any{"command": c.Command[0]}
		if args := append(append([]string(nil), c.Command[1:]...), c.Args...); len(args) > 0 {
			cfg["args"] = args
		}
		t.Config = cfg
	default:
		return nil, fmt.Errorf("%s has neither image nor command", c.Address())
	}
	return t, nil
}

func copyEnv(env map[string]string) map[string]string {
	if len(env) == 0 {
		return nil
	}
	out := make(map[string]string, len(env))
	for k, v := range env {
		out[k] = v
	}
	return out
}

// resources converts the pipeline's quantities: Nomad reserves cpu (MHz)
// and memory (MiB, which Nomad calls MB) from the request, or the limit
// when no request is set, and caps memory at memory_max when the limit is
// above the reservation. Unset values are left to Nomad's defaults.
func resources(r config.Resources) *api.Resources {
	out := &api.Resources{}
	if cpu := firstSet(r.CPURequest, r.CPULimit); cpu > 0 {
		out.CPU = new(int(max(1, ceilDiv(cpu*mhzPerCore, 1000))))
	}
	mem := firstSet(r.MemoryRequest, r.MemoryLimit)
	if mem > 0 {
		out.MemoryMB = new(int(max(1, ceilDiv(mem, 1<<20))))
	}
	if r.MemoryLimit > 0 && r.MemoryLimit > mem {
		out.MemoryMaxMB = new(int(ceilDiv(r.MemoryLimit, 1<<20)))
	}
	return out
}

// firstSet returns the first non-zero value.
func firstSet(a, b int64) int64 {
	if a > 0 {
		return a
	}
	return b
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// restartPolicy is Nomad's restart block for the component's policy: never
// restarts nothing; a limited policy allows max_retries restarts,
// backoff.initial apart, then fails the allocation; an unlimited one allows
// a few quick restarts per backoff.max window and then waits the window
// out (mode "delay"), for ever. Nomad restarts a service task whatever its
// exit code, so on-failure and always read the same here.
func restartPolicy(r config.Restart) *api.RestartPolicy {
	delay := r.Backoff.Initial.D()
	switch {
	case r.Policy == config.RestartNever || r.MaxRetries == 0:
		return &api.RestartPolicy{Attempts: new(0), Interval: new(restartInterval), Delay: new(delay), Mode: new("fail")}
	case r.MaxRetries == config.UnlimitedRetries:
		interval := max(r.Backoff.Max.D(), restartMinInterval)
		if time.Duration(unlimitedAttempts)*delay >= interval {
			interval = time.Duration(unlimitedAttempts+1) * delay
		}
		return &api.RestartPolicy{Attempts: new(unlimitedAttempts), Interval: new(interval), Delay: new(delay), Mode: new("delay")}
	}
	interval := restartInterval
	if time.Duration(r.MaxRetries)*delay >= interval {
		interval = time.Duration(r.MaxRetries+1) * delay
	}
	return &api.RestartPolicy{Attempts: new(r.MaxRetries), Interval: new(interval), Delay: new(delay), Mode: new("fail")}
}

// reschedulePolicy decides what happens to an allocation that failed for
// good on its node: with an unlimited policy Nomad places it again, on any
// node, with exponential backoff between backoff.initial (at least Nomad's
// 5s) and backoff.max; otherwise a failed allocation stays failed, so that
// max_retries is the whole budget.
func reschedulePolicy(r config.Restart) *api.ReschedulePolicy {
	if r.Policy == config.RestartNever || r.MaxRetries != config.UnlimitedRetries {
		return &api.ReschedulePolicy{Attempts: new(0), Unlimited: new(false)}
	}
	delay := max(r.Backoff.Initial.D(), rescheduleMinDelay)
	return &api.ReschedulePolicy{
		Unlimited:     new(true),
		Delay:         new(delay),
		DelayFunction: new("exponential"),
		MaxDelay:      new(max(r.Backoff.Max.D(), delay)),
	}
}

// updateStrategy makes Nomad judge each allocation's health (a deployment
// per registration): by the service check when the component has health
// (healthy once it passes), by its task otherwise (healthy once it has run
// for taskHealthyTime, so that a task that dies at once is not counted
// ready). That verdict is Observed.Health.
func updateStrategy(c *config.Component) *api.UpdateStrategy {
	hc, minHealthy := "task_states", taskHealthyTime
	if c.Health != nil {
		hc, minHealthy = "checks", 0
	}
	return &api.UpdateStrategy{
		MaxParallel:      new(1),
		HealthCheck:      new(hc),
		MinHealthyTime:   new(minHealthy),
		HealthyDeadline:  new(healthyDeadline),
		ProgressDeadline: new(progressDeadline),
		AutoRevert:       new(false),
	}
}

// networks is the group's network block: PORT and HEALTH_PORT as static
// ports (the component listens on them, as everywhere), then the
// component's ports: static where host_port is set, dynamic otherwise.
// With the docker driver each is mapped to the same port in the container
// (to); raw_exec tasks listen on the node itself.
func networks(spec *providers.ComponentSpec, driver string) []*api.NetworkResource {
	nw := &api.NetworkResource{}
	for _, p := range flowctlPorts(spec) {
		port := api.Port{Label: p.label, Value: p.value}
		if driver == DriverDocker {
			port.To = p.value
		}
		nw.ReservedPorts = append(nw.ReservedPorts, port)
	}
	for i, p := range spec.Component.Ports {
		port := api.Port{Label: userPortLabel(p, i)}
		if driver == DriverDocker {
			port.To = p.ContainerPort
		}
		if p.HostPort != 0 {
			port.Value = p.HostPort
			nw.ReservedPorts = append(nw.ReservedPorts, port)
		} else {
			nw.DynamicPorts = append(nw.DynamicPorts, port)
		}
	}
	if len(nw.ReservedPorts) == 0 && len(nw.DynamicPorts) == 0 {
		return nil
	}
	return []*api.NetworkResource{nw}
}

type flowctlPort struct {
	label string
	value int
}

// flowctlPorts are PORT and HEALTH_PORT with their labels; when both are
// the same port it is reserved once, as PORT.
func flowctlPorts(spec *providers.ComponentSpec) []flowctlPort {
	var out []flowctlPort
	if p := spec.Ports[contract.EnvPort]; p > 0 {
		out = append(out, flowctlPort{LabelPort, p})
	}
	if p := spec.Ports[contract.EnvHealthPort]; p > 0 && p != spec.Ports[contract.EnvPort] {
		out = append(out, flowctlPort{LabelHealth, p})
	}
	return out
}

var nonLabel = regexp.MustCompile(`[^a-zA-Z0-9_]+`)

// userPortLabel names a component port: its name, made a valid label, or
// port_<container port>.
func userPortLabel(p config.Port, i int) string {
	if l := strings.Trim(nonLabel.ReplaceAllString(p.Name, "_"), "_"); l != "" && !strings.HasPrefix(l, "flowctl_") {
		return l
	}
	return fmt.Sprintf("port_%d_%d", p.ContainerPort, i)
}

// portLabels are the labels the docker driver maps into the container.
func portLabels(spec *providers.ComponentSpec) []string {
	var out []string
	for _, p := range flowctlPorts(spec) {
		out = append(out, p.label)
	}
	for i, p := range spec.Component.Ports {
		out = append(out, userPortLabel(p, i))
	}
	return out
}

// healthLabel is the label of the port the service check targets: the
// HEALTH_PORT, or PORT when the two are one.
func healthLabel(spec *providers.ComponentSpec) string {
	if spec.Ports[contract.EnvHealthPort] > 0 && spec.Ports[contract.EnvHealthPort] == spec.Ports[contract.EnvPort] {
		return LabelPort
	}
	return LabelHealth
}

// ServiceName is the Nomad service of component id: the job ID, made a
// valid service name (letters, digits and '-', at most 63).
func ServiceName(pipeline, id string) string {
	n := strings.ToLower(strings.ReplaceAll(JobID(pipeline, id), "_", "-"))
	if len(n) > 63 {
		n = n[:63]
	}
	return strings.Trim(n, "-")
}

// service is the component's health as a Nomad service (provider "nomad",
// Nomad's own service discovery) with one http or tcp check; a liveness
// probe also restarts the task once the check has failed
// failure_threshold times in a row (check_restart), after start_period.
func service(spec *providers.ComponentSpec) *api.Service {
	c := spec.Component
	h := c.Health
	if h == nil {
		return nil
	}
	s := &api.Service{
		Name:      ServiceName(spec.Pipeline, c.ID),
		Provider:  "nomad",
		PortLabel: healthLabel(spec),
	}
	check := api.ServiceCheck{Name: checkName, Type: h.Type, Interval: h.Interval.D(), Timeout: h.Timeout.D()}
	if h.Type == config.HealthHTTP {
		check.Path = h.Path
		if check.Path == "" {
			check.Path = "/"
		}
	}
	if h.Liveness {
		check.CheckRestart = &api.CheckRestart{Limit: h.FailureThreshold, Grace: new(h.StartPeriod.D())}
	}
	s.Checks = []api.ServiceCheck{check}
	return s
}
