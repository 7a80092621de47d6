package config

import (
	"bytes"
	"fmt"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
)

// maxHCLNesting bounds how deeply brackets, braces, parentheses, strings and
// template interpolations may nest in an HCL (or JSON) file. The HCL parser
// recurses once per level and a deep enough file would overflow the Go
// stack, which no recover catches; real pipeline files nest a few levels.
const maxHCLNesting = 1000

// hclFrame is one open nesting level seen by checkHCLNesting.
type hclFrame struct {
	open   byte   // '{', '[', '(', '"' (a quoted template), '$' (an interpolation), '<' (a heredoc)
	marker []byte // a heredoc's closing marker
}

// checkHCLNesting scans src, outside comments and string text, for nesting
// deeper than maxHCLNesting, and reports where it goes too deep. It does not
// judge syntax otherwise: the parser does that once the depth is known to be
// safe.
func checkHCLNesting(src []byte, filename string) hcl.Diagnostics {
	s := &nestScan{src: src, line: 1}
	if !s.scan() {
		return nil
	}
	pos := hcl.Pos{Line: s.line, Column: utf8.RuneCount(src[s.lineStart:s.i]) + 1, Byte: s.i}
	end := pos
	end.Column++
	end.Byte++
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Nesting too deep",
		Detail:   fmt.Sprintf("brackets, braces, strings and interpolations nest more than %d levels deep here; flowctl reads no deeper", maxHCLNesting),
		Subject:  &hcl.Range{Filename: filename, Start: pos, End: end},
	}}
}

// nestScan is checkHCLNesting's position in src.
type nestScan struct {
	src       []byte
	i, line   int
	lineStart int
	stack     []hclFrame
}

// scan walks src and reports whether it nests too deeply, leaving i at the
// opening that goes one level too far.
func (s *nestScan) scan() bool {
	for s.i < len(s.src) {
		var deeper bool
		if n := len(s.stack); n > 0 && (s.stack[n-1].open == '"' || s.stack[n-1].open == '<') {
			deeper = s.template()
		} else {
			deeper = s.code()
		}
		if deeper && len(s.stack) > maxHCLNesting {
			return true
		}
	}
	return false
}

func (s *nestScan) push(f hclFrame) bool {
	s.stack = append(s.stack, f)
	return true
}

func (s *nestScan) pop() {
	if len(s.stack) > 0 {
		s.stack = s.stack[:len(s.stack)-1]
	}
}

// advance moves past n bytes, counting lines.
func (s *nestScan) advance(n int) {
	for ; n > 0 && s.i < len(s.src); n-- {
		if s.src[s.i] == '\n' {
			s.line++
			s.lineStart = s.i + 1
		}
		s.i++
	}
}

// code reads one token's worth of expression text; it reports whether it
// opened a level (s.i is then at the opening).
func (s *nestScan) code() bool {
	rest := s.src[s.i:]
	switch c := rest[0]; {
	case c == '{' || c == '[' || c == '(':
		if s.push(hclFrame{open: c}); len(s.stack) > maxHCLNesting {
			return true
		}
	case c == '}' || c == ']' || c == ')':
		s.pop()
	case c == '"':
		if s.push(hclFrame{open: '"'}); len(s.stack) > maxHCLNesting {
			return true
		}
	case c == '#' || bytes.HasPrefix(rest, []byte("//")):
		s.skipPast([]byte("\n"))
		return false
	case bytes.HasPrefix(rest, []byte("/*")):
		s.advance(2)
		s.skipPast([]byte("*/"))
		return false
	case bytes.HasPrefix(rest, []byte("<<")):
		if m, n := heredocMarker(rest); m != nil {
			if s.push(hclFrame{open: '<', marker: m}); len(s.stack) > maxHCLNesting {
				return true
			}
			s.advance(n)
			return false
		}
	}
	s.advance(1)
	return false
}

// template reads one piece of a quoted string or heredoc body.
func (s *nestScan) template() bool {
	top := s.stack[len(s.stack)-1]
	rest := s.src[s.i:]
	switch {
	case top.open == '"' && rest[0] == '\\':
		s.advance(2)
		return false
	case top.open == '"' && rest[0] == '"':
		s.pop()
	case bytes.HasPrefix(rest, []byte("$${")) || bytes.HasPrefix(rest, []byte("%%{")):
		s.advance(3)
		return false
	case bytes.HasPrefix(rest, []byte("${")) || bytes.HasPrefix(rest, []byte("%{")):
		if s.push(hclFrame{open: '$'}); len(s.stack) > maxHCLNesting {
			return true
		}
		s.advance(2)
		return false
	case top.open == '<' && rest[0] == '\n':
		s.advance(1)
		line := s.src[s.i:]
		if j := bytes.IndexByte(line, '\n'); j >= 0 {
			line = line[:j]
		}
		if bytes.Equal(bytes.TrimSpace(line), top.marker) {
			s.pop()
			s.advance(len(line))
		}
		return false
	}
	s.advance(1)
	return false
}

// skipPast moves past the next end, or to the end of src.
func (s *nestScan) skipPast(end []byte) {
	j := bytes.Index(s.src[s.i:], end)
	if j < 0 {
		s.advance(len(s.src) - s.i)
		return
	}
	s.advance(j + len(end))
}

// heredocMarker reads "<<ID" or "<<-ID" up to (not past) its newline: the
// marker and the bytes it takes, or nil when rest is no heredoc opening.
func heredocMarker(rest []byte) ([]byte, int) {
	n := 2
	if n < len(rest) && rest[n] == '-' {
		n++
	}
	start := n
	for n < len(rest) && (rest[n] == '_' || rest[n] == '-' || rest[n] >= 'a' && rest[n] <= 'z' || rest[n] >= 'A' && rest[n] <= 'Z' || rest[n] >= '0' && rest[n] <= '9') {
		n++
	}
	if n == start || n >= len(rest) || (rest[n] != '\n' && rest[n] != '\r') {
		return nil, 0
	}
	marker := rest[start:n]
	if rest[n] == '\r' {
		n++
	}
	return marker, n
}
