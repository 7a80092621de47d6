// Package workspace opens what a flowctl command works on: a pipeline file
// (found or named), the state it names (a file or a database workspace) and
// the executors its components need, and gathers from them what a plan is
// made of.
package workspace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/plan"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/kubernetes"
	"github.com/flowctl/flowctl/internal/providers/nomad"
	"github.com/flowctl/flowctl/internal/providers/registry"
	"github.com/flowctl/flowctl/internal/state"
)

// Options say how Open finds and opens a workspace.
type Options struct {
	// StatePath overrides the state's location (--state); by default the
	// pipeline file names it (state.DefaultPath, or its backend block).
	StatePath string
	// ReadOnly opens the state read-only (state.ReadOnly): for commands
	// that only read it, which then work on a file flowctl may not write.
	ReadOnly bool
	// IfExists opens the state only if there is one (state.IfExists):
	// without one the workspace has no Store, and plans from empty.
	IfExists bool
	// AllowStateOnly lets a missing pipeline file be when StatePath names
	// an existing state.
	AllowStateOnly bool
	// Load loads and validates a pipeline file, reporting its diagnostics.
	Load func(path string) (*config.Pipeline, error)
	// Note, when set, is told which file was chosen in a folder holding
	// the same pipeline in both formats.
	Note io.Writer
}

// Workspace is one pipeline's file, state and executors, as a command sees
// them.
type Workspace struct {
	File     string // pipeline file; empty when working from state alone
	Pipeline *config.Pipeline
	Store    *state.Store
	StateDir string
	// StatePath is where the state is, or would be when Store is nil
	// (Options.IfExists and no state yet).
	StatePath string
	WorkDir   string
	Providers *providers.Registry
	// ControlPlane is a control plane the operator names (--control-plane):
	// not flowctl's to run, so plans leave it out.
	ControlPlane string
}

// Open loads the pipeline (args[0], or the one in the current folder) and
// opens its state.
func Open(args []string, o Options) (*Workspace, error) {
	ws := &Workspace{}
	var find []config.FindOption
	if o.Note != nil {
		find = append(find, config.NoteTo(o.Note))
	}
	path, perr := config.FindPipelineFile(".", args, find...)
	switch {
	case perr == nil:
		p, err := o.Load(path)
		if err != nil {
			return nil, err
		}
		ws.File, ws.Pipeline = path, p
		ws.WorkDir = filepath.Dir(path)
		sp := o.StatePath
		if sp == "" {
			sp = state.DefaultPath(path, p.Name)
		}
		loc, err := state.Locate(sp, BackendSettings(p.Backend), nil)
		if err != nil {
			return nil, err
		}
		st, err := state.OpenAt(loc, p.Name, o.stateOptions(registry.FreshStateCheck(p, sp))...)
		if err != nil && !(o.IfExists && errors.Is(err, state.ErrNoState)) {
			return nil, err
		}
		ws.Store, ws.StatePath = st, sp
	case o.AllowStateOnly && o.StatePath != "":
		loc, err := state.Locate(o.StatePath, nil, nil)
		if err != nil {
			return nil, err
		}
		st, err := state.OpenAt(loc, "", o.stateOptions(nil)...)
		if err != nil {
			return nil, err
		}
		ws.Store, ws.StatePath = st, o.StatePath
		// Relative commands resolved against the pipeline's folder, which is
		// the state folder's parent by default.
		ws.WorkDir = filepath.Dir(filepath.Dir(o.StatePath))
	default:
		return nil, perr
	}
	if abs, err := filepath.Abs(ws.WorkDir); err == nil {
		ws.WorkDir = abs
	}
	ws.StateDir = filepath.Dir(ws.StatePath)
	// The docker and nomad providers contact their engine on first use
	// only: commands on pipelines without such components never need one.
	// Nomad's connection is the pipeline's nomad block over NOMAD_*.
	var nomadOpts nomad.Options
	k8sOpts := kubernetes.Options{WorkDir: ws.WorkDir}
	if ws.Pipeline != nil {
		nomadOpts.Settings, nomadOpts.PipelineNamespace = ws.Pipeline.Nomad, ws.Pipeline.Namespace
		k8sOpts.Settings, k8sOpts.PipelineNamespace = ws.Pipeline.Kubernetes, ws.Pipeline.Namespace
	}
	ws.Providers = registry.New(registry.Options{StateDir: ws.StateDir, Nomad: nomadOpts, Kubernetes: k8sOpts})
	return ws, nil
}

// BackendSettings is the pipeline's backend block for state.Locate.
func BackendSettings(b *config.Backend) *state.BackendSettings {
	if b == nil {
		return nil
	}
	return &state.BackendSettings{Type: b.Type, ConnStr: b.ConnStr, Schema: b.SchemaName, Workspace: b.Workspace}
}

// stateOptions are the state.Open options o asks for.
func (o *Options) stateOptions(fresh func(why string) error) []state.Option {
	var opts []state.Option
	if o.ReadOnly {
		opts = append(opts, state.ReadOnly())
	}
	if o.IfExists {
		opts = append(opts, state.IfExists())
	}
	if fresh != nil {
		opts = append(opts, state.WithFreshCheck(fresh))
	}
	return opts
}

// Lock takes the operation lock for op, waiting up to timeout; onBreak is
// told of a stale lock it breaks.
func (ws *Workspace) Lock(ctx context.Context, op string, timeout time.Duration, onBreak func(stale state.LockInfo)) (*state.Lock, error) {
	return ws.Store.Acquire(ctx, state.LockOptions{Operation: op, Timeout: timeout, OnBreak: onBreak})
}

// SpecKey is the state's spec hash key (nil when there is none and not
// create): beside the state file, or, for a state in a database, in the
// database, which every machine that applies the pipeline shares.
func (ws *Workspace) SpecKey(create bool) (*config.SpecKey, error) {
	if ws.Store == nil || ws.Store.Location().PG == nil {
		return config.StateSpecKey(ws.StatePath, create)
	}
	raw, err := ws.Store.SharedKey(config.SpecKeyFileName, create)
	if err != nil || raw == nil {
		return nil, err
	}
	return config.NewSpecKey(raw)
}

// PlanInput gathers what a plan is made from.
func (ws *Workspace) PlanInput(opts plan.Options) (plan.Input, error) {
	in := plan.Input{Desired: ws.Pipeline, Providers: ws.Providers, Options: opts}
	var err error
	needsKey := ws.Pipeline != nil && ws.Pipeline.NeedsSpecKey()
	if in.SpecKey, err = ws.SpecKey(needsKey && ws.Store != nil); err != nil {
		return in, err
	}
	if ws.Store == nil {
		// No state yet: plan from empty, and write nothing (not even a key).
		in.Meta.Pipeline = ws.Pipeline.Name
		if needsKey && in.SpecKey == nil {
			in.SpecKey, err = plan.OneOffSpecKey()
		}
		return in, err
	}
	err = ws.Store.View(func(tx *state.Tx) error {
		in.Meta, in.State = tx.Meta(), ws.Store.Identity()
		recs, err := tx.Components()
		in.Records = recs
		return err
	})
	if err != nil {
		return in, fmt.Errorf("read state: %w", err)
	}
	return in, nil
}
