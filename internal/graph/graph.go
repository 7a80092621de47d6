// Package graph is the component DAG shared by plan, apply and destroy:
// topological levels for parallel creation, reverse order for teardown, and
// cycle detection that names the cycle. A Diagram draws the same DAG for
// people: as text, Graphviz dot or a Mermaid flowchart.
//
// Edges point downstream, the way data flows: an edge a -> b means b consumes
// from (or depends on) a, so a must be ready before b starts.
package graph

import (
	"fmt"
	"sort"
	"strings"
)

// Graph is an immutable directed graph over string node names.
type Graph struct {
	nodes []string            // sorted
	up    map[string][]string // node -> its upstreams, sorted
	down  map[string][]string // node -> its downstreams, sorted
}

// New builds a graph of nodes whose upstreams are given by upstreams. Edges
// to names that are not nodes are ignored: validation reports them.
func New(nodes []string, upstreams func(node string) []string) *Graph {
	g := &Graph{up: map[string][]string{}, down: map[string][]string{}}
	set := map[string]bool{}
	for _, n := range nodes {
		if !set[n] {
			set[n] = true
			g.nodes = append(g.nodes, n)
		}
	}
	sort.Strings(g.nodes)
	for _, n := range g.nodes {
		seen := map[string]bool{}
		for _, u := range upstreams(n) {
			if !set[u] || seen[u] {
				continue
			}
			seen[u] = true
			g.up[n] = append(g.up[n], u)
			g.down[u] = append(g.down[u], n)
		}
	}
	for _, m := range []map[string][]string{g.up, g.down} {
		for k := range m {
			sort.Strings(m[k])
		}
	}
	return g
}

// Nodes returns every node, sorted.
func (g *Graph) Nodes() []string { return append([]string(nil), g.nodes...) }

// Has reports whether n is a node.
func (g *Graph) Has(n string) bool {
	i := sort.SearchStrings(g.nodes, n)
	return i < len(g.nodes) && g.nodes[i] == n
}

// Upstreams returns the direct upstreams of n, sorted.
func (g *Graph) Upstreams(n string) []string { return append([]string(nil), g.up[n]...) }

// Downstreams returns the direct downstreams of n, sorted.
func (g *Graph) Downstreams(n string) []string { return append([]string(nil), g.down[n]...) }

// Descendants returns every node reachable downstream of n, sorted.
func (g *Graph) Descendants(n string) []string { return g.reach(n, g.down) }

// Ancestors returns every node reachable upstream of n, sorted.
func (g *Graph) Ancestors(n string) []string { return g.reach(n, g.up) }

func (g *Graph) reach(n string, next map[string][]string) []string {
	seen := map[string]bool{}
	stack := append([]string(nil), next[n]...)
	for len(stack) > 0 {
		x := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[x] {
			continue
		}
		seen[x] = true
		stack = append(stack, next[x]...)
	}
	out := make([]string, 0, len(seen))
	for x := range seen {
		out = append(out, x)
	}
	sort.Strings(out)
	return out
}

// CycleError reports a cycle; Path starts and ends at the same node.
type CycleError struct{ Path []string }

func (e *CycleError) Error() string { return "dependency cycle: " + strings.Join(e.Path, " -> ") }

// Cycle returns one cycle as a path in data-flow order that starts and ends
// at the same node (a -> b -> a), or nil when the graph is acyclic. The cycle
// found is deterministic: the search starts from the smallest node.
func (g *Graph) Cycle() []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var found []string
	var visit func(n string) bool
	visit = func(n string) bool {
		color[n] = grey
		stack = append(stack, n)
		for _, d := range g.down[n] {
			switch color[d] {
			case grey:
				i := len(stack) - 1
				for stack[i] != d {
					i--
				}
				found = append(append([]string(nil), stack[i:]...), d)
				return true
			case white:
				if visit(d) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[n] = black
		return false
	}
	for _, n := range g.nodes {
		if color[n] == white && visit(n) {
			return found
		}
	}
	return nil
}

// Levels groups nodes into topological levels: level 0 has no upstreams, and
// every node's upstreams are all in earlier levels. Nodes within a level are
// sorted. It fails with a *CycleError when the graph has a cycle.
func (g *Graph) Levels() ([][]string, error) {
	if c := g.Cycle(); c != nil {
		return nil, &CycleError{Path: c}
	}
	level := map[string]int{}
	var depth func(n string) int
	depth = func(n string) int {
		if l, ok := level[n]; ok {
			return l
		}
		l := 0
		for _, u := range g.up[n] {
			if d := depth(u) + 1; d > l {
				l = d
			}
		}
		level[n] = l
		return l
	}
	var levels [][]string
	for _, n := range g.nodes {
		l := depth(n)
		for len(levels) <= l {
			levels = append(levels, nil)
		}
		levels[l] = append(levels[l], n)
	}
	return levels, nil
}

// Order returns every node in topological order (levels flattened).
func (g *Graph) Order() ([]string, error) {
	levels, err := g.Levels()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range levels {
		out = append(out, l...)
	}
	return out, nil
}

// Reverse returns every node in reverse topological order: downstreams
// before their upstreams, the order of teardown.
func (g *Graph) Reverse() ([]string, error) {
	order, err := g.Order()
	if err != nil {
		return nil, err
	}
	for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
		order[i], order[j] = order[j], order[i]
	}
	return order, nil
}

// Subgraph returns the graph restricted to keep; edges between kept nodes
// remain.
func (g *Graph) Subgraph(keep []string) *Graph {
	set := map[string]bool{}
	for _, k := range keep {
		set[k] = true
	}
	var nodes []string
	for _, n := range g.nodes {
		if set[n] {
			nodes = append(nodes, n)
		}
	}
	return New(nodes, func(n string) []string { return g.up[n] })
}

// String renders the graph one edge per line ("a -> b"), isolated nodes on
// their own, for tests and debugging.
func (g *Graph) String() string {
	var b strings.Builder
	for _, n := range g.nodes {
		if len(g.down[n]) == 0 && len(g.up[n]) == 0 {
			fmt.Fprintf(&b, "%s\n", n)
		}
		for _, d := range g.down[n] {
			fmt.Fprintf(&b, "%s -> %s\n", n, d)
		}
	}
	return b.String()
}
