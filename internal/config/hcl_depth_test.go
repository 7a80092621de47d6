package config

import (
	"strings"
	"testing"
)

// A file nested far deeper than any pipeline is refused with its position
// before the HCL parser, which recurses per level, can overflow the stack
// (a Go stack overflow is fatal: no recover catches it).
func TestHCLDeepNestingIsACleanError(t *testing.T) {
	const n = 100000
	for name, tc := range map[string]struct {
		src  string
		want string
	}{
		"brackets": {"pipeline \"d\" {}\nlocals {\n  x = " + strings.Repeat("[", n) + strings.Repeat("]", n) + "\n}\n",
			"deep.hcl:3:1006: error: Nesting too deep"},
		"interpolations": {"pipeline \"d\" {}\nlocals {\n  x = \"" + strings.Repeat("${\"", n) + "\n}\n",
			"deep.hcl:3:1505: error: Nesting too deep"},
		"blocks": {"pipeline \"d\" {}\n" + strings.Repeat("a {\n", n),
			"deep.hcl:1002:3: error: Nesting too deep"},
		"parentheses unclosed": {"pipeline \"d\" {}\nlocals {\n  x = " + strings.Repeat("(", n),
			"deep.hcl:3:1006: error: Nesting too deep"},
	} {
		t.Run(name, func(t *testing.T) {
			_, diags := LoadBytes([]byte(tc.src), "deep.hcl", LoadOptions{Environ: []string{}})
			got := FormatDiagnostics(diags)
			if !strings.HasPrefix(got, tc.want+": brackets, braces, strings and interpolations nest more than 1000 levels deep here") {
				t.Errorf("got:\n%.400s\nwant %s", got, tc.want)
			}
		})
	}
	if _, diags := ReformatHCL([]byte("x = "+strings.Repeat("{", n)), "deep.hcl"); !strings.Contains(FormatDiagnostics(diags), "deep.hcl:1:1005: error: Nesting too deep") {
		t.Errorf("fmt: %.300s", FormatDiagnostics(diags))
	}
}

// What is not nesting does not count: brackets in comments, in string text
// and in heredocs, nor escaped interpolations; nesting up to the limit loads.
func TestHCLNestingCountsOnlyNesting(t *testing.T) {
	noise := strings.Repeat("[{(", 2000)
	src := "pipeline \"d\" {}\n" +
		"# " + noise + "\n" +
		"// " + noise + "\n" +
		"/* " + noise + " */\n" +
		"locals {\n" +
		"  deep = " + strings.Repeat("[", 997) + strings.Repeat("]", 997) + "\n" +
		"  text = \"" + noise + " \\\" $${" + noise + "\"\n" +
		"  doc  = <<-EOT\n    " + noise + "\n    \"\n    EOT\n" +
		"  tmpl = \"${\"${\"a\"}\"}\"\n" +
		"}\n" +
		"source \"a\" {\n  command = [\"/bin/true\"]\n}\n"
	_, diags := LoadBytes([]byte(src), "ok.hcl", LoadOptions{Environ: []string{}})
	if diags.HasErrors() {
		t.Fatalf("%.600s", FormatDiagnostics(diags))
	}
}
