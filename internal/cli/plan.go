package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/complete"
	"github.com/flowctl/flowctl/internal/plan"
)

// planFlags are plan's own flags, shared with apply and destroy.
type planFlags struct {
	targets []string
	replace []string
	refresh bool
}

// add registers them on cmd; destroy has no -replace, and its -target
// works the other way round: ADDR and what depends on it.
func (f *planFlags) add(cmd *cobra.Command, withReplace bool) {
	target := "limit the plan to ADDR and what it depends on (with -destroy: ADDR and what depends on it; repeatable)"
	if !withReplace {
		target = "destroy only ADDR and what depends on it (repeatable)"
	}
	cmd.Flags().StringArrayVar(&f.targets, "target", nil, target)
	if withReplace {
		cmd.Flags().StringArrayVar(&f.replace, "replace", nil, "replace ADDR even if it is up to date (repeatable)")
	}
	cmd.Flags().BoolVar(&f.refresh, "refresh", true, "ask the executors what is running (-refresh=false trusts the state)")
	complete.AddressFlags(cmd, "target", "replace")
}

func (f *planFlags) options(destroy bool) plan.Options {
	return plan.Options{Destroy: destroy, Targets: f.targets, Replace: f.replace, NoRefresh: !f.refresh}
}

func newPlanCommand(g *globals) *cobra.Command {
	var (
		sf       stateFlags
		pf       planFlags
		out      string
		asJSON   bool
		detailed bool
		destroy  bool
		lock     bool
	)
	cmd := &cobra.Command{
		Use:   "plan [PIPELINE]",
		Short: "Show what apply would change, and why",
		Long: "Plan compares the pipeline file with the state and with what the executors\n" +
			"report is running, and prints the ordered change set. -out saves it for review\n" +
			"and for 'flowctl apply PLANFILE'.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			sf.ifExists = true // plan reads a state, never creates one
			sf.readOnly = !lock
			ws, err := openWorkspace(g, args, &sf, destroy)
			if err != nil {
				return err
			}
			if ws.Store != nil && lock {
				l, err := lockState(ctx, g, ws, "plan", sf.lockTimeout)
				if err != nil {
					return err
				}
				defer l.Release()
			}
			p, in, err := makePlan(ctx, ws, pf.options(destroy))
			if err != nil {
				return err
			}
			if out != "" {
				f, err := plan.NewFile(p, plan.FileOptions{PipelineFile: ws.File, StatePath: sf.statePath, Records: in.Records, TokenGeneration: in.Meta.TokenGeneration, State: in.State, Now: time.Now()})
				if err != nil {
					return err
				}
				if err := f.WriteFile(out); err != nil {
					return err
				}
			}
			if asJSON {
				if err := writePlanJSON(g, p); err != nil {
					return err
				}
			} else {
				plan.Render(g.streams.Out, p, plan.RenderOptions{Color: g.color(g.streams.Out)})
				if out != "" {
					fmt.Fprintf(g.streams.Out, "\nSaved the plan to %s. To perform exactly these actions, run:\n    flowctl apply %s\n", out, out)
				}
			}
			if detailed && p.HasChanges() {
				return &exitError{code: 2}
			}
			return nil
		},
	}
	sf.add(cmd.Flags(), true)
	pf.add(cmd, true)
	cmd.Flags().StringVar(&out, "out", "", "save the plan to FILE")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the plan as JSON (see docs/plan-format.md)")
	cmd.Flags().BoolVar(&detailed, "detailed-exitcode", false, "exit 0 with no changes, 1 on error, 2 with changes")
	cmd.Flags().BoolVar(&destroy, "destroy", false, "plan to destroy every component")
	cmd.Flags().BoolVar(&lock, "lock", true, "take the state's operation lock while reading (-lock=false reads it read-only, writing nothing at all)")
	return cmd
}

// makePlan plans for ws, and returns the input it planned from.
func makePlan(ctx context.Context, ws *workspace, opts plan.Options) (*plan.Plan, plan.Input, error) {
	in, err := ws.PlanInput(opts)
	if err != nil {
		return nil, in, err
	}
	for _, t := range append(append([]string(nil), opts.Targets...), opts.Replace...) {
		if !knownAddress(in, t) {
			return nil, in, fmt.Errorf("%s is not a component of the pipeline or the state", t)
		}
	}
	in.ControlPlane = ws.ObserveControlPlane(ctx, opts)
	p, err := plan.Make(ctx, in)
	return p, in, err
}

func knownAddress(in plan.Input, addr string) bool {
	if in.Desired != nil && in.Desired.Component(addr) != nil {
		return true
	}
	for _, r := range in.Records {
		if r.Address == addr {
			return true
		}
	}
	return false
}

// planJSON is `plan -json` and `show -json`: the plan with a summary.
type planJSON struct {
	FormatVersion string `json:"format_version"`
	*plan.Plan
	Summary map[string]int `json:"summary"`
}

func writePlanJSON(g *globals, p *plan.Plan) error {
	counts := map[string]int{}
	for a, n := range p.Counts() {
		counts[string(a)] = n
	}
	b, err := json.MarshalIndent(planJSON{FormatVersion: "1", Plan: p, Summary: counts}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode plan: %w", err)
	}
	_, err = fmt.Fprintf(g.streams.Out, "%s\n", b)
	return err
}
