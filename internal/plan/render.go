package plan

import (
	"fmt"
	"io"
	"strings"

	"github.com/flowctl/flowctl/internal/config"
)

// RenderOptions control the human form.
type RenderOptions struct {
	Color bool
}

const (
	ansiReset   = "\x1b[0m"
	ansiRed     = "\x1b[31m"
	ansiGreen   = "\x1b[32m"
	ansiYellow  = "\x1b[33m"
	ansiMagenta = "\x1b[35m"
	ansiCyan    = "\x1b[36m"
	ansiBold    = "\x1b[1m"
)

func (a Action) color() string {
	switch a {
	case Create:
		return ansiGreen
	case Update, Restart:
		return ansiYellow
	case Delete, DeleteOrphan:
		return ansiRed
	case Replace:
		return ansiMagenta
	case Adopt:
		return ansiCyan
	}
	return ""
}

func (a Action) verb() string {
	switch a {
	case Create:
		return "will be created"
	case Update:
		return "will be updated in-place"
	case Replace:
		return "must be replaced"
	case Restart:
		return "will be restarted"
	case Delete:
		return "will be destroyed"
	case DeleteOrphan:
		return "will be destroyed (orphan)"
	case Adopt:
		return "will be adopted into state"
	}
	return "is up to date"
}

// Render writes the plan the way terraform plan does: drift first, then one
// block per change, then the summary line.
func Render(w io.Writer, p *Plan, opts RenderOptions) {
	paint := func(code, s string) string {
		if !opts.Color || code == "" {
			return s
		}
		return code + s + ansiReset
	}
	if len(p.Drift) > 0 {
		fmt.Fprintln(w, paint(ansiBold, "Drift detected: reality differs from the state"))
		fmt.Fprintln(w)
		for _, d := range p.Drift {
			fmt.Fprintf(w, "  %s %s: %s (%s)\n", paint(ansiYellow, "~"), d.Address, d.Reason.Describe(), d.Detail)
		}
		fmt.Fprintln(w)
	}
	for _, f := range p.Foreign {
		fmt.Fprintf(w, "Note: a %s object %s of pipeline %s belongs to another state file (lineage %s); flowctl leaves it alone.\n", f.Provider, f.Address, p.Pipeline, f.Lineage)
	}
	if !p.HasChanges() {
		if p.Destroy {
			// A destroy compares nothing with the configuration.
			fmt.Fprintln(w, paint(ansiGreen+ansiBold, "No components to destroy."))
			return
		}
		fmt.Fprintln(w, paint(ansiGreen+ansiBold, "No changes.")+" The pipeline matches the configuration and what is running.")
		return
	}
	fmt.Fprintln(w, "flowctl will perform the following actions:")
	renderControlPlane(w, p.ControlPlane, paint)
	for _, ch := range p.Changes {
		if ch.Action == NoOp {
			continue
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "  %s %s %s", paint(ansiBold, "#"), paint(ansiBold, ch.Address), ch.Action.verb())
		if ch.Action != Create || ch.Reason != ReasonNotInState {
			fmt.Fprintf(w, " (%s)", ch.Reason.Describe())
		}
		fmt.Fprintln(w)
		kind, id, _ := config.ParseAddress(ch.Address)
		sym := ch.Action.Symbol()
		fmt.Fprintf(w, "%s %s %q {\n", paint(ch.Action.color(), fmt.Sprintf("%3s", sym)), kind, id)
		renderAttrs(w, ch, paint)
		if len(ch.ClusterChanges) > 0 {
			fmt.Fprintf(w, "        # the cluster would change: %s\n", strings.Join(ch.ClusterChanges, ", "))
		}
		fmt.Fprintln(w, "    }")
	}
	renderHostFolders(w, p, paint)
	fmt.Fprintln(w)
	fmt.Fprintln(w, paint(ansiBold, Summary(p)))
}

func renderAttrs(w io.Writer, ch *Change, paint func(string, string) string) {
	var shown []AttrChange
	switch ch.Action {
	case Delete, DeleteOrphan, Restart, Adopt:
		if ch.Observed != nil && ch.Observed.Detail != "" {
			fmt.Fprintf(w, "        # %s\n", ch.Observed.Detail)
		}
		return
	default:
		shown = ch.Attrs
	}
	width := 0
	for _, a := range shown {
		if len(a.Path) > width {
			width = len(a.Path)
		}
	}
	for _, a := range shown {
		newV := a.New
		if a.Unknown && !a.Sensitive {
			newV = "(known after apply)"
		}
		var line string
		switch {
		case !a.HasOld:
			line = fmt.Sprintf("%s %-*s = %s", paint(ansiGreen, "+"), width, a.Path, newV)
		case !a.HasNew:
			line = fmt.Sprintf("%s %-*s = %s", paint(ansiRed, "-"), width, a.Path, a.Old)
		default:
			line = fmt.Sprintf("%s %-*s = %s -> %s", paint(ansiYellow, "~"), width, a.Path, a.Old, newV)
		}
		if a.Forces && ch.Action == Replace {
			line += paint(ansiRed, " # forces replacement")
		}
		fmt.Fprintf(w, "      %s\n", line)
	}
}

// Summary is the closing line: "Plan: 2 to add, 0 to change, 1 to replace,
// 0 to destroy." (restarts and adoptions are named when there are any).
func Summary(p *Plan) string {
	c := p.Counts()
	parts := []string{
		fmt.Sprintf("%d to add", c[Create]),
		fmt.Sprintf("%d to change", c[Update]),
		fmt.Sprintf("%d to replace", c[Replace]),
	}
	if c[Restart] > 0 {
		parts = append(parts, fmt.Sprintf("%d to restart", c[Restart]))
	}
	if c[Adopt] > 0 {
		parts = append(parts, fmt.Sprintf("%d to adopt", c[Adopt]))
	}
	parts = append(parts, fmt.Sprintf("%d to destroy", c[Delete]+c[DeleteOrphan]))
	if cp := p.ControlPlane; cp != nil {
		parts = append(parts, "control plane to "+cp.Action)
	}
	return "Plan: " + strings.Join(parts, ", ") + "."
}

// controlPlaneSymbol is the control plane change's symbol: + for a start,
// -/+ for a restart.
func controlPlaneSymbol(c *ControlPlaneChange) string {
	if c.Action == ControlPlaneRestart {
		return Replace.Symbol()
	}
	return Create.Symbol()
}

// renderControlPlane writes the control plane's change as a block of its
// own, before the components' (it starts first).
func renderControlPlane(w io.Writer, c *ControlPlaneChange, paint func(string, string) string) {
	if c == nil {
		return
	}
	color := ansiGreen
	if c.Action == ControlPlaneRestart {
		color = ansiMagenta
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  %s %s\n", paint(ansiBold, "#"), paint(ansiBold, c.Describe()))
	fmt.Fprintf(w, "%s control_plane {\n", paint(color, fmt.Sprintf("%3s", controlPlaneSymbol(c))))
	if c.Listen != "" {
		fmt.Fprintf(w, "      %s listen = %q\n", paint(ansiGreen, "+"), c.Listen)
	}
	fmt.Fprintln(w, "    }")
}
