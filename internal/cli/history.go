package cli

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/state"
)

func newHistoryCommand(g *globals) *cobra.Command {
	var (
		sf     stateFlags
		n      int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "history [PIPELINE]",
		Short: "Show what flowctl did to the pipeline: applies, destroys, restarts",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sf.readOnly = true
			ws, err := openWorkspace(g, args, &sf, true)
			if err != nil {
				return err
			}
			var events []*state.Event
			if err := ws.store.View(func(tx *state.Tx) error { var err error; events, err = tx.History(n); return err }); err != nil {
				return err
			}
			if asJSON {
				if events == nil {
					events = []*state.Event{}
				}
				b, err := json.MarshalIndent(events, "", "  ")
				if err != nil {
					return err
				}
				fmt.Fprintf(g.streams.Out, "%s\n", b)
				return nil
			}
			tw := tabwriter.NewWriter(g.streams.Out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TIME\tOPERATION\tCOMPONENT\tACTION\tREASON\tRESULT\tDETAIL")
			for _, e := range events {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05"), e.Operation, dash(e.Address), dash(e.Action), dash(e.Reason), dash(e.Result), e.Detail)
			}
			return tw.Flush()
		},
	}
	sf.add(cmd.Flags(), true)
	cmd.Flags().IntVarP(&n, "n", "n", 20, "show the last N events (0: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the events as JSON")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
