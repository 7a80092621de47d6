package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"gopkg.in/yaml.v3"
)

// The flowctl/v1 YAML format is the one the ecosystem writes today (COMPAT.md,
// "Pipeline YAML in the wild"). flowctl reads every field seen in real files
// and adds the few it needs for a YAML file to say everything HCL can:
// executor per component, stop_timeout, and health and restart maps.
//
// The loader works on yaml.Node so that every value keeps its line and
// column. It fills the model as written: defaults, normalisation and
// validation happen in LoadBytes, identically for YAML and HCL.
//
// Package-level names here start with "yl" (YAML loader), apart from the
// writer's "yaml" ones in the same package.

const (
	ylAPIVersion = "flowctl/v1"
	ylKind       = "Pipeline"

	// Real pipelines are a few levels deep and a few hundred values long;
	// these bounds only stop hostile documents (alias bombs, anchors that
	// contain themselves) from costing more.
	ylMaxDepth = 1000
	ylMaxSteps = 1 << 18
)

// Keys each map of the format knows, in the order suggestions prefer them.
var (
	ylTopKeys       = []string{"apiVersion", "kind", "metadata", "spec"}
	ylMetadataKeys  = []string{"name", "namespace", "labels", "annotations", "description"}
	ylSpecKeys      = []string{"description", "driver", "executor", "sources", "processors", "sinks", "config", "component_registry", "trusted_registries", "require_digest", "nomad", "control_plane", "auth"}
	ylComponentKeys = []string{
		"id", "type", "config", "image", "command", "args", "env", "inputs", "depends_on",
		"health_port", "health_check", "health_endpoint", "replicas", "register", "volumes", "restart_policy",
		"ports", "secrets", "resources", "input_event_types", "output_event_types",
		"executor", "driver", "stop_timeout", "health", "restart", "pull", "image_id",
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
	l := &yamlLoader{file: filename, src: src}
	l.indexLines()
	root := l.parse()
	if root == nil {
		return nil, l.diags
	}
	p := l.pipeline(root)
	return p, l.diags
}

type yamlLoader struct {
	file  string
	src   []byte
	lines []int // byte offset at which each line starts
	diags hcl.Diagnostics

	steps     int                 // nodes visited, bounded by ylMaxSteps
	exhausted bool                // a bound was hit and reported: stop expanding
	active    map[*yaml.Node]bool // collections being read, to catch recursive aliases
	reported  map[*yaml.Node]bool // recursive aliases already reported

	refs []ylRefList // inputs and depends_on, resolved once every id is known
}

// ylRefList is an inputs or depends_on list as written: ids or addresses.
type ylRefList struct {
	c     *Component
	attr  string
	ids   []string
	nodes []*yaml.Node
}

// ylEntry is one key/value pair of a mapping.
type ylEntry struct {
	key  string
	k, v *yaml.Node
}

// --- parsing and positions ---

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

// ylDecode decodes the next document. yaml.v3 reports errors by panicking
// internally and recovering; a panic that escapes it is a parser bug, and
// still only means a file that cannot be read.
func ylDecode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: the YAML parser failed: %v", r)
		}
	}()
	return dec.Decode(n)
}

func (l *yamlLoader) syntaxError(err error) {
	line, text := l.errorPos(err)
	d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid YAML", Detail: text}
	if line > 0 {
		r := l.at(line, 1)
		d.Subject = &r
	} else {
		d.Detail = l.file + ": " + text
	}
	l.diags = append(l.diags, d)
}

var (
	ylErrLine      = regexp.MustCompile(`(?s)^yaml: line (\d+): (.*)$`)
	ylUnknownAlias = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)
)

// errorPos turns a yaml.v3 error into a 1-based line (0 when unknown) and
// the message without its "yaml: line N:" prefix. yaml.v3 numbers lines
// from 1 in scanner errors but from 0 in parser errors ("did not find
// expected ..."), and leaves the line out altogether when it is 0.
func (l *yamlLoader) errorPos(err error) (int, string) {
	msg := err.Error()
	if m := ylUnknownAlias.FindStringSubmatch(msg); m != nil {
		text := strings.TrimPrefix(msg, "yaml: ")
		if i := bytes.Index(l.src, []byte("*"+m[1])); i >= 0 {
			return bytes.Count(l.src[:i], []byte("\n")) + 1, text
		}
		return 0, text
	}
	line, text := 0, strings.TrimPrefix(msg, "yaml: ")
	if m := ylErrLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		text = m[2]
	}
	parserError := false
	for _, prefix := range []string{"did not find expected", "found duplicate %", "found incompatible YAML document", "found undefined tag handle"} {
		parserError = parserError || strings.HasPrefix(text, prefix)
	}
	switch {
	case parserError:
		line++
	case line == 0 && (strings.HasPrefix(text, "found ") || strings.HasPrefix(text, "could not find") ||
		strings.HasPrefix(text, "mapping values") || strings.HasPrefix(text, "block sequence entries")):
		line = 1
	}
	return line, text
}

func (l *yamlLoader) indexLines() {
	l.lines = []int{0}
	for i, b := range l.src {
		if b == '\n' {
			l.lines = append(l.lines, i+1)
		}
	}
}

// pos converts yaml.v3's line and column (1-based, counted in characters)
// into an hcl.Pos with its byte offset.
func (l *yamlLoader) pos(line, col int) hcl.Pos {
	p := hcl.Pos{Line: line, Column: col}
	if line < 1 || line > len(l.lines) {
		return p
	}
	off := l.lines[line-1]
	for i := 1; i < col && off < len(l.src) && l.src[off] != '\n'; i++ {
		_, size := utf8.DecodeRune(l.src[off:])
		off += size
	}
	p.Byte = off
	return p
}

func (l *yamlLoader) at(line, col int) hcl.Range {
	p := l.pos(line, col)
	return hcl.Range{Filename: l.file, Start: p, End: p}
}

// rng is the range of n: its start, and for a scalar written on one line its
// whole text.
func (l *yamlLoader) rng(n *yaml.Node) hcl.Range {
	r := l.at(n.Line, n.Column)
	if n.Kind != yaml.ScalarNode {
		return r
	}
	text := n.Value
	switch n.Style {
	case yaml.DoubleQuotedStyle:
		text = `"` + text + `"`
	case yaml.SingleQuotedStyle:
		text = "'" + text + "'"
	case 0, yaml.TaggedStyle:
	default:
		return r
	}
	start := r.Start.Byte
	if text != "" && r.Start.Line >= 1 && start+len(text) <= len(l.src) && string(l.src[start:start+len(text)]) == text {
		r.End = hcl.Pos{Line: r.Start.Line, Column: r.Start.Column + utf8.RuneCountInString(text), Byte: start + len(text)}
	}
	return r
}

// deref follows an alias to the node it names. It never returns nil.
func (l *yamlLoader) deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < ylMaxDepth; i++ {
		n = n.Alias
	}
	if n == nil || n.Kind == yaml.AliasNode {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	return n
}

// step counts a visited node and reports, once, a document that nests or
// whose aliases expand beyond any real pipeline.
func (l *yamlLoader) step(n *yaml.Node, depth, cost int) bool {
	l.steps += cost
	if l.exhausted {
		return false
	}
	switch {
	case depth > ylMaxDepth:
		l.diags = append(l.diags, errorf(l.rng(n), "Document too complex", "values nest more than %d levels deep here; no pipeline needs that", ylMaxDepth))
	case l.steps > ylMaxSteps:
		l.diags = append(l.diags, errorf(l.rng(n), "Document too complex", "with its aliases expanded, the document holds more than %d values by here; no pipeline needs that", ylMaxSteps))
	default:
		return true
	}
	l.exhausted = true
	return false
}

// enter marks collection n as being read, and reports an alias that leads
// back into a collection that contains it. leave undoes enter.
func (l *yamlLoader) enter(n, via *yaml.Node) bool {
	if l.active == nil {
		l.active = map[*yaml.Node]bool{}
	}
	if l.active[n] {
		if !l.reported[via] {
			if l.reported == nil {
				l.reported = map[*yaml.Node]bool{}
			}
			l.reported[via] = true
			detail := fmt.Sprintf("alias *%s refers to the anchor &%s, which contains the alias itself", via.Value, n.Anchor)
			if via.Kind != yaml.AliasNode {
				detail = "an alias makes this value contain itself"
			}
			l.diags = append(l.diags, errorf(l.rng(via), "Recursive alias", "%s", detail))
		}
		return false
	}
	l.active[n] = true
	return true
}

func (l *yamlLoader) leave(n *yaml.Node) { delete(l.active, n) }

// --- generic readers ---

func ylIsNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// ylDescribe names a node's type and value for a diagnostic.
func ylDescribe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		v := n.Value
		if utf8.RuneCountInString(v) > 40 {
			v = string([]rune(v)[:40]) + "..."
		}
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "boolean " + v
		case "!!int", "!!float":
			return "number " + v
		case "!!str":
			return fmt.Sprintf("string %q", v)
		default:
			return fmt.Sprintf("%s %q", n.ShortTag(), v)
		}
	}
	return "nothing"
}

func ylPrefix(who string) string {
	if who == "" {
		return ""
	}
	return who + ": "
}

// wrongType reports a value of the wrong type; field is the key as the user
// wrote it, with its parents ("health.port", "ports[0].hostPort").
func (l *yamlLoader) wrongType(n *yaml.Node, who, field, want string) {
	l.diags = append(l.diags, errorf(l.rng(n), "Wrong type", "%s%s must be %s, got %s", ylPrefix(who), field, want, ylDescribe(n)))
}

// entries returns the pairs of mapping m in file order, with merge keys
// (<<) expanded, explicit keys winning over merged ones. A key given twice
// is an error; the first one counts.
func (l *yamlLoader) entries(m *yaml.Node, who string, depth int) []ylEntry {
	if !l.step(m, depth, 1+len(m.Content)/2) {
		return nil
	}
	var out, merged []ylEntry
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := l.deref(m.Content[i]), m.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, l.merge(v, who, depth+1)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			l.diags = append(l.diags, errorf(l.rng(k), "Invalid key", "%skeys must be plain strings, got %s", ylPrefix(who), ylDescribe(k)))
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			l.diags = append(l.diags, errorf(l.rng(k), "Duplicate key", "%skey %q is already given at line %d; give each key once", ylPrefix(who), k.Value, prev.Line))
			continue
		}
		seen[k.Value] = k
		out = append(out, ylEntry{key: k.Value, k: k, v: v})
	}
	for _, e := range merged {
		if _, ok := seen[e.key]; !ok {
			seen[e.key] = e.k
			out = append(out, e)
		}
	}
	return out
}

// merge returns the pairs a merge key brings in: a map, or a list of maps of
// which the earlier win.
func (l *yamlLoader) merge(v *yaml.Node, who string, depth int) []ylEntry {
	target := l.deref(v)
	if v.Kind == yaml.AliasNode {
		if !l.enter(target, v) {
			return nil
		}
		defer l.leave(target)
	}
	switch target.Kind {
	case yaml.MappingNode:
		return l.entries(target, who, depth)
	case yaml.SequenceNode:
		var out []ylEntry
		seen := map[string]bool{}
		for _, item := range target.Content {
			m := l.deref(item)
			if m.Kind != yaml.MappingNode {
				l.wrongType(m, who, "<<", "a map or a list of maps")
				continue
			}
			if item.Kind == yaml.AliasNode {
				if !l.enter(m, item) {
					continue
				}
			}
			for _, e := range l.entries(m, who, depth+1) {
				if !seen[e.key] {
					seen[e.key] = true
					out = append(out, e)
				}
			}
			if item.Kind == yaml.AliasNode {
				l.leave(m)
			}
		}
		return out
	}
	l.wrongType(target, who, "<<", "a map or a list of maps")
	return nil
}

// fields reads mapping n, whose known keys are keys: it returns the known
// entries by key and warns about every other key. section names n within who
// ("health", "ports[0]"), or is empty at who's top.
func (l *yamlLoader) fields(n *yaml.Node, who, section string, keys []string) map[string]ylEntry {
	out := map[string]ylEntry{}
	for _, e := range l.entries(n, who, 0) {
		if slices.Contains(keys, e.key) {
			out[e.key] = e
			continue
		}
		in := ""
		if section != "" {
			in = " in " + section
		}
		detail := fmt.Sprintf("%sunknown key %q%s is ignored", ylPrefix(who), e.key, in)
		if s := ylSuggest(e.key, keys); s != "" {
			detail += fmt.Sprintf("; did you mean %q?", s)
		}
		l.diags = append(l.diags, warnf(l.rng(e.k), "Unknown key", "%s", detail))
	}
	return out
}

// ylSuggest returns the known key closest to key, if it is a likely typo.
func ylSuggest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		if strings.EqualFold(k, key) {
			return k
		}
		d := levenshtein.Distance(strings.ToLower(key), strings.ToLower(k), nil)
		if d < bestDist && d < utf8.RuneCountInString(key) {
			best, bestDist = k, d
		}
	}
	return best
}

// mapping returns n as a mapping node, or reports it and returns nil. A null
// value is an absent one.
func (l *yamlLoader) mapping(n *yaml.Node, who, field, want string) *yaml.Node {
	n = l.deref(n)
	switch {
	case n.Kind == yaml.MappingNode:
		return n
	case ylIsNull(n):
	default:
		l.wrongType(n, who, field, want)
	}
	return nil
}

// str reads a string; numbers and booleans count as the text they were
// written as. ok is false for null and for a wrong type (reported).
func (l *yamlLoader) str(n *yaml.Node, who, field string) (string, bool) {
	n = l.deref(n)
	switch {
	case ylIsNull(n):
		return "", false
	case n.Kind == yaml.ScalarNode:
		return n.Value, true
	}
	l.wrongType(n, who, field, "a string")
	return "", false
}

func (l *yamlLoader) integer(n *yaml.Node, who, field string) (int, bool) {
	n = l.deref(n)
	if ylIsNull(n) {
		return 0, false
	}
	if n.Kind == yaml.ScalarNode {
		switch n.ShortTag() {
		case "!!int":
			var i int64
			if err := n.Decode(&i); err == nil && i >= math.MinInt && i <= math.MaxInt {
				return int(i), true
			}
			l.diags = append(l.diags, errorf(l.rng(n), "Wrong type", "%s%s must be a whole number, got %s, which is too large", ylPrefix(who), field, ylDescribe(n)))
			return 0, false
		case "!!float":
			if ylLooksInteger(n.Value) {
				l.diags = append(l.diags, errorf(l.rng(n), "Wrong type", "%s%s must be a whole number, got %s, which is too large", ylPrefix(who), field, ylDescribe(n)))
				return 0, false
			}
		}
	}
	l.wrongType(n, who, field, "a whole number")
	return 0, false
}

// atLeastOne reads a count that must be at least 1. Zero is "unset" in the
// model and normalisation would turn it into the default, so an explicit
// zero is reported here; negative counts are left to Validate.
func (l *yamlLoader) atLeastOne(n *yaml.Node, who, field string) (int, bool) {
	v, ok := l.integer(n, who, field)
	if ok && v == 0 {
		l.diags = append(l.diags, errorf(l.rng(l.deref(n)), "Invalid "+field[strings.LastIndex(field, ".")+1:],
			"%s: %s 0: must be at least 1", who, field))
	}
	return v, ok
}

func ylLooksInteger(s string) bool {
	s = strings.TrimLeft(s, "+-")
	return s != "" && strings.Trim(s, "0123456789_") == ""
}

func (l *yamlLoader) number(n *yaml.Node, who, field string) (float64, bool) {
	n = l.deref(n)
	if ylIsNull(n) {
		return 0, false
	}
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") {
		var f float64
		if err := n.Decode(&f); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return f, true
		}
		l.wrongType(n, who, field, "a finite number")
		return 0, false
	}
	l.wrongType(n, who, field, "a number")
	return 0, false
}

// boolean reads true or false; the YAML 1.1 words yes, no, on and off, which
// older tools accepted, count too when unquoted.
func (l *yamlLoader) boolean(n *yaml.Node, who, field string) (bool, bool) {
	n = l.deref(n)
	if ylIsNull(n) {
		return false, false
	}
	if n.Kind == yaml.ScalarNode {
		if n.ShortTag() == "!!bool" {
			var b bool
			if err := n.Decode(&b); err == nil {
				return b, true
			}
		}
		if n.Style == 0 {
			switch strings.ToLower(n.Value) {
			case "yes", "on":
				return true, true
			case "no", "off":
				return false, true
			}
		}
	}
	l.wrongType(n, who, field, "true or false")
	return false, false
}

func (l *yamlLoader) duration(n *yaml.Node, who, field string) (Duration, bool) {
	n = l.deref(n)
	if ylIsNull(n) {
		return 0, false
	}
	if n.Kind != yaml.ScalarNode {
		l.wrongType(n, who, field, `a duration such as "10s"`)
		return 0, false
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		l.diags = append(l.diags, errorf(l.rng(n), "Invalid duration", "%s%s %q is not a duration; write a number and a unit, like \"10s\", \"1m30s\" or \"500ms\"", ylPrefix(who), field, n.Value))
		return 0, false
	}
	return Duration(d), true
}

// strList reads a list of strings; single lets one string stand for a list
// of one. It returns the item nodes alongside, for their ranges.
func (l *yamlLoader) strList(n *yaml.Node, who, field string, single bool) ([]string, []*yaml.Node, bool) {
	n = l.deref(n)
	switch {
	case ylIsNull(n):
		return nil, nil, false
	case n.Kind == yaml.ScalarNode && single:
		return []string{n.Value}, []*yaml.Node{n}, true
	case n.Kind != yaml.SequenceNode:
		l.wrongType(n, who, field, "a list of strings")
		return nil, nil, false
	}
	if !l.step(n, 0, 1+len(n.Content)) {
		return nil, nil, false
	}
	var out []string
	var nodes []*yaml.Node
	ok := true
	for i, item := range n.Content {
		item = l.deref(item)
		if item.Kind != yaml.ScalarNode || ylIsNull(item) {
			l.wrongType(item, who, fmt.Sprintf("%s[%d]", field, i), "a string")
			ok = false
			continue
		}
		out = append(out, item.Value)
		nodes = append(nodes, item)
	}
	return out, nodes, ok
}

// strMap reads a map of strings (labels, annotations, env).
func (l *yamlLoader) strMap(n *yaml.Node, who, field string) (map[string]string, []ylEntry) {
	m := l.mapping(n, who, field, "a map of strings")
	if m == nil {
		return nil, nil
	}
	out := map[string]string{}
	var kept []ylEntry
	for _, e := range l.entries(m, who, 0) {
		v := l.deref(e.v)
		switch {
		case ylIsNull(v):
			out[e.key] = ""
		case v.Kind == yaml.ScalarNode:
			out[e.key] = v.Value
		default:
			l.wrongType(v, who, field+"."+e.key, "a string, number or boolean")
			continue
		}
		kept = append(kept, e)
	}
	return out, kept
}

// toAny converts a free-form value (config) into plain Go values:
// scalars by their YAML type, lists and maps as they are.
func (l *yamlLoader) toAny(v *yaml.Node, who string, depth int) (any, bool) {
	n := l.deref(v)
	if !l.step(n, depth, 1) {
		return nil, false
	}
	if n.Kind == yaml.ScalarNode {
		return ylScalar(n), true
	}
	if !l.enter(n, v) {
		return nil, false
	}
	defer l.leave(n)
	switch n.Kind {
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, item := range n.Content {
			x, ok := l.toAny(item, who, depth+1)
			if !ok {
				return nil, false
			}
			out = append(out, x)
		}
		return out, true
	case yaml.MappingNode:
		out := map[string]any{}
		for _, e := range l.entries(n, who, depth) {
			x, ok := l.toAny(e.v, who, depth+1)
			if !ok {
				return nil, false
			}
			out[e.key] = x
		}
		return out, true
	}
	return nil, true
}

// ylScalar is a scalar's Go value. Numbers that do not fit, and the
// non-finite floats JSON cannot carry, stay the text they were written as.
func ylScalar(n *yaml.Node) any {
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if n.Decode(&b) == nil {
			return b
		}
	case "!!int":
		var i int64
		if n.Decode(&i) == nil {
			return i
		}
		var u uint64
		if n.Decode(&u) == nil {
			return u
		}
	case "!!float":
		var f float64
		if n.Decode(&f) == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return f
		}
	}
	return n.Value
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

// pick returns the entry of the first of names that is present. names are
// spellings of one field (driver and executor, hostPort and host_port):
// giving two that disagree is an error.
func (l *yamlLoader) pick(es map[string]ylEntry, who, section string, names ...string) (ylEntry, bool) {
	var first ylEntry
	found := false
	for _, name := range names {
		e, ok := es[name]
		if !ok {
			continue
		}
		if !found {
			first, found = e, true
			continue
		}
		a, b := l.deref(first.v), l.deref(e.v)
		if a.Kind == yaml.ScalarNode && b.Kind == yaml.ScalarNode && a.Value == b.Value {
			continue
		}
		l.diags = append(l.diags, errorf(l.rng(e.k), "Conflicting keys",
			"%s%s and %s are the same field and disagree (%s, %s); give one of them",
			ylPrefix(who), section+first.key, section+e.key, ylDescribe(a), ylDescribe(b)))
	}
	return first, found
}

// --- the pipeline ---

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

// --- components ---

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
	val := func(e ylEntry) *yaml.Node { return l.deref(e.v) }
	rec := func(attr string, e ylEntry) { c.Ranges[attr] = l.rng(val(e)) }

	if e, ok := es["id"]; ok {
		rec("id", e)
		if v, ok := l.str(e.v, label, "id"); ok {
			c.ID = v
		}
		if c.ID != "" {
			who = c.Address()
		} else if v := val(e); v.Kind == yaml.ScalarNode {
			l.diags = append(l.diags, errorf(l.rng(v), "Missing component id", "%s: id is empty; every %s needs one", label, kind))
		}
	} else {
		hint := ""
		if _, named := l.rawKey(item, "name"); named {
			hint = `; this one has a name, which flowctl/v1 calls "id"`
		}
		l.diags = append(l.diags, errorf(c.DeclRange, "Missing component id", "%s: every %s needs an id%s", label, kind, hint))
	}
	if e, ok := es["type"]; ok {
		rec("type", e)
		if v, ok := l.str(e.v, who, "type"); ok {
			c.Type = v
			if ValidKind(v) && Kind(v) != kind {
				l.diags = append(l.diags, warnf(l.rng(val(e)), "Type does not match list",
					"%s: type says %s, but the component is listed under %s, which makes it a %s", who, v, list, kind))
			}
		}
	}
	if e, ok := l.pick(es, who, "", "executor", "driver"); ok {
		rec("executor", e)
		c.Executor, _ = l.str(e.v, who, e.key)
	}
	if e, ok := es["image"]; ok {
		rec("image", e)
		c.Image, _ = l.str(e.v, who, "image")
	}
	if e, ok := es["image_id"]; ok {
		rec("image_id", e)
		c.ImageID, _ = l.str(e.v, who, "image_id")
	}
	if e, ok := es["pull"]; ok {
		rec("pull", e)
		c.Pull, _ = l.str(e.v, who, "pull")
	}
	if e, ok := es["command"]; ok {
		rec("command", e)
		c.Command, _, _ = l.strList(e.v, who, "command", true)
	}
	if e, ok := es["args"]; ok {
		rec("args", e)
		c.Args, _, _ = l.strList(e.v, who, "args", true)
	}
	if e, ok := es["env"]; ok {
		rec("env", e)
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
		rec("config", e)
		l.componentConfig(c, who, e)
	}
	for _, attr := range []string{"inputs", "depends_on"} {
		e, ok := es[attr]
		if !ok {
			continue
		}
		rec(attr, e)
		if v := val(e); v.Kind != yaml.SequenceNode && !ylIsNull(v) {
			l.wrongType(v, who, attr, "a list of component ids")
			continue
		}
		ids, nodes, _ := l.strList(e.v, who, attr, false)
		l.refs = append(l.refs, ylRefList{c: c, attr: attr, ids: ids, nodes: nodes})
	}
	if e, ok := es["replicas"]; ok {
		rec("replicas", e)
		c.Replicas, _ = l.atLeastOne(e.v, who, "replicas")
	}
	if e, ok := es["register"]; ok {
		rec("register", e)
		c.Register, _ = l.boolean(e.v, who, "register")
	}
	if e, ok := es["stop_timeout"]; ok {
		rec("stop_timeout", e)
		c.StopTimeout, _ = l.duration(e.v, who, "stop_timeout")
	}
	if e, ok := es["secrets"]; ok {
		rec("secrets", e)
		c.Secrets = l.secrets(e.v, who)
	}
	if e, ok := es["input_event_types"]; ok {
		rec("input_event_types", e)
		c.InputEventTypes, _, _ = l.strList(e.v, who, "input_event_types", false)
	}
	if e, ok := es["output_event_types"]; ok {
		rec("output_event_types", e)
		c.OutputEventTypes, _, _ = l.strList(e.v, who, "output_event_types", false)
	}
	if e, ok := es["ports"]; ok {
		rec("ports", e)
		l.ports(c, who, e.v)
	}
	if e, ok := es["volumes"]; ok {
		rec("volumes", e)
		l.volumes(c, who, e.v)
	}
	if e, ok := es["resources"]; ok {
		rec("resources", e)
		l.resources(c, who, e.v)
	}
	l.health(c, who, es)
	l.restart(c, who, es)
	if c.ID == "" {
		// Reported above. Without an id nothing can refer to the component
		// and no message could name it; validating it would only add noise.
		return nil
	}
	return c
}

// rawKey returns the value of key in mapping m as written, without merges.
func (l *yamlLoader) rawKey(m *yaml.Node, key string) (*yaml.Node, bool) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := l.deref(m.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			return l.deref(m.Content[i+1]), true
		}
	}
	return nil, false
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
