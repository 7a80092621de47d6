package config

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/flowctl/flowctl/internal/graph"
)

// Validate checks a normalised pipeline and reports every problem at once,
// each at the position of the offending attribute and naming the component.
func Validate(p *Pipeline) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if p.Name == "" {
		diags = append(diags, errorf(p.Ranges["name"], "Missing pipeline name", "a pipeline needs a name"))
	} else if !validName(p.Name) {
		diags = append(diags, errorf(p.Ranges["name"], "Invalid pipeline name", "%q: use letters, digits, '-' and '_', starting with a letter or digit", p.Name))
	}
	if !slices.Contains(Executors, p.Executor) {
		diags = append(diags, errorf(p.Ranges["executor"], "Unknown executor", "pipeline %s: executor %q is not one of %s", p.Name, p.Executor, strings.Join(Executors, ", ")))
	}

	byID := map[string]*Component{}
	byAddr := map[string]*Component{}
	for _, c := range p.Components {
		if prev, dup := byID[c.ID]; dup {
			diags = append(diags, errorf(c.Range("id"), "Duplicate component id",
				"%s: id %q is already used by %s at %s; ids must be unique across sources, processors and sinks",
				c.Address(), c.ID, prev.Address(), shortRange(prev.Range("id"))))
			continue
		}
		byID[c.ID] = c
		byAddr[c.Address()] = c
	}
	switch p.Auth {
	case "", AuthRequired, AuthToken, AuthPermissive:
	default:
		diags = append(diags, errorf(p.Ranges["auth"], "Invalid auth mode",
			"pipeline %s: auth %q: must be \"required\", \"token\" or \"permissive\"", p.Name, p.Auth))
	}
	if p.ControlPlane != "" {
		if host, port, err := net.SplitHostPort(p.ControlPlane); err != nil || host == "" || port == "" {
			diags = append(diags, errorf(p.Ranges["control_plane"], "Invalid control plane address",
				"pipeline %s: control_plane %q: must be host:port", p.Name, p.ControlPlane))
		}
	}
	for i, t := range p.TrustedRegistries {
		if t == "" || strings.ContainsAny(t, " \t@") {
			diags = append(diags, errorf(p.Ranges["trusted_registries"], "Invalid trusted registry",
				"pipeline %s: trusted_registries[%d] %q is not a registry host (\"ghcr.io\") or repository prefix (\"docker.io/withobsrvr\")", p.Name, i, t))
		}
	}
	diags = append(diags, validateFixedPorts(p)...)
	diags = append(diags, validateNomad(p)...)
	diags = append(diags, validateBackend(p)...)
	diags = append(diags, validateKubernetes(p)...)
	for _, c := range p.Components {
		diags = append(diags, validateComponent(p, c, byAddr)...)
		diags = append(diags, validateImage(p, c)...)
		diags = append(diags, validateImagePolicy(c)...)
		diags = append(diags, validateNomadComponent(c)...)
		diags = append(diags, validateKubernetesComponent(c)...)
	}
	diags = append(diags, validateHostPorts(p)...)

	// Cycles only among edges that resolve; unknown targets were reported above.
	var addrs []string
	for a := range byAddr {
		addrs = append(addrs, a)
	}
	// Self-references are reported by validateComponent; leave them out here.
	g := graph.New(addrs, func(a string) []string {
		return slices.DeleteFunc(byAddr[a].Upstreams(), func(u string) bool { return u == a })
	})
	if cyc := g.Cycle(); cyc != nil {
		c := byAddr[cyc[0]]
		diags = append(diags, compErr(c, cycleAttr(c, cyc[len(cyc)-2]), "Dependency cycle",
			"the pipeline's components form a cycle: %s", strings.Join(cyc, " -> ")))
	}
	return diags
}

// cycleAttr names the attribute of c through which it depends on up.
func cycleAttr(c *Component, up string) string {
	if slices.Contains(c.Inputs, up) {
		return "inputs"
	}
	if slices.Contains(c.DependsOn, up) {
		return "depends_on"
	}
	return "env"
}

// validateComponent checks one component, one concern at a time, in the
// order its problems have always been reported (diagnostics at one position
// keep that order).
func validateComponent(p *Pipeline, c *Component, byAddr map[string]*Component) hcl.Diagnostics {
	v := &componentCheck{c: c}
	v.runnable(p)
	v.edges(byAddr)
	v.env(byAddr)
	v.restart()
	v.runSettings()
	v.sizing()
	v.health()
	v.ports()
	v.volumes()
	v.resources()
	return v.diags
}

// componentCheck collects the diagnostics about one component.
type componentCheck struct {
	c     *Component
	diags hcl.Diagnostics
}

func (v *componentCheck) add(attr, summary, format string, args ...any) {
	v.diags = append(v.diags, compErr(v.c, attr, summary, format, args...))
}

// runnable checks the id, the executor, and that the component names
// something the executor can run.
func (v *componentCheck) runnable(p *Pipeline) {
	c := v.c
	if !validName(c.ID) {
		v.add("id", "Invalid component id", "id %q: use letters, digits, '-' and '_', starting with a letter or digit", c.ID)
	}
	_, explicitExecutor := c.Ranges["executor"]
	if !slices.Contains(Executors, c.Executor) && (explicitExecutor || c.Executor != p.Executor) {
		// A component that inherits a bad pipeline executor is reported once,
		// at the pipeline.
		v.add("executor", "Unknown executor", "executor %q is not one of %s", c.Executor, strings.Join(Executors, ", "))
	}
	switch {
	case c.Image == "" && len(c.Command) == 0:
		v.add("id", "Nothing to run", "set image (a container image) or command (a program to run)")
	case c.Image != "" && len(c.Command) > 0 && c.Executor == "process" && !strings.Contains(c.Type, "@"):
		// On Docker and Nomad a command with an image overrides the image's
		// entrypoint, as real flowctl/v1 files do; a local process has no
		// image, so there both is a mistake.
		v.add("command", "Both image and command", "the process executor runs command on this machine and cannot use image; remove one (or set executor = \"docker\" to run command inside the image)")
	}
}

// edges checks inputs and depends_on against the component's kind and the
// pipeline's components.
func (v *componentCheck) edges(byAddr map[string]*Component) {
	c := v.c
	switch c.Kind {
	case KindSource:
		if len(c.Inputs) > 0 {
			v.add("inputs", "Source with inputs", "a source produces events and takes no inputs; make it a processor, or use depends_on for ordering")
		}
	default:
		if len(c.Inputs) == 0 {
			v.add("inputs", "Missing inputs", "a %s needs at least one input", c.Kind)
		}
	}
	for _, in := range c.Inputs {
		v.diags = append(v.diags, checkTarget(c, byAddr, in, attrIndex("inputs", in, c), "input")...)
	}
	for _, d := range c.DependsOn {
		v.diags = append(v.diags, checkTarget(c, byAddr, d, attrIndex("depends_on", d, c), "depends_on target")...)
	}
}

// env checks variable names and the component references in values.
func (v *componentCheck) env(byAddr map[string]*Component) {
	c := v.c
	for _, name := range sortedKeys(c.Env) {
		if name == "" || strings.ContainsAny(name, "=\x00") {
			v.add("env."+name, "Invalid environment variable name", "%q cannot be an environment variable name", name)
		}
		for _, r := range FindRefs(c.Env[name].Value) {
			t, ok := byAddr[r.Addr]
			switch {
			case r.Self():
			case !ok:
				v.add("env."+name, "Reference to unknown component", "env %s references %s, which is not a component of this pipeline", name, r)
			case t == c:
				v.add("env."+name, "Self-reference", "env %s references the component's own %s as %s; write ${self.%s}", name, r.Attr, r, r.Attr)
			}
		}
	}
}

func (v *componentCheck) restart() {
	r := v.c.Restart
	switch r.Policy {
	case RestartNever, RestartOnFailure, RestartAlways:
	default:
		v.add("restart.policy", "Invalid restart policy", "restart policy %q is not one of never, on-failure, always (unless-stopped means always)", r.Policy)
	}
	if r.MaxRetries < UnlimitedRetries {
		v.add("restart.max_retries", "Invalid max_retries", "max_retries %d: use a count, or -1 for no limit", r.MaxRetries)
	}
	if r.Backoff.Initial < 0 {
		v.add("restart.backoff.initial", "Invalid duration", "backoff initial %s is negative", r.Backoff.Initial)
	}
	if r.Backoff.Max < r.Backoff.Initial {
		v.add("restart.backoff.max", "Invalid duration", "backoff max %s is shorter than initial %s", r.Backoff.Max, r.Backoff.Initial)
	}
	if r.Backoff.Multiplier < 1 {
		v.add("restart.backoff.multiplier", "Invalid backoff multiplier", "multiplier %g: must be at least 1", r.Backoff.Multiplier)
	}
}

// sizing checks stop_timeout and replicas.
func (v *componentCheck) sizing() {
	if v.c.StopTimeout < 0 {
		v.add("stop_timeout", "Invalid duration", "stop_timeout %s is negative", v.c.StopTimeout)
	}
	if v.c.Replicas < 1 {
		v.add("replicas", "Invalid replicas", "replicas %d: must be at least 1", v.c.Replicas)
	}
}

func (v *componentCheck) health() {
	h := v.c.Health
	if h == nil {
		return
	}
	switch h.Type {
	case HealthHTTP, HealthTCP:
	case HealthExec:
		if len(h.Command) == 0 {
			v.add("health.exec", "Empty exec probe", "an exec health probe needs a command")
		}
	default:
		v.add("health", "Invalid health probe", "health needs one of http, tcp or exec")
	}
	if h.Port < 0 || h.Port > 65535 {
		v.add("health.port", "Invalid port", "health port %d is outside 1-65535", h.Port)
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{{"interval", h.Interval}, {"timeout", h.Timeout}, {"start_period", h.StartPeriod}} {
		if d.v < 0 {
			v.add("health."+d.name, "Invalid duration", "health %s %s is negative", d.name, d.v)
		}
	}
	if h.FailureThreshold < 1 {
		v.add("health.failure_threshold", "Invalid threshold", "failure_threshold %d: must be at least 1", h.FailureThreshold)
	}
	if h.SuccessThreshold < 1 {
		v.add("health.success_threshold", "Invalid threshold", "success_threshold %d: must be at least 1", h.SuccessThreshold)
	}
}

func (v *componentCheck) ports() {
	for i, pt := range v.c.Ports {
		attr := fmt.Sprintf("ports.%d", i)
		if pt.ContainerPort < 1 || pt.ContainerPort > 65535 {
			v.add(attr+".container_port", "Invalid port", "container port %d is outside 1-65535", pt.ContainerPort)
		}
		if pt.HostPort < 0 || pt.HostPort > 65535 {
			v.add(attr+".host_port", "Invalid port", "host port %d is outside 1-65535", pt.HostPort)
		}
		if pt.Protocol != "tcp" && pt.Protocol != "udp" {
			v.add(attr+".protocol", "Invalid protocol", "protocol %q: use tcp or udp", pt.Protocol)
		}
	}
}

func (v *componentCheck) volumes() {
	for i, vol := range v.c.Volumes {
		attr := fmt.Sprintf("volumes.%d", i)
		if vol.HostPath == "" {
			v.add(attr+".host_path", "Invalid volume", "volume %d needs host_path", i)
		}
		if !strings.HasPrefix(vol.ContainerPath, "/") {
			v.add(attr+".container_path", "Invalid volume", "volume %d: container_path %q must be absolute", i, vol.ContainerPath)
		}
	}
}

// resources checks that no request exceeds its limit.
func (v *componentCheck) resources() {
	res := v.c.Resources
	if res.CPURequest > 0 && res.CPULimit > 0 && res.CPURequest > res.CPULimit {
		v.add("resources.cpu_request", "Invalid resources", "cpu request %s exceeds the limit %s", FormatCPU(res.CPURequest), FormatCPU(res.CPULimit))
	}
	if res.MemoryRequest > 0 && res.MemoryLimit > 0 && res.MemoryRequest > res.MemoryLimit {
		v.add("resources.memory_request", "Invalid resources", "memory request %s exceeds the limit %s", FormatMemory(res.MemoryRequest), FormatMemory(res.MemoryLimit))
	}
}

// validateImage checks a component's image, image_id and pull, and the
// pipeline's image policy (trusted_registries, require_digest).
func validateImage(p *Pipeline, c *Component) hcl.Diagnostics {
	var diags hcl.Diagnostics
	add := func(attr, summary, format string, args ...any) {
		diags = append(diags, compErr(c, attr, summary, format, args...))
	}
	if !c.RunsImage() {
		for _, a := range []struct{ name, value string }{{"pull", c.Pull}, {"image_id", c.ImageID}} {
			if a.value != "" {
				add(a.name, "Image setting on the "+c.Executor+" executor", "%s applies to container images, which the %s executor does not run", a.name, c.Executor)
			}
		}
		return diags
	}
	if c.Pull != "" && !slices.Contains(PullPolicies, c.Pull) {
		add("pull", "Invalid pull policy", "pull %q is not one of %s", c.Pull, strings.Join(PullPolicies, ", "))
	}
	if c.ImageID != "" && !sha256Digest.MatchString(c.ImageID) {
		add("image_id", "Invalid image_id", "image_id %q: use the image's ID as docker shows it, sha256:<64 hex digits>", c.ImageID)
	}
	if c.Image == "" {
		if c.ImageID != "" {
			add("image_id", "image_id without image", "image_id pins the image named by image, and this component names none")
		}
		return diags
	}
	ref, err := ParseImageRef(c.Image)
	if err != nil {
		add("image", "Invalid image", "%v", err)
		return diags
	}
	if len(p.TrustedRegistries) > 0 && !ref.TrustedBy(p.TrustedRegistries) {
		add("image", "Untrusted image", "image %q comes from %s, which trusted_registries (%s) does not list",
			c.Image, ref.Name(), strings.Join(p.TrustedRegistries, ", "))
	}
	if p.RequireDigest && ref.Digest == "" && c.ImageID == "" {
		add("image", "Image not pinned", "the pipeline sets require_digest, and image %q is pinned neither by digest (%s@sha256:...) nor by image_id",
			c.Image, strings.TrimSuffix(c.Image, ":"+ref.Tag))
	}
	return diags
}

// attrIndex returns the range key of target within the list attribute attr.
func attrIndex(attr, target string, c *Component) string {
	if i := slices.Index(c.rawList(attr), target); i >= 0 {
		key := fmt.Sprintf("%s.%d", attr, i)
		if _, ok := c.Ranges[key]; ok {
			return key
		}
	}
	if _, ok := c.Ranges[attr+"."+target]; ok {
		return attr + "." + target
	}
	return attr
}

func (c *Component) rawList(attr string) []string {
	if attr == "inputs" {
		return c.Inputs
	}
	return c.DependsOn
}

func checkTarget(c *Component, byAddr map[string]*Component, target, attr, what string) hcl.Diagnostics {
	if target == c.Address() {
		return hcl.Diagnostics{compErr(c, attr, "Self-reference", "%s lists itself as a %s", c.Address(), what)}
	}
	if _, ok := byAddr[target]; ok {
		return nil
	}
	shown := target
	if _, _, ok := ParseAddress(target); !ok {
		shown = fmt.Sprintf("%q", target)
	}
	return hcl.Diagnostics{compErr(c, attr, "Unknown "+what, "%s %s is not a component of this pipeline", what, shown)}
}

func validateHostPorts(p *Pipeline) hcl.Diagnostics {
	var diags hcl.Diagnostics
	type key struct {
		ip    string
		port  int
		proto string
	}
	used := map[key]string{}
	for _, c := range p.Components {
		for i, pt := range c.Ports {
			if pt.HostPort == 0 {
				continue
			}
			k := key{pt.HostIP, pt.HostPort, pt.Protocol}
			if owner, ok := used[k]; ok {
				diags = append(diags, compErr(c, fmt.Sprintf("ports.%d.host_port", i), "Host port used twice",
					"host port %s:%d/%s is already published by %s", pt.HostIP, pt.HostPort, pt.Protocol, owner))
				continue
			}
			used[k] = c.Address()
		}
		if h := c.Health; h != nil && h.Port != 0 && c.Executor == "process" {
			// Processes share the host's ports: two probes on one port would
			// probe the same server.
			k := key{"health", h.Port, "tcp"}
			if owner, ok := used[k]; ok {
				diags = append(diags, compErr(c, "health.port", "Health port used twice",
					"health port %d is already the health port of %s", h.Port, owner))
				continue
			}
			used[k] = c.Address()
		}
	}
	return diags
}

func validName(s string) bool {
	if s == "" || len(s) > 63 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case (r == '-' || r == '_') && i > 0:
		default:
			return false
		}
	}
	return true
}

func shortRange(r hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", r.Filename, r.Start.Line, r.Start.Column)
}
