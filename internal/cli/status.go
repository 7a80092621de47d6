package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/complete"
	"github.com/flowctl/flowctl/internal/status"
)

// statusWatchEvery is how often --watch redraws.
const statusWatchEvery = 2 * time.Second

func newStatusCommand(g *globals) *cobra.Command {
	var (
		sf     stateFlags
		output string
		asJSON bool
		watch  bool
		sec    bool
	)
	cmd := &cobra.Command{
		Use:   "status [PIPELINE]",
		Short: "Show each component: state, health, registration, heartbeat, restarts, uptime",
		Long: "Shows one row per component, from the state file, what the executors report\n" +
			"(reality) and the control plane's registry as recorded in the state. Works\n" +
			"from the state file alone (--state), and when the control plane is down.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if asJSON {
				output = "json"
			}
			if output != "table" && output != "json" {
				return fmt.Errorf("-o %q: want table or json", output)
			}
			sf.readOnly = true
			ws, err := openWorkspace(g, args, &sf, true)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if sec {
				doc, err := status.CollectSecurity(ctx, status.SecurityInput{Input: status.Input{Store: ws.Store, Providers: ws.Providers, Desired: ws.Pipeline, Now: time.Now()}})
				if err != nil {
					return err
				}
				return status.WriteSecurity(g.streams.Out, doc, output)
			}
			if !watch {
				return renderStatus(ctx, g, ws, output, false)
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return watchStatus(ctx, g, ws, output, statusWatchEvery)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&sf.statePath, "state", "", "state file (default .flowctl/<pipeline>.state.db beside the pipeline file)")
	addVarFlags(fs, &sf.vars)
	fs.StringVarP(&output, "output", "o", "table", "table or json")
	complete.Values(cmd, "output", "table", "json")
	fs.BoolVar(&asJSON, "json", false, "same as -o json")
	fs.BoolVarP(&watch, "watch", "w", false, "redraw every 2s until interrupted")
	fs.BoolVar(&sec, "security", false, "show what is reachable from where: listeners, auth mode, component ports and where they are bound, registrations without proof")
	return cmd
}

// watchStatus redraws until ctx ends. On a terminal each table replaces the
// last; otherwise (and for JSON) they follow one another.
func watchStatus(ctx context.Context, g *globals, ws *workspace, output string, every time.Duration) error {
	redraw := output == "table" && isTerminal(g.streams.Out)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if redraw {
			fmt.Fprint(g.streams.Out, "\x1b[H\x1b[2J")
		}
		if err := renderStatus(ctx, g, ws, output, true); err != nil && ctx.Err() == nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if !redraw && output == "table" {
			fmt.Fprintln(g.streams.Out)
		}
	}
}

func renderStatus(ctx context.Context, g *globals, ws *workspace, output string, compact bool) error {
	doc, err := status.Collect(ctx, status.Input{Store: ws.Store, Providers: ws.Providers, Desired: ws.Pipeline, Now: time.Now()})
	if err != nil {
		return err
	}
	return status.Write(g.streams.Out, doc, output, compact)
}
