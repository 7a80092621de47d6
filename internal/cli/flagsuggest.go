package cli

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// flagError is the root's flag error hook: an unknown flag is named as the
// user wrote it (pflag reads "-json" as the shorthands j, s, o, n) and, when
// one is close, the nearest flag of the command is suggested. Every flag
// error ends with where to find the command's usage.
func flagError(cmd *cobra.Command, err error) error {
	var ne *pflag.NotExistError
	if errors.As(err, &ne) {
		err = unknownFlag(cmd, ne)
	}
	return fmt.Errorf("%w\nRun '%s --help' for usage", err, cmd.CommandPath())
}

// unknownFlag says which flag was not found, as the user wrote it, and what
// was probably meant: the nearest flag of cmd, if one is close.
func unknownFlag(cmd *cobra.Command, ne *pflag.NotExistError) error {
	dash, name := "--", ne.GetSpecifiedName()
	switch group := ne.GetSpecifiedShortnames(); {
	case len(group) == 1:
		return ne // a one-letter shorthand: pflag's message says it all
	case group != "":
		// A single-dash word that is no flag of this command (those were
		// rewritten to two dashes): a Terraform-style long flag.
		dash, name = "-", group
	}
	name, _, _ = strings.Cut(name, "=")
	msg := fmt.Sprintf("unknown flag: %s%s", dash, name)
	if s := nearestFlag(cmd, name); s != "" {
		return fmt.Errorf("%s; did you mean %s%s?", msg, dash, s)
	}
	return errors.New(msg)
}

// nearestFlag returns the visible flag of cmd (its own or inherited) closest
// to name, if it is within two edits and fewer edits than name has letters;
// ties go to the alphabetically first.
func nearestFlag(cmd *cobra.Command, name string) string {
	var names []string
	add := func(f *pflag.Flag) {
		if !f.Hidden {
			names = append(names, f.Name)
		}
	}
	cmd.Flags().VisitAll(add)
	cmd.InheritedFlags().VisitAll(add)
	sort.Strings(names)
	best, bestDist := "", 3
	for _, n := range names {
		d := levenshtein.Distance(strings.ToLower(name), n, nil)
		if d < bestDist && d < len(name) {
			best, bestDist = n, d
		}
	}
	return best
}
