package cli

import (
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
			if err := ws.Store.View(func(tx *state.Tx) error { var err error; events, err = tx.History(n); return err }); err != nil {
				return err
			}
			return state.WriteHistory(g.streams.Out, events, asJSON)
		},
	}
	sf.add(cmd.Flags(), true)
	cmd.Flags().IntVarP(&n, "n", "n", 20, "show the last N events (0: all)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the events as JSON")
	return cmd
}
