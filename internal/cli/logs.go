package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/complete"
	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/logs"
	"github.com/flowctl/flowctl/internal/state"
)

func newLogsCommand(g *globals) *cobra.Command {
	var (
		sf         stateFlags
		follow     bool
		since      string
		tail       int
		timestamps bool
		noPrefix   bool
		output     string
		asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "logs [PIPELINE] [ADDR...]",
		Short: "Show the components' logs, merged in time order",
		Long: "Shows the log lines of every component (or of the ADDRs given, like source.ledger)\n" +
			"whatever executor runs it, merged in time order, each prefixed by its component.\n" +
			"With -f it keeps following: across restarts and replacements (marked by lines like\n" +
			"\"--- restarted (exited code=2), attempt 3 ---\") and components created later,\n" +
			"until interrupted. A component destroyed and applied again shows its runs apart\n" +
			"(\"--- destroyed ---\", \"--- created by apply ---\"); docs/commands.md lists every\n" +
			"marker. --tail counts lines per component. Works from the state file alone (--state).",
		RunE: func(cmd *cobra.Command, args []string) error {
			if asJSON {
				output = "json"
			}
			if output != "text" && output != "json" {
				return fmt.Errorf("-o %q: want text or json", output)
			}
			pipelineArgs, addrs, err := splitLogsArgs(args)
			if err != nil {
				return err
			}
			opts := logs.Options{Addresses: addrs, Tail: tail, Follow: follow}
			if since != "" {
				if opts.Since, err = logs.ParseSince(since, time.Now()); err != nil {
					return err
				}
			}
			sf.readOnly = true
			ws, err := openWorkspace(g, pipelineArgs, &sf, true)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if follow {
				var stop context.CancelFunc
				ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
				defer stop()
			}
			out := g.streams.Out
			printer := logs.NewPrinter(out, logs.Format{
				Prefix:     !noPrefix,
				Color:      output == "text" && g.color(out),
				Timestamps: timestamps,
				JSON:       output == "json",
			}, prefixAddresses(ws, addrs))
			unread := &unreadLogs{w: g.streams.Err, seen: map[string]bool{}}
			opts.Warn = unread.report
			inv := &logs.StateInventory{Store: ws.Store, Providers: ws.Providers}
			readers := func(name string) (logs.Reader, error) { return ws.Providers.Get(name) }
			if err := logs.Run(ctx, inv, readers, opts, printer.Print); err != nil {
				return err
			}
			if unread.any() {
				return errSilent // what could be read was shown; why the rest was not, too
			}
			return nil
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&sf.statePath, "state", "", "state file (default .flowctl/<pipeline>.state.db beside the pipeline file)")
	addVarFlags(fs, &sf.vars)
	fs.BoolVarP(&follow, "follow", "f", false, "keep following the logs until interrupted")
	fs.StringVar(&since, "since", "", "show lines since a time (2006-01-02T15:04:05Z, 2006-01-02 15:04) or for a duration back (10m)")
	fs.IntVar(&tail, "tail", -1, "show the last N lines of each component (-1: all; 0: none, with -f only new lines)")
	fs.BoolVarP(&timestamps, "timestamps", "t", false, "show each line's time")
	fs.BoolVar(&noPrefix, "no-prefix", false, "do not start lines with their component")
	fs.StringVarP(&output, "output", "o", "text", "text or json (one object per line: time, component, stream, line)")
	fs.BoolVar(&asJSON, "json", false, "same as -o json")
	complete.Values(cmd, "output", "text", "json")
	cmd.ValidArgsFunction = complete.AddressArgs(0)
	return cmd
}

// splitLogsArgs tells the optional pipeline argument from the addresses
// after it: the first argument is the pipeline unless it reads KIND.ID and
// no such file exists.
func splitLogsArgs(args []string) (pipeline, addrs []string, err error) {
	if len(args) > 0 {
		if _, _, ok := config.ParseAddress(args[0]); !ok || fileExists(args[0]) {
			pipeline, args = args[:1], args[1:]
		}
	}
	for _, a := range args {
		if _, _, ok := config.ParseAddress(a); !ok {
			return nil, nil, fmt.Errorf("%q is not a component address (KIND.ID, like source.ledger); only the first argument may name the pipeline", a)
		}
	}
	return pipeline, args, nil
}

// prefixAddresses are the addresses whose longest sets the prefix width:
// those asked for, or every component of the pipeline and the state.
func prefixAddresses(ws *workspace, addrs []string) []string {
	if len(addrs) > 0 {
		return addrs
	}
	var out []string
	if ws.Pipeline != nil {
		for _, c := range ws.Pipeline.Components {
			out = append(out, c.Address())
		}
	}
	_ = ws.Store.View(func(tx *state.Tx) error {
		recs, err := tx.Components()
		for _, r := range recs {
			out = append(out, r.Address)
		}
		return err
	})
	return out
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// unreadLogs reports the logs that could not be read, each reason once: an
// unreachable engine is one error, not one per component. Any makes logs
// exit 1.
type unreadLogs struct {
	mu   sync.Mutex
	w    io.Writer
	seen map[string]bool
}

func (u *unreadLogs) report(_ string, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	msg := err.Error()
	if u.seen[msg] {
		return
	}
	u.seen[msg] = true
	fmt.Fprintf(u.w, "Error: %s\n", msg)
}

func (u *unreadLogs) any() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.seen) > 0
}
