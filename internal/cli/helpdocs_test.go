package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// docSection is the text of the "## TITLE" section of a markdown file, up
// to the next section of the same level.
func docSection(t *testing.T, file, title string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", file))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n## "+title+"\n")
	if i < 0 {
		t.Fatalf("docs/%s has no section %q", file, title)
	}
	s = s[i+1:]
	if j := strings.Index(s[3:], "\n## "); j >= 0 {
		s = s[:j+3]
	}
	return s
}

// undocumented lists the flags of cmd that text never names (as --name or
// -name).
func undocumented(cmd *cobra.Command, text string) []string {
	var missing []string
	cmd.LocalFlags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Name == "help" {
			return
		}
		if !regexp.MustCompile(`(^|[^-\w])--?` + regexp.QuoteMeta(f.Name) + `\b`).MatchString(text) {
			missing = append(missing, "--"+f.Name)
		}
	})
	return missing
}

func findCommand(t *testing.T, path ...string) *cobra.Command {
	t.Helper()
	root := NewRootCommand(Streams{}, BuildInfo{})
	cmd, _, err := root.Find(path)
	if err != nil || cmd == root {
		t.Fatalf("no command %v: %v", path, err)
	}
	return cmd
}

// serve's --help and the two pages that document it name the same flags.
func TestServeFlagsAreTheDocumentedOnes(t *testing.T) {
	serve := findCommand(t, "serve")
	for _, doc := range []struct{ file, section string }{
		{"commands.md", "serve"},
		{"control-plane.md", "Running it: `flowctl serve`"},
	} {
		text := docSection(t, doc.file, doc.section)
		if missing := undocumented(serve, text); len(missing) > 0 {
			t.Errorf("docs/%s, section %q, does not name serve's flags %v", doc.file, doc.section, missing)
		}
		for _, m := range regexp.MustCompile("(?m)^flowctl serve [^`]*").FindAllString(text, -1) {
			for _, f := range regexp.MustCompile(`--([a-z][a-z0-9-]+)`).FindAllStringSubmatch(m, -1) {
				if serve.Flags().Lookup(f[1]) == nil {
					t.Errorf("docs/%s documents serve --%s, which serve does not have", doc.file, f[1])
				}
			}
		}
	}
}

// destroy -target works the other way round from plan's: its help says so.
func TestDestroyTargetHelpSaysWhatDependsOnIt(t *testing.T) {
	usage := findCommand(t, "destroy").Flags().Lookup("target").Usage
	if !strings.Contains(usage, "ADDR and what depends on it") || strings.Contains(usage, "what it depends on") {
		t.Errorf("destroy --target: %q", usage)
	}
	if usage := findCommand(t, "plan").Flags().Lookup("target").Usage; !strings.Contains(usage, "what it depends on") {
		t.Errorf("plan --target: %q", usage)
	}
}
