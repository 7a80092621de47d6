package config

import (
	"fmt"
	"math"
	"math/big"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// The native format's schema: blocks at the top, then each block's body.
var (
	fileSchema = &hcl.BodySchema{
		Blocks: []hcl.BlockHeaderSchema{
			{Type: "pipeline", LabelNames: []string{"name"}},
			{Type: "variable", LabelNames: []string{"name"}},
			{Type: "locals"},
			{Type: string(KindSource), LabelNames: []string{"id"}},
			{Type: string(KindProcessor), LabelNames: []string{"id"}},
			{Type: string(KindSink), LabelNames: []string{"id"}},
		},
	}
	pipelineSchema = &hcl.BodySchema{
		Attributes: attrSchemas("executor", "description", "namespace", "labels", "annotations", "config", "component_registry",
			"trusted_registries", "require_digest", "control_plane", "auth"),
		Blocks: []hcl.BlockHeaderSchema{{Type: "nomad"}, {Type: "kubernetes"}, {Type: "image_policy"}, {Type: "backend", LabelNames: []string{"type"}}},
	}
	componentSchema = &hcl.BodySchema{
		Attributes: attrSchemas("executor", "type", "image", "command", "args", "env", "config", "inputs", "depends_on",
			"replicas", "stop_timeout", "secrets", "input_event_types", "output_event_types", "image_id", "pull", "register",
			"auth", "ready_timeout", "fixed_ports"),
		Blocks: []hcl.BlockHeaderSchema{{Type: "health"}, {Type: "restart"}, {Type: "resources"}, {Type: "port"}, {Type: "volume"}, {Type: "image_policy"}},
	}
	healthSchema = &hcl.BodySchema{
		Attributes: attrSchemas("http", "tcp", "exec", "port", "interval", "timeout", "start_period",
			"failure_threshold", "success_threshold", "liveness"),
	}
	restartSchema = &hcl.BodySchema{
		Attributes: attrSchemas("policy", "max_retries", "restart_dependents"),
		Blocks:     []hcl.BlockHeaderSchema{{Type: "backoff"}},
	}
	backoffSchema   = &hcl.BodySchema{Attributes: attrSchemas("initial", "max", "multiplier")}
	resourcesSchema = &hcl.BodySchema{Attributes: attrSchemas("cpu", "memory", "cpu_request", "memory_request")}
	portSchema      = &hcl.BodySchema{Attributes: attrSchemas("name", "container_port", "host_port", "host_ip", "protocol")}
	volumeSchema    = &hcl.BodySchema{Attributes: attrSchemas("name", "host_path", "container_path", "read_only")}
)

func attrSchemas(names ...string) []hcl.AttributeSchema {
	out := make([]hcl.AttributeSchema, len(names))
	for i, n := range names {
		out[i] = hcl.AttributeSchema{Name: n}
	}
	return out
}

// hclLoader holds what loading one HCL file needs: the declarations, the
// evaluation context and the diagnostics so far.
type hclLoader struct {
	diags      hcl.Diagnostics
	vars       map[string]*hclVar
	varOrder   []*hclVar
	locals     map[string]*hclLocal
	localOrder []*hclLocal
	comps      map[Kind]map[string]bool // declared component ids by kind
	ctx        *hcl.EvalContext
}

// hclOwner is what an attribute belongs to: a component or the pipeline. Its
// label starts every diagnostic detail; its ranges receive attribute ranges.
type hclOwner struct {
	label  string
	ranges map[string]hcl.Range
}

// loadHCL reads the native format into the model as written: no defaults,
// no normalisation, no validation (LoadBytes does those).
func loadHCL(src []byte, filename string, opts LoadOptions) (*Pipeline, hcl.Diagnostics) {
	if diags := checkHCLNesting(src, filename); diags.HasErrors() {
		return nil, diags
	}
	file, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() || file == nil {
		return nil, diags
	}
	l := &hclLoader{
		diags:  diags,
		vars:   map[string]*hclVar{},
		locals: map[string]*hclLocal{},
		comps:  map[Kind]map[string]bool{},
	}
	content, diags := file.Body.Content(fileSchema)
	l.diags = append(l.diags, diags...)

	var pipelines, variables, locals, components hcl.Blocks
	for _, b := range content.Blocks {
		switch b.Type {
		case "pipeline":
			pipelines = append(pipelines, b)
		case "variable":
			variables = append(variables, b)
		case "locals":
			locals = append(locals, b)
		default:
			components = append(components, b)
			k := Kind(b.Type)
			if l.comps[k] == nil {
				l.comps[k] = map[string]bool{}
			}
			l.comps[k][b.Labels[0]] = true
		}
	}

	l.declareVariables(variables)
	l.assignVariables(opts)
	l.buildContext()
	l.checkValidations()
	l.declareLocals(locals)
	l.evalLocals()

	p := &Pipeline{Format: FormatHCL, Ranges: map[string]hcl.Range{}}
	switch len(pipelines) {
	case 0:
		start := hcl.Range{Filename: filename, Start: hcl.InitialPos, End: hcl.InitialPos}
		p.Ranges["name"] = start
		l.diags = append(l.diags, errorf(start, "Missing pipeline block",
			`a pipeline file needs one pipeline "NAME" { ... } block`))
	default:
		for _, b := range pipelines[1:] {
			l.diags = append(l.diags, errorf(b.DefRange, "Duplicate pipeline block",
				"a file holds exactly one pipeline; pipeline %q is already declared at %s",
				pipelines[0].Labels[0], shortRange(pipelines[0].DefRange)))
		}
		l.decodePipeline(p, pipelines[0])
	}
	for _, b := range components {
		p.Components = append(p.Components, l.decodeComponent(b))
	}
	p.Variables = l.variables()
	scrub(l.diags, l.secretStrings())
	return p, l.diags
}

func (l *hclLoader) decodePipeline(p *Pipeline, b *hcl.Block) {
	p.Name = b.Labels[0]
	p.Ranges["name"] = b.LabelRanges[0]
	o := &hclOwner{label: "pipeline " + p.Name, ranges: p.Ranges}
	content, diags := b.Body.Content(pipelineSchema)
	l.diags = append(l.diags, diags...)
	attrs := content.Attributes
	l.getString(o, attrs, "executor", "executor", &p.Executor)
	l.getString(o, attrs, "description", "description", &p.Description)
	l.getString(o, attrs, "namespace", "namespace", &p.Namespace)
	l.getString(o, attrs, "component_registry", "component_registry", &p.ComponentRegistry)
	l.getStrings(o, attrs, "trusted_registries", "trusted_registries", &p.TrustedRegistries)
	l.getBool(o, attrs, "require_digest", "require_digest", &p.RequireDigest)
	l.getString(o, attrs, "control_plane", "control_plane", &p.ControlPlane)
	l.getString(o, attrs, "auth", "auth", &p.Auth)
	if m, _ := l.getStringMap(o, attrs, "labels", "labels"); len(m) > 0 {
		p.Labels = m
	}
	if m, _ := l.getStringMap(o, attrs, "annotations", "annotations"); len(m) > 0 {
		p.Annotations = m
	}
	if cfg, _ := l.getConfig(o, attrs, "config", false); len(cfg) > 0 {
		p.Config = cfg
	}
	var nomads []*hcl.Block
	for _, blk := range content.Blocks {
		if blk.Type == "nomad" {
			nomads = append(nomads, blk)
		}
	}
	if nb := l.single(o, nomads); nb != nil {
		l.decodeNomad(o, p, nb)
	}
	var k8s []*hcl.Block
	for _, blk := range content.Blocks {
		if blk.Type == "kubernetes" {
			k8s = append(k8s, blk)
		}
	}
	if kb := l.single(o, k8s); kb != nil {
		l.decodeKubernetes(o, p, kb)
	}
	var backends []*hcl.Block
	for _, blk := range content.Blocks {
		if blk.Type == "backend" {
			backends = append(backends, blk)
		}
	}
	if bb := l.single(o, backends); bb != nil {
		l.decodeBackend(o, p, bb)
	}
	p.ImagePolicy = l.imagePolicyBlock(o, content.Blocks)
}

func (l *hclLoader) decodeComponent(b *hcl.Block) *Component {
	c := &Component{
		Kind:      Kind(b.Type),
		ID:        b.Labels[0],
		DeclRange: b.DefRange,
		Ranges:    map[string]hcl.Range{"id": b.LabelRanges[0]},
	}
	o := &hclOwner{label: c.Address(), ranges: c.Ranges}
	content, diags := b.Body.Content(componentSchema)
	l.diags = append(l.diags, diags...)
	attrs := content.Attributes

	l.getString(o, attrs, "executor", "executor", &c.Executor)
	l.getString(o, attrs, "type", "type", &c.Type)
	l.getString(o, attrs, "image", "image", &c.Image)
	l.getString(o, attrs, "image_id", "image_id", &c.ImageID)
	l.getString(o, attrs, "pull", "pull", &c.Pull)
	l.getStrings(o, attrs, "command", "command", &c.Command)
	l.getStrings(o, attrs, "args", "args", &c.Args)
	l.getStrings(o, attrs, "secrets", "secrets", &c.Secrets)
	l.getStrings(o, attrs, "input_event_types", "input_event_types", &c.InputEventTypes)
	l.getStrings(o, attrs, "output_event_types", "output_event_types", &c.OutputEventTypes)
	c.Inputs = l.getRefs(o, attrs, "inputs")
	c.DependsOn = l.getRefs(o, attrs, "depends_on")
	l.getInt(o, attrs, "replicas", "replicas", &c.Replicas)
	l.getBool(o, attrs, "register", "register", &c.Register)
	l.getDuration(o, attrs, "stop_timeout", "stop_timeout", &c.StopTimeout)
	l.decodeEnv(o, c, attrs)
	l.decodeRunSettings(o, c, attrs)

	blocks := map[string][]*hcl.Block{}
	for _, blk := range content.Blocks {
		blocks[blk.Type] = append(blocks[blk.Type], blk)
	}
	if bs := l.single(o, blocks["health"]); bs != nil {
		c.Health = l.decodeHealth(o, bs)
	}
	if bs := l.single(o, blocks["restart"]); bs != nil {
		l.decodeRestart(o, c, bs)
	}
	if bs := l.single(o, blocks["resources"]); bs != nil {
		l.decodeResources(o, c, bs)
	}
	for i, pb := range blocks["port"] {
		c.Ports = append(c.Ports, l.decodePort(o, i, pb))
	}
	for i, vb := range blocks["volume"] {
		c.Volumes = append(c.Volumes, l.decodeVolume(o, i, vb))
	}
	c.ImagePolicy = l.imagePolicyBlock(o, content.Blocks)
	return c
}

// single returns the only block of a kind that may appear once, reporting
// any repetition.
func (l *hclLoader) single(o *hclOwner, blocks []*hcl.Block) *hcl.Block {
	if len(blocks) == 0 {
		return nil
	}
	for _, b := range blocks[1:] {
		l.diags = append(l.diags, errorf(b.DefRange, "Duplicate "+b.Type+" block",
			"%s: only one %s block is allowed; the first is at %s", o.label, b.Type, shortRange(blocks[0].DefRange)))
	}
	return blocks[0]
}

// decodeEnv reads env and config: env values as evaluated (marked ones
// sensitive), then config merged in under upper-cased names.
func (l *hclLoader) decodeEnv(o *hclOwner, c *Component, attrs hcl.Attributes) {
	explicit := map[string]bool{}
	if a, ok := attrs["env"]; ok {
		o.ranges["env"] = a.Expr.Range()
		items := l.objectItemRanges(o, "env", a.Expr)
		l.eachElement(o, a, "env", "a map of strings", func(name, shown string, v cty.Value, sensitive bool) {
			key := "env." + name
			rng, ok := items[name]
			if !ok {
				rng = a.Expr.Range()
			}
			o.ranges[key] = rng
			if v.IsNull() {
				return
			}
			s, ok := ctyString(v)
			if !ok {
				l.diags = append(l.diags, errorf(rng, "Incorrect attribute value type",
					"%s: env %s must be a string, not %s", o.label, shown, describeValue(v, sensitive)))
				return
			}
			if c.Env == nil {
				c.Env = map[string]EnvValue{}
			}
			c.Env[name] = EnvValue{Value: s, Sensitive: sensitive}
			explicit[name] = true
		})
	}
	cfg, sensitive := l.getConfig(o, attrs, "config", true)
	c.MergeConfig(cfg)
	for k := range cfg {
		name := ConfigEnvName(k)
		if explicit[name] {
			continue
		}
		if _, ok := o.ranges["env."+name]; !ok {
			o.ranges["env."+name] = o.ranges["config."+k]
		}
		if ev, ok := c.Env[name]; ok && sensitive[k] {
			ev.Sensitive = true
			c.Env[name] = ev
		}
	}
}

// getConfig reads a free-form config map, each value rendered the way
// ConfigValueString renders YAML values. sensitive names the keys whose
// values came from sensitive variables. toEnv says the keys become env
// names, so two keys that map to one name are an error.
func (l *hclLoader) getConfig(o *hclOwner, attrs hcl.Attributes, name string, toEnv bool) (map[string]string, map[string]bool) {
	a, ok := attrs[name]
	if !ok {
		return nil, nil
	}
	o.ranges[name] = a.Expr.Range()
	items := l.objectItemRanges(o, name, a.Expr)
	cfg, sens := map[string]string{}, map[string]bool{}
	envNames := map[string]string{} // env name -> the config key that takes it
	l.eachElement(o, a, name, "an object", func(key, shown string, v cty.Value, sensitive bool) {
		rng, ok := items[key]
		if !ok {
			rng = a.Expr.Range()
		}
		o.ranges[name+"."+key] = rng
		s, err := ConfigValueString(ctyToGo(v))
		if err != nil {
			l.diags = append(l.diags, errorf(rng, "Invalid config value", "%s: config %s cannot be rendered: %v", o.label, shown, err))
			return
		}
		// Keys that differ only in case, '-' or '.' become one env name;
		// which would win must not be left to chance.
		env := ConfigEnvName(key)
		if prev, dup := envNames[env]; dup && toEnv {
			l.diags = append(l.diags, errorf(rng, "Duplicate config key",
				"%s: config keys %s and %s both become the environment variable %s", o.label, prev, shown, env))
			return
		}
		envNames[env] = shown
		cfg[key] = s
		if sensitive {
			sens[key] = true
		}
	})
	return cfg, sens
}

// eachElement evaluates a map- or object-valued attribute and calls fn for
// each element, unmarked, with whether it was sensitive. shown is the key as
// diagnostics may show it: hidden when the whole map is sensitive, since a
// key may then come from a sensitive value.
func (l *hclLoader) eachElement(o *hclOwner, a *hcl.Attribute, what, want string, fn func(key, shown string, v cty.Value, sensitive bool)) {
	v, ok := l.eval(a.Expr)
	if !ok || v.IsNull() {
		return
	}
	v, marks := v.Unmark()
	top := len(marks) > 0
	if !v.Type().IsObjectType() && !v.Type().IsMapType() {
		l.diags = append(l.diags, errorf(a.Expr.Range(), "Incorrect attribute value type",
			"%s: %s must be %s, not %s", o.label, what, want, describeValue(v, top)))
		return
	}
	for it := v.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		ev, emarks := ev.UnmarkDeep()
		key, shown := k.AsString(), k.AsString()
		if top {
			shown = "(sensitive name)"
		}
		fn(key, shown, ev, top || len(emarks) > 0)
	}
}

// objectItemRanges maps the keys of an object constructor to the ranges of
// their values, reporting a key written twice (HCL would silently keep the
// last).
func (l *hclLoader) objectItemRanges(o *hclOwner, what string, expr hcl.Expression) map[string]hcl.Range {
	out := map[string]hcl.Range{}
	oc, ok := expr.(*hclsyntax.ObjectConsExpr)
	if !ok {
		return out
	}
	for _, item := range oc.Items {
		k, diags := evalExpr(item.KeyExpr, l.ctx)
		if diags.HasErrors() || !k.IsWhollyKnown() || k.IsMarked() || k.IsNull() {
			continue
		}
		k, err := convert.Convert(k, cty.String)
		if err != nil || k.IsNull() {
			continue
		}
		if prev, dup := out[k.AsString()]; dup {
			l.diags = append(l.diags, errorf(item.KeyExpr.Range(), "Duplicate "+what+" key",
				"%s: %s %s is set twice; the first is at %s", o.label, what, k.AsString(), shortRange(prev)))
		}
		out[k.AsString()] = item.ValueExpr.Range()
	}
	return out
}

// getRefs reads a list of component references (inputs, depends_on) as
// traversals, without evaluating them. The addresses come back sorted and
// deduplicated, with ranges under NAME.N for the N-th of them, so the ranges
// stay right after normalisation.
func (l *hclLoader) getRefs(o *hclOwner, attrs hcl.Attributes, name string) []string {
	a, ok := attrs[name]
	if !ok {
		return nil
	}
	o.ranges[name] = a.Expr.Range()
	exprs, diags := hcl.ExprList(a.Expr)
	if diags.HasErrors() {
		l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid "+name,
			"%s: %s must be a list of component references, like [source.ledger]", o.label, name))
		return nil
	}
	type ref struct {
		addr string
		rng  hcl.Range
	}
	var refs []ref
	for i, e := range exprs {
		t, diags := hcl.AbsTraversalForExpr(e)
		if diags.HasErrors() {
			hint := ""
			if v, d := evalExpr(e, nil); !d.HasErrors() && v.Type() == cty.String && v.IsKnown() && !v.IsNull() {
				if _, _, ok := ParseAddress(v.AsString()); ok {
					hint = fmt.Sprintf("; write %s without quotes", v.AsString())
				}
			}
			l.diags = append(l.diags, errorf(e.Range(), "Invalid reference",
				"%s: %s[%d] must be a component reference like source.ledger, not a string or an expression%s", o.label, name, i, hint))
			continue
		}
		id, _, hasID := traversalStep(t, 1)
		if len(t) != 2 || !ValidKind(t.RootName()) || !hasID {
			l.diags = append(l.diags, errorf(t.SourceRange(), "Invalid reference",
				"%s: %s[%d] is %s, which is not a component; refer to a component as KIND.ID (source.NAME, processor.NAME or sink.NAME)",
				o.label, name, i, traversalString(t)))
			continue
		}
		refs = append(refs, ref{Address(Kind(t.RootName()), id), t.SourceRange()})
	}
	sort.SliceStable(refs, func(i, j int) bool { return refs[i].addr < refs[j].addr })
	var out []string
	for _, r := range refs {
		if len(out) > 0 && out[len(out)-1] == r.addr {
			continue
		}
		o.ranges[fmt.Sprintf("%s.%d", name, len(out))] = r.rng
		out = append(out, r.addr)
	}
	return out
}

func (l *hclLoader) decodeHealth(o *hclOwner, b *hcl.Block) *Health {
	o.ranges["health"] = b.DefRange
	content, diags := b.Body.Content(healthSchema)
	l.diags = append(l.diags, diags...)
	attrs := content.Attributes
	var probes []string
	for _, p := range []string{"http", "tcp", "exec"} {
		if _, ok := attrs[p]; ok {
			probes = append(probes, p)
		}
	}
	h := &Health{}
	switch len(probes) {
	case 0:
		l.diags = append(l.diags, errorf(b.DefRange, "Missing health probe",
			"%s: health needs one of http (a path), tcp = true or exec (a command)", o.label))
		return nil
	case 1:
	default:
		l.diags = append(l.diags, errorf(b.DefRange, "Conflicting health probes",
			"%s: health sets %s; set exactly one of http, tcp or exec", o.label, strings.Join(probes, " and ")))
		return nil
	}
	switch probes[0] {
	case "http":
		h.Type = HealthHTTP
		var path string
		l.getString(o, attrs, "http", "health.http", &path)
		if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
			// A full URL; normalisation derives its path and port.
			if problem := healthURLProblem(path); problem != "" {
				l.diags = append(l.diags, errorf(attrs["http"].Expr.Range(), "Invalid health endpoint",
					"%s: health.http %q %s", o.label, path, problem))
			} else {
				h.URL = path
			}
		} else {
			h.Path = path
		}
	case "tcp":
		h.Type = HealthTCP
		var on bool
		if l.getBool(o, attrs, "tcp", "health.tcp", &on) && !on {
			l.diags = append(l.diags, errorf(attrs["tcp"].Expr.Range(), "Invalid health probe",
				"%s: tcp = false names no probe; write tcp = true for a TCP probe, or use http or exec", o.label))
			return nil
		}
	case "exec":
		h.Type = HealthExec
		l.getStrings(o, attrs, "exec", "health.exec", &h.Command)
	}
	l.getInt(o, attrs, "port", "health.port", &h.Port)
	l.getDuration(o, attrs, "interval", "health.interval", &h.Interval)
	l.getDuration(o, attrs, "timeout", "health.timeout", &h.Timeout)
	l.getDuration(o, attrs, "start_period", "health.start_period", &h.StartPeriod)
	l.getInt(o, attrs, "failure_threshold", "health.failure_threshold", &h.FailureThreshold)
	l.getInt(o, attrs, "success_threshold", "health.success_threshold", &h.SuccessThreshold)
	l.getBool(o, attrs, "liveness", "health.liveness", &h.Liveness)
	return h
}

func (l *hclLoader) decodeRestart(o *hclOwner, c *Component, b *hcl.Block) {
	o.ranges["restart"] = b.DefRange
	content, diags := b.Body.Content(restartSchema)
	l.diags = append(l.diags, diags...)
	attrs := content.Attributes
	l.getString(o, attrs, "policy", "restart.policy", &c.Restart.Policy)
	l.getBool(o, attrs, "restart_dependents", "restart.restart_dependents", &c.Restart.Dependents)
	var n int
	if l.getInt(o, attrs, "max_retries", "restart.max_retries", &n) {
		c.SetMaxRetries(n)
	}
	bb := l.single(o, content.Blocks)
	if bb == nil {
		return
	}
	o.ranges["restart.backoff"] = bb.DefRange
	content, diags = bb.Body.Content(backoffSchema)
	l.diags = append(l.diags, diags...)
	attrs = content.Attributes
	var d Duration
	if l.getDuration(o, attrs, "initial", "restart.backoff.initial", &d) {
		c.SetBackoffInitial(d)
	}
	l.getDuration(o, attrs, "max", "restart.backoff.max", &c.Restart.Backoff.Max)
	l.getFloat(o, attrs, "multiplier", "restart.backoff.multiplier", &c.Restart.Backoff.Multiplier)
}

func (l *hclLoader) decodeResources(o *hclOwner, c *Component, b *hcl.Block) {
	o.ranges["resources"] = b.DefRange
	content, diags := b.Body.Content(resourcesSchema)
	l.diags = append(l.diags, diags...)
	attrs := content.Attributes
	r := &c.Resources
	l.getQuantity(o, attrs, "cpu", "resources.cpu", ParseCPU, &r.CPULimit)
	l.getQuantity(o, attrs, "memory", "resources.memory", ParseMemory, &r.MemoryLimit)
	l.getQuantity(o, attrs, "cpu_request", "resources.cpu_request", ParseCPU, &r.CPURequest)
	l.getQuantity(o, attrs, "memory_request", "resources.memory_request", ParseMemory, &r.MemoryRequest)
}

func (l *hclLoader) decodePort(o *hclOwner, i int, b *hcl.Block) Port {
	prefix := fmt.Sprintf("ports.%d", i)
	o.ranges[prefix] = b.DefRange
	content, diags := b.Body.Content(portSchema)
	l.diags = append(l.diags, diags...)
	attrs := content.Attributes
	var p Port
	l.getString(o, attrs, "name", prefix+".name", &p.Name)
	l.getInt(o, attrs, "container_port", prefix+".container_port", &p.ContainerPort)
	l.getInt(o, attrs, "host_port", prefix+".host_port", &p.HostPort)
	l.getString(o, attrs, "host_ip", prefix+".host_ip", &p.HostIP)
	l.getString(o, attrs, "protocol", prefix+".protocol", &p.Protocol)
	return p
}

func (l *hclLoader) decodeVolume(o *hclOwner, i int, b *hcl.Block) Volume {
	prefix := fmt.Sprintf("volumes.%d", i)
	o.ranges[prefix] = b.DefRange
	content, diags := b.Body.Content(volumeSchema)
	l.diags = append(l.diags, diags...)
	attrs := content.Attributes
	var v Volume
	l.getString(o, attrs, "name", prefix+".name", &v.Name)
	l.getString(o, attrs, "host_path", prefix+".host_path", &v.HostPath)
	l.getString(o, attrs, "container_path", prefix+".container_path", &v.ContainerPath)
	l.getBool(o, attrs, "read_only", prefix+".read_only", &v.ReadOnly)
	return v
}

// get evaluates the attribute name, recording its range under key. ok is
// false when the attribute is absent, null, or failed to evaluate.
func (l *hclLoader) get(o *hclOwner, attrs hcl.Attributes, name, key string) (v cty.Value, a *hcl.Attribute, sensitive, ok bool) {
	a, ok = attrs[name]
	if !ok {
		return cty.NilVal, nil, false, false
	}
	o.ranges[key] = a.Expr.Range()
	v, ok = l.eval(a.Expr)
	if !ok {
		return cty.NilVal, a, false, false
	}
	v, marks := v.UnmarkDeep()
	if v.IsNull() {
		return cty.NilVal, a, false, false
	}
	return v, a, len(marks) > 0, true
}

// typeErr reports a value of the wrong type at the attribute's value.
func (l *hclLoader) typeErr(o *hclOwner, a *hcl.Attribute, key, want string, v cty.Value, sensitive bool) {
	if s, ok := ctyString(v); ok && HasRefs(s) && !sensitive {
		l.diags = append(l.diags, errorf(a.Expr.Range(), "Value known only after apply",
			"%s: %s refers to %s, which is known only after apply; such references can be used only in env values",
			o.label, key, strings.Trim(FindRefs(s)[0].String(), "${}")))
		return
	}
	l.diags = append(l.diags, errorf(a.Expr.Range(), "Incorrect attribute value type",
		"%s: %s must be %s, not %s", o.label, key, want, describeValue(v, sensitive)))
}

func (l *hclLoader) getString(o *hclOwner, attrs hcl.Attributes, name, key string, dst *string) bool {
	v, a, sens, ok := l.get(o, attrs, name, key)
	if !ok {
		return false
	}
	s, ok := ctyString(v)
	if !ok {
		l.typeErr(o, a, key, "a string", v, sens)
		return false
	}
	if HasRefs(s) {
		l.typeErr(o, a, key, "a string", v, sens)
		return false
	}
	*dst = s
	return true
}

func (l *hclLoader) getStrings(o *hclOwner, attrs hcl.Attributes, name, key string, dst *[]string) bool {
	v, a, sens, ok := l.get(o, attrs, name, key)
	if !ok {
		return false
	}
	ty := v.Type()
	if !ty.IsListType() && !ty.IsTupleType() && !ty.IsSetType() {
		l.typeErr(o, a, key, "a list of strings", v, sens)
		return false
	}
	out := []string{}
	for it := v.ElementIterator(); it.Next(); {
		i, ev := it.Element()
		s, ok := ctyString(ev)
		if !ok || ev.IsNull() || HasRefs(s) {
			l.typeErr(o, a, fmt.Sprintf("%s[%s]", key, renderValue(i)), "a string", ev, sens)
			return false
		}
		out = append(out, s)
	}
	*dst = out
	return true
}

func (l *hclLoader) getStringMap(o *hclOwner, attrs hcl.Attributes, name, key string) (map[string]string, bool) {
	a, ok := attrs[name]
	if !ok {
		return nil, false
	}
	o.ranges[key] = a.Expr.Range()
	l.objectItemRanges(o, key, a.Expr)
	out := map[string]string{}
	good := true
	l.eachElement(o, a, key, "a map of strings", func(k, shown string, v cty.Value, sensitive bool) {
		s, ok := ctyString(v)
		if !ok || v.IsNull() {
			good = false
			l.typeErr(o, a, key+"."+shown, "a string", v, sensitive)
			return
		}
		out[k] = s
	})
	return out, good
}

func (l *hclLoader) getBool(o *hclOwner, attrs hcl.Attributes, name, key string, dst *bool) bool {
	v, a, sens, ok := l.get(o, attrs, name, key)
	if !ok {
		return false
	}
	b, err := convert.Convert(v, cty.Bool)
	if err != nil || b.IsNull() {
		l.typeErr(o, a, key, "true or false", v, sens)
		return false
	}
	*dst = b.True()
	return true
}

func (l *hclLoader) getNumber(o *hclOwner, attrs hcl.Attributes, name, key, want string) (*big.Float, bool) {
	v, a, sens, ok := l.get(o, attrs, name, key)
	if !ok {
		return nil, false
	}
	n, err := convert.Convert(v, cty.Number)
	if err != nil || n.IsNull() {
		l.typeErr(o, a, key, want, v, sens)
		return nil, false
	}
	f := n.AsBigFloat()
	if want == "a whole number" {
		if i, acc := f.Int64(); !f.IsInt() || acc != big.Exact || i > math.MaxInt32 || i < math.MinInt32 {
			l.typeErr(o, a, key, want, v, sens)
			return nil, false
		}
	}
	return f, true
}

func (l *hclLoader) getInt(o *hclOwner, attrs hcl.Attributes, name, key string, dst *int) bool {
	f, ok := l.getNumber(o, attrs, name, key, "a whole number")
	if !ok {
		return false
	}
	i, _ := f.Int64()
	*dst = int(i)
	return true
}

func (l *hclLoader) getFloat(o *hclOwner, attrs hcl.Attributes, name, key string, dst *float64) bool {
	f, ok := l.getNumber(o, attrs, name, key, "a number")
	if !ok {
		return false
	}
	x, _ := f.Float64()
	if math.IsInf(x, 0) {
		l.diags = append(l.diags, errorf(attrs[name].Expr.Range(), "Incorrect attribute value type",
			"%s: %s is too large", o.label, key))
		return false
	}
	*dst = x
	return true
}

func (l *hclLoader) getDuration(o *hclOwner, attrs hcl.Attributes, name, key string, dst *Duration) bool {
	v, a, sens, ok := l.get(o, attrs, name, key)
	if !ok {
		return false
	}
	s, ok := ctyString(v)
	if !ok || HasRefs(s) {
		l.typeErr(o, a, key, `a duration like "10s"`, v, sens)
		return false
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		switch {
		case sens:
			l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid duration",
				`%s: %s: the sensitive value is not a duration`, o.label, key))
		case v.Type() == cty.Number:
			l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid duration",
				`%s: %s is the number %s; write a duration as a string with a unit, like "%ss"`, o.label, key, s, s))
		default:
			l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid duration",
				`%s: %s %q is not a duration; write a number and a unit, like "10s", "1m30s" or "500ms"`, o.label, key, s))
		}
		return false
	}
	*dst = Duration(d)
	return true
}

func (l *hclLoader) getQuantity(o *hclOwner, attrs hcl.Attributes, name, key string, parse func(string) (int64, error), dst *int64) bool {
	v, a, sens, ok := l.get(o, attrs, name, key)
	if !ok {
		return false
	}
	if v.Type() != cty.String && v.Type() != cty.Number {
		l.typeErr(o, a, key, "a quantity (a string or a number)", v, sens)
		return false
	}
	s, _ := ctyString(v)
	q, err := parse(s)
	if err != nil {
		detail := err.Error()
		if sens {
			detail = "the sensitive value is not a valid quantity"
		}
		l.diags = append(l.diags, errorf(a.Expr.Range(), "Invalid quantity", "%s: %s: %s", o.label, key, detail))
		return false
	}
	*dst = q
	return true
}

// ctyString converts a primitive value to its string form: numbers as
// written, bools as true/false.
func ctyString(v cty.Value) (string, bool) {
	if !v.IsWhollyKnown() || v.IsMarked() || !v.Type().IsPrimitiveType() {
		return "", false
	}
	if v.IsNull() {
		return "", true
	}
	s, err := convert.Convert(v, cty.String)
	if err != nil {
		return "", false
	}
	return s.AsString(), true
}

// ctyToGo turns a known, unmarked value into the Go value a YAML decoder
// would have produced, so config renders the same from both formats.
func ctyToGo(v cty.Value) any {
	if v.IsNull() || !v.IsKnown() {
		return nil
	}
	ty := v.Type()
	switch {
	case ty == cty.String:
		return v.AsString()
	case ty == cty.Bool:
		return v.True()
	case ty == cty.Number:
		f := v.AsBigFloat()
		if i, acc := f.Int64(); f.IsInt() && acc == big.Exact {
			return i
		}
		x, _ := f.Float64()
		return x
	case ty.IsListType(), ty.IsTupleType(), ty.IsSetType():
		out := []any{}
		for it := v.ElementIterator(); it.Next(); {
			_, ev := it.Element()
			out = append(out, ctyToGo(ev))
		}
		return out
	case ty.IsMapType(), ty.IsObjectType():
		out := map[string]any{}
		for it := v.ElementIterator(); it.Next(); {
			k, ev := it.Element()
			out[k.AsString()] = ctyToGo(ev)
		}
		return out
	}
	return nil
}

// describeType names a type for a diagnostic: "a string", "a list of strings".
func describeType(ty cty.Type) string {
	switch {
	case ty == cty.String:
		return "a string"
	case ty == cty.Number:
		return "a number"
	case ty == cty.Bool:
		return "true or false"
	}
	return ty.FriendlyName()
}

// describeValue names what a wrong value is, quoting short strings unless
// the value is sensitive.
func describeValue(v cty.Value, sensitive bool) string {
	if v.IsMarked() {
		v, _ = v.UnmarkDeep()
		sensitive = true
	}
	ty := v.Type()
	switch {
	case v.IsNull():
		return "null"
	case sensitive:
		return "a sensitive value"
	case ty == cty.String:
		s := v.AsString()
		if len(s) > 40 || strings.ContainsAny(s, "\n\r") {
			return "a string"
		}
		return fmt.Sprintf("%q", s)
	case ty == cty.Number:
		return "the number " + v.AsBigFloat().Text('g', -1)
	case ty == cty.Bool:
		return fmt.Sprintf("%t", v.True())
	case ty.IsListType(), ty.IsTupleType():
		return "a list"
	case ty.IsSetType():
		return "a set"
	case ty.IsMapType(), ty.IsObjectType():
		return "an object"
	}
	return ty.FriendlyName()
}

// healthURLProblem says what is wrong with a full health URL, or "".
func healthURLProblem(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return "is not a full URL; write it like http://localhost:8088/health"
	}
	if ps := u.Port(); ps != "" {
		if port, err := strconv.Atoi(ps); err != nil || port < 1 || port > 65535 {
			return fmt.Sprintf("has port %q, which is outside 1-65535", ps)
		}
	}
	return ""
}
