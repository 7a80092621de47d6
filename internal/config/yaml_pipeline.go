package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"gopkg.in/yaml.v3"
)

// The flowctl/v1 YAML format is the one the ecosystem writes today
// (docs/compat.md, "Pipeline files"). flowctl reads every field seen in
// real files and adds the few it needs for a YAML file to say everything
// HCL can: executor per component, stop_timeout, and health and restart
// maps.
//
// The loader works on yaml.Node (through ylNodes, yaml_nodes.go) so that
// every value keeps its line and column. It fills the model as written:
// defaults, normalisation and validation happen in LoadBytes, identically
// for YAML and HCL. This file reads the document, metadata and spec;
// yaml_component.go reads each component.
//
// Package-level names here start with "yl" (YAML loader), apart from the
// writer's "yaml" ones in the same package.

const (
	ylAPIVersion = "flowctl/v1"
	ylKind       = "Pipeline"
)

// Keys each map of the format knows, in the order suggestions prefer them.
var (
	ylTopKeys       = []string{"apiVersion", "kind", "metadata", "spec"}
	ylMetadataKeys  = []string{"name", "namespace", "labels", "annotations", "description"}
	ylSpecKeys      = []string{"description", "driver", "executor", "sources", "processors", "sinks", "config", "component_registry", "trusted_registries", "require_digest", "nomad", "kubernetes", "backend", "control_plane", "auth", "image_policy"}
	ylComponentKeys = []string{
		"id", "type", "config", "image", "command", "args", "env", "inputs", "depends_on",
		"health_port", "health_check", "health_endpoint", "replicas", "register", "volumes", "restart_policy",
		"ports", "secrets", "resources", "input_event_types", "output_event_types",
		"executor", "driver", "stop_timeout", "health", "restart", "pull", "image_id", "image_policy",
		"auth", "ready_timeout", "fixed_ports",
	}
	ylHealthKeys   = []string{"http", "tcp", "exec", "port", "interval", "timeout", "start_period", "failure_threshold", "success_threshold", "liveness"}
	ylRestartKeys  = []string{"policy", "max_retries", "backoff", "restart_dependents"}
	ylBackoffKeys  = []string{"initial", "max", "multiplier"}
	ylPortKeys     = []string{"name", "containerPort", "container_port", "hostPort", "host_port", "hostIP", "host_ip", "protocol"}
	ylVolumeKeys   = []string{"name", "host_path", "container_path", "readonly", "read_only"}
	ylResourceKeys = []string{"requests", "limits"}
	ylQuantityKeys = []string{"cpu", "memory"}
	ylSecretKeys   = []string{"name"}
)

// ylComponentLists maps each list of spec to the kind of its components.
var ylComponentLists = []struct {
	key  string
	kind Kind
}{{"sources", KindSource}, {"processors", KindProcessor}, {"sinks", KindSink}}

// loadYAML builds the pipeline a flowctl/v1 YAML document states. The
// pipeline is nil only when there is no pipeline document at all: a syntax
// error, an empty file, or a document that is not a map.
func loadYAML(src []byte, filename string) (*Pipeline, hcl.Diagnostics) {
	l := &yamlLoader{ylNodes: ylNodes{file: filename, src: src}}
	l.indexLines()
	root := l.parse()
	if root == nil {
		return nil, l.diags
	}
	p := l.pipeline(root)
	return p, l.diags
}

// yamlLoader reads one flowctl/v1 file into the model.
type yamlLoader struct {
	ylNodes

	refs []ylRefList // inputs and depends_on, resolved once every id is known
}

// ylRefList is an inputs or depends_on list as written: ids or addresses.
type ylRefList struct {
	c     *Component
	attr  string
	ids   []string
	nodes []*yaml.Node
}

// parse returns the first document's root mapping, or nil after reporting
// why there is none. Later documents are ignored with a warning.
func (l *yamlLoader) parse() *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(l.src))
	var doc yaml.Node
	if err := ylDecode(dec, &doc); err != nil {
		if errors.Is(err, io.EOF) {
			l.diags = append(l.diags, errorf(l.at(1, 1), "Empty pipeline file", "the file holds no YAML document; a pipeline starts with apiVersion: %s", ylAPIVersion))
			return nil
		}
		l.syntaxError(err)
		return nil
	}
	var extra yaml.Node
	switch err := ylDecode(dec, &extra); {
	case err == nil:
		l.diags = append(l.diags, warnf(l.rng(&extra), "Extra YAML document", "only the first document of a pipeline file is read; this one and any after it are ignored"))
	case !errors.Is(err, io.EOF):
		line, text := l.errorPos(err)
		l.diags = append(l.diags, warnf(l.at(max(line, 1), 1), "Extra YAML document", "only the first document of a pipeline file is read; what follows it is ignored (and is not valid YAML: %s)", text))
	}

	n := &doc
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			l.diags = append(l.diags, errorf(l.rng(n), "Empty pipeline file", "the document is empty; a pipeline starts with apiVersion: %s", ylAPIVersion))
			return nil
		}
		n = n.Content[0]
	}
	n = l.deref(n)
	switch {
	case n.Kind == yaml.MappingNode:
		return n
	case ylIsNull(n):
		l.diags = append(l.diags, errorf(l.rng(n), "Empty pipeline file", "the document is empty; a pipeline starts with apiVersion: %s", ylAPIVersion))
	default:
		l.diags = append(l.diags, errorf(l.rng(n), "Not a pipeline", "a pipeline file is a map with apiVersion, kind, metadata and spec; this document is %s", ylDescribe(n)))
	}
	return nil
}

func (l *yamlLoader) pipeline(root *yaml.Node) *Pipeline {
	p := &Pipeline{Format: FormatYAML, Ranges: map[string]hcl.Range{}}
	whole := l.rng(root)
	p.Ranges["name"], p.Ranges["executor"] = whole, whole
	top := l.fields(root, "", "", ylTopKeys)

	if e, ok := top["apiVersion"]; !ok {
		l.diags = append(l.diags, errorf(whole, "Missing apiVersion", "a pipeline file starts with apiVersion: %s", ylAPIVersion))
	} else if v, ok := l.str(e.v, "", "apiVersion"); v != ylAPIVersion {
		if ok || ylIsNull(l.deref(e.v)) {
			l.diags = append(l.diags, errorf(l.rng(l.deref(e.v)), "Unsupported apiVersion", "apiVersion %q is not supported; flowctl reads apiVersion: %s", v, ylAPIVersion))
		}
	}
	if e, ok := top["kind"]; !ok {
		l.diags = append(l.diags, errorf(whole, "Missing kind", "a pipeline file says kind: %s", ylKind))
	} else if v, ok := l.str(e.v, "", "kind"); v != ylKind {
		if ok || ylIsNull(l.deref(e.v)) {
			l.diags = append(l.diags, errorf(l.rng(l.deref(e.v)), "Unsupported kind", "kind %q is not supported; a pipeline file says kind: %s", v, ylKind))
		}
	}

	var metaDesc string
	if e, ok := top["metadata"]; ok {
		if m := l.mapping(e.v, "", "metadata", "a map"); m != nil {
			p.Ranges["name"] = l.rng(m)
			metaDesc = l.metadata(p, m)
		}
	} else {
		l.diags = append(l.diags, errorf(whole, "Missing metadata", "a pipeline file needs metadata with the pipeline's name"))
	}
	if e, ok := top["spec"]; ok {
		if m := l.mapping(e.v, "", "spec", "a map"); m != nil {
			p.Ranges["executor"] = l.rng(m)
			l.spec(p, m)
		}
	} else {
		l.diags = append(l.diags, errorf(whole, "Missing spec", "a pipeline file needs a spec with its sources, processors and sinks"))
	}
	if p.Description == "" {
		p.Description = metaDesc
	}
	l.resolveRefs(p)
	return p
}

// metadata fills the pipeline's name, namespace, labels and annotations, and
// returns metadata.description (spec.description wins over it).
func (l *yamlLoader) metadata(p *Pipeline, m *yaml.Node) string {
	es := l.fields(m, "", "metadata", ylMetadataKeys)
	if e, ok := es["name"]; ok {
		if v, ok := l.str(e.v, "", "metadata.name"); ok {
			p.Name = v
		}
		p.Ranges["name"] = l.rng(l.deref(e.v))
	}
	if e, ok := es["namespace"]; ok {
		p.Namespace, _ = l.str(e.v, "", "metadata.namespace")
	}
	if e, ok := es["labels"]; ok {
		p.Labels, _ = l.strMap(e.v, "", "metadata.labels")
	}
	if e, ok := es["annotations"]; ok {
		p.Annotations, _ = l.strMap(e.v, "", "metadata.annotations")
	}
	var desc string
	if e, ok := es["description"]; ok {
		desc, _ = l.str(e.v, "", "metadata.description")
	}
	return desc
}

func (l *yamlLoader) spec(p *Pipeline, m *yaml.Node) {
	es := l.fields(m, "", "spec", ylSpecKeys)
	if e, ok := es["description"]; ok {
		p.Description, _ = l.str(e.v, "", "spec.description")
		p.Ranges["description"] = l.rng(l.deref(e.v))
	}
	if e, ok := l.pick(es, "", "spec.", "driver", "executor"); ok {
		p.Executor, _ = l.str(e.v, "", "spec."+e.key)
		p.Ranges["executor"] = l.rng(l.deref(e.v))
	}
	if e, ok := es["component_registry"]; ok {
		p.ComponentRegistry, _ = l.str(e.v, "", "spec.component_registry")
		p.Ranges["component_registry"] = l.rng(l.deref(e.v))
	}
	if e, ok := es["trusted_registries"]; ok {
		p.TrustedRegistries, _, _ = l.strList(e.v, "", "spec.trusted_registries", false)
		p.Ranges["trusted_registries"] = l.rng(l.deref(e.v))
	}
	if e, ok := es["require_digest"]; ok {
		p.RequireDigest, _ = l.boolean(e.v, "", "spec.require_digest")
		p.Ranges["require_digest"] = l.rng(l.deref(e.v))
	}
	if e, ok := es["nomad"]; ok {
		l.nomad(p, e)
	}
	if e, ok := es["kubernetes"]; ok {
		l.kubernetes(p, e)
	}
	if e, ok := es["backend"]; ok {
		l.backend(p, e)
	}
	if e, ok := es["image_policy"]; ok {
		p.ImagePolicy = l.imagePolicy(p.Ranges, "", "spec.image_policy", e)
	}
	if e, ok := es["control_plane"]; ok {
		p.ControlPlane, _ = l.str(e.v, "", "spec.control_plane")
		p.Ranges["control_plane"] = l.rng(l.deref(e.v))
	}
	if e, ok := es["auth"]; ok {
		p.Auth, _ = l.str(e.v, "", "spec.auth")
		p.Ranges["auth"] = l.rng(l.deref(e.v))
	}
	if e, ok := es["config"]; ok {
		cfg, kept := l.configMap(e.v, "", "spec.config")
		if len(cfg) > 0 {
			p.Config = cfg
		}
		for _, k := range kept {
			p.Ranges["config."+k.key] = l.rng(l.deref(k.v))
		}
	}
	for _, list := range ylComponentLists {
		e, ok := es[list.key]
		if !ok {
			continue
		}
		seq := l.deref(e.v)
		if ylIsNull(seq) {
			continue
		}
		if seq.Kind != yaml.SequenceNode {
			l.wrongType(seq, "", "spec."+list.key, "a list of components")
			continue
		}
		for i, item := range seq.Content {
			if c := l.component(list.kind, list.key, i, item); c != nil {
				p.Components = append(p.Components, c)
			}
		}
	}
}

// configMap reads a config map into strings (ConfigValueString), keeping
// each key's entry for its range.
func (l *yamlLoader) configMap(n *yaml.Node, who, field string) (map[string]string, []ylEntry) {
	m := l.mapping(n, who, field, "a map")
	if m == nil || !l.enter(m, n) {
		return nil, nil
	}
	defer l.leave(m)
	out := map[string]string{}
	var kept []ylEntry
	for _, e := range l.entries(m, who, 0) {
		v, ok := l.toAny(e.v, who, 1)
		if !ok {
			continue
		}
		s, err := ConfigValueString(v)
		if err != nil {
			l.diags = append(l.diags, errorf(l.rng(l.deref(e.v)), "Invalid config value", "%s%s.%s: %v", ylPrefix(who), field, e.key, err))
			continue
		}
		out[e.key] = s
		kept = append(kept, e)
	}
	return out, kept
}

// resolveRefs turns the ids in inputs and depends_on into addresses, now
// that every component of the file is known. An entry already written as an
// address stays; an unknown id stays as written, for Validate to report.
// Lists are stored sorted and deduplicated, as normalisation would leave
// them, so that "inputs.N" keeps naming the range of c.Inputs[N].
func (l *yamlLoader) resolveRefs(p *Pipeline) {
	byID := map[string]string{}
	for _, c := range p.Components {
		if _, taken := byID[c.ID]; !taken && c.ID != "" {
			byID[c.ID] = c.Address()
		}
	}
	for _, r := range l.refs {
		first := map[string]int{}
		var out []string
		for i, id := range r.ids {
			addr := id
			if _, _, ok := ParseAddress(id); !ok {
				if a, known := byID[id]; known {
					addr = a
				}
			}
			if j, dup := first[addr]; dup {
				l.diags = append(l.diags, warnf(l.rng(r.nodes[i]), "Duplicate entry",
					"%s: %s lists %s twice (first at line %d)", r.c.Address(), r.attr, id, r.nodes[j].Line))
				continue
			}
			first[addr] = i
			out = append(out, addr)
		}
		sort.Strings(out)
		for i, addr := range out {
			r.c.Ranges[fmt.Sprintf("%s.%d", r.attr, i)] = l.rng(r.nodes[first[addr]])
		}
		if r.attr == "inputs" {
			r.c.Inputs = out
		} else {
			r.c.DependsOn = out
		}
	}
}
