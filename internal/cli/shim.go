package cli

import (
	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/providers/process/shim"
)

// newShimCommand is the hidden mode in which flowctl supervises one process
// component (see internal/providers/process/shim; the provider prefers the
// lean flowctl-shim binary when it is installed beside flowctl).
func newShimCommand() *cobra.Command {
	return &cobra.Command{
		Use:                "__shim",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := shim.Main(args); code != 0 {
				return &exitError{code: code}
			}
			return nil
		},
	}
}
