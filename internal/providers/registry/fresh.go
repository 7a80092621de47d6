package registry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/providers/kubernetes"
	"github.com/flowctl/flowctl/internal/providers/nomad"
	"github.com/flowctl/flowctl/internal/state"
)

// freshListTimeout bounds the executors' answer to "what of this pipeline
// runs?" before a state file is created.
const freshListTimeout = 30 * time.Second

// FreshStateCheck is the check state.Open makes (state.WithFreshCheck) before it gives a missing
// or empty state file a fresh lineage: the pipeline's executors must hold
// no object of it that carries a lineage. Such objects were made by a
// state this file should hold (it was deleted or emptied); a fresh lineage
// would make them another state's, and the next apply would start a second
// set beside them.
func FreshStateCheck(p *config.Pipeline, statePath string) func(why string) error {
	return func(why string) error {
		ctx, cancel := context.WithTimeout(context.Background(), freshListTimeout)
		defer cancel()
		reg := New(Options{
			StateDir: filepath.Dir(statePath),
			Nomad:    nomad.Options{Settings: p.Nomad, PipelineNamespace: p.Namespace},
			Kubernetes: kubernetes.Options{Settings: p.Kubernetes, PipelineNamespace: p.Namespace,
				WorkDir: filepath.Dir(p.File)},
		})
		used := map[string]bool{}
		for _, c := range p.Components {
			used[c.Executor] = true
		}
		// The backup, when there is one, says which lineage this file had:
		// objects of other lineages are then other folders' (a pipeline of
		// the same name), and a plan shows them as such.
		ours := backupLineage(statePath)
		var running []string
		lineages := map[string]bool{}
		for name := range used {
			prov, err := reg.Get(name)
			if err != nil {
				continue // an unknown executor is the plan's to report
			}
			objs, err := prov.List(ctx, p.Name)
			if err != nil {
				return fmt.Errorf("state file %s %s; before creating it, flowctl asks the %s executor what of pipeline %s runs: %w", statePath, why, name, p.Name, err)
			}
			for _, o := range objs {
				if o.Lineage != "" && (ours == "" || o.Lineage == ours) {
					running = append(running, fmt.Sprintf("%s (%s)", o.Address, name))
					lineages[o.Lineage] = true
				}
			}
		}
		if len(running) == 0 {
			return nil
		}
		sort.Strings(running)
		var ls []string
		for l := range lineages {
			ls = append(ls, l)
		}
		sort.Strings(ls)
		return &lostStateError{path: statePath, why: why, pipeline: p.Name, running: running, lineages: ls}
	}
}

// lostStateError says the state file is missing or empty while objects of
// its pipeline run.
type lostStateError struct {
	path, why, pipeline string
	running, lineages   []string
}

func (e *lostStateError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "state file %s %s, but %d component(s) of pipeline %s run, made by state lineage %s: %s.\n",
		e.path, e.why, len(e.running), e.pipeline, strings.Join(e.lineages, ", "), strings.Join(e.running, ", "))
	b.WriteString("flowctl will not start a new state beside them (it would lose track of them). Nothing was written.\n")
	backup := state.BackupPath(e.path)
	if _, err := os.Stat(backup); err == nil {
		fmt.Fprintf(&b, "Put the last backup back with: flowctl state restore --state %s (from %s)", e.path, backup)
	} else if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(&b, "There is no backup (%s). Restore a copy of the state file with: flowctl state restore --state %s --from FILE", backup, e.path)
	}
	return b.String()
}

// backupLineage is the lineage of the state file's backup ("" when there is
// none or it cannot be read).
func backupLineage(statePath string) string {
	b, err := state.Open(state.BackupPath(statePath), "", state.ReadOnly())
	if err != nil {
		return ""
	}
	var lineage string
	_ = b.View(func(tx *state.Tx) error { lineage = tx.Meta().Lineage; return nil })
	return lineage
}
