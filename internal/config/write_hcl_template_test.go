package config

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// evalTemplate parses a quoted template body and evaluates it with every
// reference bound to its own text, the way the loaders keep references.
func evalTemplate(t testing.TB, body, orig string) string {
	t.Helper()
	src := `"` + body + `"`
	expr, diags := hclsyntax.ParseExpression([]byte(src), "t.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("template %s does not parse: %s", src, diags.Error())
	}
	kinds := map[string]map[string]cty.Value{}
	for _, r := range FindRefs(orig) {
		kind, id, _ := ParseAddress(r.Addr)
		if kinds[string(kind)] == nil {
			kinds[string(kind)] = map[string]cty.Value{}
		}
		kinds[string(kind)][id] = cty.ObjectVal(map[string]cty.Value{
			"address":     cty.StringVal("${" + r.Addr + ".address}"),
			"port":        cty.StringVal("${" + r.Addr + ".port}"),
			"health_port": cty.StringVal("${" + r.Addr + ".health_port}"),
		})
	}
	vars := map[string]cty.Value{}
	for k, ids := range kinds {
		vars[k] = cty.ObjectVal(ids)
	}
	v, diags := expr.Value(&hcl.EvalContext{Variables: vars})
	if diags.HasErrors() {
		t.Fatalf("template %s does not evaluate: %s", src, diags.Error())
	}
	return v.AsString()
}

func TestQuoteTemplateReadsBackAsTheSameText(t *testing.T) {
	for _, s := range []string{
		"",
		"plain",
		"${source.ledger.address}",
		"http://${source.ledger.address}/x",
		"literal ${not a ref} and %{ if x }",
		"$${source.ledger.address}",
		"$$${source.ledger.address}$",
		"a$",
		"$$",
		"$${",
		"%%{",
		"%${source.a.port}",
		"quote \" backslash \\ tab \t newline \n cr \r",
		"nbsp\u00a0 bell\a emoji 🙂",
		"${source.a.address}${processor.b-c.port}",
		"${sink.1st.address}",
	} {
		got := evalTemplate(t, quoteTemplate(s), s)
		if got != s {
			t.Errorf("quoteTemplate(%q) = %q, reads back as %q", s, quoteTemplate(s), got)
		}
	}
}

func FuzzQuoteTemplate(f *testing.F) {
	for _, s := range []string{"x", "$${source.a.address}", "%{", "${sink.z.health_port}$", "\\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) || strings.ContainsRune(s, utf8.RuneError) {
			t.Skip("HCL holds only valid UTF-8")
		}
		if got := evalTemplate(t, quoteTemplate(s), s); got != s {
			t.Errorf("quoteTemplate(%q) = %q, reads back as %q", s, quoteTemplate(s), got)
		}
	})
}
