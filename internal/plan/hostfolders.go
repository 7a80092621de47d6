package plan

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers"
)

// hostFolders lists the bind-mount folders missing on this machine that
// the components p starts need (on executors that mount host paths from
// here, providers.HostPathMounter); apply creates them before it starts
// anything. A folder that cannot be created fails the plan, at its
// host_path's position.
func hostFolders(in Input, p *Plan) ([]config.HostFolder, error) {
	if in.Desired == nil || in.Providers == nil {
		return nil, nil
	}
	var comps []*config.Component
	for _, ch := range p.Changes {
		switch ch.Action {
		case Create, Replace, Restart:
		default:
			continue
		}
		c := in.Desired.Component(ch.Address)
		if c == nil || len(c.Volumes) == 0 {
			continue
		}
		prov, err := in.Providers.Get(c.Executor)
		if err != nil {
			continue // the plan names the missing executor elsewhere
		}
		if m, ok := prov.(providers.HostPathMounter); ok && m.MountsHostPaths() {
			comps = append(comps, c)
		}
	}
	folders, diags := config.MissingHostFolders(filepath.Dir(in.Desired.File), comps)
	if diags.HasErrors() {
		return nil, errors.New(strings.TrimSuffix(config.FormatDiagnostics(diags), "\n"))
	}
	return folders, nil
}

// renderHostFolders writes one line per folder apply will create.
func renderHostFolders(w io.Writer, p *Plan, paint func(string, string) string) {
	if len(p.HostFolders) == 0 {
		return
	}
	fmt.Fprintln(w)
	for _, f := range p.HostFolders {
		fmt.Fprintf(w, "  %s host folder %s will be created (a volume of %s)\n", paint(ansiGreen, "+"), displayFolder(f.Path), strings.Join(f.Components, ", "))
	}
}

// displayFolder shows a relative folder as ./out: it is relative to the
// pipeline file's folder.
func displayFolder(p string) string {
	if filepath.IsAbs(p) || strings.HasPrefix(p, "..") {
		return p
	}
	return "." + string(filepath.Separator) + p
}
