package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/logs"
	"github.com/flowctl/flowctl/internal/plan"
	"github.com/flowctl/flowctl/internal/serve"
)

// watchDebounce gathers the bursts of events one save makes.
const watchDebounce = 200 * time.Millisecond

func newRunCommand(g *globals) *cobra.Command {
	var (
		sf    stateFlags
		keep  bool
		watch bool
		par   int
	)
	cmd := &cobra.Command{
		Use:   "run [PIPELINE]",
		Short: "Dev mode: apply, then run the control plane and follow the logs; Ctrl-C destroys",
		Long: "Run applies the pipeline without asking, then runs its control plane and restart\n" +
			"watcher in the foreground and follows every component's log. Ctrl-C destroys\n" +
			"the pipeline (unless --keep) and exits. With --watch, every save of the pipeline\n" +
			"file is planned and applied; a file that does not load is reported and the\n" +
			"running pipeline is left as it is.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDev(g, cmd.Context(), args, &sf, devOptions{keep: keep, watch: watch, parallelism: par})
		},
	}
	sf.add(cmd.Flags(), true)
	cmd.Flags().BoolVar(&keep, "keep", false, "leave the pipeline running on exit (a flowctl serve is started in the background to look after it)")
	cmd.Flags().BoolVar(&watch, "watch", false, "re-plan and apply on every save of the pipeline file")
	cmd.Flags().IntVar(&par, "parallelism", 10, "how many components to change at once")
	return cmd
}

type devOptions struct {
	keep, watch bool
	parallelism int
}

func runDev(g *globals, parent context.Context, args []string, sf *stateFlags, o devOptions) error {
	ws, err := openWorkspace(g, args, sf, false)
	if err != nil {
		return err
	}
	out := g.streams.Out
	// Ctrl-C (or SIGTERM) ends the session; a second one during the final
	// destroy aborts it (execute's own handling).
	ctx, stopSignals := signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	// The control plane (and the restart watcher) run in this process,
	// unless one already serves this state file.
	serveCtx, stopServe := context.WithCancel(context.WithoutCancel(parent))
	defer stopServe()
	mode := controlplane.AuthRequired
	if ws.Pipeline != nil && ws.Pipeline.Auth != "" {
		mode = controlplane.AuthMode(ws.Pipeline.Auth)
	}
	dev, err := serve.StartInProcess(serveCtx, ws.Store, mode, ws.Pipeline)
	if err != nil {
		return err
	}
	endpoint, inProcess, serveDone := dev.Endpoint, dev.InProcess, dev.Done
	if inProcess {
		fmt.Fprintf(out, "Control plane listening on %s (log: %s).\n\n", endpoint, serve.LogPath(ws.Store.Path()))
	} else {
		fmt.Fprintf(out, "Using the control plane already serving this pipeline on %s.\n\n", endpoint)
	}
	af := &applyFlags{autoApprove: true, parallelism: o.parallelism, controlPlane: endpoint, keepControlPlane: true}

	applyOnce := func() error {
		l, err := lockState(ctx, g, ws, "apply", sf.lockTimeout)
		if err != nil {
			return err
		}
		defer l.Release()
		p, _, err := makePlan(ctx, ws, plan.Options{})
		if err != nil {
			return err
		}
		plan.Render(out, p, plan.RenderOptions{Color: g.color(out)})
		if !p.HasChanges() {
			return nil
		}
		fmt.Fprintln(out)
		return execute(context.WithoutCancel(ctx), g, ws, p, ws.Pipeline, af, "apply")
	}
	applyErr := applyOnce()
	goOn := afterFirstApply(ctx, g, ws, applyErr)

	if ctx.Err() == nil && goOn {
		fmt.Fprintf(out, "\nFollowing the logs; Ctrl-C %s.\n\n", map[bool]string{true: "stops following and leaves the pipeline running", false: "destroys the pipeline"}[o.keep])
		followUntilDone(ctx, g, ws, sf, o, applyOnce)
	}
	stopSignals()

	var result error
	if applyErr != nil {
		result = errSilent
	}
	stop := func() {
		stopServe()
		<-serveDone
	}
	if o.keep {
		stop()
		if inProcess {
			handOver(context.WithoutCancel(parent), g, ws)
		}
		return result
	}
	fmt.Fprintln(out, "\nDestroying the pipeline...")
	if err := destroyAll(context.WithoutCancel(parent), g, ws, af); err != nil {
		fmt.Fprintf(g.streams.Err, "Error: destroy: %v\n", err)
		result = errSilent
	}
	stop()
	return result
}

// handOver starts a control plane in the background for what `run --keep`
// leaves running, once run's own has stopped: on the address the
// components were given (serve.PreferredListen).
func handOver(ctx context.Context, g *globals, ws *workspace) {
	cp, err := ensureControlPlane(ctx, ws, "")
	if err != nil {
		fmt.Fprintf(g.streams.Err, "Warning: the pipeline keeps running without a control plane: %v\n", err)
		return
	}
	fmt.Fprintf(g.streams.Out, "\nThe pipeline keeps running; its control plane now runs in the background on %s.\n", cp.Endpoint)
	if cp.Moved != "" {
		fmt.Fprintf(g.streams.Out, "Its address %s was taken: the components learn the new one at their next start.\n", cp.Moved)
	}
}

// afterFirstApply reports run's first apply and whether run goes on: after
// a success, or a failure of some components while others run (the
// restart watcher retries the failed ones by their restart policy).
func afterFirstApply(ctx context.Context, g *globals, ws *workspace, applyErr error) bool {
	if applyErr == nil {
		return true
	}
	if !errors.Is(applyErr, errSilent) {
		fmt.Fprintf(g.streams.Err, "Error: %v\n", applyErr)
	}
	if !somethingRuns(ws) {
		return false
	}
	if ctx.Err() == nil {
		fmt.Fprintln(g.streams.Out, "\nWhat started keeps running; the restart watcher retries the components that failed (above) by their restart policy.")
	}
	return true
}

// followUntilDone follows the logs (and, with --watch, the pipeline file)
// until ctx ends.
func followUntilDone(ctx context.Context, g *globals, ws *workspace, sf *stateFlags, o devOptions, applyOnce func() error) {
	var wg sync.WaitGroup
	wg.Go(func() { followLogs(ctx, g, ws) })
	if o.watch && ws.File != "" {
		wg.Go(func() { watchPipelineFile(ctx, g, ws, sf, applyOnce) })
	}
	<-ctx.Done()
	wg.Wait()
}

// somethingRuns reports whether a component of ws runs or is pending
// (serve.Idle is false).
func somethingRuns(ws *workspace) bool {
	idle, err := serve.Idle(ws.Store)
	return err == nil && !idle
}

// followLogs prints every component's log as it comes until ctx ends.
func followLogs(ctx context.Context, g *globals, ws *workspace) {
	out := g.streams.Out
	printer := logs.NewPrinter(out, logs.Format{Prefix: true, Color: g.color(out)}, nil)
	inv := &logs.StateInventory{Store: ws.Store, Providers: ws.Providers}
	readers := func(name string) (logs.Reader, error) { return ws.Providers.Get(name) }
	opts := logs.Options{Follow: true, Tail: 10, Warn: func(addr string, err error) {
		fmt.Fprintf(g.streams.Err, "Warning: %v\n", err)
	}}
	if err := logs.Run(ctx, inv, readers, opts, printer.Print); err != nil && ctx.Err() == nil {
		fmt.Fprintf(g.streams.Err, "Warning: logs: %v\n", err)
	}
}

// watchPipelineFile re-plans and applies on every save of ws's pipeline
// file. A file that does not load is reported; what runs is left alone.
func watchPipelineFile(ctx context.Context, g *globals, ws *workspace, sf *stateFlags, applyOnce func() error) {
	err := config.WatchFile(ctx, ws.File, watchDebounce, func() {
		fmt.Fprintf(g.streams.Out, "\n%s changed: planning.\n", ws.File)
		p, err := loadValidPipeline(g, ws.File, sf.vars)
		if err != nil {
			if !errors.Is(err, errSilent) {
				fmt.Fprintf(g.streams.Err, "Error: %v\n", err)
			}
			fmt.Fprintln(g.streams.Out, "The pipeline keeps running as it is.")
			return
		}
		ws.Pipeline = p
		if err := applyOnce(); err != nil && !errors.Is(err, errSilent) {
			fmt.Fprintf(g.streams.Err, "Error: %v\n", err)
		}
	})
	if err != nil {
		fmt.Fprintf(g.streams.Err, "Warning: --watch: %v\n", err)
	}
}

// destroyAll destroys everything the state records.
func destroyAll(ctx context.Context, g *globals, ws *workspace, af *applyFlags) error {
	l, err := lockState(ctx, g, ws, "destroy", 30*time.Second)
	if err != nil {
		return err
	}
	defer l.Release()
	p, _, err := makePlan(ctx, ws, plan.Options{Destroy: true})
	if err != nil {
		return err
	}
	if !p.HasChanges() {
		return nil
	}
	return execute(ctx, g, ws, p, ws.Pipeline, af, "destroy")
}
