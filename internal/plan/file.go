package plan

import (
	"bytes"
	"crypto/rand"
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
	"github.com/flowctl/flowctl/internal/state"
)

// FileFormatVersion is the version of the saved plan format written
// (docs/plan-format.md). Version 1 files (absolute paths, staleness by
// serial) are still read.
const FileFormatVersion = 2

// fileMarker identifies a saved plan among the files apply accepts.
const fileMarker = "flowctl-plan"

// File is a saved plan: what was planned and everything needed to tell
// whether it is still valid. It holds no sensitive value: apply reloads the
// pipeline file to get them, and checks their hashes.
type File struct {
	Format        string    `json:"format"`
	FormatVersion int       `json:"format_version"`
	CreatedAt     time.Time `json:"created_at"`
	// PipelineFile is the pipeline file planned: from version 2 relative to
	// the working directory plan ran in (slash-separated), so that another
	// checkout applies it from its own working directory; absolute in
	// version 1.
	PipelineFile string `json:"pipeline_file"`
	// StatePath is the state file named with -state when the plan was made:
	// relative as PipelineFile when it was given relative, else absolute;
	// empty: the pipeline's own state.
	StatePath string `json:"state_path"`
	// Desired is the normalised pipeline, sensitive values redacted.
	Desired json.RawMessage `json:"desired"`
	// HasSensitive says the desired pipeline has sensitive values, so apply
	// must reload the pipeline file (with the same variables) to get them.
	HasSensitive bool  `json:"has_sensitive"`
	Plan         *Plan `json:"plan"`
	// World is the recorded desired world the plan was made against: every
	// component the state recorded, with its executor and spec hash
	// (version 2).
	World []WorldEntry `json:"world"`
	// ActsOn is what the plan saw of each recorded component it changes
	// (version 2).
	ActsOn []ActedOn `json:"acts_on"`
	// TokenGeneration is the state's token secret generation the plan saw:
	// `flowctl tokens rotate` since is a state edit (version 2).
	TokenGeneration uint64 `json:"token_generation"`
	// State names the backend of the state the plan was made against (and,
	// for a database, its workspace and schema: state.Store.Identity);
	// empty when there was none. A plan applied to another state names
	// both.
	State string `json:"state,omitempty"`
	// Checksum is the SHA-256 of the file with this field empty.
	Checksum string `json:"checksum"`

	// SpecKey, set by the reader before PlannedPipeline, keys the spec
	// hashes of sensitive values (the state's config.SpecKey); never saved.
	SpecKey *config.SpecKey `json:"-"`
}

// FileOptions say where a plan was made.
type FileOptions struct {
	// WorkDir is the working directory plan ran in; paths are saved
	// relative to it.
	WorkDir string
	// PipelineFile is the pipeline file planned ("" for none).
	PipelineFile string
	// StatePath is the state the operator named with -state ("" for the
	// pipeline's own).
	StatePath string
	// Records are the state's records the plan was made from, and
	// TokenGeneration its token secret generation.
	Records         []*state.Record
	TokenGeneration uint64
	// State is the state's Identity ("" for none).
	State string
	Now   time.Time
}

// NewFile wraps a plan for saving.
func NewFile(p *Plan, o FileOptions) (*File, error) {
	f := &File{Format: fileMarker, FormatVersion: FileFormatVersion, CreatedAt: o.Now.UTC(), Plan: p, TokenGeneration: o.TokenGeneration, State: o.State}
	var err error
	if f.PipelineFile, err = relativePath(o.WorkDir, o.PipelineFile); err != nil {
		return nil, err
	}
	// A -state given as an absolute path names a place outside the
	// checkout (a shared mount): it stays as given.
	f.StatePath = o.StatePath
	if !filepath.IsAbs(o.StatePath) {
		if f.StatePath, err = relativePath(o.WorkDir, o.StatePath); err != nil {
			return nil, err
		}
	}
	f.World, f.ActsOn = worldOf(o.Records), actsOn(p, o.Records)
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

// relativePath is path relative to dir, slash-separated; a path outside
// dir keeps its ../ steps.
func relativePath(dir, path string) (string, error) {
	if path == "" {
		return "", nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("plan file: %w", err)
	}
	if dir == "" {
		if dir, err = os.Getwd(); err != nil {
			return "", fmt.Errorf("plan file: %w", err)
		}
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("plan file: %w", err)
	}
	rel, err := filepath.Rel(absDir, abs)
	if err != nil {
		return "", fmt.Errorf("plan file: %w", err)
	}
	return filepath.ToSlash(rel), nil
}

// Resolve gives a path saved in the file (PipelineFile, StatePath) as a
// path for the applying job, whose working directory is dir: relative
// paths resolve against it; version 1's absolute paths stay as they are.
// It does not look at the file system.
func (f *File) Resolve(dir, saved string) string {
	if saved == "" {
		return ""
	}
	p := filepath.FromSlash(saved)
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// PipelinePath is the pipeline file the plan names, resolved against dir,
// the applying job's working directory. It is an error naming both the
// saved and the resolved path when the file is not there: a plan from
// another checkout is applied from the same place in this one.
func (f *File) PipelinePath(dir string) (string, error) {
	if f.PipelineFile == "" {
		return "", nil
	}
	p := f.Resolve(dir, f.PipelineFile)
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("the plan was made for the pipeline file %s, which is not at %s (%w): apply a saved plan from the folder the plan was made in, in this checkout; nothing was done", f.PipelineFile, p, unwrapPathError(err))
	}
	return p, nil
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
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
	if f.FormatVersion < 1 || f.FormatVersion > FileFormatVersion {
		return nil, fmt.Errorf("read plan: format version %d; this flowctl reads versions 1 to %d", f.FormatVersion, FileFormatVersion)
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

// planned says whether c is the spec ch planned. A plan made with no state
// hashed its sensitive values with a key of its own (OneOffSpecKey), which
// no apply has: for it, c must have exactly the redacted spec the plan
// shows, the one reviewed.
func (f *File) planned(c *config.Component, ch *Change) bool {
	if PlannedSpec(c, f.SpecKey, ch.SpecHash) {
		return true
	}
	if f.Plan.Lineage != "" || !c.HasSensitive() {
		return false
	}
	var saved bytes.Buffer // the file is indented: compare compact forms
	if json.Compact(&saved, ch.Spec) != nil {
		return false
	}
	return bytes.Equal(c.Redacted().CanonicalJSON(), saved.Bytes())
}

// Rekey gives the changes of a plan made with no state the spec hashes
// under key, the state's, which apply records and labels objects with: the
// plan's own key (OneOffSpecKey) was never kept. Other plans are left as
// they are.
func (f *File) Rekey(desired *config.Pipeline, key *config.SpecKey) {
	if f.Plan.Lineage != "" || desired == nil || key == nil {
		return
	}
	for _, ch := range f.Plan.Changes {
		if c := desired.Component(ch.Address); c != nil && ch.SpecHash != "" && c.HasSensitive() {
			ch.SpecHash = c.SpecHash(key)
		}
	}
}

// OneOffSpecKey is a spec hash key for a plan made with no state: plan
// writes nothing, so it cannot keep the key a state keeps beside it.
func OneOffSpecKey() (*config.SpecKey, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("spec hash key: %w", err)
	}
	return config.NewSpecKey(b)
}

// PlannedPipeline is the desired pipeline the plan was made for. A plan with
// sensitive values holds none of them: load reads the pipeline file again
// (at path, PipelinePath's answer), which must give exactly the planned
// specs (else a *StaleError).
func (f *File) PlannedPipeline(path string, load func(path string) (*config.Pipeline, error)) (*config.Pipeline, error) {
	saved, err := f.DesiredPipeline()
	if err != nil || saved == nil {
		return saved, err
	}
	desired := saved
	if f.HasSensitive {
		if path == "" {
			return nil, errors.New("the plan has sensitive values, which plan files never hold, and names no pipeline file to read them from")
		}
		desired, err = load(path)
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
		if c == nil || !f.planned(c, ch) {
			hint := ""
			if f.HasSensitive {
				hint = " (sensitive values come from the pipeline file and its variables: pass the same -var, -var-file and FLOWCTL_VAR_ values as for plan)"
			}
			return nil, &StaleError{Reasons: []string{fmt.Sprintf("%s no longer has the planned configuration%s", ch.Address, hint)}}
		}
	}
	return desired, nil
}
