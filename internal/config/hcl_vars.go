package config

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	hcljson "github.com/hashicorp/hcl/v2/json"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// hclMark is the type of the cty marks the loader puts on values.
type hclMark string

// sensitiveMark marks the value of a sensitive variable and everything
// computed from it.
const sensitiveMark = hclMark("sensitive")

// envVarPrefix is the prefix of environment variables that set HCL
// variables: FLOWCTL_VAR_network=mainnet.
const envVarPrefix = "FLOWCTL_VAR_"

var variableSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "type"},
		{Name: "default"},
		{Name: "description"},
		{Name: "sensitive"},
	},
	Blocks: []hcl.BlockHeaderSchema{{Type: "validation"}},
}

var validationSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "condition", Required: true},
		{Name: "error_message", Required: true},
	},
}

// hclVar is a declared variable and the value it took.
type hclVar struct {
	name        string
	block       *hcl.Block
	ty          cty.Type
	defaults    *typeexpr.Defaults
	description string
	sensitive   bool
	def         *hcl.Attribute
	validations []*hcl.Block
	// value is the final value, marked when sensitive; cty.DynamicVal when
	// it could not be determined (an error was reported).
	value cty.Value
}

// hclLocal is one attribute of a locals block.
type hclLocal struct {
	name  string
	attr  *hcl.Attribute
	state int // 0 not yet evaluated, 1 being evaluated, 2 done
	value cty.Value
}

// varCandidate is one value given for a variable, before type conversion.
type varCandidate struct {
	value   cty.Value
	from    string     // "its default", "-var", "the environment variable FLOWCTL_VAR_x", "the variables file f"
	subject *hcl.Range // where it was written, when in a file
}

// declareVariables reads every variable block.
func (l *hclLoader) declareVariables(blocks hcl.Blocks) {
	for _, b := range blocks {
		name := b.Labels[0]
		if !hclsyntax.ValidIdentifier(name) {
			l.diags = append(l.diags, errorf(b.LabelRanges[0], "Invalid variable name",
				"%q is not a valid variable name: use letters, digits, '_' and '-', starting with a letter", name))
			continue
		}
		if prev, dup := l.vars[name]; dup {
			l.diags = append(l.diags, errorf(b.LabelRanges[0], "Duplicate variable declaration",
				"variable %q was already declared at %s", name, shortRange(prev.block.DefRange)))
			continue
		}
		v := &hclVar{name: name, block: b, ty: cty.DynamicPseudoType, value: cty.DynamicVal}
		l.vars[name] = v
		l.varOrder = append(l.varOrder, v)

		content, diags := b.Body.Content(variableSchema)
		l.diags = append(l.diags, diags...)
		if a, ok := content.Attributes["type"]; ok {
			ty, defaults, diags := typeexpr.TypeConstraintWithDefaults(a.Expr)
			l.diags = append(l.diags, diags...)
			if !diags.HasErrors() {
				v.ty, v.defaults = ty, defaults
			}
		}
		if a, ok := content.Attributes["description"]; ok {
			if val, ok := l.literal(a, cty.String, "description", "variable "+name); ok {
				v.description = val.AsString()
			}
		}
		if a, ok := content.Attributes["sensitive"]; ok {
			if val, ok := l.literal(a, cty.Bool, "sensitive", "variable "+name); ok {
				v.sensitive = val.True()
			}
		}
		v.def = content.Attributes["default"]
		v.validations = content.Blocks
	}
}

// literal evaluates a declaration attribute that may not refer to anything.
func (l *hclLoader) literal(a *hcl.Attribute, ty cty.Type, attr, owner string) (cty.Value, bool) {
	val, diags := evalExpr(a.Expr, nil)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() || val.IsNull() || !val.IsWhollyKnown() {
		return cty.NilVal, false
	}
	out, err := convert.Convert(val, ty)
	if err != nil {
		l.diags = append(l.diags, errorf(a.Expr.Range(), "Incorrect attribute value type",
			"%s: %s must be %s, not %s", owner, attr, describeType(ty), describeValue(val, false)))
		return cty.NilVal, false
	}
	return out, true
}

// assignVariables gives every declared variable its value: the default, then
// FLOWCTL_VAR_name, then -var and -var-file in command-line order.
func (l *hclLoader) assignVariables(opts LoadOptions) {
	given := map[string]varCandidate{}
	l.defaultVars(given)
	environ := opts.Environ
	if environ == nil {
		environ = os.Environ()
	}
	l.environmentVars(environ, given)
	l.commandLineVars(opts.Vars, given)
	for _, v := range l.varOrder {
		l.settleVar(v, given)
	}
}

// defaultVars records each declared default as the variable's candidate.
func (l *hclLoader) defaultVars(given map[string]varCandidate) {
	for _, v := range l.varOrder {
		if v.def == nil {
			continue
		}
		val, diags := evalExpr(v.def.Expr, nil)
		l.diags = append(l.diags, diags...)
		if diags.HasErrors() {
			// Reported; the variable is not "required" either.
			given[v.name] = varCandidate{value: cty.DynamicVal, from: "its default"}
			continue
		}
		given[v.name] = varCandidate{value: val, from: "its default", subject: v.def.Expr.Range().Ptr()}
	}
}

// environmentVars overrides candidates with FLOWCTL_VAR_name values.
func (l *hclLoader) environmentVars(environ []string, given map[string]varCandidate) {
	for _, kv := range environ {
		name, raw, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, envVarPrefix) {
			continue
		}
		name = strings.TrimPrefix(name, envVarPrefix)
		v, declared := l.vars[name]
		if !declared {
			continue // as Terraform ignores a TF_VAR_ it does not know
		}
		from := "the environment variable " + envVarPrefix + name
		if val, ok := l.parseRawVar(v, raw, from); ok {
			given[name] = varCandidate{value: val, from: from}
		} else {
			given[name] = varCandidate{value: cty.DynamicVal, from: from}
		}
	}
}

// commandLineVars overrides candidates with -var and -var-file, later ones
// winning.
func (l *hclLoader) commandLineVars(args []VarArg, given map[string]varCandidate) {
	for _, arg := range args {
		if arg.File != "" {
			l.readVarFile(arg.File, given)
			continue
		}
		v, declared := l.vars[arg.Name]
		if !declared {
			l.diags = append(l.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Undeclared variable",
				Detail: fmt.Sprintf("-var sets a variable named %q, but the pipeline declares no such variable.%s",
					arg.Name, l.suggestVar(arg.Name)),
			})
			continue
		}
		if val, ok := l.parseRawVar(v, arg.Value, "-var"); ok {
			given[arg.Name] = varCandidate{value: val, from: "-var"}
		} else {
			given[arg.Name] = varCandidate{value: cty.DynamicVal, from: "-var"}
		}
	}
}

// settleVar converts v's winning candidate to its type and sets its value,
// or reports why it has none.
func (l *hclLoader) settleVar(v *hclVar, given map[string]varCandidate) {
	cand, ok := given[v.name]
	if !ok {
		l.diags = append(l.diags, errorf(v.block.DefRange, "No value for required variable",
			"variable %q has no default; set it with -var '%s=VALUE', in a -var-file, or with the environment variable %s%s",
			v.name, v.name, envVarPrefix, v.name))
		return
	}
	// A default that does not fit the type is an error even when
	// something else overrides it.
	if v.def != nil && cand.from != "its default" {
		if val, diags := evalExpr(v.def.Expr, nil); !diags.HasErrors() && val.IsWhollyKnown() {
			if _, err := v.convert(val); err != nil {
				l.diags = append(l.diags, v.convertError(err, "its default", v.def.Expr.Range().Ptr()))
			}
		}
	}
	if !cand.value.IsWhollyKnown() {
		return // its error was reported
	}
	val, err := v.convert(cand.value)
	if err != nil {
		l.diags = append(l.diags, v.convertError(err, cand.from, cand.subject))
		return
	}
	if v.sensitive {
		val = val.Mark(sensitiveMark)
	}
	v.value = val
}

// convert applies the variable's optional-attribute defaults and converts the
// value to its declared type.
func (v *hclVar) convert(val cty.Value) (out cty.Value, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = cty.NilVal, fmt.Errorf("cannot convert the value to %s", typeexpr.TypeString(v.ty))
		}
	}()
	if v.defaults != nil {
		val = v.defaults.Apply(val)
	}
	return convert.Convert(val, v.ty)
}

func (v *hclVar) convertError(err error, from string, subject *hcl.Range) *hcl.Diagnostic {
	if subject == nil {
		subject = v.block.DefRange.Ptr()
	}
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid value for variable",
		Detail: fmt.Sprintf("the value for variable %q from %s is not a valid %s: %s", v.name, from,
			typeexpr.TypeString(v.ty), ctyErrorString(err)),
		Subject: subject,
	}
}

// parseRawVar reads a value given as text on the command line or in the
// environment: the text itself for a primitive or unset type, an HCL
// expression otherwise (as Terraform does).
func (l *hclLoader) parseRawVar(v *hclVar, raw, from string) (cty.Value, bool) {
	if v.ty == cty.DynamicPseudoType || v.ty.IsPrimitiveType() {
		return cty.StringVal(raw), true
	}
	expr, diags := hclsyntax.ParseExpression([]byte(raw), fmt.Sprintf("<value for var.%s from %s>", v.name, from), hcl.InitialPos)
	if !diags.HasErrors() {
		var d hcl.Diagnostics
		var val cty.Value
		val, d = evalExpr(expr, nil)
		diags = append(diags, d...)
		if !diags.HasErrors() {
			return val, true
		}
	}
	detail := fmt.Sprintf("the value for variable %q from %s is not a valid HCL expression of type %s", v.name, from, typeexpr.TypeString(v.ty))
	if !v.sensitive {
		for _, d := range diags {
			if d.Severity == hcl.DiagError {
				detail += ": " + d.Summary
				if d.Detail != "" {
					detail += "; " + d.Detail
				}
				break
			}
		}
	}
	l.diags = append(l.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Invalid value for variable",
		Detail:   detail,
		Subject:  v.block.DefRange.Ptr(),
	})
	return cty.NilVal, false
}

// readVarFile reads name = value pairs from an HCL or JSON variables file.
func (l *hclLoader) readVarFile(path string, given map[string]varCandidate) {
	src, err := os.ReadFile(path)
	if err != nil {
		l.diags = append(l.diags, &hcl.Diagnostic{Severity: hcl.DiagError,
			Summary: "Cannot read variables file", Detail: fmt.Sprintf("-var-file %s: %v", path, errors.Unwrap(err))})
		return
	}
	if diags := checkHCLNesting(src, path); diags.HasErrors() {
		l.diags = append(l.diags, diags...)
		return
	}
	var file *hcl.File
	var diags hcl.Diagnostics
	if strings.HasSuffix(strings.ToLower(path), ".json") {
		file, diags = hcljson.Parse(src, path)
	} else {
		file, diags = hclsyntax.ParseConfig(src, path, hcl.InitialPos)
	}
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() || file == nil {
		return
	}
	attrs, diags := file.Body.JustAttributes()
	l.diags = append(l.diags, diags...)
	for _, a := range sortedAttrs(attrs) {
		v, declared := l.vars[a.Name]
		if !declared {
			l.diags = append(l.diags, errorf(a.NameRange, "Undeclared variable",
				"the variables file %s sets a variable named %q, but the pipeline declares no such variable.%s",
				path, a.Name, l.suggestVar(a.Name)))
			continue
		}
		val, diags := evalExpr(a.Expr, nil)
		l.diags = append(l.diags, diags...)
		from := "the variables file " + path
		if diags.HasErrors() {
			given[v.name] = varCandidate{value: cty.DynamicVal, from: from}
			continue
		}
		given[v.name] = varCandidate{value: val, from: from, subject: a.Expr.Range().Ptr()}
	}
}

// checkValidations evaluates every validation block of every variable whose
// value is known.
func (l *hclLoader) checkValidations() {
	for _, v := range l.varOrder {
		for _, b := range v.validations {
			content, diags := b.Body.Content(validationSchema)
			l.diags = append(l.diags, diags...)
			cond, msg := content.Attributes["condition"], content.Attributes["error_message"]
			if cond == nil || msg == nil {
				continue
			}
			ok := true
			for _, a := range []*hcl.Attribute{cond, msg} {
				for _, t := range a.Expr.Variables() {
					if name, _, found := traversalStep(t, 1); t.RootName() == "var" && found && name == v.name {
						continue
					}
					ok = false
					l.diags = append(l.diags, errorf(t.SourceRange(), "Invalid reference in variable validation",
						"the %s of a validation rule for variable %q can refer only to var.%s, not to %s",
						a.Name, v.name, v.name, traversalString(t)))
				}
			}
			if !ok || !v.value.IsWhollyKnown() {
				continue
			}
			ctx := &hcl.EvalContext{
				Variables: map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{v.name: v.value})},
				Functions: l.ctx.Functions,
			}
			result, diags := evalExpr(cond.Expr, ctx)
			hideSensitiveDetails(diags, cond.Expr, ctx)
			l.diags = append(l.diags, diags...)
			if diags.HasErrors() || !result.IsWhollyKnown() {
				continue
			}
			result, _ = result.UnmarkDeep()
			result, err := convert.Convert(result, cty.Bool)
			if err != nil || result.IsNull() {
				l.diags = append(l.diags, errorf(cond.Expr.Range(), "Invalid validation condition",
					"the condition for variable %q must be true or false", v.name))
				continue
			}
			if result.True() {
				continue
			}
			l.diags = append(l.diags, errorf(cond.Expr.Range(), "Invalid value for variable",
				"variable %q: %s", v.name, l.validationMessage(msg, ctx)))
		}
	}
}

// validationMessage evaluates a validation's error_message; one that depends
// on a sensitive value is not shown.
func (l *hclLoader) validationMessage(msg *hcl.Attribute, ctx *hcl.EvalContext) string {
	const fallback = "the value does not satisfy the validation rule"
	val, diags := evalExpr(msg.Expr, ctx)
	hideSensitiveDetails(diags, msg.Expr, ctx)
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() || !val.IsWhollyKnown() {
		return fallback
	}
	if val.ContainsMarked() {
		return fallback + " (its error message depends on a sensitive value and is not shown)"
	}
	s, err := convert.Convert(val, cty.String)
	if err != nil || s.IsNull() || strings.TrimSpace(s.AsString()) == "" {
		return fallback
	}
	return strings.TrimSpace(s.AsString())
}

// declareLocals collects the attributes of every locals block.
func (l *hclLoader) declareLocals(blocks hcl.Blocks) {
	for _, b := range blocks {
		attrs, diags := b.Body.JustAttributes()
		l.diags = append(l.diags, diags...)
		for _, a := range sortedAttrs(attrs) {
			if prev, dup := l.locals[a.Name]; dup {
				l.diags = append(l.diags, errorf(a.NameRange, "Duplicate local value",
					"local.%s was already defined at %s", a.Name, shortRange(prev.attr.NameRange)))
				continue
			}
			l.locals[a.Name] = &hclLocal{name: a.Name, attr: a, value: cty.DynamicVal}
			l.localOrder = append(l.localOrder, l.locals[a.Name])
		}
	}
}

// evalLocals evaluates every local in dependency order, reporting cycles.
func (l *hclLoader) evalLocals() {
	for _, lc := range l.localOrder {
		l.evalLocal(lc, nil)
	}
	l.setLocalsObject()
}

func (l *hclLoader) evalLocal(lc *hclLocal, stack []*hclLocal) {
	switch lc.state {
	case 2:
		return
	case 1:
		// A cycle: stack holds the path from its first member to lc.
		start := 0
		for i, s := range stack {
			if s == lc {
				start = i
			}
		}
		cycle := append(append([]*hclLocal(nil), stack[start:]...), lc)
		names := make([]string, len(cycle))
		for i, s := range cycle {
			names[i] = "local." + s.name
		}
		l.diags = append(l.diags, errorf(lc.attr.NameRange, "Cycle in local values",
			"local.%s depends on itself: %s", lc.name, strings.Join(names, " -> ")))
		for _, s := range cycle {
			s.state = 2
		}
		return
	}
	lc.state = 1
	stack = append(stack, lc)
	for _, t := range lc.attr.Expr.Variables() {
		if t.RootName() != "local" {
			continue
		}
		if name, _, ok := traversalStep(t, 1); ok {
			if dep, ok := l.locals[name]; ok {
				l.evalLocal(dep, stack)
			}
		}
	}
	if lc.state == 2 {
		return // part of a cycle
	}
	lc.state = 2
	if v, ok := l.eval(lc.attr.Expr); ok {
		lc.value = v
	}
	l.setLocalsObject()
}

// setLocalsObject publishes the locals evaluated so far to the context.
func (l *hclLoader) setLocalsObject() {
	m := make(map[string]cty.Value, len(l.locals))
	for name, lc := range l.locals {
		m[name] = lc.value
	}
	l.ctx.Variables["local"] = cty.ObjectVal(m)
}

// buildContext makes the evaluation context: var, local, the component
// objects, and the functions.
func (l *hclLoader) buildContext() {
	vars := make(map[string]cty.Value, len(l.vars))
	for name, v := range l.vars {
		vars[name] = v.value
	}
	l.ctx = &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(vars)},
		Functions: hclFunctions(),
	}
	for _, k := range Kinds {
		objs := map[string]cty.Value{}
		for id := range l.comps[k] {
			addr := Address(k, id)
			attrs := map[string]cty.Value{"id": cty.StringVal(id)}
			for _, a := range DeferredAttrs {
				attrs[a] = cty.StringVal(Ref{Addr: addr, Attr: a}.String())
			}
			objs[id] = cty.ObjectVal(attrs)
		}
		l.ctx.Variables[string(k)] = cty.ObjectVal(objs)
	}
	self := map[string]cty.Value{}
	for _, a := range DeferredAttrs {
		self[a] = cty.StringVal(Ref{Addr: SelfRef, Attr: a}.String())
	}
	l.ctx.Variables[SelfRef] = cty.ObjectVal(self)
	l.setLocalsObject()
}

// componentAttrs are the attributes of the component objects in expressions.
var componentAttrs = append([]string{"id"}, DeferredAttrs...)

// checkRefs reports every reference in expr that names something the
// pipeline does not declare, with HCL's did-you-mean suggestions.
func (l *hclLoader) checkRefs(expr hcl.Expression) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, t := range expr.Variables() {
		root := t.RootName()
		name, _, hasName := traversalStep(t, 1)
		rng := t[0].SourceRange()
		if len(t) > 1 {
			rng = hcl.RangeBetween(rng, t[1].SourceRange())
		}
		switch {
		case root == "var":
			if _, ok := l.vars[name]; hasName && !ok {
				diags = append(diags, errorf(rng, "Reference to undeclared input variable",
					"an input variable named %q has not been declared; add a variable %q block.%s", name, name, l.suggestVar(name)))
			}
		case root == "local":
			if _, ok := l.locals[name]; hasName && !ok {
				names := make([]string, 0, len(l.locals))
				for n := range l.locals {
					names = append(names, n)
				}
				diags = append(diags, errorf(rng, "Reference to undeclared local value",
					"a local value named %q has not been declared.%s", name, suggest(name, names, "local.")))
			}
		case ValidKind(root):
			if !hasName {
				continue
			}
			if !l.comps[Kind(root)][name] {
				var ids []string
				for id := range l.comps[Kind(root)] {
					ids = append(ids, id)
				}
				diags = append(diags, errorf(rng, "Reference to undeclared component",
					"%s.%s is not declared in this pipeline.%s", root, name, suggest(name, ids, root+".")))
				continue
			}
			if attr, attrRange, ok := traversalStep(t, 2); ok && !containsString(componentAttrs, attr) {
				diags = append(diags, errorf(hcl.RangeBetween(t[0].SourceRange(), attrRange), "Unsupported attribute",
					"%s.%s has no attribute %q; a component has %s.%s", root, name, attr,
					strings.Join(componentAttrs, ", "), suggest(attr, componentAttrs, "")))
			}
		case root == SelfRef:
			if attr, attrRange, ok := traversalStep(t, 1); ok && !containsString(DeferredAttrs, attr) {
				diags = append(diags, errorf(hcl.RangeBetween(t[0].SourceRange(), attrRange), "Unsupported attribute",
					"self has no attribute %q; it has %s%s", attr, strings.Join(DeferredAttrs, ", "), suggest(attr, DeferredAttrs, "")))
			}
		default:
			diags = append(diags, errorf(t[0].SourceRange(), "Unknown name",
				"there is nothing named %q here: refer to var.NAME, local.NAME or KIND.ID.ATTR (for example source.ledger.address)", root))
		}
	}
	return diags
}

// eval evaluates expr in the pipeline's context. ok is false when it failed
// (the diagnostics are recorded) or depends on a value that failed before.
func (l *hclLoader) eval(expr hcl.Expression) (cty.Value, bool) {
	if diags := l.checkRefs(expr); diags.HasErrors() {
		l.diags = append(l.diags, diags...)
		return cty.DynamicVal, false
	}
	v, diags := evalExpr(expr, l.ctx)
	if diags.HasErrors() {
		hideSensitiveDetails(diags, expr, l.ctx)
	}
	l.diags = append(l.diags, diags...)
	if diags.HasErrors() || !v.IsWhollyKnown() {
		return cty.DynamicVal, false
	}
	return v, true
}

// hideSensitiveDetails drops the details of diagnostics from an expression
// that refers to a sensitive value: an evaluator's detail (a function's
// complaint about its argument, say) may quote that value.
func hideSensitiveDetails(diags hcl.Diagnostics, expr hcl.Expression, ctx *hcl.EvalContext) {
	if !refersToSensitive(expr, ctx) {
		return
	}
	for _, d := range diags {
		if d.Detail != "" {
			d.Detail = "The expression refers to a sensitive value, so the details of this problem are not shown."
		}
	}
}

// refersToSensitive reports whether any reference in expr reaches a marked
// value.
func refersToSensitive(expr hcl.Expression, ctx *hcl.EvalContext) (marked bool) {
	defer func() {
		if recover() != nil {
			marked = true
		}
	}()
	for _, t := range expr.Variables() {
		if v, diags := t.TraverseAbs(ctx); !diags.HasErrors() && v.ContainsMarked() {
			return true
		}
	}
	return false
}

// evalExpr is expr.Value that turns a panic in an evaluator into an error.
func evalExpr(expr hcl.Expression, ctx *hcl.EvalContext) (v cty.Value, diags hcl.Diagnostics) {
	defer func() {
		if r := recover(); r != nil {
			v = cty.DynamicVal
			diags = hcl.Diagnostics{errorf(expr.Range(), "Cannot evaluate expression", "the expression could not be evaluated: %v", r)}
		}
	}()
	return expr.Value(ctx)
}

// variables renders the declared variables for Pipeline.Variables.
func (l *hclLoader) variables() []*Variable {
	var out []*Variable
	for _, v := range l.varOrder {
		pv := &Variable{Name: v.name, Description: v.description, Sensitive: v.sensitive, DeclRange: v.block.DefRange}
		if val, _ := v.value.UnmarkDeep(); val.IsWhollyKnown() {
			pv.Value = renderValue(val)
		}
		out = append(out, pv)
	}
	return out
}

// renderValue writes a known, unmarked value as HCL.
func renderValue(v cty.Value) (s string) {
	defer func() {
		if recover() != nil {
			s = ""
		}
	}()
	return strings.TrimSpace(string(hclwrite.TokensForValue(v).Bytes()))
}

// secretStrings lists the text of every sensitive value, to scrub from
// diagnostics as a last line of defence.
func (l *hclLoader) secretStrings() []string {
	var out []string
	for _, v := range l.varOrder {
		if !v.sensitive || !v.value.IsWhollyKnown() {
			continue
		}
		val, _ := v.value.UnmarkDeep()
		_ = cty.Walk(val, func(_ cty.Path, x cty.Value) (bool, error) {
			if x.IsNull() || !x.IsKnown() {
				return true, nil
			}
			switch x.Type() {
			case cty.String:
				out = append(out, x.AsString())
			case cty.Number:
				out = append(out, x.AsBigFloat().Text('f', -1))
			}
			return true, nil
		})
	}
	return out
}

// scrub removes sensitive text from diagnostics and drops the expression
// and context HCL attaches, which a renderer could print values from.
func scrub(diags hcl.Diagnostics, secrets []string) {
	for _, d := range diags {
		d.Expression, d.EvalContext = nil, nil
		for _, s := range secrets {
			if s == "" {
				continue
			}
			quoted := fmt.Sprintf("%q", s)
			d.Summary = strings.ReplaceAll(d.Summary, quoted, RedactedValue)
			d.Detail = strings.ReplaceAll(d.Detail, quoted, RedactedValue)
			if len(s) >= 3 {
				d.Summary = strings.ReplaceAll(d.Summary, s, RedactedValue)
				d.Detail = strings.ReplaceAll(d.Detail, s, RedactedValue)
			}
		}
	}
}

func (l *hclLoader) suggestVar(name string) string {
	names := make([]string, 0, len(l.vars))
	for n := range l.vars {
		names = append(names, n)
	}
	return suggest(name, names, "var.")
}

// suggest is a " Did you mean ...?" sentence naming the closest candidate,
// or "" when none is close.
func suggest(name string, candidates []string, prefix string) string {
	candidates = append([]string(nil), candidates...)
	sort.Strings(candidates)
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := levenshtein.Distance(name, c, nil); d < bestDist {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" Did you mean %s%s?", prefix, best)
}

// traversalStep returns the name of step i of t when it is an attribute or
// a string index.
func traversalStep(t hcl.Traversal, i int) (string, hcl.Range, bool) {
	if i >= len(t) {
		return "", hcl.Range{}, false
	}
	switch s := t[i].(type) {
	case hcl.TraverseAttr:
		return s.Name, s.SrcRange, true
	case hcl.TraverseIndex:
		if s.Key.Type() == cty.String && s.Key.IsKnown() && !s.Key.IsNull() && !s.Key.IsMarked() {
			return s.Key.AsString(), s.SrcRange, true
		}
	}
	return "", hcl.Range{}, false
}

// traversalString renders a traversal the way it is written.
func traversalString(t hcl.Traversal) string {
	var b strings.Builder
	for _, step := range t {
		switch s := step.(type) {
		case hcl.TraverseRoot:
			b.WriteString(s.Name)
		case hcl.TraverseAttr:
			b.WriteString("." + s.Name)
		case hcl.TraverseIndex:
			if s.Key.IsKnown() && !s.Key.IsNull() && !s.Key.IsMarked() && s.Key.Type().IsPrimitiveType() {
				b.WriteString("[" + renderValue(s.Key) + "]")
			} else {
				b.WriteString("[...]")
			}
		case hcl.TraverseSplat:
			b.WriteString("[*]")
		}
	}
	return b.String()
}

func sortedAttrs(attrs hcl.Attributes) []*hcl.Attribute {
	out := make([]*hcl.Attribute, 0, len(attrs))
	for _, a := range attrs {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Range, out[j].Range
		if a.Start.Byte != b.Start.Byte {
			return a.Start.Byte < b.Start.Byte
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ctyErrorString renders a cty conversion error with the path it failed at.
func ctyErrorString(err error) string {
	var pe cty.PathError
	if errors.As(err, &pe) && len(pe.Path) > 0 {
		return fmt.Sprintf("%s: %s", pathString(pe.Path), pe.Error())
	}
	return err.Error()
}

func pathString(p cty.Path) string {
	var b strings.Builder
	for _, step := range p {
		switch s := step.(type) {
		case cty.GetAttrStep:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(s.Name)
		case cty.IndexStep:
			if s.Key.IsKnown() && !s.Key.IsNull() && s.Key.Type().IsPrimitiveType() {
				b.WriteString("[" + renderValue(s.Key) + "]")
			} else {
				b.WriteString("[...]")
			}
		}
	}
	if b.Len() == 0 {
		return "value"
	}
	return "attribute " + b.String()
}
