package config

import (
	"regexp"
	"strings"
)

// refPattern matches a reference to an attribute known only after apply,
// written `${source.ledger.address}` in YAML and in HCL alike, or
// `${self.port}` for the component's own.
var refPattern = regexp.MustCompile(`\$\{(?:(source|processor|sink)\.([A-Za-z0-9_-]+)|(self))\.(address|port|health_port)\}`)

// Ref is a reference from an env value to a component's attribute.
type Ref struct {
	Addr string // KIND.ID, or SelfRef: the component whose env it is
	Attr string // address, port or health_port
}

// Self says whether the reference is to the component's own attribute.
func (r Ref) Self() bool { return r.Addr == SelfRef }

func refOf(m []string) Ref {
	if m[3] != "" {
		return Ref{Addr: SelfRef, Attr: m[4]}
	}
	return Ref{Addr: m[1] + "." + m[2], Attr: m[4]}
}

// String renders the reference as it is written: ${KIND.ID.ATTR}.
func (r Ref) String() string { return "${" + r.Addr + "." + r.Attr + "}" }

// FindRefs returns the references in s, in order of appearance.
func FindRefs(s string) []Ref {
	var out []Ref
	for _, m := range refPattern.FindAllStringSubmatch(s, -1) {
		out = append(out, refOf(m))
	}
	return out
}

// HasRefs reports whether s contains a reference known only after apply.
func HasRefs(s string) bool { return refPattern.MatchString(s) }

// ResolveRefs replaces every reference in s with what lookup returns for it.
func ResolveRefs(s string, lookup func(Ref) string) string {
	return refPattern.ReplaceAllStringFunc(s, func(m string) string {
		return lookup(refOf(refPattern.FindStringSubmatch(m)))
	})
}

// RefTargets returns the addresses of the other components the
// component's env values reference, sorted and deduplicated.
func (c *Component) RefTargets() []string {
	seen := map[string]bool{}
	for _, v := range c.Env {
		if !v.Deferred {
			continue
		}
		for _, r := range FindRefs(v.Value) {
			if !r.Self() {
				seen[r.Addr] = true
			}
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
