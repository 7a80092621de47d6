package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newForceUnlockCommand(g *globals) *cobra.Command {
	var sf stateFlags
	cmd := &cobra.Command{
		Use:   "force-unlock LOCK_ID [PIPELINE]",
		Short: "Remove a state lock left by an operation that is gone",
		Long: "force-unlock removes the operation lock whose ID is LOCK_ID (the ID is in the\n" +
			"error of the command that found the state locked). Use it only when that\n" +
			"operation is no longer running: a lock held on this host by a process that\n" +
			"exited is broken automatically.",
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ws, err := openWorkspace(g, args[1:], &sf, true)
			if err != nil {
				return err
			}
			removed, err := ws.Store.ForceUnlock(args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(g.streams.Out, "Removed the state lock (%s).\n", removed.String())
			return nil
		},
	}
	sf.add(cmd.Flags(), false)
	return cmd
}
