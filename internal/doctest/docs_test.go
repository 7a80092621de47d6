package doctest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowctl/flowctl/internal/testutil"
	"github.com/flowctl/flowctl/internal/testutil/dockertest"
)

// The documents, in the order a new user reads them: each runs on the copy
// the ones before it left (the quickstart's build serves the examples).
var documents = []string{"README.md", "docs/quickstart.md", "examples/README.md"}

// Bounds that only stop a hang; none is a claim about speed.
const (
	blockTimeout   = 8 * time.Minute // a foreground block (make images on a cold cache)
	waitForOutput  = 5 * time.Minute // a background block's output (make demo builds first)
	retryFor       = 2 * time.Minute // a retry block's state
	interruptGrace = 2 * time.Minute // a background block's exit after SIGINT
)

// block is one fenced block of a document.
type block struct {
	doc    string
	line   int // of the opening fence
	lang   string
	body   string
	keys   map[string]string // the doctest keys before it: key -> argument
	output *block            // the output block after it
	// interrupt is set on a pseudo-block: <!-- doctest: interrupt -->.
	interrupt bool
	// snippet is set on an HCL or YAML block holding a pipeline: it is
	// validated, not run.
	snippet bool
}

func (b *block) String() string { return fmt.Sprintf("%s:%d", b.doc, b.line) }

var (
	markerLine = regexp.MustCompile(`^<!--\s*doctest:\s*(.*?)\s*-->\s*$`)
	fenceLine  = regexp.MustCompile("^```\\s*([A-Za-z0-9_-]*)\\s*$")
	knownKeys  = map[string]bool{"skip": true, "docker": true, "background": true, "retry": true, "output": true, "interrupt": true}
	shellLangs = map[string]bool{"sh": true, "bash": true, "shell": true, "console": true}
	// Pipelines shown in a document are validated.
	pipelineLangs   = map[string]bool{"hcl": true, "yaml": true}
	pipelineSnippet = regexp.MustCompile(`(?m)^(pipeline\s+"|kind:\s*Pipeline\s*$)`)
)

// parse reads the blocks of a document: the shell blocks to run (each with
// the output block that follows it) and interrupt markers, in order.
func parse(doc string, src []byte) ([]*block, error) {
	var (
		out     []*block
		pending map[string]string
		pendAt  int
		last    *block // the last shell block, for an output block
	)
	sc := bufio.NewScanner(bytes.NewReader(src))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if m := markerLine.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			keys, err := parseKeys(m[1])
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", doc, n, err)
			}
			if _, ok := keys["interrupt"]; ok {
				if len(keys) != 1 {
					return nil, fmt.Errorf("%s:%d: interrupt is a marker of its own", doc, n)
				}
				out = append(out, &block{doc: doc, line: n, interrupt: true})
				continue
			}
			pending, pendAt = keys, n
			continue
		}
		f := fenceLine.FindStringSubmatch(line)
		if f == nil {
			if strings.TrimSpace(line) != "" && pending != nil {
				return nil, fmt.Errorf("%s:%d: a doctest marker must come right before a fenced block", doc, pendAt)
			}
			continue
		}
		b := &block{doc: doc, line: n, lang: f[1], keys: pending}
		if b.keys == nil {
			b.keys = map[string]string{}
		}
		pending = nil
		var body strings.Builder
		closed := false
		for sc.Scan() {
			n++
			if strings.TrimSpace(sc.Text()) == "```" {
				closed = true
				break
			}
			body.WriteString(sc.Text())
			body.WriteByte('\n')
		}
		if !closed {
			return nil, fmt.Errorf("%s:%d: the fence is never closed", doc, b.line)
		}
		b.body = body.String()
		_, isOutput := b.keys["output"]
		switch {
		case isOutput:
			if b.lang != "" && b.lang != "text" {
				return nil, fmt.Errorf("%s:%d: an output block has no language (it is %q)", doc, b.line, b.lang)
			}
			if last == nil || last.output != nil {
				return nil, fmt.Errorf("%s:%d: an output block must follow a shell block that has none", doc, b.line)
			}
			last.output = b
		case shellLangs[b.lang]:
			out = append(out, b)
			if _, skip := b.keys["skip"]; !skip {
				last = b
			}
		default:
			if len(b.keys) > 0 {
				return nil, fmt.Errorf("%s:%d: doctest keys on a %q block, which is not run", doc, b.line, b.lang)
			}
			if pipelineLangs[b.lang] && pipelineSnippet.MatchString(b.body) {
				b.snippet = true
				out = append(out, b)
			}
		}
	}
	if pending != nil {
		return nil, fmt.Errorf("%s:%d: a doctest marker with no block after it", doc, pendAt)
	}
	return out, sc.Err()
}

// parseKeys reads "docker, background" or "skip (a reason)".
func parseKeys(s string) (map[string]string, error) {
	keys := map[string]string{}
	if strings.HasPrefix(s, "skip") {
		reason := strings.TrimSpace(strings.TrimPrefix(s, "skip"))
		if reason == "" {
			return nil, fmt.Errorf("doctest: skip needs a reason")
		}
		keys["skip"] = reason
		return keys, nil
	}
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		if !knownKeys[k] {
			return nil, fmt.Errorf("unknown doctest key %q (known: skip, docker, background, retry, output, interrupt)", k)
		}
		keys[k] = ""
	}
	return keys, nil
}

var (
	number = regexp.MustCompile(`[0-9a-f]*[0-9][0-9a-zµ.]*`)
	spaces = regexp.MustCompile(`\s+`)
)

// linePattern turns a line of an output block into a regular expression
// for one printed line (see the package doc).
func linePattern(line string) *regexp.Regexp {
	var re strings.Builder
	re.WriteString(`^\s*`)
	for i, part := range strings.Split(strings.TrimSpace(line), "...") {
		if i > 0 {
			re.WriteString(`.*`)
		}
		lead, trail := part != strings.TrimLeft(part, " \t"), part != strings.TrimRight(part, " \t")
		part = strings.TrimSpace(part)
		if lead {
			re.WriteString(`\s*`)
		}
		for j, word := range spaces.Split(part, -1) {
			if j > 0 {
				re.WriteString(`\s+`)
			}
			last := 0
			for _, loc := range number.FindAllStringIndex(word, -1) {
				re.WriteString(regexp.QuoteMeta(word[last:loc[0]]))
				re.WriteString(`[0-9a-f]*[0-9][0-9a-zµ.]*`)
				last = loc[1]
			}
			re.WriteString(regexp.QuoteMeta(word[last:]))
		}
		if trail {
			re.WriteString(`\s*`)
		}
	}
	re.WriteString(`\s*$`)
	return regexp.MustCompile(re.String())
}

// matchOutput reports whether the lines of want appear in got in order;
// when not, it says which line was not found.
func matchOutput(want, got string) (bool, string) {
	lines := strings.Split(got, "\n")
	at := 0
	for _, w := range strings.Split(want, "\n") {
		if strings.TrimSpace(w) == "" || strings.TrimSpace(w) == "..." {
			continue
		}
		re := linePattern(w)
		for at < len(lines) && !re.MatchString(lines[at]) {
			at++
		}
		if at == len(lines) {
			return false, w
		}
		at++
	}
	return true, ""
}

// buffer is output written by a running process.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// reporter is what a session reports to: the test, or a recorder in the
// tests of the runner itself.
type reporter interface {
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	TempDir() string
}

// session is one document being run in the copy.
type session struct {
	t       reporter
	root    string // the copy
	cwd     string // where the next foreground block starts
	envFile string // the variables the last block exported
	cwdFile string
	env     []string
	docker  bool
	rename  func(string) string // the copy's pipeline names back to the documents'
	running []*background
}

type background struct {
	b    *block
	cmd  *exec.Cmd
	out  *buffer
	done chan struct{}
}

// script wraps a block so that it runs like the next command typed in the
// same terminal. A foreground block leaves its directory and exported
// variables to the next; a background one (another terminal) does not.
func (s *session) script(b *block) string {
	body := b.body
	if b.lang == "console" {
		var cmds []string
		for _, l := range strings.Split(body, "\n") {
			if c, ok := strings.CutPrefix(l, "$ "); ok {
				cmds = append(cmds, c)
			}
		}
		body = strings.Join(cmds, "\n") + "\n"
	}
	keep := fmt.Sprintf("trap 'pwd > %q; export -p > %q' EXIT\n", s.cwdFile, s.envFile)
	if _, ok := b.keys["background"]; ok {
		keep = ""
	}
	return fmt.Sprintf("if [ -f %[1]q ]; then . %[1]q; fi\ncd %[2]q\n%[3]sset -eo pipefail\n%[4]s", s.envFile, s.cwd, keep, body)
}

// matches compares what b printed, with the documents' pipeline names put
// back, with its output block.
func (s *session) matches(b *block, got string) (bool, string) {
	return matchOutput(b.output.body, s.rename(got))
}

func (s *session) command(ctx context.Context, b *block) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "bash", "-c", s.script(b))
	cmd.Dir = s.root
	cmd.Env = s.env
	cmd.Stdin = nil // no terminal: a command that asks fails
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

func (s *session) run(b *block) {
	t := s.t
	if reason, ok := b.keys["skip"]; ok {
		t.Logf("%s: skipped: %s", b, reason)
		return
	}
	if _, ok := b.keys["docker"]; ok && !s.docker {
		if dockertest.InCI() {
			t.Fatalf("%s: needs a Docker engine, and none answers (CI=true: required; .ci/run starts dockerd)", b)
		}
		t.Logf("%s: skipped: no Docker engine", b)
		return
	}
	if b.snippet {
		s.validate(b)
		return
	}
	if _, ok := b.keys["background"]; ok {
		s.start(b)
		return
	}
	_, retry := b.keys["retry"]
	deadline := time.Now().Add(retryFor)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), blockTimeout)
		cmd := s.command(ctx, b)
		var out buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		cancel()
		ok, missing := err == nil, ""
		if ok && b.output != nil {
			ok, missing = s.matches(b, out.String())
		}
		if ok {
			s.readCwd()
			t.Logf("%s: ok", b)
			return
		}
		if !retry || time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("%s: %v\n--- block\n%s--- output\n%s", b, err, b.body, out.String())
			}
			t.Fatalf("%s: the output has no line like\n\t%s\n(from the output block at %s)\n--- output\n%s", b, missing, b.output, out.String())
		}
		time.Sleep(time.Second)
	}
}

// validate checks a pipeline the document shows with the flowctl a block
// before built.
func (s *session) validate(b *block) {
	t := s.t
	flowctl := filepath.Join(s.root, "bin", "flowctl")
	if _, err := os.Stat(flowctl); err != nil {
		t.Fatalf("%s: a pipeline to validate, but no block before it built bin/flowctl", b)
	}
	file := filepath.Join(t.TempDir(), "pipeline."+b.lang)
	if err := os.WriteFile(file, []byte(b.body), 0o644); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	out, err := exec.Command(flowctl, "validate", file).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: the pipeline it shows is not valid: %v\n%s", b, err, out)
	}
	t.Logf("%s: %s pipeline valid", b, b.lang)
}

func (s *session) readCwd() {
	if d, err := os.ReadFile(s.cwdFile); err == nil && strings.TrimSpace(string(d)) != "" {
		s.cwd = strings.TrimSpace(string(d))
	}
}

// start runs a background block and waits for its output block, if any.
func (s *session) start(b *block) {
	t := s.t
	cmd := s.command(context.Background(), b)
	bg := &background{b: b, cmd: cmd, out: &buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = bg.out, bg.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	go func() { _ = cmd.Wait(); close(bg.done) }()
	s.running = append(s.running, bg)
	if b.output == nil {
		return
	}
	deadline := time.Now().Add(waitForOutput)
	for {
		ok, missing := s.matches(b, bg.out.String())
		if ok {
			t.Logf("%s: started, output as documented", b)
			return
		}
		select {
		case <-bg.done:
			t.Fatalf("%s: ended (%v) before printing a line like\n\t%s\n--- output\n%s", b, cmd.ProcessState, missing, bg.out.String())
		case <-time.After(500 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: after %v, no line like\n\t%s\n--- output\n%s", b, waitForOutput, missing, bg.out.String())
		}
	}
}

// interrupt sends SIGINT to every background block, as Ctrl-C in its
// terminal, waits for each to end, then for nothing the copy started to
// run any longer.
func (s *session) interrupt(at string) {
	t := s.t
	for _, bg := range s.running {
		_ = syscall.Kill(-bg.cmd.Process.Pid, syscall.SIGINT)
	}
	for _, bg := range s.running {
		select {
		case <-bg.done:
			t.Logf("%s: ended after SIGINT (%s)\n%s", bg.b, at, tail(bg.out.String(), 6))
		case <-time.After(interruptGrace):
			_ = syscall.Kill(-bg.cmd.Process.Pid, syscall.SIGKILL)
			t.Errorf("%s: still running %v after SIGINT (%s)\n--- output\n%s", bg.b, interruptGrace, at, tail(bg.out.String(), 30))
		}
	}
	s.running = nil
	deadline := time.Now().Add(interruptGrace)
	for {
		left := processesUnder(s.root)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("after Ctrl-C (%s), processes of the copy still run: %v", at, left)
			killAll(left)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// processesUnder lists the processes whose executable or working folder is
// in root: what the documents' commands started from the copy.
func processesUnder(root string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		exe, _ := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if strings.HasPrefix(exe, root+"/") || cwd == root || strings.HasPrefix(cwd, root+"/") {
			cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			out = append(out, fmt.Sprintf("%d %s", pid, strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " ")))
		}
	}
	return out
}

func killAll(procs []string) {
	for _, p := range procs {
		if pid, err := strconv.Atoi(strings.Fields(p)[0]); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// copyCheckout copies the files git knows of (tracked, and new ones not
// ignored) into dst: what a fresh clone holds, with the working tree's
// changes.
func copyCheckout(t *testing.T, root, dst string) {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		t.Fatalf("list the checkout's files (git ls-files): %v", err)
	}
	n := 0
	for _, rel := range strings.Split(string(out), "\x00") {
		if rel == "" {
			continue
		}
		src := filepath.Join(root, rel)
		info, err := os.Lstat(src)
		if err != nil || !info.Mode().IsRegular() {
			continue // deleted in the working tree, or a symlink
		}
		target := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := copyFile(src, target, info.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n < 10 {
		t.Fatalf("git ls-files listed %d files", n)
	}
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

var (
	hclName  = regexp.MustCompile(`(?m)^(pipeline\s+")([^"]+)(")`)
	yamlName = regexp.MustCompile(`(?m)^(  name:\s*)(\S+)\s*$`)
)

// renamePipelines gives the example pipelines of the copy names of their
// own (NAME-doctest-PID), so that its processes and containers are never
// mistaken for those of a pipeline the user runs from the checkout itself.
// It returns the function that maps output back to the documents' names.
func renamePipelines(t *testing.T, root string) func(string) string {
	t.Helper()
	suffix := fmt.Sprintf("-doctest-%x", os.Getpid())
	files, _ := filepath.Glob(filepath.Join(root, "examples", "*", "pipeline.*"))
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var re *regexp.Regexp
		switch filepath.Ext(f) {
		case ".hcl":
			re = hclName
		case ".yaml", ".yml":
			re = yamlName
		default:
			continue
		}
		renamed := re.ReplaceAll(src, []byte("${1}${2}"+suffix+"${3}"))
		if err := os.WriteFile(f, renamed, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return func(s string) string { return strings.ReplaceAll(s, suffix, "") }
}

// goOnPath is PATH with the go command the tests run with first: the
// documents' make targets call go.
func goOnPath() string {
	dir := filepath.Join(runtime.GOROOT(), "bin") //nolint:staticcheck // the toolchain running the test
	if p, err := exec.LookPath("go"); err == nil {
		dir = filepath.Dir(p)
	}
	return dir + string(os.PathListSeparator) + os.Getenv("PATH")
}

func dockerAvailable() bool {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return exec.CommandContext(ctx, "docker", "info").Run() == nil
}

// TestDocumentedCommandsRunAsWritten runs the shell blocks of the
// documents on a copy of the checkout (see the package doc for the
// markers), in reading order, and checks the output they show.
func TestDocumentedCommandsRunAsWritten(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the documents' commands: builds, pipelines, containers")
	}
	root, err := testutil.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	var docs [][]*block
	for _, d := range documents {
		src, err := os.ReadFile(filepath.Join(root, d))
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := parse(d, src)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, blocks)
	}
	copyDir := t.TempDir()
	copyCheckout(t, root, copyDir)
	rename := renamePipelines(t, copyDir)
	docker := dockerAvailable()
	t.Cleanup(func() { teardown(t, copyDir) })
	for i, d := range documents {
		t.Run(strings.ReplaceAll(d, "/", "_"), func(t *testing.T) {
			state := t.TempDir()
			s := &session{
				t: t, root: copyDir, cwd: copyDir, docker: docker, rename: rename,
				envFile: filepath.Join(state, "env"), cwdFile: filepath.Join(state, "cwd"),
				env: append(os.Environ(), "NO_COLOR=1", "PATH="+goOnPath()),
			}
			defer func() {
				if len(s.running) > 0 {
					s.interrupt("the end of " + d)
				}
			}()
			for _, b := range docs[i] {
				if b.interrupt {
					s.interrupt(b.String())
					continue
				}
				s.run(b)
			}
		})
	}
	t.Run("flags", func(t *testing.T) { checkInlineCommands(t, copyDir) })
	t.Run("commands", func(t *testing.T) { checkCommandTable(t, copyDir) })
}

// Documents whose inline `flowctl …` spans are checked against the
// commands' help: each command exists and has each flag named.
var flagDocuments = []string{"README.md", "docs/quickstart.md", "examples/README.md", "docs/terraform-users.md", "docs/compose-users.md"}

var (
	inlineFlowctl = regexp.MustCompile("`(?:bin/)?flowctl ([^`]+)`")
	commandWord   = regexp.MustCompile(`^[a-z][a-z-]*$`)
	flagWord      = regexp.MustCompile(`^\[?(--?[a-z][a-z0-9-]*)`)
)

// inlineCommands returns, for each `flowctl …` span of src, the command
// path ("state show") and the flags it names ("-json"); bracketed
// alternatives and placeholders are left out.
func inlineCommands(src string) map[string][]string {
	out := map[string][]string{}
	for _, m := range inlineFlowctl.FindAllStringSubmatch(src, -1) {
		words := strings.Fields(strings.ReplaceAll(m[1], `\|`, "|"))
		var path []string
		i := 0
		for ; i < len(words) && commandWord.MatchString(words[i]); i++ {
			path = append(path, words[i])
		}
		if len(path) == 0 {
			continue
		}
		key := strings.Join(path, " ")
		if _, ok := out[key]; !ok {
			out[key] = nil
		}
		for _, w := range words[i:] {
			if f := flagWord.FindStringSubmatch(w); f != nil {
				out[key] = append(out[key], f[1])
			}
		}
	}
	return out
}

// checkInlineCommands runs `flowctl CMD --help` for each command the
// documents name, and fails on a command or flag it does not have.
func checkInlineCommands(t *testing.T, root string) {
	flowctl := filepath.Join(root, "bin", "flowctl")
	for _, d := range flagDocuments {
		src, err := os.ReadFile(filepath.Join(root, d))
		if err != nil {
			t.Fatal(err)
		}
		for cmd, flags := range inlineCommands(string(src)) {
			args := append(strings.Fields(cmd), "--help")
			help, err := exec.Command(flowctl, args...).CombinedOutput()
			if err != nil || !strings.Contains(string(help), "flowctl "+cmd) {
				t.Errorf("%s: `flowctl %s` is no command: %v\n%s", d, cmd, err, help)
				continue
			}
			for _, f := range flags {
				name := "--" + strings.TrimLeft(f, "-")
				if len(strings.TrimLeft(f, "-")) == 1 {
					name = "-" + strings.TrimLeft(f, "-") + ","
				}
				if !strings.Contains(string(help), name) {
					t.Errorf("%s: `flowctl %s` has no flag %s", d, cmd, f)
				}
			}
		}
	}
}

var (
	helpCommand = regexp.MustCompile(`(?m)^  ([a-z][a-z-]*)\s`)
	readmeTable = regexp.MustCompile("(?m)^\\| `flowctl ([a-z][a-z-]*)")
)

// checkCommandTable fails when README's table of commands leaves out a
// command of flowctl --help, or names one it does not have.
func checkCommandTable(t *testing.T, root string) {
	help, err := exec.Command(filepath.Join(root, "bin", "flowctl"), "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("flowctl --help: %v\n%s", err, help)
	}
	_, list, _ := strings.Cut(string(help), "Available Commands:")
	list, _, _ = strings.Cut(list, "\n\n")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, m := range readmeTable.FindAllStringSubmatch(string(readme), -1) {
		listed[m[1]] = true
	}
	commands := map[string]bool{}
	for _, m := range helpCommand.FindAllStringSubmatch(list, -1) {
		commands[m[1]] = true
		if m[1] != "help" && !listed[m[1]] {
			t.Errorf("README.md's table of commands leaves out flowctl %s", m[1])
		}
	}
	if len(commands) < 10 {
		t.Fatalf("flowctl --help lists %d commands:\n%s", len(commands), help)
	}
	for c := range listed {
		if !commands[c] {
			t.Errorf("README.md's table of commands names flowctl %s, which flowctl --help does not list", c)
		}
	}
}

// teardown destroys what a failed run may have left: each example pipeline
// of the copy, then any process still running from it.
func teardown(t *testing.T, root string) {
	flowctl := filepath.Join(root, "bin", "flowctl")
	if _, err := os.Stat(flowctl); err == nil {
		states, _ := filepath.Glob(filepath.Join(root, "examples", "*", ".flowctl"))
		for _, st := range states {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			cmd := exec.CommandContext(ctx, flowctl, "destroy", "-auto-approve")
			cmd.Dir = filepath.Dir(st)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Logf("teardown: destroy in %s: %v\n%s", cmd.Dir, err, out)
			}
			cancel()
		}
	}
	if left := processesUnder(root); len(left) > 0 {
		t.Errorf("processes of the copy still run at the end: %v", left)
		killAll(left)
	}
}
