package config

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"gopkg.in/yaml.v3"
)

// The YAML node reader: what any YAML schema needs from yaml.v3 nodes,
// whatever the document means. It keeps every value's position (line,
// column, byte offset) for diagnostics, follows aliases and merge keys
// within bounds a hostile document cannot exceed, reports values of the
// wrong type, duplicate keys and unknown keys (with a suggestion), and
// reads scalars, lists and maps into Go values. The flowctl/v1 schema that
// uses it is in yaml_pipeline.go and yaml_component.go.

// Real pipelines are a few levels deep and a few hundred values long; these
// bounds only stop hostile documents (alias bombs, anchors that contain
// themselves) from costing more.
const (
	ylMaxDepth = 1000
	ylMaxSteps = 1 << 18
)

// ylNodes reads the nodes of one YAML file and collects the diagnostics
// about them.
type ylNodes struct {
	file  string
	src   []byte
	lines []int // byte offset at which each line starts
	diags hcl.Diagnostics

	steps     int                 // nodes visited, bounded by ylMaxSteps
	exhausted bool                // a bound was hit and reported: stop expanding
	active    map[*yaml.Node]bool // collections being read, to catch recursive aliases
	reported  map[*yaml.Node]bool // recursive aliases already reported
}

// ylEntry is one key/value pair of a mapping.
type ylEntry struct {
	key  string
	k, v *yaml.Node
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

func (y *ylNodes) syntaxError(err error) {
	line, text := y.errorPos(err)
	d := &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid YAML", Detail: text}
	if line > 0 {
		r := y.at(line, 1)
		d.Subject = &r
	} else {
		d.Detail = y.file + ": " + text
	}
	y.diags = append(y.diags, d)
}

var (
	ylErrLine      = regexp.MustCompile(`(?s)^yaml: line (\d+): (.*)$`)
	ylUnknownAlias = regexp.MustCompile(`^yaml: unknown anchor '(.*)' referenced$`)
)

// errorPos turns a yaml.v3 error into a 1-based line (0 when unknown) and
// the message without its "yaml: line N:" prefix. yaml.v3 numbers lines
// from 1 in scanner errors but from 0 in parser errors ("did not find
// expected ..."), and leaves the line out altogether when it is 0.
func (y *ylNodes) errorPos(err error) (int, string) {
	msg := err.Error()
	if m := ylUnknownAlias.FindStringSubmatch(msg); m != nil {
		text := strings.TrimPrefix(msg, "yaml: ")
		if i := bytes.Index(y.src, []byte("*"+m[1])); i >= 0 {
			return bytes.Count(y.src[:i], []byte("\n")) + 1, text
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

func (y *ylNodes) indexLines() {
	y.lines = []int{0}
	for i, b := range y.src {
		if b == '\n' {
			y.lines = append(y.lines, i+1)
		}
	}
}

// pos converts yaml.v3's line and column (1-based, counted in characters)
// into an hcl.Pos with its byte offset.
func (y *ylNodes) pos(line, col int) hcl.Pos {
	p := hcl.Pos{Line: line, Column: col}
	if line < 1 || line > len(y.lines) {
		return p
	}
	off := y.lines[line-1]
	for i := 1; i < col && off < len(y.src) && y.src[off] != '\n'; i++ {
		_, size := utf8.DecodeRune(y.src[off:])
		off += size
	}
	p.Byte = off
	return p
}

func (y *ylNodes) at(line, col int) hcl.Range {
	p := y.pos(line, col)
	return hcl.Range{Filename: y.file, Start: p, End: p}
}

// rng is the range of n: its start, and for a scalar written on one line its
// whole text.
func (y *ylNodes) rng(n *yaml.Node) hcl.Range {
	r := y.at(n.Line, n.Column)
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
	if text != "" && r.Start.Line >= 1 && start+len(text) <= len(y.src) && string(y.src[start:start+len(text)]) == text {
		r.End = hcl.Pos{Line: r.Start.Line, Column: r.Start.Column + utf8.RuneCountInString(text), Byte: start + len(text)}
	}
	return r
}

// deref follows an alias to the node it names. It never returns nil.
func (y *ylNodes) deref(n *yaml.Node) *yaml.Node {
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
func (y *ylNodes) step(n *yaml.Node, depth, cost int) bool {
	y.steps += cost
	if y.exhausted {
		return false
	}
	switch {
	case depth > ylMaxDepth:
		y.diags = append(y.diags, errorf(y.rng(n), "Document too complex", "values nest more than %d levels deep here; no pipeline needs that", ylMaxDepth))
	case y.steps > ylMaxSteps:
		y.diags = append(y.diags, errorf(y.rng(n), "Document too complex", "with its aliases expanded, the document holds more than %d values by here; no pipeline needs that", ylMaxSteps))
	default:
		return true
	}
	y.exhausted = true
	return false
}

// enter marks collection n as being read, and reports an alias that leads
// back into a collection that contains it. leave undoes enter.
func (y *ylNodes) enter(n, via *yaml.Node) bool {
	if y.active == nil {
		y.active = map[*yaml.Node]bool{}
	}
	if y.active[n] {
		if !y.reported[via] {
			if y.reported == nil {
				y.reported = map[*yaml.Node]bool{}
			}
			y.reported[via] = true
			detail := fmt.Sprintf("alias *%s refers to the anchor &%s, which contains the alias itself", via.Value, n.Anchor)
			if via.Kind != yaml.AliasNode {
				detail = "an alias makes this value contain itself"
			}
			y.diags = append(y.diags, errorf(y.rng(via), "Recursive alias", "%s", detail))
		}
		return false
	}
	y.active[n] = true
	return true
}

func (y *ylNodes) leave(n *yaml.Node) { delete(y.active, n) }

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
func (y *ylNodes) wrongType(n *yaml.Node, who, field, want string) {
	y.diags = append(y.diags, errorf(y.rng(n), "Wrong type", "%s%s must be %s, got %s", ylPrefix(who), field, want, ylDescribe(n)))
}

// entries returns the pairs of mapping m in file order, with merge keys
// (<<) expanded, explicit keys winning over merged ones. A key given twice
// is an error; the first one counts.
func (y *ylNodes) entries(m *yaml.Node, who string, depth int) []ylEntry {
	if !y.step(m, depth, 1+len(m.Content)/2) {
		return nil
	}
	var out, merged []ylEntry
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := y.deref(m.Content[i]), m.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merged = append(merged, y.merge(v, who, depth+1)...)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			y.diags = append(y.diags, errorf(y.rng(k), "Invalid key", "%skeys must be plain strings, got %s", ylPrefix(who), ylDescribe(k)))
			continue
		}
		if prev, dup := seen[k.Value]; dup {
			y.diags = append(y.diags, errorf(y.rng(k), "Duplicate key", "%skey %q is already given at line %d; give each key once", ylPrefix(who), k.Value, prev.Line))
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
func (y *ylNodes) merge(v *yaml.Node, who string, depth int) []ylEntry {
	target := y.deref(v)
	if v.Kind == yaml.AliasNode {
		if !y.enter(target, v) {
			return nil
		}
		defer y.leave(target)
	}
	switch target.Kind {
	case yaml.MappingNode:
		return y.entries(target, who, depth)
	case yaml.SequenceNode:
		var out []ylEntry
		seen := map[string]bool{}
		for _, item := range target.Content {
			m := y.deref(item)
			if m.Kind != yaml.MappingNode {
				y.wrongType(m, who, "<<", "a map or a list of maps")
				continue
			}
			if item.Kind == yaml.AliasNode {
				if !y.enter(m, item) {
					continue
				}
			}
			for _, e := range y.entries(m, who, depth+1) {
				if !seen[e.key] {
					seen[e.key] = true
					out = append(out, e)
				}
			}
			if item.Kind == yaml.AliasNode {
				y.leave(m)
			}
		}
		return out
	}
	y.wrongType(target, who, "<<", "a map or a list of maps")
	return nil
}

// fields reads mapping n, whose known keys are keys: it returns the known
// entries by key, reports a near miss of a known key (ylSuggest) as an error
// and warns about every other key. section names n within who
// ("health", "ports[0]"), or is empty at who's top.
func (y *ylNodes) fields(n *yaml.Node, who, section string, keys []string) map[string]ylEntry {
	out := map[string]ylEntry{}
	for _, e := range y.entries(n, who, 0) {
		if slices.Contains(keys, e.key) {
			out[e.key] = e
			continue
		}
		in := ""
		if section != "" {
			in = " in " + section
		}
		// A near miss of a known key is a typo whose value would be lost
		// (a misspelt "sinks" drops every sink): an error. A key far from
		// every known one is someone else's extension: a warning.
		if s := ylSuggest(e.key, keys); s != "" {
			y.diags = append(y.diags, errorf(y.rng(e.k), "Misspelt key",
				"%sunknown key %q%s; did you mean %q?", ylPrefix(who), e.key, in, s))
			continue
		}
		y.diags = append(y.diags, warnf(y.rng(e.k), "Unknown key",
			"%sunknown key %q%s is ignored", ylPrefix(who), e.key, in))
	}
	return out
}

// ylSuggest returns the known key closest to key, if it is a likely typo: one
// that differs only in case, or within two edits (case-insensitive) that are
// fewer than key's length (so "x" is not a typo of "id").
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
func (y *ylNodes) mapping(n *yaml.Node, who, field, want string) *yaml.Node {
	n = y.deref(n)
	switch {
	case n.Kind == yaml.MappingNode:
		return n
	case ylIsNull(n):
	default:
		y.wrongType(n, who, field, want)
	}
	return nil
}

// str reads a string; numbers and booleans count as the text they were
// written as. ok is false for null and for a wrong type (reported).
func (y *ylNodes) str(n *yaml.Node, who, field string) (string, bool) {
	n = y.deref(n)
	switch {
	case ylIsNull(n):
		return "", false
	case n.Kind == yaml.ScalarNode:
		return n.Value, true
	}
	y.wrongType(n, who, field, "a string")
	return "", false
}

func (y *ylNodes) integer(n *yaml.Node, who, field string) (int, bool) {
	n = y.deref(n)
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
			y.diags = append(y.diags, errorf(y.rng(n), "Wrong type", "%s%s must be a whole number, got %s, which is too large", ylPrefix(who), field, ylDescribe(n)))
			return 0, false
		case "!!float":
			if ylLooksInteger(n.Value) {
				y.diags = append(y.diags, errorf(y.rng(n), "Wrong type", "%s%s must be a whole number, got %s, which is too large", ylPrefix(who), field, ylDescribe(n)))
				return 0, false
			}
		}
	}
	y.wrongType(n, who, field, "a whole number")
	return 0, false
}

// atLeastOne reads a count that must be at least 1. Zero is "unset" in the
// model and normalisation would turn it into the default, so an explicit
// zero is reported here; negative counts are left to Validate.
func (y *ylNodes) atLeastOne(n *yaml.Node, who, field string) (int, bool) {
	v, ok := y.integer(n, who, field)
	if ok && v == 0 {
		y.diags = append(y.diags, errorf(y.rng(y.deref(n)), "Invalid "+field[strings.LastIndex(field, ".")+1:],
			"%s: %s 0: must be at least 1", who, field))
	}
	return v, ok
}

func ylLooksInteger(s string) bool {
	s = strings.TrimLeft(s, "+-")
	return s != "" && strings.Trim(s, "0123456789_") == ""
}

func (y *ylNodes) number(n *yaml.Node, who, field string) (float64, bool) {
	n = y.deref(n)
	if ylIsNull(n) {
		return 0, false
	}
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") {
		var f float64
		if err := n.Decode(&f); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return f, true
		}
		y.wrongType(n, who, field, "a finite number")
		return 0, false
	}
	y.wrongType(n, who, field, "a number")
	return 0, false
}

// boolean reads true or false; the YAML 1.1 words yes, no, on and off, which
// older tools accepted, count too when unquoted.
func (y *ylNodes) boolean(n *yaml.Node, who, field string) (bool, bool) {
	n = y.deref(n)
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
	y.wrongType(n, who, field, "true or false")
	return false, false
}

func (y *ylNodes) duration(n *yaml.Node, who, field string) (Duration, bool) {
	n = y.deref(n)
	if ylIsNull(n) {
		return 0, false
	}
	if n.Kind != yaml.ScalarNode {
		y.wrongType(n, who, field, `a duration such as "10s"`)
		return 0, false
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		y.diags = append(y.diags, errorf(y.rng(n), "Invalid duration", "%s%s %q is not a duration; write a number and a unit, like \"10s\", \"1m30s\" or \"500ms\"", ylPrefix(who), field, n.Value))
		return 0, false
	}
	return Duration(d), true
}

// strList reads a list of strings; single lets one string stand for a list
// of one. It returns the item nodes alongside, for their ranges.
func (y *ylNodes) strList(n *yaml.Node, who, field string, single bool) ([]string, []*yaml.Node, bool) {
	n = y.deref(n)
	switch {
	case ylIsNull(n):
		return nil, nil, false
	case n.Kind == yaml.ScalarNode && single:
		return []string{n.Value}, []*yaml.Node{n}, true
	case n.Kind != yaml.SequenceNode:
		y.wrongType(n, who, field, "a list of strings")
		return nil, nil, false
	}
	if !y.step(n, 0, 1+len(n.Content)) {
		return nil, nil, false
	}
	var out []string
	var nodes []*yaml.Node
	ok := true
	for i, item := range n.Content {
		item = y.deref(item)
		if item.Kind != yaml.ScalarNode || ylIsNull(item) {
			y.wrongType(item, who, fmt.Sprintf("%s[%d]", field, i), "a string")
			ok = false
			continue
		}
		out = append(out, item.Value)
		nodes = append(nodes, item)
	}
	return out, nodes, ok
}

// strMap reads a map of strings (labels, annotations, env).
func (y *ylNodes) strMap(n *yaml.Node, who, field string) (map[string]string, []ylEntry) {
	m := y.mapping(n, who, field, "a map of strings")
	if m == nil {
		return nil, nil
	}
	out := map[string]string{}
	var kept []ylEntry
	for _, e := range y.entries(m, who, 0) {
		v := y.deref(e.v)
		switch {
		case ylIsNull(v):
			out[e.key] = ""
		case v.Kind == yaml.ScalarNode:
			out[e.key] = v.Value
		default:
			y.wrongType(v, who, field+"."+e.key, "a string, number or boolean")
			continue
		}
		kept = append(kept, e)
	}
	return out, kept
}

// toAny converts a free-form value (config) into plain Go values:
// scalars by their YAML type, lists and maps as they are.
func (y *ylNodes) toAny(v *yaml.Node, who string, depth int) (any, bool) {
	n := y.deref(v)
	if !y.step(n, depth, 1) {
		return nil, false
	}
	if n.Kind == yaml.ScalarNode {
		return ylScalar(n), true
	}
	if !y.enter(n, v) {
		return nil, false
	}
	defer y.leave(n)
	switch n.Kind {
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, item := range n.Content {
			x, ok := y.toAny(item, who, depth+1)
			if !ok {
				return nil, false
			}
			out = append(out, x)
		}
		return out, true
	case yaml.MappingNode:
		out := map[string]any{}
		for _, e := range y.entries(n, who, depth) {
			x, ok := y.toAny(e.v, who, depth+1)
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

// pick returns the entry of the first of names that is present. names are
// spellings of one field (driver and executor, hostPort and host_port):
// giving two that disagree is an error.
func (y *ylNodes) pick(es map[string]ylEntry, who, section string, names ...string) (ylEntry, bool) {
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
		a, b := y.deref(first.v), y.deref(e.v)
		if a.Kind == yaml.ScalarNode && b.Kind == yaml.ScalarNode && a.Value == b.Value {
			continue
		}
		y.diags = append(y.diags, errorf(y.rng(e.k), "Conflicting keys",
			"%s%s and %s are the same field and disagree (%s, %s); give one of them",
			ylPrefix(who), section+first.key, section+e.key, ylDescribe(a), ylDescribe(b)))
	}
	return first, found
}

// rawKey returns the value of key in mapping m as written, without merges.
func (y *ylNodes) rawKey(m *yaml.Node, key string) (*yaml.Node, bool) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := y.deref(m.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			return y.deref(m.Content[i+1]), true
		}
	}
	return nil, false
}
