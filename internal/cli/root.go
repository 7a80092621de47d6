// Package cli is flowctl's command line: one file per command, each a thin
// layer that parses flags, calls the packages doing the work, and renders
// their results. Nothing here is global: the root command and every
// subcommand are built by functions from the streams and build information
// they are given, so tests run commands in-process with buffers.
package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"

	"github.com/spf13/cobra"
)

// Streams are the standard streams a command reads and writes.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// BuildInfo identifies the binary; main fills it from -ldflags.
type BuildInfo struct {
	Version string
	Commit  string
}

// globals is what every command shares: the streams, the build, and the
// root's persistent flags.
type globals struct {
	streams Streams
	build   BuildInfo
	noColor bool
	// getenv looks up environment variables; tests replace it.
	getenv func(string) string
}

// color reports whether output to w may carry colour: not when --no-color
// or NO_COLOR is set, nor when w is not a terminal.
func (g *globals) color(w io.Writer) bool {
	if g.noColor || g.getenv("NO_COLOR") != "" {
		return false
	}
	return isTerminal(w)
}

// NewRootCommand builds the flowctl command tree.
func NewRootCommand(s Streams, build BuildInfo) *cobra.Command {
	g := &globals{streams: s, build: build, getenv: os.Getenv}
	root := &cobra.Command{
		Use:   "flowctl",
		Short: "Plan and apply streaming data pipelines",
		Long: "flowctl runs streaming data pipelines the way Terraform manages infrastructure:\n" +
			"a pipeline file (HCL or flowctl/v1 YAML) says which sources, processors and\n" +
			"sinks run — as local processes, Docker containers, Nomad jobs or Kubernetes\n" +
			"workloads — and how they connect.\n\n" +
			"  validate, graph, fmt, convert   check, draw, format and convert a pipeline file\n" +
			"  plan, apply, destroy            compare the file with what runs, make it so, tear it down\n" +
			"  status, logs, history           what runs and how it is doing, its logs, what flowctl did\n" +
			"  serve, run                      the control plane components register with; dev mode\n" +
			"  state, show, images, tokens     the state file, saved plans, cached images, token secret\n\n" +
			"Without a FILE, a command uses the pipeline file in the current folder\n" +
			"(pipeline.hcl when pipeline.yaml beside it holds the same pipeline).",
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       build.Version,
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	root.SetVersionTemplate("flowctl {{.Version}}\n")
	root.SetFlagErrorFunc(flagError)
	root.PersistentFlags().BoolVar(&g.noColor, "no-color", false, "disable coloured output (also NO_COLOR)")
	root.AddCommand(
		newVersionCommand(g),
		newValidateCommand(g),
		newGraphCommand(g),
		newFmtCommand(g),
		newConvertCommand(g),
		newPlanCommand(g),
		newApplyCommand(g),
		newDestroyCommand(g),
		newShowCommand(g),
		newStateCommand(g),
		newHistoryCommand(g),
		newLogsCommand(g),
		newForceUnlockCommand(g),
		newServeCommand(g), newStatusCommand(g), newTokensCommand(g), newRunCommand(g),
		newShimCommand(),
		newImagesCommand(g),
	)
	return root
}

// Execute runs flowctl with args (without the program name) and returns the
// process exit code: 0 on success, 1 on any error.
func Execute(args []string, s Streams, build BuildInfo) int {
	root := NewRootCommand(s, build)
	root.SetArgs(singleDashLongFlags(root, args))
	return exitCode(root.Execute(), s.Err)
}

// exitError ends a command with a code once it has printed why.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// errSilent fails a command that has already reported its failure.
var errSilent error = &exitError{code: 1}

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintf(stderr, "Error: %v\n", err)
	return 1
}

var singleDashFlag = regexp.MustCompile(`^-([a-z][a-z0-9-]+)(=.*)?$`)

// singleDashLongFlags lets users write long flags with one dash, as in
// Terraform (-json, -var k=v, -check): such an argument is rewritten to the
// two-dash form when it names a flag of the command being run.
func singleDashLongFlags(root *cobra.Command, args []string) []string {
	find := args
	if len(args) > 0 && (args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd) {
		find = args[1:] // a shell's completion request for the command after it
	}
	cmd, _, err := root.Find(find)
	if err != nil || cmd == nil {
		cmd = root
	}
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if a == "--" {
			break
		}
		m := singleDashFlag.FindStringSubmatch(a)
		if m == nil {
			continue
		}
		if m[1] == "help" || cmd.Flag(m[1]) != nil {
			out[i] = "-" + a
		}
	}
	return out
}
