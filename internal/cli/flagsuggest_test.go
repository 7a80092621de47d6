package cli

import (
	"strings"
	"testing"
)

// A mistyped flag is named as it was written (one dash or two) with the
// nearest flag of the command; one far from every flag gets no suggestion.
func TestUnknownFlagSuggestsTheNearest(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"plan", "-detailed-exitcodes", "pipeline.hcl"},
			"Error: unknown flag: -detailed-exitcodes; did you mean -detailed-exitcode?\nRun 'flowctl plan --help' for usage\n"},
		{[]string{"plan", "--detailed-exitcodes"},
			"Error: unknown flag: --detailed-exitcodes; did you mean --detailed-exitcode?\nRun 'flowctl plan --help' for usage\n"},
		{[]string{"plan", "-jsno"},
			"Error: unknown flag: -jsno; did you mean -json?\nRun 'flowctl plan --help' for usage\n"},
		{[]string{"apply", "-auto-aprove=true"},
			"Error: unknown flag: -auto-aprove; did you mean -auto-approve?\nRun 'flowctl apply --help' for usage\n"},
		{[]string{"validate", "-no-colour"}, // an inherited flag
			"Error: unknown flag: -no-colour; did you mean -no-color?\nRun 'flowctl validate --help' for usage\n"},
		{[]string{"history", "-parallelism"}, // history has nothing near it
			"Error: unknown flag: -parallelism\nRun 'flowctl history --help' for usage\n"},
		{[]string{"plan", "-x"},
			"Error: unknown shorthand flag: 'x' in -x\nRun 'flowctl plan --help' for usage\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			r := run(t, tc.args...)
			r.wantCode(t, 1)
			if r.err != tc.want {
				t.Errorf("stderr:\n%s\nwant:\n%s", r.err, tc.want)
			}
			if r.out != "" {
				t.Errorf("stdout: %s", r.out)
			}
		})
	}
}
