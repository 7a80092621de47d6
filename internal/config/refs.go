package config

import (
	"regexp"
	"strings"
)

// refPattern matches a reference to an attribute known only after apply,
// written `${source.ledger.address}` in YAML and in HCL alike.
var refPattern = regexp.MustCompile(`\$\{(source|processor|sink)\.([A-Za-z0-9_-]+)\.(address|port|health_port)\}`)

// Ref is a reference from an env value to another component's attribute.
type Ref struct {
	Addr string // KIND.ID
	Attr string // address, port or health_port
}

// String renders the reference as it is written: ${KIND.ID.ATTR}.
func (r Ref) String() string { return "${" + r.Addr + "." + r.Attr + "}" }

// FindRefs returns the references in s, in order of appearance.
func FindRefs(s string) []Ref {
	var out []Ref
	for _, m := range refPattern.FindAllStringSubmatch(s, -1) {
		out = append(out, Ref{Addr: m[1] + "." + m[2], Attr: m[3]})
	}
	return out
}

// HasRefs reports whether s contains a reference known only after apply.
func HasRefs(s string) bool { return refPattern.MatchString(s) }

// ResolveRefs replaces every reference in s with what lookup returns for it.
func ResolveRefs(s string, lookup func(Ref) string) string {
	return refPattern.ReplaceAllStringFunc(s, func(m string) string {
		sub := refPattern.FindStringSubmatch(m)
		return lookup(Ref{Addr: sub[1] + "." + sub[2], Attr: sub[3]})
	})
}

// RefTargets returns the addresses the component's env values reference,
// sorted and deduplicated.
func (c *Component) RefTargets() []string {
	seen := map[string]bool{}
	for _, v := range c.Env {
		if !v.Deferred {
			continue
		}
		for _, r := range FindRefs(v.Value) {
			seen[r.Addr] = true
		}
	}
	return sortedKeys(seen)
}

// EscapeTemplate escapes every "${" in s that is not a reference, for writing
// s as an HCL string template.
func EscapeTemplate(s string) string {
	var b strings.Builder
	last := 0
	for _, loc := range refPattern.FindAllStringIndex(s, -1) {
		b.WriteString(strings.ReplaceAll(s[last:loc[0]], "${", "$${"))
		b.WriteString(s[loc[0]:loc[1]])
		last = loc[1]
	}
	b.WriteString(strings.ReplaceAll(s[last:], "${", "$${"))
	return strings.ReplaceAll(b.String(), "%{", "%%{")
}
