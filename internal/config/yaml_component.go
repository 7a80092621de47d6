package config

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"gopkg.in/yaml.v3"
)

// Reading one component of a flowctl/v1 file: its fields in the ecosystem's
// spellings and flowctl's own, then ports, volumes, resources, health and
// restart.
// component reads spec.<list>[index]. It returns nil for an item that is not
// a map or has no id: nothing could refer to such a component, and no message
// could name it.
func (l *yamlLoader) component(kind Kind, list string, index int, item *yaml.Node) *Component {
	label := fmt.Sprintf("%s[%d]", list, index)
	item = l.deref(item)
	if item.Kind != yaml.MappingNode {
		l.wrongType(item, "", "spec."+label, "a map describing a "+string(kind))
		return nil
	}
	c := &Component{Kind: kind, DeclRange: l.rng(item), Ranges: map[string]hcl.Range{}}
	// The id names the component in every other message, so read it first.
	who := label
	if v, ok := l.rawKey(item, "id"); ok && v.Kind == yaml.ScalarNode && !ylIsNull(v) && v.Value != "" {
		who = Address(kind, v.Value)
	}
	es := l.fields(item, who, "", ylComponentKeys)
	who = l.componentID(c, label, who, item, es)
	l.componentType(c, list, who, es)
	l.componentProgram(c, who, es)
	l.componentEnv(c, who, es)
	l.componentEdges(c, who, es)
	l.componentSettings(c, who, es)
	l.runSettings(c, who, es)
	if e, ok := es["ports"]; ok {
		l.record(c, "ports", e)
		l.ports(c, who, e.v)
	}
	if e, ok := es["volumes"]; ok {
		l.record(c, "volumes", e)
		l.volumes(c, who, e.v)
	}
	if e, ok := es["resources"]; ok {
		l.record(c, "resources", e)
		l.resources(c, who, e.v)
	}
	l.health(c, who, es)
	l.restart(c, who, es)
	if e, ok := es["image_policy"]; ok {
		c.ImagePolicy = l.imagePolicy(c.Ranges, who, "image_policy", e)
	}
	if c.ID == "" {
		// Reported above. Without an id nothing can refer to the component
		// and no message could name it; validating it would only add noise.
		return nil
	}
	return c
}

// record keeps the range of e's value as the range of c's attr.
func (l *yamlLoader) record(c *Component, attr string, e ylEntry) {
	c.Ranges[attr] = l.rng(l.deref(e.v))
}

// componentID reads the id and returns the name later messages use for the
// component: its address once the id is known, else who as given.
func (l *yamlLoader) componentID(c *Component, label, who string, item *yaml.Node, es map[string]ylEntry) string {
	e, ok := es["id"]
	if !ok {
		hint := ""
		if _, named := l.rawKey(item, "name"); named {
			hint = `; this one has a name, which flowctl/v1 calls "id"`
		}
		l.diags = append(l.diags, errorf(c.DeclRange, "Missing component id", "%s: every %s needs an id%s", label, c.Kind, hint))
		return who
	}
	l.record(c, "id", e)
	if v, ok := l.str(e.v, label, "id"); ok {
		c.ID = v
	}
	if c.ID != "" {
		return c.Address()
	}
	if v := l.deref(e.v); v.Kind == yaml.ScalarNode {
		l.diags = append(l.diags, errorf(l.rng(v), "Missing component id", "%s: id is empty; every %s needs one", label, c.Kind))
	}
	return who
}

// componentType reads type, which may name a registry component
// (name@version) or repeat the kind the list already gives.
func (l *yamlLoader) componentType(c *Component, list, who string, es map[string]ylEntry) {
	e, ok := es["type"]
	if !ok {
		return
	}
	l.record(c, "type", e)
	v, ok := l.str(e.v, who, "type")
	if !ok {
		return
	}
	c.Type = v
	if ValidKind(v) && Kind(v) != c.Kind {
		l.diags = append(l.diags, warnf(l.rng(l.deref(e.v)), "Type does not match list",
			"%s: type says %s, but the component is listed under %s, which makes it a %s", who, v, list, c.Kind))
	}
}

// componentProgram reads what runs and where: the executor, the image and
// how it is pulled, and the command with its arguments.
func (l *yamlLoader) componentProgram(c *Component, who string, es map[string]ylEntry) {
	if e, ok := l.pick(es, who, "", "executor", "driver"); ok {
		l.record(c, "executor", e)
		c.Executor, _ = l.str(e.v, who, e.key)
	}
	for _, f := range []struct {
		key string
		to  *string
	}{{"image", &c.Image}, {"image_id", &c.ImageID}, {"pull", &c.Pull}} {
		if e, ok := es[f.key]; ok {
			l.record(c, f.key, e)
			*f.to, _ = l.str(e.v, who, f.key)
		}
	}
	for _, f := range []struct {
		key string
		to  *[]string
	}{{"command", &c.Command}, {"args", &c.Args}} {
		if e, ok := es[f.key]; ok {
			l.record(c, f.key, e)
			*f.to, _, _ = l.strList(e.v, who, f.key, true)
		}
	}
}

// componentEnv reads env, then config, whose keys become environment
// variables that env overrides.
func (l *yamlLoader) componentEnv(c *Component, who string, es map[string]ylEntry) {
	if e, ok := es["env"]; ok {
		l.record(c, "env", e)
		env, kept := l.strMap(e.v, who, "env")
		for _, k := range kept {
			if c.Env == nil {
				c.Env = map[string]EnvValue{}
			}
			c.Env[k.key] = EnvValue{Value: env[k.key]}
			c.Ranges["env."+k.key] = l.rng(l.deref(k.v))
		}
	}
	if e, ok := es["config"]; ok {
		l.record(c, "config", e)
		l.componentConfig(c, who, e)
	}
}

// componentEdges keeps inputs and depends_on as written, to be resolved
// into addresses once every component is known (resolveRefs).
func (l *yamlLoader) componentEdges(c *Component, who string, es map[string]ylEntry) {
	for _, attr := range []string{"inputs", "depends_on"} {
		e, ok := es[attr]
		if !ok {
			continue
		}
		l.record(c, attr, e)
		if v := l.deref(e.v); v.Kind != yaml.SequenceNode && !ylIsNull(v) {
			l.wrongType(v, who, attr, "a list of component ids")
			continue
		}
		ids, nodes, _ := l.strList(e.v, who, attr, false)
		l.refs = append(l.refs, ylRefList{c: c, attr: attr, ids: ids, nodes: nodes})
	}
}

// componentSettings reads the scalar and list settings: replicas, register,
// stop_timeout, secrets and the event types.
func (l *yamlLoader) componentSettings(c *Component, who string, es map[string]ylEntry) {
	if e, ok := es["replicas"]; ok {
		l.record(c, "replicas", e)
		c.Replicas, _ = l.atLeastOne(e.v, who, "replicas")
	}
	if e, ok := es["register"]; ok {
		l.record(c, "register", e)
		c.Register, _ = l.boolean(e.v, who, "register")
	}
	if e, ok := es["stop_timeout"]; ok {
		l.record(c, "stop_timeout", e)
		c.StopTimeout, _ = l.duration(e.v, who, "stop_timeout")
	}
	if e, ok := es["secrets"]; ok {
		l.record(c, "secrets", e)
		c.Secrets = l.secrets(e.v, who)
	}
	for _, f := range []struct {
		key string
		to  *[]string
	}{{"input_event_types", &c.InputEventTypes}, {"output_event_types", &c.OutputEventTypes}} {
		if e, ok := es[f.key]; ok {
			l.record(c, f.key, e)
			*f.to, _, _ = l.strList(e.v, who, f.key, false)
		}
	}
}

// componentConfig merges a registry-style config map into env, each key
// upper-cased (start_ledger -> START_LEDGER); explicit env entries win.
func (l *yamlLoader) componentConfig(c *Component, who string, e ylEntry) {
	cfg, kept := l.configMap(e.v, who, "config")
	byEnv := map[string]string{}
	for _, k := range kept {
		name := ConfigEnvName(k.key)
		if prev, dup := byEnv[name]; dup {
			l.diags = append(l.diags, errorf(l.rng(k.k), "Conflicting config keys",
				"%s: config keys %q and %q both become the environment variable %s; keep one", who, prev, k.key, name))
			delete(cfg, k.key)
			continue
		}
		byEnv[name] = k.key
		if _, explicit := c.Env[name]; !explicit {
			c.Ranges["env."+name] = l.rng(l.deref(k.v))
		}
	}
	c.MergeConfig(cfg)
}

func (l *yamlLoader) secrets(n *yaml.Node, who string) []string {
	n = l.deref(n)
	if ylIsNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		l.wrongType(n, who, "secrets", "a list of secret names")
		return nil
	}
	if !l.step(n, 0, 1+len(n.Content)) {
		return nil
	}
	var out []string
	for i, item := range n.Content {
		item = l.deref(item)
		field := fmt.Sprintf("secrets[%d]", i)
		switch {
		case item.Kind == yaml.ScalarNode && !ylIsNull(item):
			out = append(out, item.Value)
		case item.Kind == yaml.MappingNode:
			es := l.fields(item, who, field, ylSecretKeys)
			e, ok := es["name"]
			if !ok {
				l.diags = append(l.diags, errorf(l.rng(item), "Missing secret name", "%s: %s needs a name", who, field))
				continue
			}
			if v, ok := l.str(e.v, who, field+".name"); ok {
				out = append(out, v)
			}
		default:
			l.wrongType(item, who, field, "a secret name or a map with a name")
		}
	}
	return out
}

func (l *yamlLoader) ports(c *Component, who string, n *yaml.Node) {
	n = l.deref(n)
	if ylIsNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		l.wrongType(n, who, "ports", "a list of ports")
		return
	}
	for _, item := range n.Content {
		item = l.deref(item)
		i := len(c.Ports)
		field := fmt.Sprintf("ports[%d]", i)
		if item.Kind != yaml.MappingNode {
			l.wrongType(item, who, field, "a map with containerPort")
			continue
		}
		attr := fmt.Sprintf("ports.%d", i)
		for _, a := range []string{"", ".container_port", ".host_port", ".protocol"} {
			c.Ranges[attr+a] = l.rng(item)
		}
		var pt Port
		es := l.fields(item, who, field, ylPortKeys)
		if e, ok := es["name"]; ok {
			pt.Name, _ = l.str(e.v, who, field+".name")
		}
		if e, ok := l.pick(es, who, field+".", "containerPort", "container_port"); ok {
			c.Ranges[attr+".container_port"] = l.rng(l.deref(e.v))
			pt.ContainerPort, _ = l.integer(e.v, who, field+"."+e.key)
		}
		if e, ok := l.pick(es, who, field+".", "hostPort", "host_port"); ok {
			c.Ranges[attr+".host_port"] = l.rng(l.deref(e.v))
			pt.HostPort, _ = l.integer(e.v, who, field+"."+e.key)
		}
		if e, ok := l.pick(es, who, field+".", "hostIP", "host_ip"); ok {
			c.Ranges[attr+".host_ip"] = l.rng(l.deref(e.v))
			pt.HostIP, _ = l.str(e.v, who, field+"."+e.key)
		}
		if e, ok := es["protocol"]; ok {
			c.Ranges[attr+".protocol"] = l.rng(l.deref(e.v))
			pt.Protocol, _ = l.str(e.v, who, field+".protocol")
		}
		c.Ports = append(c.Ports, pt)
	}
}

func (l *yamlLoader) volumes(c *Component, who string, n *yaml.Node) {
	n = l.deref(n)
	if ylIsNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		l.wrongType(n, who, "volumes", "a list of volumes")
		return
	}
	for _, item := range n.Content {
		item = l.deref(item)
		i := len(c.Volumes)
		field := fmt.Sprintf("volumes[%d]", i)
		if item.Kind != yaml.MappingNode {
			l.wrongType(item, who, field, "a map with host_path and container_path")
			continue
		}
		attr := fmt.Sprintf("volumes.%d", i)
		for _, a := range []string{"", ".host_path", ".container_path"} {
			c.Ranges[attr+a] = l.rng(item)
		}
		var v Volume
		es := l.fields(item, who, field, ylVolumeKeys)
		if e, ok := es["name"]; ok {
			v.Name, _ = l.str(e.v, who, field+".name")
		}
		if e, ok := es["host_path"]; ok {
			c.Ranges[attr+".host_path"] = l.rng(l.deref(e.v))
			v.HostPath, _ = l.str(e.v, who, field+".host_path")
		}
		if e, ok := es["container_path"]; ok {
			c.Ranges[attr+".container_path"] = l.rng(l.deref(e.v))
			v.ContainerPath, _ = l.str(e.v, who, field+".container_path")
		}
		if e, ok := l.pick(es, who, field+".", "readonly", "read_only"); ok {
			v.ReadOnly, _ = l.boolean(e.v, who, field+"."+e.key)
		}
		c.Volumes = append(c.Volumes, v)
	}
}

// resources reads Kubernetes-style requests and limits.
func (l *yamlLoader) resources(c *Component, who string, n *yaml.Node) {
	m := l.mapping(n, who, "resources", "a map with requests and limits")
	if m == nil {
		return
	}
	es := l.fields(m, who, "resources", ylResourceKeys)
	for _, group := range []struct {
		key                 string
		cpu, memory         *int64
		cpuAttr, memoryAttr string
	}{
		{"limits", &c.Resources.CPULimit, &c.Resources.MemoryLimit, "resources.cpu", "resources.memory"},
		{"requests", &c.Resources.CPURequest, &c.Resources.MemoryRequest, "resources.cpu_request", "resources.memory_request"},
	} {
		e, ok := es[group.key]
		if !ok {
			continue
		}
		field := "resources." + group.key
		gm := l.mapping(e.v, who, field, "a map with cpu and memory")
		if gm == nil {
			continue
		}
		qs := l.fields(gm, who, field, ylQuantityKeys)
		if q, ok := qs["cpu"]; ok {
			c.Ranges[group.cpuAttr] = l.rng(l.deref(q.v))
			if s, ok := l.str(q.v, who, field+".cpu"); ok {
				if v, err := ParseCPU(s); err != nil {
					l.diags = append(l.diags, errorf(l.rng(l.deref(q.v)), "Invalid quantity", "%s: %s.cpu: %v", who, field, err))
				} else {
					*group.cpu = v
				}
			}
		}
		if q, ok := qs["memory"]; ok {
			c.Ranges[group.memoryAttr] = l.rng(l.deref(q.v))
			if s, ok := l.str(q.v, who, field+".memory"); ok {
				if v, err := ParseMemory(s); err != nil {
					l.diags = append(l.diags, errorf(l.rng(l.deref(q.v)), "Invalid quantity", "%s: %s.memory: %v", who, field, err))
				} else {
					*group.memory = v
				}
			}
		}
	}
}

// health reads the probe from the ecosystem's health_port, health_check and
// health_endpoint and from flowctl's health map; the map wins field by field.
func (l *yamlLoader) health(c *Component, who string, es map[string]ylEntry) {
	var h Health
	given := false
	note := func(attr string, e ylEntry) {
		c.Ranges[attr] = l.rng(l.deref(e.v))
		if _, ok := c.Ranges["health"]; !ok {
			c.Ranges["health"] = l.rng(l.deref(e.v))
		}
	}
	if e, ok := es["health_endpoint"]; ok {
		note("health.url", e)
		if s, ok := l.str(e.v, who, "health_endpoint"); ok {
			if u, port, err := ylHealthURL(s); err != nil {
				l.diags = append(l.diags, errorf(l.rng(l.deref(e.v)), "Invalid health endpoint", "%s: health_endpoint %q %v", who, s, err))
			} else {
				h.Type, h.URL, h.Path, h.Port, given = HealthHTTP, s, u.Path, port, true
				c.Ranges["health.port"] = l.rng(l.deref(e.v))
			}
		}
	}
	if e, ok := es["health_port"]; ok {
		note("health.port", e)
		if v, ok := l.integer(e.v, who, "health_port"); ok {
			h.Type, h.Port, given = HealthHTTP, v, true
		}
	}
	if e, ok := es["health_check"]; ok {
		note("health.http", e)
		if v, ok := l.str(e.v, who, "health_check"); ok {
			h.Type, h.Path, given = HealthHTTP, v, true
		}
	}
	if e, ok := es["health"]; ok {
		c.Ranges["health"] = l.rng(l.deref(e.v))
		if m := l.mapping(e.v, who, "health", "a map"); m != nil {
			given = l.healthMap(c, who, m, &h) || given
		}
	}
	if given {
		c.Health = &h
	}
}

// healthMap applies the health map onto h; it reports whether the map gave
// anything.
func (l *yamlLoader) healthMap(c *Component, who string, m *yaml.Node, h *Health) bool {
	es := l.fields(m, who, "health", ylHealthKeys)
	rec := func(attr string, e ylEntry) { c.Ranges["health."+attr] = l.rng(l.deref(e.v)) }
	var probes []string
	setType := func(t string) {
		probes = append(probes, t)
		if t != HealthHTTP {
			// An HTTP path or URL from health_check or health_endpoint
			// means nothing to a tcp or exec probe.
			h.Path, h.URL = "", ""
		}
		h.Type = t
	}
	if e, ok := es["http"]; ok {
		rec("http", e)
		if v, ok := l.str(e.v, who, "health.http"); ok {
			setType(HealthHTTP)
			h.Path, h.URL = v, ""
			if strings.HasPrefix(v, "http://") || strings.HasPrefix(v, "https://") {
				// A full URL, as health_endpoint gives it.
				if u, port, err := ylHealthURL(v); err != nil {
					l.diags = append(l.diags, errorf(l.rng(l.deref(e.v)), "Invalid health endpoint", "%s: health.http %q %v", who, v, err))
				} else {
					h.URL, h.Path = v, u.Path
					if port != 0 {
						h.Port = port
					}
				}
			}
		}
	}
	if e, ok := es["tcp"]; ok {
		rec("tcp", e)
		if v, ok := l.boolean(e.v, who, "health.tcp"); ok && v {
			setType(HealthTCP)
		}
	}
	if e, ok := es["exec"]; ok {
		rec("exec", e)
		if v, _, ok := l.strList(e.v, who, "health.exec", true); ok {
			setType(HealthExec)
			h.Command = v
		}
	}
	if len(probes) > 1 {
		l.diags = append(l.diags, errorf(l.rng(m), "Conflicting health probes",
			"%s: health sets %s; give one of http, tcp or exec", who, strings.Join(probes, " and ")))
	}
	if e, ok := es["port"]; ok {
		rec("port", e)
		h.Port, _ = l.integer(e.v, who, "health.port")
	}
	for _, d := range []struct {
		key string
		to  *Duration
	}{{"interval", &h.Interval}, {"timeout", &h.Timeout}, {"start_period", &h.StartPeriod}} {
		if e, ok := es[d.key]; ok {
			rec(d.key, e)
			*d.to, _ = l.duration(e.v, who, "health."+d.key)
		}
	}
	if e, ok := es["failure_threshold"]; ok {
		rec("failure_threshold", e)
		h.FailureThreshold, _ = l.atLeastOne(e.v, who, "health.failure_threshold")
	}
	if e, ok := es["success_threshold"]; ok {
		rec("success_threshold", e)
		h.SuccessThreshold, _ = l.atLeastOne(e.v, who, "health.success_threshold")
	}
	if e, ok := es["liveness"]; ok {
		rec("liveness", e)
		h.Liveness, _ = l.boolean(e.v, who, "health.liveness")
	}
	return len(es) > 0
}

// ylHealthURL checks a health_endpoint and returns it parsed with its
// explicit port (0 when the URL names none).
func ylHealthURL(s string) (*url.URL, int, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, 0, fmt.Errorf("is not a full URL; write it like http://localhost:8088/health")
	}
	port := 0
	if ps := u.Port(); ps != "" {
		port, err = strconv.Atoi(ps)
		if err != nil || port < 1 || port > 65535 {
			return nil, 0, fmt.Errorf("has port %q, which is outside 1-65535", ps)
		}
	}
	return u, port, nil
}

// restart reads restart_policy and flowctl's restart map.
func (l *yamlLoader) restart(c *Component, who string, es map[string]ylEntry) {
	var legacy ylEntry
	var legacyPolicy string
	hasLegacy := false
	if e, ok := es["restart_policy"]; ok {
		c.Ranges["restart.policy"] = l.rng(l.deref(e.v))
		legacyPolicy, hasLegacy = l.str(e.v, who, "restart_policy")
		legacy = e
		c.Restart.Policy = legacyPolicy
	}
	e, ok := es["restart"]
	if !ok {
		return
	}
	m := l.mapping(e.v, who, "restart", "a map")
	if m == nil {
		return
	}
	rs := l.fields(m, who, "restart", ylRestartKeys)
	rec := func(attr string, e ylEntry) { c.Ranges["restart."+attr] = l.rng(l.deref(e.v)) }
	if pe, ok := rs["policy"]; ok {
		if v, ok := l.str(pe.v, who, "restart.policy"); ok {
			if hasLegacy && !strings.EqualFold(v, legacyPolicy) {
				l.diags = append(l.diags, errorf(l.rng(l.deref(pe.v)), "Conflicting restart policies",
					"%s: restart.policy %q disagrees with restart_policy %q at line %d; give one of them", who, v, legacyPolicy, l.deref(legacy.v).Line))
			}
			rec("policy", pe)
			c.Restart.Policy = v
		}
	}
	if de, ok := rs["restart_dependents"]; ok {
		rec("restart_dependents", de)
		c.Restart.Dependents, _ = l.boolean(de.v, who, "restart.restart_dependents")
	}
	if re, ok := rs["max_retries"]; ok {
		rec("max_retries", re)
		if v, ok := l.integer(re.v, who, "restart.max_retries"); ok {
			c.SetMaxRetries(v)
		}
	}
	be, ok := rs["backoff"]
	if !ok {
		return
	}
	bm := l.mapping(be.v, who, "restart.backoff", "a map")
	if bm == nil {
		return
	}
	bs := l.fields(bm, who, "restart.backoff", ylBackoffKeys)
	if x, ok := bs["initial"]; ok {
		rec("backoff.initial", x)
		if d, ok := l.duration(x.v, who, "restart.backoff.initial"); ok {
			c.SetBackoffInitial(d)
		}
	}
	if x, ok := bs["max"]; ok {
		rec("backoff.max", x)
		c.Restart.Backoff.Max, _ = l.duration(x.v, who, "restart.backoff.max")
	}
	if x, ok := bs["multiplier"]; ok {
		rec("backoff.multiplier", x)
		if v, ok := l.number(x.v, who, "restart.backoff.multiplier"); ok {
			if v == 0 {
				// Zero is "unset" in the model and would become the default.
				l.diags = append(l.diags, errorf(l.rng(l.deref(x.v)), "Invalid backoff multiplier", "%s: multiplier 0: must be at least 1", who))
			}
			c.Restart.Backoff.Multiplier = v
		}
	}
}
