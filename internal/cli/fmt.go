package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/config"
)

type fmtOptions struct {
	check, diff, recursive bool
}

func newFmtCommand(g *globals) *cobra.Command {
	var opts fmtOptions
	cmd := &cobra.Command{
		Use:   "fmt [FILE|DIR...]",
		Short: "Rewrite HCL pipeline files in the canonical layout",
		Long: "Fmt rewrites .hcl files in the canonical HCL layout and prints the names of the\n" +
			"files it changed. Without arguments it formats the current folder; '-' formats\n" +
			"standard input to standard output. A file with a syntax error is reported and\n" +
			"left untouched.",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFmt(g, args, opts)
		},
	}
	cmd.Flags().BoolVar(&opts.check, "check", false, "change nothing; exit 1 when any file is not formatted")
	cmd.Flags().BoolVar(&opts.diff, "diff", false, "print a unified diff of each change")
	cmd.Flags().BoolVar(&opts.recursive, "recursive", false, "also format files in sub-folders")
	return cmd
}

func runFmt(g *globals, args []string, opts fmtOptions) error {
	f := &config.Formatter{Out: g.streams.Out, Err: g.streams.Err, Color: g.color(g.streams.Err), Check: opts.check, Diff: opts.diff}
	var changed bool
	var err error
	switch {
	case len(args) == 1 && args[0] == "-":
		changed, err = f.Stream(g.streams.In)
	default:
		if len(args) == 0 {
			args = []string{"."}
		}
		files, ferr := config.HCLFiles(args, opts.recursive)
		if ferr != nil {
			return fmt.Errorf("fmt: %w", ferr)
		}
		changed, err = f.Files(files)
	}
	if errors.Is(err, config.ErrReported) || (err == nil && opts.check && changed) {
		return errSilent
	}
	return err
}
