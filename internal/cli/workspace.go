package cli

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/state"
	wsp "github.com/flowctl/flowctl/internal/workspace"
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

// workspace is what a command works on (see package workspace).
type workspace = wsp.Workspace

// openWorkspace loads the pipeline (args[0] or the single one in the folder)
// and opens its state. With allowStateOnly, a missing pipeline file is fine
// when --state names an existing state file.
func openWorkspace(g *globals, args []string, f *stateFlags, allowStateOnly bool) (*workspace, error) {
	return wsp.Open(args, wsp.Options{
		StatePath: f.statePath, ReadOnly: f.readOnly, IfExists: f.ifExists, AllowStateOnly: allowStateOnly,
		Load: func(path string) (*config.Pipeline, error) { return loadValidPipeline(g, path, f.vars) },
		Note: g.streams.Err,
	})
}

// lockState takes ws's operation lock, printing a warning when it breaks a
// stale one.
func lockState(ctx context.Context, g *globals, ws *workspace, op string, timeout time.Duration) (*state.Lock, error) {
	return ws.Lock(ctx, op, timeout, func(stale state.LockInfo) {
		fmt.Fprintf(g.streams.Err, "Warning: broke a stale state lock (%s): its process no longer exists\n", stale.String())
	})
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
