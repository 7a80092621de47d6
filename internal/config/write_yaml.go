package config

import (
	"bytes"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// WriteYAML renders p as a flowctl/v1 pipeline file. It prefers the fields
// the existing ecosystem reads (restart_policy, health_port and health_check,
// resources requests/limits) whenever they say the whole value, and flowctl's
// extension fields otherwise; loading the result gives back the same
// canonical JSON.
func WriteYAML(p *Pipeline) []byte {
	metadata := newMap()
	metadata.str("name", p.Name)
	metadata.strOpt("namespace", p.Namespace)
	metadata.strOpt("description", p.Description)
	metadata.strMap("labels", p.Labels)
	metadata.strMap("annotations", p.Annotations)

	spec := newMap()
	spec.str("driver", p.Executor)
	if p.ComponentRegistry != DefaultComponentRegistry {
		spec.str("component_registry", p.ComponentRegistry)
	}
	spec.strList("trusted_registries", p.TrustedRegistries)
	if p.RequireDigest {
		spec.bool("require_digest", true)
	}
	spec.strOpt("control_plane", p.ControlPlane)
	spec.strOpt("auth", p.Auth)
	spec.strMap("config", p.Config)
	if n := p.Nomad; n != nil {
		// The token is never written (see Nomad.Token).
		nm := newMap()
		nm.strOpt("address", n.Address)
		nm.strOpt("region", n.Region)
		nm.strOpt("namespace", n.Namespace)
		nm.strList("datacenters", n.Datacenters)
		spec.set("nomad", nm.node)
	}
	if k := p.Kubernetes; k != nil {
		km := newMap()
		for _, f := range k8sFields(k) {
			km.strOpt(f.key, *f.dst)
		}
		spec.set("kubernetes", km.node)
	}
	if be := p.Backend; be != nil {
		// The connection string is never written (see Backend.ConnStr).
		bm := newMap()
		bm.strOpt("type", be.Type)
		bm.strOpt("schema_name", be.SchemaName)
		bm.strOpt("workspace", be.Workspace)
		spec.set("backend", bm.node)
	}
	yamlImagePolicy(spec, p.ImagePolicy)
	ids := idsByAddress(p)
	for _, kind := range Kinds {
		var list []*yaml.Node
		for _, c := range p.Components {
			if c.Kind == kind {
				list = append(list, yamlComponent(p, c, ids).node)
			}
		}
		if len(list) > 0 {
			spec.set(string(kind)+"s", &yaml.Node{Kind: yaml.SequenceNode, Content: list})
		}
	}

	doc := newMap()
	doc.str("apiVersion", "flowctl/v1")
	doc.str("kind", "Pipeline")
	doc.set("metadata", metadata.node)
	doc.set("spec", spec.node)

	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc.node); err != nil {
		// The tree holds only strings, numbers and booleans.
		panic(fmt.Sprintf("config: encode YAML: %v", err))
	}
	if err := enc.Close(); err != nil {
		panic(fmt.Sprintf("config: encode YAML: %v", err))
	}
	return buf.Bytes()
}

// idsByAddress maps addresses to ids: YAML names upstreams by bare id.
func idsByAddress(p *Pipeline) map[string]string {
	ids := map[string]string{}
	for _, c := range p.Components {
		ids[c.Address()] = c.ID
	}
	return ids
}

func yamlComponent(p *Pipeline, c *Component, ids map[string]string) *yamlMap {
	m := newMap()
	m.str("id", c.ID)
	m.strOpt("type", c.Type)
	if c.Executor != p.Executor {
		m.str("executor", c.Executor)
	}
	if c.Image != registryImage(p, c) {
		m.strOpt("image", c.Image)
	}
	m.strOpt("image_id", c.ImageID)
	m.strOpt("pull", c.Pull)
	m.strList("command", c.Command)
	m.strList("args", c.Args)
	m.strList("inputs", upstreamIDs(c.Inputs, ids))
	m.strList("depends_on", upstreamIDs(c.DependsOn, ids))
	if len(c.Env) > 0 {
		env := newMap()
		for _, k := range sortedKeys(c.Env) {
			env.set(k, envNode(c.Env[k].Value))
		}
		m.set("env", env.node)
	}
	if c.Replicas != 1 {
		m.int("replicas", c.Replicas)
	}
	if c.Register {
		m.bool("register", true)
	}
	if c.StopTimeout != DefaultStopTimeout {
		m.str("stop_timeout", c.StopTimeout.String())
	}
	yamlRunSettings(m, c)
	m.strList("secrets", c.Secrets)
	m.strList("input_event_types", c.InputEventTypes)
	m.strList("output_event_types", c.OutputEventTypes)
	yamlResources(m, c.Resources)
	if c.Health != nil {
		yamlHealth(m, c.Health)
	}
	yamlRestart(m, c.Restart)
	yamlPorts(m, c.Ports)
	yamlVolumes(m, c.Volumes)
	yamlImagePolicy(m, ownImagePolicy(p, c))
	return m
}

// upstreamIDs turns addresses into the bare ids YAML lists; an address that
// names no component is kept as written, for validation to report.
func upstreamIDs(addrs []string, ids map[string]string) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if id, ok := ids[a]; ok {
			out = append(out, id)
		} else {
			out = append(out, a)
		}
	}
	return out
}

// envNode quotes values that hold references, so that they read the same
// as in HCL: "${source.ledger.address}".
func envNode(v string) *yaml.Node {
	n := strNode(v)
	if strings.Contains(v, "${") {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

func yamlResources(m *yamlMap, r Resources) {
	if r == (Resources{}) {
		return
	}
	res := newMap()
	if r.CPURequest > 0 || r.MemoryRequest > 0 {
		req := newMap()
		if r.CPURequest > 0 {
			req.str("cpu", FormatCPU(r.CPURequest))
		}
		if r.MemoryRequest > 0 {
			req.str("memory", FormatMemory(r.MemoryRequest))
		}
		res.set("requests", req.node)
	}
	if r.CPULimit > 0 || r.MemoryLimit > 0 {
		lim := newMap()
		if r.CPULimit > 0 {
			lim.str("cpu", FormatCPU(r.CPULimit))
		}
		if r.MemoryLimit > 0 {
			lim.str("memory", FormatMemory(r.MemoryLimit))
		}
		res.set("limits", lim.node)
	}
	m.set("resources", res.node)
}

// defaultTimings reports whether a probe uses every default timing, so that
// the ecosystem's health fields can say all of it.
func defaultTimings(h *Health) bool {
	return h.Interval == DefaultHealthInterval && h.Timeout == DefaultHealthTimeout && h.StartPeriod == 0 &&
		h.FailureThreshold == DefaultFailureThreshold && h.SuccessThreshold == DefaultSuccessThreshold && !h.Liveness
}

func yamlHealth(m *yamlMap, h *Health) {
	if h.URL != "" {
		yamlHealthEndpoint(m, h)
		return
	}
	if h.Type == HealthHTTP && defaultTimings(h) {
		if h.Port != 0 {
			m.int("health_port", h.Port)
		}
		m.str("health_check", h.Path)
		return
	}
	hm := newMap()
	switch h.Type {
	case HealthHTTP:
		hm.str("http", h.Path)
	case HealthTCP:
		hm.bool("tcp", true)
	case HealthExec:
		hm.strList("exec", h.Command)
	}
	if h.Port != 0 {
		hm.int("port", h.Port)
	}
	yamlHealthTimings(hm, h)
	m.set("health", hm.node)
}

// yamlHealthEndpoint writes a probe of a full URL: health_endpoint, which
// also gives the probe its port, and a health map for what differs from
// that and from the default timings. (The map must not say http: that would
// replace the URL with a path.)
func yamlHealthEndpoint(m *yamlMap, h *Health) {
	m.str("health_endpoint", h.URL)
	hm := newMap()
	if h.Port != urlPort(h.URL) {
		hm.int("port", h.Port)
	}
	yamlHealthTimings(hm, h)
	if len(hm.node.Content) > 0 {
		m.set("health", hm.node)
	}
}

// urlPort is the port a URL names explicitly, or 0.
func urlPort(raw string) int {
	u, err := url.Parse(raw)
	if err != nil {
		return 0
	}
	port, _ := strconv.Atoi(u.Port())
	return port
}

func yamlHealthTimings(hm *yamlMap, h *Health) {
	hm.duration("interval", h.Interval, DefaultHealthInterval)
	hm.duration("timeout", h.Timeout, DefaultHealthTimeout)
	hm.duration("start_period", h.StartPeriod, 0)
	if h.FailureThreshold != DefaultFailureThreshold {
		hm.int("failure_threshold", h.FailureThreshold)
	}
	if h.SuccessThreshold != DefaultSuccessThreshold {
		hm.int("success_threshold", h.SuccessThreshold)
	}
	if h.Liveness {
		hm.bool("liveness", true)
	}
}

func yamlRestart(m *yamlMap, r Restart) {
	if isDefaultRestart(r) {
		return
	}
	if r.MaxRetries == defaultMaxRetries(r.Policy) && isDefaultBackoff(r.Backoff) && !r.Dependents {
		m.str("restart_policy", r.Policy)
		return
	}
	rm := newMap()
	rm.str("policy", r.Policy)
	if r.Dependents {
		rm.bool("restart_dependents", true)
	}
	if r.MaxRetries != defaultMaxRetries(r.Policy) {
		rm.int("max_retries", r.MaxRetries)
	}
	if !isDefaultBackoff(r.Backoff) {
		bm := newMap()
		if r.Backoff.Initial != DefaultBackoffInitial {
			bm.str("initial", r.Backoff.Initial.String())
		}
		bm.duration("max", r.Backoff.Max, DefaultBackoffMax)
		if r.Backoff.Multiplier != DefaultBackoffMultiplier {
			bm.set("multiplier", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!float", Value: strconv.FormatFloat(r.Backoff.Multiplier, 'g', -1, 64)})
		}
		rm.set("backoff", bm.node)
	}
	m.set("restart", rm.node)
}

func yamlPorts(m *yamlMap, ports []Port) {
	if len(ports) == 0 {
		return
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	for _, pt := range ports {
		pm := newMap()
		pm.strOpt("name", pt.Name)
		pm.int("containerPort", pt.ContainerPort)
		if pt.HostPort != 0 {
			pm.int("hostPort", pt.HostPort)
		}
		if hostIPNeeded(pt) {
			pm.str("hostIP", pt.HostIP)
		}
		if pt.Protocol != DefaultPortProtocol {
			pm.str("protocol", pt.Protocol)
		}
		seq.Content = append(seq.Content, pm.node)
	}
	m.set("ports", seq)
}

func yamlVolumes(m *yamlMap, vols []Volume) {
	if len(vols) == 0 {
		return
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	for _, v := range vols {
		vm := newMap()
		vm.strOpt("name", v.Name)
		vm.str("host_path", v.HostPath)
		vm.str("container_path", v.ContainerPath)
		if v.ReadOnly {
			vm.bool("readonly", true)
		}
		seq.Content = append(seq.Content, vm.node)
	}
	m.set("volumes", seq)
}

// yamlMap builds a mapping node whose keys keep the order they are set in.
type yamlMap struct{ node *yaml.Node }

func newMap() *yamlMap { return &yamlMap{node: &yaml.Node{Kind: yaml.MappingNode}} }

func (m *yamlMap) set(key string, v *yaml.Node) {
	m.node.Content = append(m.node.Content, strNode(key), v)
}

func (m *yamlMap) str(key, v string) { m.set(key, strNode(v)) }

func (m *yamlMap) strOpt(key, v string) {
	if v != "" {
		m.str(key, v)
	}
}

func (m *yamlMap) int(key string, v int) {
	m.set(key, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(v)})
}

func (m *yamlMap) bool(key string, v bool) {
	m.set(key, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)})
}

func (m *yamlMap) duration(key string, v, def Duration) {
	if v != def {
		m.str(key, v.String())
	}
}

// strList writes a short list inline: [a, b].
func (m *yamlMap) strList(key string, vs []string) {
	if len(vs) == 0 {
		return
	}
	seq := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
	for _, v := range vs {
		seq.Content = append(seq.Content, strNode(v))
	}
	m.set(key, seq)
}

func (m *yamlMap) strMap(key string, vs map[string]string) {
	if len(vs) == 0 {
		return
	}
	sub := newMap()
	for _, k := range sortedKeys(vs) {
		sub.str(k, vs[k])
	}
	m.set(key, sub.node)
}

// strNode is a string scalar; the encoder quotes it when it would otherwise
// read back as another type ("true", "8080", ""). Strings with line breaks,
// tabs or other control characters are double-quoted: block scalars cannot
// hold every such string exactly.
func strNode(v string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
	if strings.IndexFunc(v, needsEscape) >= 0 {
		n.Style = yaml.DoubleQuotedStyle
	}
	return n
}

func needsEscape(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0xfeff || r == 0x2028 || r == 0x2029
}
