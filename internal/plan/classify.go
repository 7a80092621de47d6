package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Kind is what a file given where a saved plan may go turns out to be.
type Kind int

const (
	NotAPlan    Kind = iota // a pipeline file, or anything else
	SavedPlan               // a saved plan, intact as far as its header goes
	DamagedPlan             // a saved plan that no longer parses
)

// Classify tells a saved plan from a pipeline file by content, and
// also recognises a damaged plan (truncated, overwritten in part) by the
// marker near its start, by a .plan or .tfplan name, or by being broken
// JSON under a name no pipeline file has, so that it is not read as a pipeline with a syntax error at 1:1.
func Classify(path string, b []byte) Kind {
	if IsPlanFile(b) {
		return SavedPlan
	}
	head := b[:min(len(b), 4096)]
	if bytes.Contains(head, []byte(`"flowctl-plan"`)) {
		return DamagedPlan
	}
	if ext := strings.ToLower(filepath.Ext(path)); ext == ".plan" || ext == ".tfplan" {
		return DamagedPlan // named as plans are, and no plan
	}
	t := bytes.TrimSpace(b)
	if len(t) > 0 && t[0] == '{' && !json.Valid(t) && !isPipelineFileName(path) {
		return DamagedPlan
	}
	return NotAPlan
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

// ReadArg reads the saved plan at path (a command's argument), saying plainly when
// the file is a pipeline file or a damaged plan.
func ReadArg(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	switch Classify(path, b) {
	case NotAPlan:
		if isPipelineFileName(path) {
			return nil, fmt.Errorf("%s is a pipeline file, not a saved plan: 'flowctl plan %s' shows its plan, 'flowctl plan -out FILE %s' saves one for show and apply", path, path, path)
		}
		return nil, fmt.Errorf("%s is not a saved plan (save one with 'flowctl plan -out FILE')", path)
	case DamagedPlan:
		return nil, DamagedError(path, b)
	}
	return ReadFile(path)
}

// DamagedError says that the plan file at path is damaged, and why.
func DamagedError(path string, b []byte) error {
	_, err := Decode(b)
	if err == nil {
		err = errors.New("not a flowctl plan file")
	}
	return fmt.Errorf("%s is a damaged plan file (%v); nothing was done: make a new one with 'flowctl plan -out FILE'", path, strings.TrimPrefix(err.Error(), "read plan: "))
}
