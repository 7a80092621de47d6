package kubernetes

import (
	"net/url"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	batchv1ac "k8s.io/client-go/applyconfigurations/batch/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/pkg/contract"
)

// Labels and annotations flowctl puts on its objects.
const (
	LabelManagedBy      = "app.kubernetes.io/managed-by"
	LabelPipeline       = "flowctl.io/pipeline"
	LabelComponent      = "flowctl.io/component"
	LabelLineage        = "flowctl.io/lineage"
	LabelNamespaceOwner = "flowctl.io/created-for-pipeline"
	AnnotationSpecHash  = "flowctl.io/spec-hash"
	AnnotationReplicas  = "flowctl.io/replicas"
	AnnotationInstance  = "flowctl.io/instance"
	AnnotationPorts     = "flowctl.io/ports"
	// containerName is the one container of every pod.
	containerName = "app"
)

// Kinds of workload.
const (
	KindDeployment = "Deployment"
	KindJob        = "Job"
)

// workloadKind is the object a component's restart policy needs.
func workloadKind(c *config.Component) string {
	switch c.Restart.Policy {
	case "never", "on-failure":
		return KindJob
	}
	return KindDeployment
}

// objects are what one component becomes, ready to apply.
type objects struct {
	name, ns   string
	kind       string
	labels     map[string]string
	secret     *corev1ac.SecretApplyConfiguration
	deployment *appsv1ac.DeploymentApplyConfiguration
	job        *batchv1ac.JobApplyConfiguration
	service    *corev1ac.ServiceApplyConfiguration
}

// secretName is the name of the component's Secret.
func secretName(name string) string { return name + "-flowctl" }

// build makes the objects of spec in namespace ns; endpoint replaces
// FLOWCTL_ENDPOINT when set.
func build(spec *providers.ComponentSpec, ns, endpoint string) *objects {
	c := spec.Component
	o := &objects{name: ObjectName(spec.Pipeline, c.ID), ns: ns, kind: workloadKind(c)}
	o.labels = map[string]string{
		LabelManagedBy: FieldManager,
		LabelPipeline:  spec.Pipeline,
		LabelComponent: c.Address(),
		LabelLineage:   spec.Lineage,
	}
	env, secretData := podEnv(spec, o.name, endpoint)
	o.secret = corev1ac.Secret(secretName(o.name), ns).WithLabels(o.labels).
		WithType(corev1.SecretTypeOpaque).WithStringData(secretData)
	annotations := map[string]string{
		AnnotationSpecHash: spec.SpecHash,
		AnnotationReplicas: strconv.Itoa(c.Replicas),
		AnnotationInstance: spec.InstanceID,
		AnnotationPorts:    portsText(spec.Ports),
	}
	selector := map[string]string{LabelPipeline: spec.Pipeline, LabelComponent: c.Address()}
	tmpl := corev1ac.PodTemplateSpec().
		WithLabels(o.labels).
		WithAnnotations(map[string]string{AnnotationInstance: spec.InstanceID}).
		WithSpec(podSpec(spec, env, o.kind))
	switch o.kind {
	case KindJob:
		backoff := int32(0)
		if c.Restart.Policy == "on-failure" {
			backoff = int32(max(0, c.Restart.MaxRetries))
			if c.Restart.MaxRetries < 0 {
				backoff = 6 // the Job default: "unlimited" has no Job counterpart
			}
		}
		n := int32(c.Replicas)
		o.job = batchv1ac.Job(o.name, ns).WithLabels(o.labels).WithAnnotations(annotations).
			WithSpec(batchv1ac.JobSpec().WithParallelism(n).WithCompletions(n).WithBackoffLimit(backoff).WithTemplate(tmpl))
	default:
		o.deployment = appsv1ac.Deployment(o.name, ns).WithLabels(o.labels).WithAnnotations(annotations).
			WithSpec(appsv1ac.DeploymentSpec().WithReplicas(int32(c.Replicas)).
				WithSelector(metav1ac.LabelSelector().WithMatchLabels(selector)).
				WithTemplate(tmpl))
	}
	o.service = corev1ac.Service(o.name, ns).WithLabels(o.labels).
		WithSpec(corev1ac.ServiceSpec().WithSelector(selector).WithPorts(servicePorts(spec)...))
	return o
}

// podEnv is the container's env: spec.Env as literals, except the token
// and sensitive values, which come from the component's Secret.
func podEnv(spec *providers.ComponentSpec, name, endpoint string) ([]*corev1ac.EnvVarApplyConfiguration, map[string]string) {
	secret := map[string]string{}
	keys := make([]string, 0, len(spec.Env))
	for k := range spec.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var env []*corev1ac.EnvVarApplyConfiguration
	for _, k := range keys {
		v := spec.Env[k]
		if k == contract.EnvEndpoint && endpoint != "" {
			v = endpoint
		}
		if sensitiveEnv(spec.Component, k) {
			secret[k] = v
			env = append(env, corev1ac.EnvVar().WithName(k).WithValueFrom(corev1ac.EnvVarSource().
				WithSecretKeyRef(corev1ac.SecretKeySelector().WithName(secretName(name)).WithKey(k))))
			continue
		}
		env = append(env, corev1ac.EnvVar().WithName(k).WithValue(v))
	}
	return env, secret
}

// sensitiveEnv: the token, and what the pipeline marks sensitive.
func sensitiveEnv(c *config.Component, k string) bool {
	if k == contract.EnvComponentToken || k == contract.EnvPlainComponentToken {
		return true
	}
	v, ok := c.Env[k]
	return ok && v.Sensitive
}

func podSpec(spec *providers.ComponentSpec, env []*corev1ac.EnvVarApplyConfiguration, kind string) *corev1ac.PodSpecApplyConfiguration {
	c := spec.Component
	ctr := corev1ac.Container().WithName(containerName).WithImage(c.Image).WithEnv(env...)
	if len(c.Command) > 0 {
		ctr.WithCommand(c.Command...)
	}
	if len(c.Args) > 0 {
		ctr.WithArgs(c.Args...)
	}
	switch c.PullPolicy() {
	case config.PullAlways:
		ctr.WithImagePullPolicy(corev1.PullAlways)
	case config.PullNever:
		ctr.WithImagePullPolicy(corev1.PullNever)
	default:
		ctr.WithImagePullPolicy(corev1.PullIfNotPresent)
	}
	for _, cp := range containerPorts(spec) {
		ctr.WithPorts(cp)
	}
	if r := resources(c.Resources); r != nil {
		ctr.WithResources(r)
	}
	if h := c.Health; h != nil {
		ctr.WithReadinessProbe(probe(h, spec.Ports[contract.EnvHealthPort]))
		if h.Liveness {
			ctr.WithLivenessProbe(probe(h, spec.Ports[contract.EnvHealthPort]))
		}
	}
	ps := corev1ac.PodSpec().WithContainers(ctr)
	grace := int64(c.StopTimeout.D().Seconds())
	ps.WithTerminationGracePeriodSeconds(grace)
	if kind == KindJob {
		if c.Restart.Policy == "on-failure" {
			ps.WithRestartPolicy(corev1.RestartPolicyOnFailure)
		} else {
			ps.WithRestartPolicy(corev1.RestartPolicyNever)
		}
	}
	return ps
}

func probe(h *config.Health, healthPort int) *corev1ac.ProbeApplyConfiguration {
	port := h.Port
	if port == 0 {
		port = healthPort
	}
	p := corev1ac.Probe().
		WithPeriodSeconds(int32(max(1, h.Interval.D().Seconds()))).
		WithTimeoutSeconds(int32(max(1, h.Timeout.D().Seconds()))).
		WithInitialDelaySeconds(int32(h.StartPeriod.D().Seconds())).
		WithFailureThreshold(int32(max(1, h.FailureThreshold))).
		WithSuccessThreshold(int32(max(1, h.SuccessThreshold)))
	switch h.Type {
	case config.HealthExec:
		p.WithExec(corev1ac.ExecAction().WithCommand(h.Command...))
	case config.HealthTCP:
		p.WithTCPSocket(corev1ac.TCPSocketAction().WithPort(intstr.FromInt(port)))
	default:
		path := h.Path
		if h.URL != "" {
			if u, err := url.Parse(h.URL); err == nil {
				path = u.RequestURI()
			}
		}
		p.WithHTTPGet(corev1ac.HTTPGetAction().WithPath(path).WithPort(intstr.FromInt(port)))
	}
	return p
}

func resources(r config.Resources) *corev1ac.ResourceRequirementsApplyConfiguration {
	req, lim := corev1.ResourceList{}, corev1.ResourceList{}
	if r.CPURequest > 0 {
		req[corev1.ResourceCPU] = *resource.NewMilliQuantity(r.CPURequest, resource.DecimalSI)
	}
	if r.MemoryRequest > 0 {
		req[corev1.ResourceMemory] = *resource.NewQuantity(r.MemoryRequest, resource.BinarySI)
	}
	if r.CPULimit > 0 {
		lim[corev1.ResourceCPU] = *resource.NewMilliQuantity(r.CPULimit, resource.DecimalSI)
	}
	if r.MemoryLimit > 0 {
		lim[corev1.ResourceMemory] = *resource.NewQuantity(r.MemoryLimit, resource.BinarySI)
	}
	if len(req) == 0 && len(lim) == 0 {
		return nil
	}
	out := corev1ac.ResourceRequirements()
	if len(req) > 0 {
		out.WithRequests(req)
	}
	if len(lim) > 0 {
		out.WithLimits(lim)
	}
	return out
}

// namedPort is one port of the pod and its Service.
type namedPort struct {
	name     string
	port     int
	protocol corev1.Protocol
}

// ports are PORT ("data"), HEALTH_PORT ("health") and the declared ports,
// each once.
func ports(spec *providers.ComponentSpec) []namedPort {
	var out []namedPort
	seen := map[int]bool{}
	add := func(name string, port int, proto corev1.Protocol) {
		if port <= 0 || seen[port] {
			return
		}
		seen[port] = true
		out = append(out, namedPort{name, port, proto})
	}
	add("data", spec.Ports[contract.EnvPort], corev1.ProtocolTCP)
	add("health", spec.Ports[contract.EnvHealthPort], corev1.ProtocolTCP)
	for i, p := range spec.Component.Ports {
		name := strings.ToLower(p.Name)
		if name == "" || name == "data" || name == "health" {
			name = "port-" + strconv.Itoa(i)
		}
		proto := corev1.ProtocolTCP
		if strings.EqualFold(p.Protocol, "udp") {
			proto = corev1.ProtocolUDP
		}
		add(name, p.ContainerPort, proto)
	}
	return out
}

func containerPorts(spec *providers.ComponentSpec) []*corev1ac.ContainerPortApplyConfiguration {
	var out []*corev1ac.ContainerPortApplyConfiguration
	for _, p := range ports(spec) {
		out = append(out, corev1ac.ContainerPort().WithName(truncate(p.name, 15)).WithContainerPort(int32(p.port)).WithProtocol(p.protocol))
	}
	return out
}

func servicePorts(spec *providers.ComponentSpec) []*corev1ac.ServicePortApplyConfiguration {
	var out []*corev1ac.ServicePortApplyConfiguration
	for _, p := range ports(spec) {
		out = append(out, corev1ac.ServicePort().WithName(p.name).WithPort(int32(p.port)).
			WithTargetPort(intstr.FromInt(p.port)).WithProtocol(p.protocol))
	}
	return out
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// portsText is "PORT=1,HEALTH_PORT=2", read back by Observe.
func portsText(m map[string]int) string {
	var parts []string
	for _, k := range contract.PortNames() {
		if v, ok := m[k]; ok {
			parts = append(parts, k+"="+strconv.Itoa(v))
		}
	}
	return strings.Join(parts, ",")
}

func parsePorts(s string) map[string]int {
	out := map[string]int{}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if n, err := strconv.Atoi(v); ok && err == nil {
			out[k] = n
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
