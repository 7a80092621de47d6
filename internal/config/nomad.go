package config

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Nomad is the pipeline's nomad block: where the components on the nomad
// executor run. Every field may be left out; the executor then falls back
// to Nomad's own environment (NOMAD_ADDR, NOMAD_REGION, NOMAD_NAMESPACE,
// NOMAD_TOKEN) and defaults.
//
//	pipeline "ttp" {
//	  nomad {
//	    address     = "https://nomad.example.com:4646"
//	    region      = "eu"
//	    namespace   = "stellar"
//	    datacenters = ["eu-west-1a", "eu-west-1b"]
//	    token       = var.nomad_token
//	  }
//	}
//
// In YAML the same map is spec.nomad.
type Nomad struct {
	// Address is the Nomad HTTP API, scheme included.
	Address   string `json:"address,omitempty"`
	Region    string `json:"region,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	// Datacenters the jobs may be placed in, sorted; empty means every one.
	Datacenters []string `json:"datacenters,omitempty"`
	// Token is the ACL token. It is sensitive whichever way it was written:
	// it is never part of the canonical JSON (so never in a plan, in state
	// or in a hash), never printed, and the writers leave it out.
	Token string `json:"-"`
}

// nomadSchema is the HCL body of the nomad block.
var nomadSchema = &hcl.BodySchema{Attributes: attrSchemas("address", "region", "namespace", "datacenters", "token")}

// ylNomadKeys are the keys of spec.nomad.
var ylNomadKeys = []string{"address", "region", "namespace", "datacenters", "token"}

// decodeNomad reads the nomad block of the pipeline block.
func (l *hclLoader) decodeNomad(o *hclOwner, p *Pipeline, b *hcl.Block) {
	o.ranges["nomad"] = b.DefRange
	content, diags := b.Body.Content(nomadSchema)
	l.diags = append(l.diags, diags...)
	attrs := content.Attributes
	n := &Nomad{}
	l.getString(o, attrs, "address", "nomad.address", &n.Address)
	l.getString(o, attrs, "region", "nomad.region", &n.Region)
	l.getString(o, attrs, "namespace", "nomad.namespace", &n.Namespace)
	l.getStrings(o, attrs, "datacenters", "nomad.datacenters", &n.Datacenters)
	l.getSecretString(o, attrs, "token", secretAttr{path: "nomad.token", summary: "Nomad token in the file", env: "NOMAD_TOKEN"}, &n.Token)
	p.Nomad = n
}

// nomad reads spec.nomad.
func (l *yamlLoader) nomad(p *Pipeline, e ylEntry) {
	m := l.mapping(e.v, "", "spec.nomad", "a map")
	p.Ranges["nomad"] = l.rng(l.deref(e.v))
	if m == nil {
		return
	}
	es := l.fields(m, "", "spec.nomad", ylNomadKeys)
	n := &Nomad{}
	for _, f := range []struct {
		key string
		dst *string
	}{{"address", &n.Address}, {"region", &n.Region}, {"namespace", &n.Namespace}} {
		if e, ok := es[f.key]; ok {
			*f.dst, _ = l.str(e.v, "", "spec.nomad."+f.key)
			p.Ranges["nomad."+f.key] = l.rng(l.deref(e.v))
		}
	}
	if e, ok := es["datacenters"]; ok {
		n.Datacenters, _, _ = l.strList(e.v, "", "spec.nomad.datacenters", true)
		p.Ranges["nomad.datacenters"] = l.rng(l.deref(e.v))
	}
	l.secretString(p, es, "token", secretAttr{path: "nomad.token", summary: "Nomad token in the file", env: "NOMAD_TOKEN"}, &n.Token)
	p.Nomad = n
}

// normalizeNomad trims what may be written more than one way. A block that
// sets nothing is no block.
func normalizeNomad(p *Pipeline) {
	n := p.Nomad
	if n == nil {
		return
	}
	n.Address = strings.TrimRight(strings.TrimSpace(n.Address), "/")
	n.Region = strings.TrimSpace(n.Region)
	n.Namespace = strings.TrimSpace(n.Namespace)
	dcs := n.Datacenters[:0:0]
	for _, dc := range n.Datacenters {
		dcs = append(dcs, strings.TrimSpace(dc))
	}
	n.Datacenters = sortedUnique(dcs)
	if n.Address == "" && n.Region == "" && n.Namespace == "" && len(n.Datacenters) == 0 && n.Token == "" {
		p.Nomad = nil
	}
}

// nomadNamespace is what Nomad accepts as a namespace name.
var nomadNamespace = regexp.MustCompile(`^[a-zA-Z0-9-]{1,128}$`)

// validateNomad checks the nomad block.
func validateNomad(p *Pipeline) hcl.Diagnostics {
	n := p.Nomad
	if n == nil {
		return nil
	}
	var diags hcl.Diagnostics
	rng := func(attr string) hcl.Range {
		if r, ok := p.Ranges["nomad."+attr]; ok {
			return r
		}
		return p.Ranges["nomad"]
	}
	if n.Address != "" {
		u, err := url.Parse(n.Address)
		switch {
		case err != nil:
			diags = append(diags, errorf(rng("address"), "Invalid Nomad address", "pipeline %s: nomad.address %q is not a URL: %v", p.Name, n.Address, err))
		case u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "unix", u.Host == "" && u.Scheme != "unix":
			diags = append(diags, errorf(rng("address"), "Invalid Nomad address",
				"pipeline %s: nomad.address %q must be a URL such as \"https://nomad.example.com:4646\" (http, https or unix)", p.Name, n.Address))
		}
	}
	if n.Namespace != "" && !nomadNamespace.MatchString(n.Namespace) {
		diags = append(diags, errorf(rng("namespace"), "Invalid Nomad namespace",
			"pipeline %s: nomad.namespace %q: Nomad namespaces are 1-128 letters, digits and '-'", p.Name, n.Namespace))
	}
	if strings.ContainsAny(n.Region, " \t\n/") {
		diags = append(diags, errorf(rng("region"), "Invalid Nomad region", "pipeline %s: nomad.region %q cannot hold spaces or '/'", p.Name, n.Region))
	}
	for i, dc := range n.Datacenters {
		if dc == "" || strings.ContainsAny(dc, " \t\n") {
			diags = append(diags, errorf(rng("datacenters"), "Invalid Nomad datacenter",
				"pipeline %s: nomad.datacenters[%d] %q is not a datacenter name", p.Name, i, dc))
		}
	}
	used := false
	for _, c := range p.Components {
		used = used || c.Executor == "nomad"
	}
	if !used {
		diags = append(diags, warnf(p.Ranges["nomad"], "Unused nomad block",
			"pipeline %s: the nomad block is used by components on the nomad executor, and there are none", p.Name))
	}
	return diags
}

// validateNomadComponent checks what a component on the nomad executor
// needs beyond what every component does: what has no Nomad counterpart is
// an error here rather than a surprise on the cluster.
func validateNomadComponent(c *Component) hcl.Diagnostics {
	if c.Executor != "nomad" {
		return nil
	}
	var diags hcl.Diagnostics
	add := func(attr, summary, format string, args ...any) {
		diags = append(diags, compErr(c, attr, summary, format, args...))
	}
	if h := c.Health; h != nil {
		if h.Type == HealthExec {
			add("health.exec", "Exec probe on Nomad", "Nomad's own service checks are http and tcp; an exec probe cannot run on the nomad executor")
		}
		// Nomad refuses checks more frequent or shorter than a second.
		if h.Interval.D() < nomadMinCheck {
			add("health.interval", "Health interval too short for Nomad", "Nomad checks at most once a second; interval %s is shorter", h.Interval)
		}
		if h.Timeout.D() < nomadMinCheck {
			add("health.timeout", "Health timeout too short for Nomad", "Nomad check timeouts are at least a second; timeout %s is shorter", h.Timeout)
		}
	}
	for i, v := range c.Volumes {
		attr := fmt.Sprintf("volumes.%d", i)
		switch {
		case c.Image == "":
			add(attr, "Volume on raw_exec", "a command runs on the Nomad node with the raw_exec driver, which mounts nothing; volumes need an image (the docker driver)")
		case !strings.HasPrefix(v.HostPath, "/"):
			add(attr+".host_path", "Relative volume on Nomad", "volume %d: host_path %q names a path on the Nomad node and must be absolute", i, v.HostPath)
		}
	}
	return diags
}

// nomadMinCheck is Nomad's shortest check interval and timeout.
const nomadMinCheck = time.Second
