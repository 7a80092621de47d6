package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/apply"
	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/plan"
	"github.com/flowctl/flowctl/internal/serve"
)

type applyFlags struct {
	autoApprove  bool
	parallelism  int
	controlPlane string
	// keepControlPlane: a failed apply leaves the control plane running
	// even when nothing of the pipeline runs (flowctl run serves it and
	// goes on).
	keepControlPlane bool
	// asJSON streams events (apply.Event) on stdout; events is the stream.
	asJSON bool
	events *apply.JSONStream
}

func (f *applyFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.autoApprove, "auto-approve", false, "apply without asking for confirmation")
	cmd.Flags().IntVar(&f.parallelism, "parallelism", 10, "how many components to change at once")
	cmd.Flags().BoolVar(&f.asJSON, "json", false, "stream one JSON object per event on stdout, people's text on stderr (needs -auto-approve or a saved plan; docs/commands.md)")
	cmd.Flags().StringVar(&f.controlPlane, "control-plane", "", "host:port of the control plane components use (default: the pipeline's control_plane, else a flowctl serve started for this state file)")
}

func newApplyCommand(g *globals) *cobra.Command {
	var (
		sf stateFlags
		pf planFlags
		af applyFlags
	)
	cmd := &cobra.Command{
		Use:   "apply [PIPELINE|PLANFILE]",
		Short: "Make the running pipeline match its file",
		Long: "Apply plans, shows the plan and asks for 'yes', then executes it in dependency\n" +
			"order. Given a plan saved with 'flowctl plan -out', it applies exactly that plan\n" +
			"without asking, and refuses it if the state or what is running changed since.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withEvents(g, &af, "apply", func(g *globals) error {
				if len(args) == 1 {
					if b, err := os.ReadFile(args[0]); err == nil {
						switch plan.Classify(args[0], b) {
						case plan.SavedPlan:
							return runApplyPlanFile(cmd.Context(), g, args[0], &sf, &af)
						case plan.DamagedPlan:
							return plan.DamagedError(args[0], b)
						}
					}
				}
				return runApply(cmd.Context(), g, args, &sf, &pf, &af, false)
			})
		},
	}
	sf.add(cmd.Flags(), true)
	pf.add(cmd, true)
	af.add(cmd)
	return cmd
}

func newDestroyCommand(g *globals) *cobra.Command {
	var (
		sf stateFlags
		pf planFlags
		af applyFlags
	)
	cmd := &cobra.Command{
		Use:   "destroy [PIPELINE]",
		Short: "Stop and remove every component of the pipeline",
		Long: "Destroy stops every component the state records (and any orphan of the\n" +
			"pipeline), dependents first. It works from the state file alone (--state)\n" +
			"when the pipeline file is gone.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withEvents(g, &af, "destroy", func(g *globals) error {
				return runApply(cmd.Context(), g, args, &sf, &pf, &af, true)
			})
		},
	}
	sf.add(cmd.Flags(), true)
	pf.add(cmd, false)
	af.add(cmd)
	return cmd
}

func runApply(ctx context.Context, g *globals, args []string, sf *stateFlags, pf *planFlags, af *applyFlags, destroy bool) error {
	ws, err := openWorkspace(g, args, sf, destroy)
	if err != nil {
		return err
	}
	op := "apply"
	if destroy {
		op = "destroy"
	}
	l, err := lockState(ctx, g, ws, op, sf.lockTimeout)
	if err != nil {
		return err
	}
	defer l.Release()
	ws.ControlPlane = af.controlPlane
	p, _, err := makePlan(ctx, ws, pf.options(destroy))
	if err != nil {
		return err
	}
	out := g.streams.Out
	plan.Render(out, p, plan.RenderOptions{Color: g.color(out)})
	if !p.HasChanges() {
		if destroy {
			// Nothing to destroy, but a control plane may be left: destroy
			// always stops it.
			stopIdleControlPlane(g, ws)
		}
		return nil
	}
	if !af.autoApprove {
		if af.events != nil {
			return fmt.Errorf("%s -json asks nothing: add -auto-approve, or apply a plan saved with 'flowctl plan -out FILE'", op)
		}
		ok, err := confirm(g, destroy)
		if err != nil {
			return err
		}
		if !ok {
			fmt.Fprintf(out, "\n%s cancelled.\n", strings.ToUpper(op[:1])+op[1:])
			return errSilent
		}
	}
	fmt.Fprintln(out)
	return execute(ctx, g, ws, p, ws.Pipeline, af, op)
}

// withEvents runs an apply or destroy; with -json its stdout carries only
// the event stream (text for people goes to stderr), an error is an event
// too, and the last event is always a summary.
func withEvents(g *globals, af *applyFlags, op string, run func(g *globals) error) error {
	if !af.asJSON {
		return run(g)
	}
	text := *g
	text.streams.Out = g.streams.Err
	return apply.Stream(g.streams.Out, op, func(s *apply.JSONStream) error {
		af.events = s
		return run(&text)
	})
}

func confirm(g *globals, destroy bool) (bool, error) {
	if !isTerminal(g.streams.In) {
		return false, errors.New("no terminal to confirm on: run with -auto-approve, or save a plan with 'flowctl plan -out FILE' and apply that")
	}
	q := "Do you want to perform these actions?"
	if destroy {
		q = "Do you really want to destroy every component of this pipeline?"
	}
	fmt.Fprintf(g.streams.Out, "\n%s\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ", q)
	line, err := bufio.NewReader(g.streams.In).ReadString('\n')
	if err != nil && line == "" {
		return false, fmt.Errorf("read confirmation: %w", err)
	}
	return strings.TrimSpace(line) == "yes", nil
}

func runApplyPlanFile(ctx context.Context, g *globals, path string, sf *stateFlags, af *applyFlags) error {
	f, err := plan.ReadFile(path)
	if err != nil {
		return err
	}
	pipelinePath, err := f.PipelinePath(".")
	if err != nil {
		return err
	}
	sfCopy := *sf
	if sfCopy.statePath == "" {
		sfCopy.statePath = f.Resolve(".", f.StatePath)
	}
	// Only a plan made with no state may start one.
	sfCopy.ifExists = f.Plan.Lineage != ""
	var args []string
	if pipelinePath != "" {
		args = []string{pipelinePath}
	}
	ws, err := openWorkspace(g, args, &sfCopy, true)
	if err != nil {
		return err
	}
	if ws.Store == nil {
		return fmt.Errorf("the plan was made against the state with lineage %s, and there is no state at %s: apply it where that state is (the same -state, or the pipeline's backend); nothing was done", f.Plan.Lineage, ws.StatePath)
	}
	if f.SpecKey, err = ws.SpecKey(false); err != nil {
		return err
	}
	desired, err := f.PlannedPipeline(pipelinePath, func(path string) (*config.Pipeline, error) { return loadValidPipeline(g, path, sf.vars) })
	if err != nil {
		return err
	}
	l, err := lockState(ctx, g, ws, "apply", sf.lockTimeout)
	if err != nil {
		return err
	}
	defer l.Release()
	in, err := ws.PlanInput(plan.Options{Destroy: f.Plan.Destroy, Targets: f.Plan.Targets})
	if err != nil {
		return err
	}
	in.Desired = desired
	if err := f.CheckFresh(ctx, in); err != nil {
		return err
	}
	f.Rekey(desired, in.SpecKey)
	if !f.Plan.HasChanges() {
		fmt.Fprintln(g.streams.Out, "No changes. The saved plan has nothing to do.")
		return nil
	}
	op := "apply"
	if f.Plan.Destroy {
		op = "destroy"
	}
	return execute(ctx, g, ws, f.Plan, desired, af, op)
}

// execute runs the plan with Ctrl-C handling: the first interrupt lets
// in-flight steps finish and starts nothing new; the second aborts.
func execute(ctx context.Context, g *globals, ws *workspace, p *plan.Plan, desired *config.Pipeline, af *applyFlags, op string) error {
	ctx, stop, release := apply.Interruptible(ctx, g.streams.Err)
	defer release()
	eng := apply.New(apply.Wiring{Store: ws.Store, Providers: ws.Providers})
	if af.events != nil {
		af.events.Emit(apply.StartEvent(p, op))
	}
	if p.StartsComponents() || p.ControlPlane != nil {
		var err error
		if eng, err = connectControlPlane(ctx, g, ws, af.controlPlane); err != nil {
			return err
		}
	}
	opts := apply.Options{WorkDir: ws.WorkDir, Parallelism: af.parallelism, Out: g.streams.Out, OpID: uuid.NewString(), Operation: op}
	if af.events != nil {
		opts.Events = af.events.Emit
	}
	start := time.Now()
	res, err := eng.Apply(ctx, stop, p, desired, opts)
	if af.events != nil && res != nil {
		af.events.Emit(apply.SummaryEvent(res, op, time.Since(start), err))
	}
	if op == "destroy" || !af.keepControlPlane {
		// Nothing left running and nothing pending: the control plane
		// serves nobody.
		stopIdleControlPlane(g, ws)
	}
	if err != nil && res == nil {
		return err
	}
	out := g.streams.Out
	fmt.Fprintln(out)
	if err != nil {
		res.WriteFailures(g.streams.Err, op, time.Since(start))
		return errSilent
	}
	fmt.Fprintln(out, res.Summary(op == "destroy"))
	return nil
}

// connectControlPlane makes sure a control plane listens (see
// serve.Ensure) and returns an engine that tells components where it is,
// gives each instance its token, and waits for registering components to
// register.
func connectControlPlane(ctx context.Context, g *globals, ws *workspace, override string) (*apply.Engine, error) {
	cp, err := ensureControlPlane(ctx, ws, override)
	if err != nil {
		return nil, err
	}
	if cp.Started {
		fmt.Fprintf(g.streams.Out, "Control plane started in the background on %s (log: %s).\n", cp.Endpoint, serve.LogPath(ws.Store.Path()))
		if cp.Moved != "" {
			fmt.Fprintf(g.streams.Out, "Its recorded address %s is taken: running components learn the new one at their next start (a restart by the watcher, or an apply).\n", cp.Moved)
		}
		fmt.Fprintln(g.streams.Out)
	}
	secret, gen, err := serve.TokenSecret(ws.Store)
	if err != nil {
		return nil, err
	}
	return serve.NewEngine(serve.EngineOptions{
		Store: ws.Store, Providers: ws.Providers, Endpoint: cp.Endpoint,
		Secret: secret, Generation: gen, Registrations: serve.RegistrationsIn(ws.Store),
	})
}

// stopIdleControlPlane stops the control plane of ws's state file when
// nothing of the pipeline runs or is pending (serve.StopIfIdle), and says
// so.
func stopIdleControlPlane(g *globals, ws *workspace) {
	stopped, err := serve.StopIfIdle(ws.Store)
	switch {
	case err != nil:
		fmt.Fprintf(g.streams.Err, "Warning: %v\n", err)
	case stopped:
		fmt.Fprintln(g.streams.Out, "Control plane stopped: nothing of the pipeline runs.")
	}
}

// ensureControlPlane is serve.Ensure for ws: override (--control-plane),
// else the pipeline's, else the one serving ws's state file, else one
// started now with this flowctl binary.
func ensureControlPlane(ctx context.Context, ws *workspace, override string) (*serve.ControlPlane, error) {
	return serve.Ensure(ctx, serve.EnsureOptions{Store: ws.Store, Address: override, Pipeline: ws.Pipeline, Executable: os.Executable})
}
