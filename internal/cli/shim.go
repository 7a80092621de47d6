package cli

import (
	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/providers/process"
)

// newShimCommand is the hidden mode in which flowctl supervises one process
// component (see internal/providers/process).
func newShimCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "__shim",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := process.ShimMain(args); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
}
