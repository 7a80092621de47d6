package config

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// WriteHCL renders p as a native HCL pipeline file, formatted. Attributes
// equal to their normalised defaults are left out, so the file reads like one
// a person wrote; loading the result gives back the same canonical JSON.
//
// Sensitive env values are written as the defaults of sensitive variables, so
// that they stay sensitive; the caller is expected to warn that the file holds
// them (see SensitiveEnv).
func WriteHCL(p *Pipeline) []byte {
	f := hclwrite.NewEmptyFile()
	body := f.Body()
	secrets := newSensitiveVars(p)
	writeHCLPipeline(body, p)
	for _, v := range secrets.list {
		body.AppendNewline()
		blk := body.AppendNewBlock("variable", []string{v.name})
		blk.Body().SetAttributeValue("description", cty.StringVal(fmt.Sprintf("env %s of %s", v.key, v.addr)))
		blk.Body().SetAttributeValue("sensitive", cty.True)
		blk.Body().SetAttributeValue("default", cty.StringVal(v.value))
	}
	for _, c := range p.Components {
		body.AppendNewline()
		writeHCLComponent(body, p, c, secrets)
	}
	return hclwrite.Format(f.Bytes())
}

func writeHCLPipeline(body *hclwrite.Body, p *Pipeline) {
	b := body.AppendNewBlock("pipeline", []string{p.Name}).Body()
	b.SetAttributeValue("executor", cty.StringVal(p.Executor))
	setString(b, "description", p.Description)
	setString(b, "namespace", p.Namespace)
	if p.ComponentRegistry != DefaultComponentRegistry {
		setString(b, "component_registry", p.ComponentRegistry)
	}
	setStringList(b, "trusted_registries", p.TrustedRegistries)
	if p.RequireDigest {
		b.SetAttributeValue("require_digest", cty.True)
	}
	setString(b, "control_plane", p.ControlPlane)
	setString(b, "auth", p.Auth)
	setStringMap(b, "labels", p.Labels)
	setStringMap(b, "annotations", p.Annotations)
	setStringMap(b, "config", p.Config)
	if n := p.Nomad; n != nil {
		// The token is never written (see Nomad.Token).
		nb := b.AppendNewBlock("nomad", nil).Body()
		setString(nb, "address", n.Address)
		setString(nb, "region", n.Region)
		setString(nb, "namespace", n.Namespace)
		setStringList(nb, "datacenters", n.Datacenters)
	}
	if k := p.Kubernetes; k != nil {
		kb := b.AppendNewBlock("kubernetes", nil).Body()
		for _, f := range k8sFields(k) {
			setString(kb, f.key, *f.dst)
		}
	}
	if be := p.Backend; be != nil {
		// The connection string is never written (see Backend.ConnStr).
		bb := b.AppendNewBlock("backend", []string{be.Type}).Body()
		setString(bb, "schema_name", be.SchemaName)
		setString(bb, "workspace", be.Workspace)
	}
	writeHCLImagePolicy(b, p.ImagePolicy)
}

func writeHCLComponent(body *hclwrite.Body, p *Pipeline, c *Component, secrets *sensitiveVars) {
	b := body.AppendNewBlock(string(c.Kind), []string{c.ID}).Body()
	if c.Executor != p.Executor {
		setString(b, "executor", c.Executor)
	}
	setString(b, "type", c.Type)
	if c.Image != registryImage(p, c) {
		setString(b, "image", c.Image)
	}
	setString(b, "image_id", c.ImageID)
	setString(b, "pull", c.Pull)
	setStringList(b, "command", c.Command)
	setStringList(b, "args", c.Args)
	setTraversalList(b, "inputs", c.Inputs)
	setTraversalList(b, "depends_on", c.DependsOn)
	if len(c.Env) > 0 {
		b.SetAttributeRaw("env", envTokens(c, secrets))
	}
	if c.Replicas != 1 {
		b.SetAttributeValue("replicas", cty.NumberIntVal(int64(c.Replicas)))
	}
	if c.Register {
		b.SetAttributeValue("register", cty.True)
	}
	if c.StopTimeout != DefaultStopTimeout {
		setString(b, "stop_timeout", c.StopTimeout.String())
	}
	writeHCLRunSettings(b, c)
	setStringList(b, "secrets", c.Secrets)
	setStringList(b, "input_event_types", c.InputEventTypes)
	setStringList(b, "output_event_types", c.OutputEventTypes)
	writeHCLResources(b, c.Resources)
	if c.Health != nil {
		writeHCLHealth(b, c.Health)
	}
	writeHCLRestart(b, c.Restart)
	for _, pt := range c.Ports {
		writeHCLPort(b, pt)
	}
	for _, v := range c.Volumes {
		writeHCLVolume(b, v)
	}
	writeHCLImagePolicy(b, ownImagePolicy(p, c))
}

// registryImage is the image normalisation derives from a registry-style
// type, or "" when it derives none; an image equal to it need not be written.
func registryImage(p *Pipeline, c *Component) string {
	if len(c.Command) > 0 {
		return ""
	}
	name, version, ok := strings.Cut(c.Type, "@")
	if !ok || name == "" || version == "" {
		return ""
	}
	return p.ComponentRegistry + "/" + name + ":" + version
}

func writeHCLResources(body *hclwrite.Body, r Resources) {
	if r == (Resources{}) {
		return
	}
	b := newBlock(body, "resources")
	if r.CPULimit > 0 {
		setString(b, "cpu", FormatCPU(r.CPULimit))
	}
	if r.MemoryLimit > 0 {
		setString(b, "memory", FormatMemory(r.MemoryLimit))
	}
	if r.CPURequest > 0 {
		setString(b, "cpu_request", FormatCPU(r.CPURequest))
	}
	if r.MemoryRequest > 0 {
		setString(b, "memory_request", FormatMemory(r.MemoryRequest))
	}
}

func writeHCLHealth(body *hclwrite.Body, h *Health) {
	b := newBlock(body, "health")
	switch h.Type {
	case HealthHTTP:
		target := h.Path
		if h.URL != "" {
			target = h.URL
		}
		setString(b, "http", target)
	case HealthTCP:
		b.SetAttributeValue("tcp", cty.True)
	case HealthExec:
		setStringList(b, "exec", h.Command)
	}
	if h.Port != 0 {
		b.SetAttributeValue("port", cty.NumberIntVal(int64(h.Port)))
	}
	setDuration(b, "interval", h.Interval, DefaultHealthInterval)
	setDuration(b, "timeout", h.Timeout, DefaultHealthTimeout)
	setDuration(b, "start_period", h.StartPeriod, 0)
	if h.FailureThreshold != DefaultFailureThreshold {
		b.SetAttributeValue("failure_threshold", cty.NumberIntVal(int64(h.FailureThreshold)))
	}
	if h.SuccessThreshold != DefaultSuccessThreshold {
		b.SetAttributeValue("success_threshold", cty.NumberIntVal(int64(h.SuccessThreshold)))
	}
	if h.Liveness {
		b.SetAttributeValue("liveness", cty.True)
	}
}

func writeHCLRestart(body *hclwrite.Body, r Restart) {
	if isDefaultRestart(r) {
		return
	}
	b := newBlock(body, "restart")
	setString(b, "policy", r.Policy)
	if r.Dependents {
		b.SetAttributeValue("restart_dependents", cty.True)
	}
	if r.MaxRetries != defaultMaxRetries(r.Policy) {
		b.SetAttributeValue("max_retries", cty.NumberIntVal(int64(r.MaxRetries)))
	}
	if isDefaultBackoff(r.Backoff) {
		return
	}
	bb := newBlock(b, "backoff")
	if r.Backoff.Initial != DefaultBackoffInitial {
		setString(bb, "initial", r.Backoff.Initial.String())
	}
	setDuration(bb, "max", r.Backoff.Max, DefaultBackoffMax)
	if r.Backoff.Multiplier != DefaultBackoffMultiplier {
		bb.SetAttributeValue("multiplier", cty.NumberFloatVal(r.Backoff.Multiplier))
	}
}

// defaultMaxRetries is the max_retries normalisation fills in for a policy.
func defaultMaxRetries(policy string) int {
	switch policy {
	case RestartOnFailure:
		return DefaultOnFailureRetries
	case RestartAlways:
		return UnlimitedRetries
	}
	return 0
}

func isDefaultBackoff(b Backoff) bool {
	return b == Backoff{Initial: DefaultBackoffInitial, Max: DefaultBackoffMax, Multiplier: DefaultBackoffMultiplier}
}

// isDefaultRestart reports whether r is what a component that says nothing
// about restarts gets.
func isDefaultRestart(r Restart) bool {
	return r.Policy == DefaultRestartPolicy && r.MaxRetries == DefaultOnFailureRetries && isDefaultBackoff(r.Backoff) && !r.Dependents
}

func writeHCLPort(body *hclwrite.Body, pt Port) {
	b := newBlock(body, "port")
	setString(b, "name", pt.Name)
	b.SetAttributeValue("container_port", cty.NumberIntVal(int64(pt.ContainerPort)))
	if pt.HostPort != 0 {
		b.SetAttributeValue("host_port", cty.NumberIntVal(int64(pt.HostPort)))
	}
	if hostIPNeeded(pt) {
		setString(b, "host_ip", pt.HostIP)
	}
	if pt.Protocol != DefaultPortProtocol {
		setString(b, "protocol", pt.Protocol)
	}
}

// hostIPNeeded reports whether a port's host IP differs from what
// normalisation would fill in.
func hostIPNeeded(pt Port) bool {
	if pt.HostPort != 0 {
		return pt.HostIP != DefaultHostIP
	}
	return pt.HostIP != ""
}

func writeHCLVolume(body *hclwrite.Body, v Volume) {
	b := newBlock(body, "volume")
	setString(b, "name", v.Name)
	b.SetAttributeValue("host_path", cty.StringVal(v.HostPath))
	b.SetAttributeValue("container_path", cty.StringVal(v.ContainerPath))
	if v.ReadOnly {
		b.SetAttributeValue("read_only", cty.True)
	}
}

// newBlock appends a nested block, set off from the attributes above it by a
// blank line.
func newBlock(body *hclwrite.Body, name string) *hclwrite.Body {
	body.AppendNewline()
	return body.AppendNewBlock(name, nil).Body()
}

func setString(b *hclwrite.Body, name, v string) {
	if v != "" {
		b.SetAttributeValue(name, cty.StringVal(v))
	}
}

func setDuration(b *hclwrite.Body, name string, v, def Duration) {
	if v != def {
		b.SetAttributeValue(name, cty.StringVal(v.String()))
	}
}

func setStringList(b *hclwrite.Body, name string, vs []string) {
	if len(vs) == 0 {
		return
	}
	elems := make([]cty.Value, len(vs))
	for i, v := range vs {
		elems[i] = cty.StringVal(v)
	}
	b.SetAttributeValue(name, cty.TupleVal(elems))
}

func setStringMap(b *hclwrite.Body, name string, m map[string]string) {
	if len(m) == 0 {
		return
	}
	var attrs []hclwrite.ObjectAttrTokens
	for _, k := range sortedKeys(m) {
		attrs = append(attrs, hclwrite.ObjectAttrTokens{Name: objectKey(k), Value: hclwrite.TokensForValue(cty.StringVal(m[k]))})
	}
	b.SetAttributeRaw(name, objectTokens(attrs))
}

// objectTokens writes a one-entry object on one line, larger ones one entry
// a line.
func objectTokens(attrs []hclwrite.ObjectAttrTokens) hclwrite.Tokens {
	if len(attrs) != 1 {
		return hclwrite.TokensForObject(attrs)
	}
	toks := hclwrite.Tokens{{Type: hclsyntax.TokenOBrace, Bytes: []byte{'{'}}}
	toks = append(toks, attrs[0].Name...)
	toks = append(toks, &hclwrite.Token{Type: hclsyntax.TokenEqual, Bytes: []byte{'='}})
	toks = append(toks, attrs[0].Value...)
	return append(toks, &hclwrite.Token{Type: hclsyntax.TokenCBrace, Bytes: []byte{'}'}})
}

// setTraversalList writes addresses as references: [source.ledger].
func setTraversalList(b *hclwrite.Body, name string, addrs []string) {
	if len(addrs) == 0 {
		return
	}
	elems := make([]hclwrite.Tokens, len(addrs))
	for i, a := range addrs {
		elems[i] = addressTokens(a)
	}
	b.SetAttributeRaw(name, hclwrite.TokensForTuple(elems))
}

func addressTokens(addr string) hclwrite.Tokens {
	kind, id, ok := ParseAddress(addr)
	if !ok {
		// Not an address; validation rejects it, and a string at least
		// says what the model held.
		return hclwrite.TokensForValue(cty.StringVal(addr))
	}
	return hclwrite.TokensForTraversal(componentTraversal(kind, id))
}

// componentTraversal spells KIND.ID, or KIND["ID"] for an id that is not an
// HCL identifier (one starting with a digit).
func componentTraversal(kind Kind, id string) hcl.Traversal {
	t := hcl.Traversal{hcl.TraverseRoot{Name: string(kind)}}
	if hclsyntax.ValidIdentifier(id) {
		return append(t, hcl.TraverseAttr{Name: id})
	}
	return append(t, hcl.TraverseIndex{Key: cty.StringVal(id)})
}

// plainKey matches object keys that may be written without quotes.
var plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// objectKey writes a map key bare when HCL reads it back as the same string,
// quoted otherwise (keywords such as "for" or "null" included).
func objectKey(k string) hclwrite.Tokens {
	switch k {
	case "true", "false", "null", "for", "in", "if":
	default:
		if plainKey.MatchString(k) {
			return hclwrite.TokensForIdentifier(k)
		}
	}
	return hclwrite.TokensForValue(cty.StringVal(k))
}

func envTokens(c *Component, secrets *sensitiveVars) hclwrite.Tokens {
	var attrs []hclwrite.ObjectAttrTokens
	for _, k := range sortedKeys(c.Env) {
		v := c.Env[k]
		var val hclwrite.Tokens
		if name := secrets.name(c.Address(), k); name != "" {
			val = hclwrite.TokensForTraversal(hcl.Traversal{hcl.TraverseRoot{Name: "var"}, hcl.TraverseAttr{Name: name}})
		} else {
			val = templateTokens(v.Value)
		}
		attrs = append(attrs, hclwrite.ObjectAttrTokens{Name: objectKey(k), Value: val})
	}
	return objectTokens(attrs)
}

// templateTokens renders s as an HCL string template in which references
// (${source.x.address}) stay interpolations and everything else is literal.
func templateTokens(s string) hclwrite.Tokens {
	return hclwrite.Tokens{
		{Type: hclsyntax.TokenOQuote, Bytes: []byte{'"'}},
		{Type: hclsyntax.TokenQuotedLit, Bytes: []byte(quoteTemplate(s))},
		{Type: hclsyntax.TokenCQuote, Bytes: []byte{'"'}},
	}
}

// quoteTemplate is the body of a quoted HCL template that evaluates to s when
// every reference in s evaluates to its own text. Literal text is escaped
// ("$${", "%%{", backslash escapes); a run of '$' just before a reference is
// written as an interpolated string, since "$${" would escape the reference.
func quoteTemplate(s string) string {
	var b strings.Builder
	last := 0
	for _, loc := range refPattern.FindAllStringSubmatchIndex(s, -1) {
		lit := s[last:loc[0]]
		trimmed := strings.TrimRight(lit, "$")
		b.WriteString(escapeTemplateLiteral(trimmed))
		if dollars := lit[len(trimmed):]; dollars != "" {
			b.WriteString(`${"` + dollars + `"}`)
		}
		attr := s[loc[8]:loc[9]]
		var tr hcl.Traversal
		if loc[6] >= 0 { // ${self.ATTR}
			tr = hcl.Traversal{hcl.TraverseRoot{Name: SelfRef}}
		} else {
			tr = componentTraversal(Kind(s[loc[2]:loc[3]]), s[loc[4]:loc[5]])
		}
		b.WriteString("${")
		b.Write(hclwrite.TokensForTraversal(append(tr, hcl.TraverseAttr{Name: attr})).Bytes())
		b.WriteString("}")
		last = loc[1]
	}
	b.WriteString(escapeTemplateLiteral(s[last:]))
	return b.String()
}

// escapeTemplateLiteral escapes s for a quoted HCL template so that it reads
// back as exactly s.
func escapeTemplateLiteral(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch r {
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '$', '%':
			b.WriteRune(r)
			if strings.HasPrefix(s[i+1:], "{") {
				b.WriteRune(r)
			}
		default:
			switch {
			case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
				// Invalid UTF-8 cannot be written in HCL; keep what can.
				b.WriteString(`\uFFFD`)
			case !unicode.IsPrint(r) && r < 0x10000:
				fmt.Fprintf(&b, `\u%04x`, r)
			case !unicode.IsPrint(r):
				fmt.Fprintf(&b, `\U%08x`, r)
			default:
				b.WriteRune(r)
			}
		}
	}
	return b.String()
}

// sensitiveVars names one HCL variable per sensitive env value, so that a
// converted file keeps the value sensitive.
type sensitiveVars struct {
	list  []sensitiveVar
	byKey map[string]string // addr + "\x00" + env key -> variable name
}

type sensitiveVar struct {
	name, addr, key, value string
}

func newSensitiveVars(p *Pipeline) *sensitiveVars {
	s := &sensitiveVars{byKey: map[string]string{}}
	used := map[string]bool{}
	for _, c := range p.Components {
		for _, k := range sortedKeys(c.Env) {
			v := c.Env[k]
			if !v.Sensitive {
				continue
			}
			name := uniqueName(used, variableName(c.ID, k))
			s.byKey[c.Address()+"\x00"+k] = name
			s.list = append(s.list, sensitiveVar{name: name, addr: c.Address(), key: k, value: v.Value})
		}
	}
	return s
}

func (s *sensitiveVars) name(addr, key string) string { return s.byKey[addr+"\x00"+key] }

// variableName makes an identifier from a component id and an env key:
// ("api", "DB_PASSWORD") -> "api_db_password".
func variableName(id, key string) string {
	raw := strings.ToLower(id + "_" + key)
	var b strings.Builder
	for _, r := range raw {
		if r == '_' || r == '-' || r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	name := b.String()
	if name == "" || !unicode.IsLetter(rune(name[0])) {
		name = "v_" + name
	}
	return name
}

func uniqueName(used map[string]bool, name string) string {
	candidate := name
	for i := 2; used[candidate]; i++ {
		candidate = fmt.Sprintf("%s_%d", name, i)
	}
	used[candidate] = true
	return candidate
}

// SensitiveEnv lists, as "ADDRESS: KEY", every sensitive env value of p, for
// a warning that a written file holds them.
func SensitiveEnv(p *Pipeline) []string {
	var out []string
	for _, c := range p.Components {
		for k, v := range c.Env {
			if v.Sensitive {
				out = append(out, c.Address()+": "+k)
			}
		}
	}
	sort.Strings(out)
	return out
}
