package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/plan"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/providers/kubernetes"
	"github.com/flowctl/flowctl/internal/providers/nomad"
	"github.com/flowctl/flowctl/internal/providers/registry"
	"github.com/flowctl/flowctl/internal/state"
)

// stateFlags are the flags every command that touches state shares.
type stateFlags struct {
	statePath   string
	lockTimeout time.Duration
	vars        []config.VarArg
	// readOnly opens the state read-only (state.ReadOnly): for commands
	// that only read it, which then work on a file flowctl may not write.
	readOnly bool
	// ifExists opens the state only if there is one (state.IfExists):
	// without one the workspace has no store, and plans from empty.
	ifExists bool
}

func (f *stateFlags) add(fs *pflag.FlagSet, withVars bool) {
	fs.StringVar(&f.statePath, "state", "", "state file (default .flowctl/<pipeline>.state.db beside the pipeline file)")
	fs.DurationVar(&f.lockTimeout, "lock-timeout", 0, "how long to wait for the state lock (0: fail at once)")
	if withVars {
		addVarFlags(fs, &f.vars)
	}
}

// workspace is one pipeline's file, state and executors, as a command sees
// them.
type workspace struct {
	file     string // pipeline file; empty when working from state alone
	pipeline *config.Pipeline
	store    *state.Store
	stateDir string
	// statePath is where the state is, or would be when store is nil
	// (stateFlags.ifExists and no state yet).
	statePath string
	workDir   string
	providers *providers.Registry
	// controlPlane is a control plane the operator names (--control-plane):
	// not flowctl's to run, so plans leave it out.
	controlPlane string
}

// openWorkspace loads the pipeline (args[0] or the single one in the folder)
// and opens its state. With allowStateOnly, a missing pipeline file is fine
// when --state names an existing state file.
func openWorkspace(g *globals, args []string, f *stateFlags, allowStateOnly bool) (*workspace, error) {
	ws := &workspace{}
	path, perr := config.FindPipelineFile(".", args, config.NoteTo(g.streams.Err))
	switch {
	case perr == nil:
		p, err := loadValidPipeline(g, path, f.vars)
		if err != nil {
			return nil, err
		}
		ws.file, ws.pipeline = path, p
		ws.workDir = filepath.Dir(path)
		sp := f.statePath
		if sp == "" {
			sp = state.DefaultPath(path, p.Name)
		}
		loc, err := state.Locate(sp, backendSettings(p.Backend), nil)
		if err != nil {
			return nil, err
		}
		st, err := state.OpenAt(loc, p.Name, f.stateOptions(registry.FreshStateCheck(p, sp))...)
		if err != nil && !(f.ifExists && errors.Is(err, state.ErrNoState)) {
			return nil, err
		}
		ws.store, ws.statePath = st, sp
	case allowStateOnly && f.statePath != "":
		loc, err := state.Locate(f.statePath, nil, nil)
		if err != nil {
			return nil, err
		}
		st, err := state.OpenAt(loc, "", f.stateOptions(nil)...)
		if err != nil {
			return nil, err
		}
		ws.store, ws.statePath = st, f.statePath
		// Relative commands resolved against the pipeline's folder, which is
		// the state folder's parent by default.
		ws.workDir = filepath.Dir(filepath.Dir(f.statePath))
	default:
		return nil, perr
	}
	if abs, err := filepath.Abs(ws.workDir); err == nil {
		ws.workDir = abs
	}
	ws.stateDir = filepath.Dir(ws.statePath)
	// The docker and nomad providers contact their engine on first use
	// only: commands on pipelines without such components never need one.
	// Nomad's connection is the pipeline's nomad block over NOMAD_*.
	var nomadOpts nomad.Options
	k8sOpts := kubernetes.Options{WorkDir: ws.workDir}
	if ws.pipeline != nil {
		nomadOpts.Settings, nomadOpts.PipelineNamespace = ws.pipeline.Nomad, ws.pipeline.Namespace
		k8sOpts.Settings, k8sOpts.PipelineNamespace = ws.pipeline.Kubernetes, ws.pipeline.Namespace
	}
	ws.providers = registry.New(registry.Options{StateDir: ws.stateDir, Nomad: nomadOpts, Kubernetes: k8sOpts})
	return ws, nil
}

// backendSettings is the pipeline's backend block for state.Locate.
func backendSettings(b *config.Backend) *state.BackendSettings {
	if b == nil {
		return nil
	}
	return &state.BackendSettings{Type: b.Type, ConnStr: b.ConnStr, Schema: b.SchemaName, Workspace: b.Workspace}
}

// stateOptions are the state.Open options f asks for.
func (f *stateFlags) stateOptions(fresh func(why string) error) []state.Option {
	var opts []state.Option
	if f.readOnly {
		opts = append(opts, state.ReadOnly())
	}
	if f.ifExists {
		opts = append(opts, state.IfExists())
	}
	if fresh != nil {
		opts = append(opts, state.WithFreshCheck(fresh))
	}
	return opts
}

// lock takes the operation lock, printing a warning when it breaks a stale
// one.
func (ws *workspace) lock(ctx context.Context, g *globals, op string, timeout time.Duration) (*state.Lock, error) {
	l, err := ws.store.Acquire(ctx, state.LockOptions{
		Operation: op, Timeout: timeout,
		OnBreak: func(stale state.LockInfo) {
			fmt.Fprintf(g.streams.Err, "Warning: broke a stale state lock (%s): its process no longer exists\n", stale.String())
		},
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// specKey is the state's spec hash key (nil when there is none and not
// create): beside the state file, or, for a state in a database, in the
// database, which every machine that applies the pipeline shares.
func (ws *workspace) specKey(create bool) (*config.SpecKey, error) {
	if ws.store == nil || ws.store.Location().PG == nil {
		return config.StateSpecKey(ws.statePath, create)
	}
	raw, err := ws.store.SharedKey(config.SpecKeyFileName, create)
	if err != nil || raw == nil {
		return nil, err
	}
	return config.NewSpecKey(raw)
}

// planInput gathers what a plan is made from.
func (ws *workspace) planInput(opts plan.Options) (plan.Input, error) {
	in := plan.Input{Desired: ws.pipeline, Providers: ws.providers, Options: opts}
	var err error
	needsKey := ws.pipeline != nil && ws.pipeline.NeedsSpecKey()
	if in.SpecKey, err = ws.specKey(needsKey && ws.store != nil); err != nil {
		return in, err
	}
	if ws.store == nil {
		// No state yet: plan from empty, and write nothing (not even a key).
		in.Meta.Pipeline = ws.pipeline.Name
		if needsKey && in.SpecKey == nil {
			in.SpecKey, err = plan.OneOffSpecKey()
		}
		return in, err
	}
	err = ws.store.View(func(tx *state.Tx) error {
		in.Meta, in.State = tx.Meta(), ws.store.Identity()
		recs, err := tx.Components()
		in.Records = recs
		return err
	})
	if err != nil {
		return in, fmt.Errorf("read state: %w", err)
	}
	return in, nil
}

// isTerminal reports whether r is an interactive terminal. A character
// device is not enough: /dev/null is one, and it is what stdin is for
// commands run by scripts and CI, which must not be asked for input.
func isTerminal(r any) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
