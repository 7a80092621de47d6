package plan

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/flowctl/flowctl/internal/config"
)

// forcingAttrs are the top-level attributes whose change needs a new
// instance: they shape the running process or container. The others (inputs,
// health, restart, ...) are read by flowctl itself and update in place.
var forcingAttrs = map[string]bool{
	"executor": true, "type": true, "image": true, "image_id": true, "image_digest": true, "command": true, "args": true,
	"env": true, "ports": true, "volumes": true, "resources": true, "replicas": true,
	"secrets": true,
}

// forcesOnSelfRestarter reports whether a change at path forces a new
// instance on an executor that runs a component's health checks and
// restart policy itself (providers.SelfRestarter: Nomad's service checks
// and restart blocks): there health and restart are built into the object.
func forcesOnSelfRestarter(path string) bool {
	top := topAttr(path)
	return top == "health" || top == "restart"
}

// leaf is one flattened attribute value.
type leaf struct {
	text      string
	sensitive bool
	deferred  bool
}

// diffAttrs compares two redacted canonical specs attribute by attribute.
// Either side may be empty (create, delete).
func diffAttrs(oldSpec, newSpec json.RawMessage, _ []string) []AttrChange {
	oldL, newL := flattenSpec(oldSpec), flattenSpec(newSpec)
	paths := map[string]bool{}
	for p := range oldL {
		paths[p] = true
	}
	for p := range newL {
		paths[p] = true
	}
	var out []AttrChange
	for _, p := range sortedKeys(paths) {
		o, hasOld := oldL[p]
		n, hasNew := newL[p]
		if hasOld && hasNew && o == n {
			continue
		}
		a := AttrChange{Path: p, HasOld: hasOld, HasNew: hasNew, Old: o.text, New: n.text, Sensitive: o.sensitive || n.sensitive, Unknown: n.deferred}
		if a.Sensitive {
			if hasOld {
				a.Old = config.RedactedValue
			}
			if hasNew {
				a.New = config.RedactedValue
			}
		}
		if len(oldSpec) > 0 && len(newSpec) > 0 {
			a.Forces = forcingAttrs[topAttr(p)]
		}
		out = append(out, a)
	}
	return out
}

func topAttr(path string) string {
	if i := strings.IndexAny(path, ".["); i >= 0 {
		return path[:i]
	}
	return path
}

// flattenSpec turns a canonical spec into path -> value: nested objects by
// dots, lists of objects by index, lists of scalars as one JSON value, env
// entries as their value.
func flattenSpec(spec json.RawMessage) map[string]leaf {
	out := map[string]leaf{}
	if len(spec) == 0 {
		return out
	}
	var m map[string]any
	if err := json.Unmarshal(spec, &m); err != nil {
		return out
	}
	delete(m, "kind")
	delete(m, "id")
	if env, ok := m["env"].(map[string]any); ok {
		for k, v := range env {
			e, _ := v.(map[string]any)
			s, _ := e["value"].(string)
			sens, _ := e["sensitive"].(bool)
			def, _ := e["deferred"].(bool)
			out["env."+k] = leaf{text: strconv.Quote(s), sensitive: sens, deferred: def}
		}
		delete(m, "env")
	}
	flatten("", m, out)
	return out
}

func flatten(prefix string, v any, out map[string]leaf) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			flatten(p, e, out)
		}
	case []any:
		scalars := true
		for _, e := range x {
			if _, isMap := e.(map[string]any); isMap {
				scalars = false
			}
		}
		if scalars {
			b, _ := json.Marshal(x)
			out[prefix] = leaf{text: string(b)}
			return
		}
		for i, e := range x {
			flatten(fmt.Sprintf("%s[%d]", prefix, i), e, out)
		}
	case string:
		out[prefix] = leaf{text: strconv.Quote(x)}
	case nil:
	default:
		b, _ := json.Marshal(x)
		out[prefix] = leaf{text: string(b)}
	}
}
