package plan

import (
	"fmt"
	"io"
	"strings"
)

// RenderMarkdown writes a saved plan as a reviewable summary for a pull
// request comment (`flowctl show -format markdown PLANFILE`): the counts
// and the control plane in the open, then each change with its reason and
// the attributes that force it, the drift and the attributes, in collapsible
// <details> blocks. A plan file holds no sensitive value, and the attribute
// values it shows for sensitive ones are config.RedactedValue.
func RenderMarkdown(w io.Writer, f *File) {
	p := f.Plan
	what := "plan"
	if p.Destroy {
		what = "destroy plan"
	}
	fmt.Fprintf(w, "### flowctl %s for pipeline `%s`\n\n", what, mdCode(p.Pipeline))
	fmt.Fprintf(w, "%s\n\n", mdMadeFrom(f))
	if !p.HasChanges() {
		fmt.Fprintf(w, "**No changes.** %s\n", map[bool]string{true: "Nothing to destroy.", false: "The pipeline matches the configuration and what is running."}[p.Destroy])
		mdDrift(w, p)
		return
	}
	fmt.Fprintf(w, "**%s**\n\n", Summary(p))
	if cp := p.ControlPlane; cp != nil {
		fmt.Fprintf(w, "Control plane: %s `%s` %s.\n\n", mdText(controlPlaneSymbol(cp)), "control_plane", mdText(strings.TrimPrefix(cp.Describe(), "control plane ")))
	}
	fmt.Fprintln(w, "| | Component | Action | Why | Forced by |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, ch := range p.Changes {
		if ch.Action == NoOp {
			continue
		}
		forced := ""
		if ch.Action == Replace && len(ch.ForcedBy) > 0 {
			forced = "`" + strings.Join(mapStrings(ch.ForcedBy, mdCode), "`, `") + "`"
		}
		fmt.Fprintf(w, "| `%s` | `%s` | %s | %s | %s |\n", mdCode(ch.Action.Symbol()), mdCode(ch.Address), ch.Action, mdText(ch.Reason.Describe()), forced)
	}
	for _, hf := range p.HostFolders {
		fmt.Fprintf(w, "\nHost folder `%s` will be created (a volume of %s).\n", mdCode(displayFolder(hf.Path)), mdText(strings.Join(hf.Components, ", ")))
	}
	mdAttributes(w, p)
	mdDrift(w, p)
}

// Heading is show's first line: the pipeline, its file, when and against
// what state the plan was made.
func (f *File) Heading() string {
	against := "with no state yet (apply creates it)"
	if f.Plan.Lineage != "" {
		against = fmt.Sprintf("against state serial %d", f.Plan.Serial)
	}
	return fmt.Sprintf("Saved plan for pipeline %s (%s), made %s %s.", f.Plan.Pipeline, f.PipelineFile, f.CreatedAt.Local().Format("2006-01-02 15:04:05"), against)
}

// mdMadeFrom says what the plan was made from and when.
func mdMadeFrom(f *File) string {
	p := f.Plan
	against := "with no state yet (apply creates it)"
	if p.Lineage != "" {
		against = fmt.Sprintf("against state `%s` at serial %d", mdCode(shortLineage(p.Lineage)), p.Serial)
	}
	from := ""
	if f.PipelineFile != "" {
		from = fmt.Sprintf(" from `%s`", mdCode(f.PipelineFile))
	}
	return fmt.Sprintf("Made %s%s %s.", f.CreatedAt.UTC().Format("2006-01-02 15:04 UTC"), from, against)
}

// mdAttributes writes, in one collapsible block per change, the
// attributes it changes as a diff.
func mdAttributes(w io.Writer, p *Plan) {
	for _, ch := range p.Changes {
		if ch.Action == NoOp {
			continue
		}
		var lines []string
		for _, a := range ch.Attrs {
			newV := a.New
			if a.Unknown && !a.Sensitive {
				newV = "(known after apply)"
			}
			mark := ""
			if a.Forces && ch.Action == Replace {
				mark = "   # forces replacement"
			}
			if a.HasOld {
				lines = append(lines, fmt.Sprintf("- %s = %s%s", a.Path, a.Old, mark))
			}
			if a.HasNew {
				lines = append(lines, fmt.Sprintf("+ %s = %s%s", a.Path, newV, mark))
			}
		}
		if ch.Observed != nil && ch.Observed.Detail != "" {
			lines = append(lines, "# "+ch.Observed.Detail)
		}
		if len(ch.ClusterChanges) > 0 {
			lines = append(lines, "# the cluster would change: "+strings.Join(ch.ClusterChanges, ", "))
		}
		if len(lines) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n<details><summary><code>%s</code> %s</summary>\n\n", mdHTML(ch.Address), mdHTML(ch.Action.verb()))
		body := strings.Join(lines, "\n")
		fence := mdFence(body)
		fmt.Fprintf(w, "%sdiff\n%s\n%s\n\n</details>\n", fence, body, fence)
	}
}

// mdDrift writes the drift the plan found, collapsed.
func mdDrift(w io.Writer, p *Plan) {
	if len(p.Drift) == 0 && len(p.Foreign) == 0 {
		return
	}
	fmt.Fprintf(w, "\n<details><summary>Drift: reality differs from the state (%d)</summary>\n\n", len(p.Drift)+len(p.Foreign))
	for _, d := range p.Drift {
		fmt.Fprintf(w, "- `%s`: %s (%s)\n", mdCode(d.Address), mdText(d.Reason.Describe()), mdText(d.Detail))
	}
	for _, s := range p.Foreign {
		fmt.Fprintf(w, "- `%s`: a %s object of another state (lineage `%s`); left alone\n", mdCode(s.Address), mdText(s.Provider), mdCode(shortLineage(s.Lineage)))
	}
	fmt.Fprintln(w, "\n</details>")
}

// mdText escapes free text for Markdown and HTML, and keeps it on one line
// (a table cell).
func mdText(s string) string {
	s = mdHTML(s)
	r := strings.NewReplacer("|", `\|`, "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`, "\n", " ")
	return r.Replace(s)
}

// mdHTML escapes the characters HTML gives a meaning.
func mdHTML(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\n", " ").Replace(s)
}

// mdCode makes s safe inside a `code span` within a table.
func mdCode(s string) string {
	return strings.NewReplacer("`", "'", "|", `\|`, "\n", " ").Replace(s)
}

// mdFence is a code fence longer than any run of backticks in body.
func mdFence(body string) string {
	n, run := 3, 0
	for _, r := range body {
		if r == '`' {
			run++
			n = max(n, run+1)
		} else {
			run = 0
		}
	}
	return strings.Repeat("`", n)
}

func shortLineage(l string) string {
	if len(l) > 8 {
		return l[:8]
	}
	return l
}

func mapStrings(in []string, f func(string) string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = f(s)
	}
	return out
}
