package config

import (
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
)

// Component auth modes (Component.Auth; "" follows the pipeline's).
const (
	AuthRequired   = "required"
	AuthToken      = "token"
	AuthPermissive = "permissive"
)

// AuthModes lists the valid auth modes of a pipeline or a component.
var AuthModes = []string{AuthRequired, AuthToken, AuthPermissive}

// DefaultReadyTimeout bounds apply's wait for a component to be ready
// (health and registration) unless its ready_timeout says otherwise.
const DefaultReadyTimeout = Duration(2 * time.Minute)

// FixedPortNames are the names fixed_ports may hold: the ports flowctl
// otherwise allocates.
var FixedPortNames = []string{"PORT", "HEALTH_PORT"}

// SelfRef is the address part of a reference to the component's own
// attributes: ${self.port}, resolved when the component starts.
const SelfRef = "self"

// decodeRunSettings reads auth, ready_timeout and fixed_ports.
func (l *hclLoader) decodeRunSettings(o *hclOwner, c *Component, attrs hcl.Attributes) {
	l.getString(o, attrs, "auth", "auth", &c.Auth)
	l.getDuration(o, attrs, "ready_timeout", "ready_timeout", &c.ReadyTimeout)
	if m, ok := l.getStringMap(o, attrs, "fixed_ports", "fixed_ports"); ok {
		if oc, isObj := attrs["fixed_ports"].Expr.(*hclsyntax.ObjectConsExpr); isObj {
			for _, item := range oc.Items {
				if k, diags := evalExpr(item.KeyExpr, l.ctx); !diags.HasErrors() && k.Type() == cty.String && k.IsKnown() && !k.IsNull() {
					o.ranges["fixed_ports."+k.AsString()] = item.ValueExpr.Range()
				}
			}
		}
		c.FixedPorts = l.fixedPorts(c, m)
	}
}

// fixedPorts parses the values of fixed_ports; what is not a port is
// reported at its range.
func (l *hclLoader) fixedPorts(c *Component, m map[string]string) map[string]int {
	out, bad := parseFixedPorts(m)
	for _, k := range bad {
		l.diags = append(l.diags, compErr(c, "fixed_ports."+k, "Invalid fixed port",
			"fixed_ports %s = %q: want a port number between 1 and 65535", k, m[k]))
	}
	return out
}

func parseFixedPorts(m map[string]string) (map[string]int, []string) {
	if len(m) == 0 {
		return nil, nil
	}
	out := map[string]int{}
	var bad []string
	for _, k := range sortedKeys(m) {
		p, err := strconv.Atoi(m[k])
		if err != nil || p <= 0 || p > 65535 {
			bad = append(bad, k)
			continue
		}
		out[k] = p
	}
	return out, bad
}

// runSettings reads auth, ready_timeout and fixed_ports of a YAML
// component.
func (l *yamlLoader) runSettings(c *Component, who string, es map[string]ylEntry) {
	if e, ok := es["auth"]; ok {
		l.record(c, "auth", e)
		c.Auth, _ = l.str(e.v, who, "auth")
	}
	if e, ok := es["ready_timeout"]; ok {
		l.record(c, "ready_timeout", e)
		c.ReadyTimeout, _ = l.duration(e.v, who, "ready_timeout")
	}
	if e, ok := es["fixed_ports"]; ok {
		l.record(c, "fixed_ports", e)
		m, entries := l.configMap(e.v, who, "fixed_ports")
		for _, fe := range entries {
			c.Ranges["fixed_ports."+fe.key] = l.rng(l.deref(fe.v))
		}
		ports, bad := parseFixedPorts(m)
		for _, k := range bad {
			l.diags = append(l.diags, compErr(c, "fixed_ports."+k, "Invalid fixed port",
				"fixed_ports %s = %q: want a port number between 1 and 65535", k, m[k]))
		}
		c.FixedPorts = ports
	}
}

// runSettings checks auth, ready_timeout and fixed_ports.
func (v *componentCheck) runSettings() {
	c := v.c
	if c.Auth != "" && !slices.Contains(AuthModes, c.Auth) {
		v.add("auth", "Invalid auth mode", "auth %q: must be \"required\", \"token\" or \"permissive\"", c.Auth)
	}
	if c.ReadyTimeout < 0 {
		v.add("ready_timeout", "Invalid ready timeout", "ready_timeout %s: must not be negative", c.ReadyTimeout)
	}
	for _, k := range sortedKeys(c.FixedPorts) {
		if !slices.Contains(FixedPortNames, k) {
			v.add("fixed_ports."+k, "Unknown fixed port", "fixed_ports %s: want %s", k, FixedPortNames)
		}
	}
}

// ProcessPorts are the ports a process component always listens on, by
// name: its fixed_ports, a PORT or HEALTH_PORT set to a number in env, and
// its health block's port.
func (c *Component) ProcessPorts() map[string]int {
	out := map[string]int{}
	for _, name := range FixedPortNames {
		if v, ok := c.Env[name]; ok && !v.Deferred {
			if p, err := strconv.Atoi(v.Value); err == nil && p > 0 {
				out[name] = p
			}
		}
	}
	if c.Health != nil && c.Health.Port != 0 {
		out["HEALTH_PORT"] = c.Health.Port
	}
	for k, p := range c.FixedPorts {
		out[k] = p
	}
	return out
}

// validateFixedPorts reports two process components that always listen on
// the same port: processes share the host's ports, so one of them could
// not start. (Two health blocks on one port are reported by
// validateHostPorts.)
func validateFixedPorts(p *Pipeline) hcl.Diagnostics {
	var diags hcl.Diagnostics
	type owner struct {
		addr, name string
		health     bool
	}
	used := map[int]owner{}
	for _, c := range p.Components {
		if c.Executor != "process" {
			continue
		}
		ports := c.ProcessPorts()
		names := sortedKeys(ports)
		for _, name := range names {
			port := ports[name]
			health := c.Health != nil && c.Health.Port == port && len(c.FixedPorts) == 0
			prev, ok := used[port]
			if !ok {
				used[port] = owner{c.Address(), name, health}
				continue
			}
			if prev.addr == c.Address() || prev.health && health {
				continue
			}
			diags = append(diags, compErr(c, fixedPortAttr(c, name), "Port used twice",
				"%s %d is also the %s of %s: two processes on one host cannot both listen on it (give one of them another port)",
				name, port, prev.name, prev.addr))
		}
	}
	return diags
}

// fixedPortAttr is the attribute that sets a fixed port, for its range.
func fixedPortAttr(c *Component, name string) string {
	if _, ok := c.FixedPorts[name]; ok {
		return "fixed_ports." + name
	}
	if _, ok := c.Env[name]; ok {
		return "env." + name
	}
	return "health.port"
}

// writeHCLRunSettings writes auth, ready_timeout and fixed_ports.
func writeHCLRunSettings(b *hclwrite.Body, c *Component) {
	setString(b, "auth", c.Auth)
	if c.ReadyTimeout != 0 {
		setString(b, "ready_timeout", c.ReadyTimeout.String())
	}
	if len(c.FixedPorts) > 0 {
		m := map[string]cty.Value{}
		for k, p := range c.FixedPorts {
			m[k] = cty.NumberIntVal(int64(p))
		}
		b.SetAttributeValue("fixed_ports", cty.ObjectVal(m))
	}
}

// yamlRunSettings writes auth, ready_timeout and fixed_ports.
func yamlRunSettings(m *yamlMap, c *Component) {
	m.strOpt("auth", c.Auth)
	if c.ReadyTimeout != 0 {
		m.str("ready_timeout", c.ReadyTimeout.String())
	}
	if len(c.FixedPorts) > 0 {
		fp := newMap()
		keys := make([]string, 0, len(c.FixedPorts))
		for k := range c.FixedPorts {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fp.int(k, c.FixedPorts[k])
		}
		m.set("fixed_ports", fp.node)
	}
}

// ReadyTimeoutOr is the component's ready_timeout, or def when it sets
// none.
func (c *Component) ReadyTimeoutOr(def Duration) Duration {
	if c.ReadyTimeout > 0 {
		return c.ReadyTimeout
	}
	return def
}
