package kubernetes

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
)

// Fields the API server manages itself, or flowctl keeps for its own
// bookkeeping: a difference there is not a change the plan reports.
var (
	ignoredMeta = map[string]bool{
		"managedFields": true, "resourceVersion": true, "generation": true, "uid": true,
		"creationTimestamp": true, "deletionTimestamp": true, "deletionGracePeriodSeconds": true, "selfLink": true,
	}
	ignoredAnnotations = map[string]bool{
		AnnotationSpecHash: true, AnnotationInstance: true, "deployment.kubernetes.io/revision": true,
	}
)

// changedPaths lists the paths whose value differs between the live
// object and what a dry run says it would become, sorted. Only paths are
// returned, never values, so that a Secret's data cannot leak through it.
func changedPaths(live, after runtime.Object) ([]string, error) {
	l, err := runtime.DefaultUnstructuredConverter.ToUnstructured(live)
	if err != nil {
		return nil, fmt.Errorf("read the live object: %w", err)
	}
	a, err := runtime.DefaultUnstructuredConverter.ToUnstructured(after)
	if err != nil {
		return nil, fmt.Errorf("read the dry run's object: %w", err)
	}
	delete(l, "status")
	delete(a, "status")
	var out []string
	diffValue("", l, a, &out)
	sort.Strings(out)
	return out, nil
}

// diffValue appends to out the paths under path where old and new differ.
func diffValue(path string, old, new any, out *[]string) {
	om, ok1 := old.(map[string]any)
	nm, ok2 := new.(map[string]any)
	if ok1 && ok2 {
		diffMap(path, om, nm, out)
		return
	}
	ol, ok1 := old.([]any)
	nl, ok2 := new.([]any)
	if ok1 && ok2 {
		diffList(path, ol, nl, out)
		return
	}
	if !reflect.DeepEqual(old, new) {
		*out = append(*out, path)
	}
}

func diffMap(path string, old, new map[string]any, out *[]string) {
	keys := map[string]bool{}
	for k := range old {
		keys[k] = true
	}
	for k := range new {
		keys[k] = true
	}
	for k := range keys {
		if ignored(path, k) {
			continue
		}
		diffValue(join(path, k), old[k], new[k], out)
	}
}

// diffList compares lists of named items (env, ports, volumes) by name,
// and others (containers, args) by position.
func diffList(path string, old, new []any, out *[]string) {
	oNames, okO := byName(old)
	nNames, okN := byName(new)
	if okO && okN && !strings.HasSuffix(path, "containers") {
		keys := map[string]bool{}
		for k := range oNames {
			keys[k] = true
		}
		for k := range nNames {
			keys[k] = true
		}
		for k := range keys {
			item := fmt.Sprintf("%s[%s]", path, k)
			if strings.HasSuffix(path, ".env") {
				// A variable is its value: named, not taken apart.
				if !reflect.DeepEqual(oNames[k], nNames[k]) {
					*out = append(*out, item)
				}
				continue
			}
			diffValue(item, oNames[k], nNames[k], out)
		}
		return
	}
	if len(old) != len(new) {
		if hasScalars(old) || hasScalars(new) {
			*out = append(*out, path)
			return
		}
	}
	for i := 0; i < max(len(old), len(new)); i++ {
		var o, n any
		if i < len(old) {
			o = old[i]
		}
		if i < len(new) {
			n = new[i]
		}
		diffValue(fmt.Sprintf("%s[%d]", path, i), o, n, out)
	}
}

// byName indexes a list whose items all are maps with a "name".
func byName(l []any) (map[string]any, bool) {
	m := map[string]any{}
	for _, v := range l {
		item, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		name, ok := item["name"].(string)
		if !ok {
			return nil, false
		}
		m[name] = item
	}
	return m, true
}

func hasScalars(l []any) bool {
	for _, v := range l {
		switch v.(type) {
		case map[string]any, []any:
		default:
			return true
		}
	}
	return false
}

// ignored: server-managed metadata and flowctl's own bookkeeping.
func ignored(path, key string) bool {
	switch {
	case strings.HasSuffix(path, "metadata") && ignoredMeta[key]:
		return true
	case strings.HasSuffix(path, "annotations") && ignoredAnnotations[key]:
		return true
	}
	return false
}

// keyedMaps are the maps whose keys are names of the user's or of the
// system's (a Secret's data, labels), written as path[key].
var keyedMaps = map[string]bool{"data": true, "stringData": true, "annotations": true, "labels": true,
	"matchLabels": true, "nodeSelector": true, "requests": true, "limits": true}

func join(path, key string) string {
	if path == "" {
		return key
	}
	last := path[strings.LastIndex(path, ".")+1:]
	if keyedMaps[last] || strings.ContainsAny(key, "./") {
		return fmt.Sprintf("%s[%s]", path, key)
	}
	return path + "." + key
}
