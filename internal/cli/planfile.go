package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/flowctl/flowctl/internal/plan"
)

// planFileKind is what a file given where a plan may go turns out to be.
type planFileKind int

const (
	notAPlan    planFileKind = iota // a pipeline file, or anything else
	planFile                        // a saved plan, intact as far as its header goes
	damagedPlan                     // a saved plan that no longer parses
)

// classifyPlanFile tells a saved plan from a pipeline file by content, and
// also recognises a damaged plan (truncated, overwritten in part) by the
// marker near its start, by a .plan or .tfplan name, or by being broken
// JSON under a name no pipeline file has, so that it is not read as a pipeline with a syntax error at 1:1.
func classifyPlanFile(path string, b []byte) planFileKind {
	if plan.IsPlanFile(b) {
		return planFile
	}
	head := b[:min(len(b), 4096)]
	if bytes.Contains(head, []byte(`"flowctl-plan"`)) {
		return damagedPlan
	}
	if ext := strings.ToLower(filepath.Ext(path)); ext == ".plan" || ext == ".tfplan" {
		return damagedPlan // named as plans are, and no plan
	}
	t := bytes.TrimSpace(b)
	if len(t) > 0 && t[0] == '{' && !json.Valid(t) && !isPipelineFileName(path) {
		return damagedPlan
	}
	return notAPlan
}

// isPipelineFileName reports whether path has the extension of a pipeline
// file.
func isPipelineFileName(path string) bool {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".hcl", ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// readPlanArg reads the saved plan at path for show, saying plainly when
// the file is a pipeline file or a damaged plan.
func readPlanArg(path string) (*plan.File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	switch classifyPlanFile(path, b) {
	case notAPlan:
		if isPipelineFileName(path) {
			return nil, fmt.Errorf("%s is a pipeline file, not a saved plan: 'flowctl plan %s' shows its plan, 'flowctl plan -out FILE %s' saves one for show and apply", path, path, path)
		}
		return nil, fmt.Errorf("%s is not a saved plan (save one with 'flowctl plan -out FILE')", path)
	case damagedPlan:
		return nil, damagedPlanError(path, b)
	}
	return plan.ReadFile(path)
}

// damagedPlanError says that the plan file at path is damaged, and why.
func damagedPlanError(path string, b []byte) error {
	_, err := plan.Decode(b)
	if err == nil {
		err = errors.New("not a flowctl plan file")
	}
	return fmt.Errorf("%s is a damaged plan file (%v); nothing was done: make a new one with 'flowctl plan -out FILE'", path, strings.TrimPrefix(err.Error(), "read plan: "))
}

// renderPlan prints p as plan.Render does, except that a destroy plan with
// nothing to do says there is nothing to destroy (plan.Render's "No changes"
// line speaks of matching the configuration, which a destroy does not
// compare with).
func renderPlan(w io.Writer, p *plan.Plan, color bool) {
	opts := plan.RenderOptions{Color: color}
	if !p.Destroy || p.HasChanges() {
		plan.Render(w, p, opts)
		return
	}
	var buf bytes.Buffer
	plan.Render(&buf, p, opts)
	lines := strings.SplitAfter(buf.String(), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "No changes.") {
			lines[i] = "No components to destroy.\n"
			if color {
				lines[i] = "\x1b[32m\x1b[1mNo components to destroy.\x1b[0m\n"
			}
			break
		}
	}
	_, _ = io.WriteString(w, strings.Join(lines, ""))
}
