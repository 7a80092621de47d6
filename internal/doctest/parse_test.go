package doctest

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/testutil"
)

func TestOutputBlocksMatchWhatTheyShowAndNothingElse(t *testing.T) {
	got := "Pipeline quickstart (state x.db, serial 12)\n\n" +
		"ADDRESS         STATE    UPTIME  DETAIL\n" +
		"source.counter  running  1m5s    running (pid=4242 start=77)\n" +
		"sink.file | time=2026 level=INFO msg=registered service_id=file endpoint=127.0.0.1:8080\n" +
		"processor.transform  docker  running (container 1986975f3fcc)\n"
	for _, want := range []string{
		"Pipeline quickstart (state x.db, serial 3)",
		"ADDRESS  STATE  UPTIME  DETAIL\nsource.counter running 40s running (pid=1 start=2)",
		"Pipeline quickstart ...\n...\nsink.file | ... msg=registered service_id=file ...",
		"processor.transform  docker  running (container e2b2b7aa6d23)",
	} {
		if ok, missing := matchOutput(want, got); !ok {
			t.Errorf("want a match of\n%s\nmissing %q", want, missing)
		}
	}
	for want, missing := range map[string]string{
		"ADDRESS STATE UPTIME":                           "ADDRESS STATE UPTIME",                           // a column fewer
		"source.counter  running  1m5s  running (pid=1)": "source.counter  running  1m5s  running (pid=1)", // start= left out
		"source.counter running 1m5s running (pid=1 start=2)\nPipeline quickstart (state x.db, serial 1)": "Pipeline quickstart (state x.db, serial 1)",            // out of order
		"sink.file | ... msg=registered service_id=counter ...":                                           "sink.file | ... msg=registered service_id=counter ...", // another word
	} {
		if ok, got := matchOutput(want, got); ok || got != missing {
			t.Errorf("%q: matched %v, missing %q", want, ok, got)
		}
	}
}

func TestParseFindsBlocksMarkersAndOutputs(t *testing.T) {
	src := "# doc\n\n<!-- doctest: background -->\n```sh\nmake demo\n```\n\n<!-- doctest: output -->\n```\nready\n```\n\n" +
		"```hcl\npipeline \"x\" {}\n```\n\n```yaml\nnot: a pipeline\n```\n<!-- doctest: skip (needs a cluster) -->\n```bash\nkubectl get pods\n```\n\n" +
		"<!-- doctest: interrupt -->\nPress Ctrl-C.\n\n<!-- doctest: docker, retry -->\n```console\n$ docker ps\nCONTAINER ID\n```\n"
	blocks, err := parse("d.md", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range blocks {
		keys := []string{}
		for k := range b.keys {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		s := b.String() + " " + b.lang + " " + strings.Join(keys, ",")
		if b.interrupt {
			s = b.String() + " interrupt"
		}
		if b.output != nil {
			s += " output=" + strings.TrimSpace(b.output.body)
		}
		if b.snippet {
			s += " snippet"
		}
		got = append(got, s)
	}
	want := []string{"d.md:4 sh background output=ready", "d.md:13 hcl  snippet", "d.md:21 bash skip", "d.md:25 interrupt", "d.md:29 console docker,retry"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestParseRejectsMarkersItCannotApply(t *testing.T) {
	for src, want := range map[string]string{
		"<!-- doctest: sikp -->\n```sh\nls\n```\n":                       `d.md:1: unknown doctest key "sikp"`,
		"<!-- doctest: skip -->\n```sh\nls\n```\n":                       "d.md:1: doctest: skip needs a reason",
		"<!-- doctest: docker -->\nsome prose\n```sh\nls\n```\n":         "d.md:1: a doctest marker must come right before a fenced block",
		"<!-- doctest: output -->\n```\nx\n```\n":                        "d.md:2: an output block must follow a shell block that has none",
		"```sh\nls\n```\n<!-- doctest: output -->\n```yaml\nx: 1\n```\n": `d.md:5: an output block has no language (it is "yaml")`,
		"<!-- doctest: docker -->\n```hcl\nx = 1\n```\n":                 `d.md:2: doctest keys on a "hcl" block, which is not run`,
		"```sh\nls\n": "d.md:1: the fence is never closed",
		"```sh\nls\n```\n<!-- doctest: retry -->\n": "d.md:4: a doctest marker with no block after it",
		"<!-- doctest: interrupt, docker -->\n":     "d.md:1: interrupt is a marker of its own",
	} {
		_, err := parse("d.md", []byte(src))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: err = %v, want %s", src, err, want)
		}
	}
}

// The documents themselves parse: a marker typo fails here at once, before
// anything runs.
func TestTheDocumentsParse(t *testing.T) {
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range documents {
		src, err := os.ReadFile(filepath.Join(root, d))
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := parse(d, src)
		if err != nil {
			t.Fatal(err)
		}
		if len(blocks) == 0 {
			t.Errorf("%s: no shell block", d)
		}
	}
}

var (
	phony     = regexp.MustCompile(`(?m)^\.PHONY:(.*)$`)
	makeTable = regexp.MustCompile("(?m)^\\| `make ([a-z-]+)`")
)

// README's table of make targets lists each target of the Makefile, and
// no other.
func TestReadmeListsTheMakefileTargets(t *testing.T) {
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var targets, documented []string
	for _, m := range phony.FindAllStringSubmatch(string(mk), -1) {
		targets = append(targets, strings.Fields(m[1])...)
	}
	for _, m := range makeTable.FindAllStringSubmatch(string(readme), -1) {
		documented = append(documented, m[1])
	}
	slices.Sort(targets)
	slices.Sort(documented)
	if len(targets) == 0 || !slices.Equal(targets, documented) {
		t.Errorf("the Makefile's targets %v, README's table %v", targets, documented)
	}
}

// recorder is a reporter that remembers the first failure and stops the
// block there, as t.Fatalf would.
type recorder struct {
	t      *testing.T
	failed string
}

type stopped struct{}

func (r *recorder) Logf(format string, args ...any)   { r.t.Logf(format, args...) }
func (r *recorder) Errorf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	panic(stopped{})
}
func (r *recorder) TempDir() string { return r.t.TempDir() }

// runBlock runs src's blocks in a session of their own and returns the
// failure reported, if any.
func runBlock(t *testing.T, src string) string {
	t.Helper()
	blocks, err := parse("d.md", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{t: t}
	dir, state := t.TempDir(), t.TempDir()
	s := &session{t: r, root: dir, cwd: dir, rename: func(s string) string { return s },
		envFile: filepath.Join(state, "env"), cwdFile: filepath.Join(state, "cwd"), env: os.Environ()}
	func() {
		defer func() {
			if p := recover(); p != nil {
				if _, ok := p.(stopped); !ok {
					panic(p)
				}
			}
		}()
		for _, b := range blocks {
			if b.interrupt {
				s.interrupt(b.String())
				continue
			}
			s.run(b)
		}
	}()
	return r.failed
}

// The runner fails a block whose command fails, or whose output is not the
// one shown, and passes one that does what the document says; a block
// runs where the one before it left the shell.
func TestTheRunnerFailsWhatTheDocumentGetsWrong(t *testing.T) {
	for src, want := range map[string]string{
		"```sh\ntrue\nfalse\necho never\n```\n":                                 "d.md:1: exit status 1",
		"```sh\necho hello\n```\n<!-- doctest: output -->\n```\ngoodbye\n```\n": "d.md:1: the output has no line like\n\tgoodbye",
		"```sh\nflowctl-no-such-command\n```\n":                                 "d.md:1: exit status 127",
		"```sh\nread answer\n```\n":                                             "d.md:1: exit status 1", // no terminal to answer on
	} {
		if got := runBlock(t, src); !strings.HasPrefix(got, want) {
			t.Errorf("%q: failure %q, want %q", src, got, want)
		}
	}
	ok := "```sh\nmkdir -p sub && cd sub\nexport GREETING=hello\n```\n\n" +
		"```console\n$ echo \"$GREETING from $(basename \"$PWD\") 42\"\nhello from sub 7\n```\n<!-- doctest: output -->\n```\nhello from sub 7\n```\n"
	if got := runBlock(t, ok); got != "" {
		t.Errorf("a documented session failed: %s", got)
	}
}

func TestInlineCommandsAreReadWithTheirFlags(t *testing.T) {
	got := inlineCommands("Run `flowctl plan -detailed-exitcode -out plan.bin`, then `bin/flowctl state show ADDR`; " +
		"`flowctl logs [-f] [--tail N] [ADDR...]`, `flowctl state list\\|show`, `flowctl convert FILE --to hcl\\|yaml`, `flowctl -h`, `flowctl plan -json`.")
	want := map[string][]string{
		"plan":       {"-detailed-exitcode", "-out", "-json"},
		"state show": nil,
		"logs":       {"-f", "--tail"},
		"state":      nil,
		"convert":    {"--to"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for k, v := range want {
		if !slices.Equal(got[k], v) {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
}

// A background block runs beside the session (another terminal): its cd
// and exports stay its own, its output is waited for, and an interrupt
// stops it.
func TestABackgroundBlockIsAnotherTerminal(t *testing.T) {
	src := "```sh\nexport A=1\nmkdir -p sub && cd sub\n```\n\n" +
		"<!-- doctest: background -->\n```sh\nexport A=2; cd /; echo up; sleep 300\n```\n<!-- doctest: output -->\n```\nup\n```\n\n" +
		"<!-- doctest: interrupt -->\n```sh\ntest \"$A\" = 1 && test \"$(basename \"$PWD\")\" = sub\n```\n"
	if got := runBlock(t, src); got != "" {
		t.Errorf("failed: %s", got)
	}
	if got := runBlock(t, "<!-- doctest: background -->\n```sh\necho starting; exit 3\n```\n<!-- doctest: output -->\n```\nready\n```\n"); !strings.Contains(got, "ended (exit status 3) before printing a line like\n\tready") {
		t.Errorf("a background block that ends before its output: %q", got)
	}
}
