package plan

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/config"
)

// FileFormatVersion is the version of the saved plan format (docs/plan-format.md).
const FileFormatVersion = 1

// fileMarker identifies a saved plan among the files apply accepts.
const fileMarker = "flowctl-plan"

// File is a saved plan: what was planned and everything needed to tell
// whether it is still valid. It holds no sensitive value: apply reloads the
// pipeline file to get them, and checks their hashes.
type File struct {
	Format        string    `json:"format"`
	FormatVersion int       `json:"format_version"`
	CreatedAt     time.Time `json:"created_at"`
	// PipelineFile is the absolute path of the pipeline file planned.
	PipelineFile string `json:"pipeline_file"`
	// StatePath is the state file the plan was made against.
	StatePath string `json:"state_path"`
	// Desired is the normalised pipeline, sensitive values redacted.
	Desired json.RawMessage `json:"desired"`
	// HasSensitive says the desired pipeline has sensitive values, so apply
	// must reload the pipeline file (with the same variables) to get them.
	HasSensitive bool  `json:"has_sensitive"`
	Plan         *Plan `json:"plan"`
	// Checksum is the SHA-256 of the file with this field empty.
	Checksum string `json:"checksum"`
}

// NewFile wraps a plan for saving.
func NewFile(p *Plan, pipelineFile, statePath string, now time.Time) (*File, error) {
	f := &File{Format: fileMarker, FormatVersion: FileFormatVersion, CreatedAt: now.UTC(), Plan: p}
	if pipelineFile != "" {
		abs, err := filepath.Abs(pipelineFile)
		if err != nil {
			return nil, fmt.Errorf("plan file: %w", err)
		}
		f.PipelineFile = abs
	}
	if statePath != "" {
		abs, err := filepath.Abs(statePath)
		if err != nil {
			return nil, fmt.Errorf("plan file: %w", err)
		}
		f.StatePath = abs
	}
	if p.Desired != nil {
		red := *p.Desired
		red.Components = nil
		for _, c := range p.Desired.Components {
			rc := c.Redacted()
			red.Components = append(red.Components, rc)
			for _, v := range c.Env {
				if v.Sensitive {
					f.HasSensitive = true
				}
			}
		}
		f.Desired = red.CanonicalJSON()
	}
	return f, nil
}

func (f *File) sum() (string, error) {
	cp := *f
	cp.Checksum = ""
	b, err := json.Marshal(&cp)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:]), nil
}

// Encode renders the file as indented JSON with its checksum.
func (f *File) Encode() ([]byte, error) {
	sum, err := f.sum()
	if err != nil {
		return nil, fmt.Errorf("encode plan: %w", err)
	}
	f.Checksum = sum
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode plan: %w", err)
	}
	return append(b, '\n'), nil
}

// WriteFile saves the plan at path (mode 0600, written atomically).
func (f *File) WriteFile(path string) error {
	b, err := f.Encode()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".plan-*")
	if err != nil {
		return fmt.Errorf("write plan: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("write plan: %w", err)
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("write plan: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write plan: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write plan: %w", err)
	}
	return nil
}

// IsPlanFile tells a saved plan from a pipeline file by content.
func IsPlanFile(b []byte) bool {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return false
	}
	var probe struct {
		Format string `json:"format"`
	}
	return json.Unmarshal(b, &probe) == nil && probe.Format == fileMarker
}

// ErrCorrupt means a plan file's checksum does not match its content.
var ErrCorrupt = errors.New("the plan file was modified or is corrupt (checksum mismatch)")

// Decode parses a saved plan and verifies its version and checksum.
func Decode(b []byte) (*File, error) {
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	if f.Format != fileMarker {
		return nil, errors.New("read plan: not a flowctl plan file")
	}
	if f.FormatVersion != FileFormatVersion {
		return nil, fmt.Errorf("read plan: format version %d; this flowctl reads version %d", f.FormatVersion, FileFormatVersion)
	}
	sum, err := f.sum()
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	if sum != f.Checksum {
		return nil, ErrCorrupt
	}
	if f.Plan == nil {
		return nil, errors.New("read plan: no plan in file")
	}
	return &f, nil
}

// ReadFile reads and verifies a saved plan.
func ReadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	f, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// DesiredPipeline decodes the saved desired pipeline (sensitive values
// redacted).
func (f *File) DesiredPipeline() (*config.Pipeline, error) {
	if len(f.Desired) == 0 {
		return nil, nil
	}
	var p config.Pipeline
	if err := json.Unmarshal(f.Desired, &p); err != nil {
		return nil, fmt.Errorf("decode planned pipeline: %w", err)
	}
	return &p, nil
}

// StaleError says why a saved plan no longer applies.
type StaleError struct{ Reasons []string }

func (e *StaleError) Error() string {
	return "the saved plan is stale: " + strings.Join(e.Reasons, "; ") + "\nRun flowctl plan again, review it, and apply the new plan."
}

// CheckFresh re-observes reality and compares it, the lineage and the
// serial with what the saved plan saw. in must carry the current state and
// the plan's options; in.Desired may be nil.
func (f *File) CheckFresh(ctx context.Context, in Input) error {
	var reasons []string
	p := f.Plan
	if in.Meta.Lineage != p.Lineage {
		reasons = append(reasons, fmt.Sprintf("the state file's lineage is %s, the plan was made for %s (another state file)", in.Meta.Lineage, p.Lineage))
	}
	if in.Meta.Serial != p.Serial {
		reasons = append(reasons, fmt.Sprintf("the state changed since the plan was made (serial %d, plan made at serial %d)", in.Meta.Serial, p.Serial))
	}
	if len(reasons) == 0 {
		now, err := Make(ctx, in)
		if err != nil {
			return fmt.Errorf("check plan against reality: %w", err)
		}
		reasons = append(reasons, realityDiff(p.Reality, now.Reality)...)
	}
	if len(reasons) > 0 {
		return &StaleError{Reasons: reasons}
	}
	return nil
}

// realityDiff says, component by component, how what exists now differs
// from what the plan saw: an object that stopped or started, one that is
// gone, one that appeared, or one in place of another (a restart or
// replacement outside this plan).
func realityDiff(then, now []Seen) []string {
	type objects map[string]Seen // existing objects by provider|fingerprint
	group := func(list []Seen) map[string]objects {
		out := map[string]objects{}
		for _, s := range list {
			if out[s.Address] == nil {
				out[s.Address] = objects{}
			}
			if s.Exists {
				out[s.Address][s.Provider+"|"+s.Fingerprint] = s
			}
		}
		return out
	}
	thenBy, nowBy := group(then), group(now)
	addrs := map[string]bool{}
	for a := range thenBy {
		addrs[a] = true
	}
	for a := range nowBy {
		addrs[a] = true
	}
	var out []string
	for _, addr := range sortedKeys(addrs) {
		was, is := thenBy[addr], nowBy[addr]
		var gone, appeared []string
		for _, k := range sortedKeys(was) {
			s := was[k]
			n, ok := is[k]
			switch {
			case !ok:
				gone = append(gone, describeSeen(s))
			case s.Running && !n.Running:
				out = append(out, fmt.Sprintf("%s changed since the plan was made: it stopped (%s was running)", addr, describeSeen(s)))
			case !s.Running && n.Running:
				out = append(out, fmt.Sprintf("%s changed since the plan was made: it started (%s was not running)", addr, describeSeen(s)))
			}
		}
		for _, k := range sortedKeys(is) {
			if _, ok := was[k]; !ok {
				appeared = append(appeared, describeSeen(is[k]))
			}
		}
		switch {
		case len(gone) > 0 && len(appeared) > 0:
			out = append(out, fmt.Sprintf("%s changed since the plan was made: it was restarted or replaced (%s is gone; %s is there instead)", addr, strings.Join(gone, ", "), strings.Join(appeared, ", ")))
		case len(gone) > 0:
			out = append(out, fmt.Sprintf("%s changed since the plan was made: it is gone (%s no longer exists)", addr, strings.Join(gone, ", ")))
		case len(appeared) > 0:
			out = append(out, fmt.Sprintf("%s changed since the plan was made: a new object appeared (%s)", addr, strings.Join(appeared, ", ")))
		}
	}
	return out
}

func describeSeen(s Seen) string { return s.Provider + " object " + s.Fingerprint }

// PlannedPipeline is the desired pipeline the plan was made for. A plan with
// sensitive values holds none of them: load reads the pipeline file again,
// which must give exactly the planned specs (else a *StaleError).
func (f *File) PlannedPipeline(load func(path string) (*config.Pipeline, error)) (*config.Pipeline, error) {
	saved, err := f.DesiredPipeline()
	if err != nil || saved == nil {
		return saved, err
	}
	desired := saved
	if f.HasSensitive {
		if f.PipelineFile == "" {
			return nil, errors.New("the plan has sensitive values, which plan files never hold, and names no pipeline file to read them from")
		}
		desired, err = load(f.PipelineFile)
		if err != nil {
			return nil, err
		}
		keepResolvedImages(saved, desired)
	}
	for _, ch := range f.Plan.Changes {
		if ch.Action.IsDelete() || ch.SpecHash == "" {
			continue
		}
		c := desired.Component(ch.Address)
		if c == nil || c.SpecHash() != ch.SpecHash {
			hint := ""
			if f.HasSensitive {
				hint = " (sensitive values come from the pipeline file and its variables: pass the same -var, -var-file and FLOWCTL_VAR_ values as for plan)"
			}
			return nil, &StaleError{Reasons: []string{fmt.Sprintf("%s no longer has the planned configuration%s", ch.Address, hint)}}
		}
	}
	return desired, nil
}
