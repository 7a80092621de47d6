// Package complete answers a shell's completion requests (cobra's hidden
// __complete command, which the scripts of `flowctl completion` call):
// the component addresses a command takes, read from the pipeline file and
// its state without starting, locking or writing anything, and the fixed
// values of flags that take one of a few words.
//
// A completion never fails loudly: what cannot be read (no pipeline file,
// an invalid one, no state yet, a state file busy for longer than a
// moment) is left out and the rest offered.
package complete

import (
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/state"
)

// stateWait bounds the wait for a state file another flowctl process holds
// in a transaction: a shell waiting on a completion is a stuck prompt.
const stateWait = 300 * time.Millisecond

// Addresses lists, sorted and once each, the components of the pipeline
// file that args name (the first argument that is a file or a folder, else
// the single pipeline file in the current folder) and those its state
// records: statePath when set, else the default state file beside the
// pipeline file.
func Addresses(args []string, statePath string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	var pipeArgs []string
	for _, a := range args {
		if _, err := os.Stat(a); err == nil {
			pipeArgs = []string{a}
			break
		}
	}
	name := ""
	if path, err := config.FindPipelineFile(".", pipeArgs); err == nil {
		if p, _ := config.Load(path, config.LoadOptions{}); p != nil {
			name = p.Name
			for _, c := range p.Components {
				add(c.Address())
			}
			if statePath == "" {
				statePath = state.DefaultPath(path, p.Name)
			}
		}
	}
	for _, a := range recorded(statePath, name) {
		add(a)
	}
	slices.Sort(out)
	return out
}

// recorded lists the addresses the state file at path records; nothing
// when there is no such file. The file is opened read-only and never
// created.
func recorded(path, pipeline string) []string {
	if path == "" {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil
	}
	st, err := state.Open(path, pipeline, state.ReadOnly(), state.IfExists(), state.WithOpenTimeout(stateWait))
	if err != nil {
		return nil
	}
	defer st.Close()
	var out []string
	_ = st.View(func(tx *state.Tx) error {
		recs, err := tx.Components()
		for _, r := range recs {
			out = append(out, r.Address)
		}
		return err
	})
	return out
}

// stateFlag is the value of cmd's --state flag, when it has one.
func stateFlag(cmd *cobra.Command) string {
	if f := cmd.Flags().Lookup("state"); f != nil {
		return f.Value.String()
	}
	return ""
}

// matching keeps the candidates that start with prefix and are not in
// taken.
func matching(cands []string, prefix string, taken []string) []cobra.Completion {
	var out []cobra.Completion
	for _, c := range cands {
		if strings.HasPrefix(c, prefix) && !slices.Contains(taken, c) {
			out = append(out, c)
		}
	}
	return out
}

// AddressArgs completes the positional arguments of a command that takes
// component addresses (logs ADDR..., state show ADDR): at most max of them
// (0: any number); past those, or for a word holding a slash, files (the
// pipeline argument). An address already given is not offered again.
func AddressArgs(max int) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		var given []string
		for _, a := range args {
			if _, _, ok := config.ParseAddress(a); ok {
				given = append(given, a)
			}
		}
		if (max > 0 && len(given) >= max) || strings.ContainsRune(toComplete, '/') {
			return nil, cobra.ShellCompDirectiveDefault // a pipeline file or folder
		}
		return matching(Addresses(args, stateFlag(cmd)), toComplete, given), cobra.ShellCompDirectiveNoFileComp
	}
}

// AddressFlags makes each flag of cmd named in names (-target, -replace)
// complete component addresses. Names cmd lacks are skipped.
func AddressFlags(cmd *cobra.Command, names ...string) {
	for _, n := range names {
		if cmd.Flags().Lookup(n) == nil {
			continue
		}
		_ = cmd.RegisterFlagCompletionFunc(n, func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			taken, _ := cmd.Flags().GetStringArray(n)
			return matching(Addresses(args, stateFlag(cmd)), toComplete, taken), cobra.ShellCompDirectiveNoFileComp
		})
	}
}

// Values makes cmd's flag name complete one of values.
func Values(cmd *cobra.Command, name string, values ...string) {
	_ = cmd.RegisterFlagCompletionFunc(name, func(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return matching(values, toComplete, nil), cobra.ShellCompDirectiveNoFileComp
	})
}
