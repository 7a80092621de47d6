package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flowctl/flowctl/internal/logs"
	"github.com/flowctl/flowctl/internal/state"
)

// logsFixture is a state file naming two process components whose
// processes are long gone, and their log files, source.a's rotated twice.
func logsFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	fl := filepath.Join(dir, ".flowctl")
	logDir := filepath.Join(fl, "logs")
	if err := os.MkdirAll(logDir, 0o700); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	line := func(ms int, stream, text string) string {
		return t0.Add(time.Duration(ms)*time.Millisecond).Format("2006-01-02T15:04:05.000000000Z07:00") + " " + stream + " " + text + "\n"
	}
	files := map[string]string{
		"source.a.log.2": line(0, "stdout", "a starting") + line(100, "stdout", "a ready"),
		"source.a.log.1": line(300, "stderr", "exiting with code 2") + line(520, "stdout", "a starting again"),
		"source.a.log":   line(600, "stdout", "a ready again") + line(900, "stdout", "a working"),
		"sink.b.log":     line(50, "stdout", "b starting") + line(550, "stdout", "b got an event") + line(950, "stderr", "b slow"),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(logDir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	statePath := filepath.Join(fl, "p.state.db")
	st, err := state.Open(statePath, "p")
	if err != nil {
		t.Fatal(err)
	}
	handle := func(addr string) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"address":%q,"run_record":%q,"log_path":%q,"child":{"pid":2147483000,"start_ticks":1}}`,
			addr, filepath.Join(fl, "run", addr+".json"), filepath.Join(logDir, addr+".log")))
	}
	err = st.Update(func(tx *state.Tx) error {
		for _, addr := range []string{"source.a", "sink.b"} {
			kind, id, _ := strings.Cut(addr, ".")
			rec := &state.Record{Address: addr, Kind: kind, ID: id, Provider: "process", Handle: handle(addr), InstanceID: addr + "-1", Status: state.StatusRunning, StartedAt: t0}
			if addr == "source.a" { // restarted by the watcher
				rec.StartedAt = t0.Add(505 * time.Millisecond)
			}
			if err := tx.PutComponent(rec); err != nil {
				return err
			}
		}
		return tx.AppendHistory(&state.Event{Time: t0.Add(510 * time.Millisecond), Operation: "restart", Address: "source.a", Reason: "exited code=2", Attempt: 1, Delay: "200ms"})
	})
	if err != nil {
		t.Fatal(err)
	}
	return statePath
}

func TestLogsMergesComponentsAndRotatedFilesWithRestartMarkers(t *testing.T) {
	sp := logsFixture(t)
	r := run(t, "logs", "--state", sp)
	r.wantCode(t, 0)
	want := "" +
		"source.a | a starting\n" +
		"sink.b   | b starting\n" +
		"source.a | a ready\n" +
		"source.a | exiting with code 2\n" +
		"source.a | --- restarted (exited code=2), attempt 1 ---\n" +
		"source.a | a starting again\n" +
		"sink.b   | b got an event\n" +
		"source.a | a ready again\n" +
		"source.a | a working\n" +
		"sink.b   | b slow\n"
	if r.out != want {
		t.Fatalf("got\n%s\nwant\n%s", r.out, want)
	}
	if strings.Contains(r.out, "\x1b") {
		t.Fatal("coloured output to a buffer")
	}
}

func TestLogsSelectsComponentsTailsAndDropsPrefixes(t *testing.T) {
	sp := logsFixture(t)
	r := run(t, "logs", "sink.b", "--state", sp, "--tail", "2", "--no-prefix", "--timestamps")
	r.wantCode(t, 0)
	want := "2025-03-01T12:00:00.550000000Z b got an event\n2025-03-01T12:00:00.950000000Z b slow\n"
	if r.out != want {
		t.Fatalf("got\n%s\nwant\n%s", r.out, want)
	}
	r = run(t, "logs", "--state", sp, "--since", "2025-03-01T12:00:00.9Z", "source.a")
	r.wantCode(t, 0)
	if r.out != "source.a | a working\n" {
		t.Fatalf("since: %q", r.out)
	}
}

func TestLogsJSONIsOneObjectPerLine(t *testing.T) {
	sp := logsFixture(t)
	r := run(t, "logs", "-o", "json", "--state", sp, "source.a")
	r.wantCode(t, 0)
	lines := strings.Split(strings.TrimSuffix(r.out, "\n"), "\n")
	if len(lines) != 7 {
		t.Fatalf("%d lines:\n%s", len(lines), r.out)
	}
	var got []string
	for _, l := range lines {
		var obj struct{ Time, Component, Stream, Line string }
		if err := json.Unmarshal([]byte(l), &obj); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		if obj.Component != "source.a" || obj.Time == "" {
			t.Fatalf("%+v", obj)
		}
		got = append(got, obj.Stream+" "+obj.Line)
	}
	if !slices.Contains(got, "marker --- restarted (exited code=2), attempt 1 ---") || got[2] != "stderr exiting with code 2" {
		t.Fatalf("%q", got)
	}
	if r2 := run(t, "logs", "--json", "--state", sp, "source.a"); r2.out != r.out {
		t.Fatal("--json differs from -o json")
	}
}

func TestLogsRejectsWhatItCannotShow(t *testing.T) {
	sp := logsFixture(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"logs", "--state", sp, "source.a", "ledger"}, `"ledger" is not a component address`},
		{[]string{"logs", "--state", sp, "-o", "yaml"}, `-o "yaml": want text or json`},
		{[]string{"logs", "--state", sp, "--since", "last tuesday"}, `--since "last tuesday"`},
		{[]string{"logs", "--state", sp, "sink.nope"}, "state records no instance of sink.nope"},
	} {
		r := run(t, tc.args...)
		r.wantCode(t, 1)
		if !strings.Contains(r.err, tc.want) {
			t.Errorf("%v: stderr %q, want %q", tc.args, r.err, tc.want)
		}
	}
}

func TestSplitLogsArgsTellsThePipelineFromAddresses(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "source.x") // a file that reads like an address
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args            []string
		pipeline, addrs []string
	}{
		{nil, nil, nil},
		{[]string{"pipeline.hcl"}, []string{"pipeline.hcl"}, nil},
		{[]string{"pipeline.hcl", "source.a", "sink.b"}, []string{"pipeline.hcl"}, []string{"source.a", "sink.b"}},
		{[]string{"source.a", "sink.b"}, nil, []string{"source.a", "sink.b"}},
		{[]string{file, "source.a"}, []string{file}, []string{"source.a"}},
		{[]string{"."}, []string{"."}, nil},
	} {
		p, a, err := splitLogsArgs(tc.args)
		if err != nil || !slices.Equal(p, tc.pipeline) || !slices.Equal(a, tc.addrs) {
			t.Errorf("%q: pipeline %q addrs %q err %v", tc.args, p, a, err)
		}
	}
}

// openPTY opens a pseudo-terminal: what the command writes to tty, the
// test reads from pt.
func openPTY(t *testing.T) (pt, tty *os.File) {
	t.Helper()
	pt, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { _ = pt.Close() })
	if err := unix.IoctlSetPointerInt(int(pt.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlock pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(int(pt.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("pseudo-terminal number: %v", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { _ = tty.Close() })
	return pt, tty
}

// logsOnTerminal runs flowctl logs with stdout on a terminal and returns
// what the terminal got.
func logsOnTerminal(t *testing.T, args ...string) string {
	t.Helper()
	pt, tty := openPTY(t)
	var errb strings.Builder
	code := Execute(append([]string{"logs"}, args...), Streams{In: strings.NewReader(""), Out: tty, Err: &errb}, BuildInfo{Version: "1.2.3"})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	_ = pt.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []byte
	buf := make([]byte, 4096)
	for !strings.Contains(string(got), "b slow") {
		n, err := pt.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("read terminal: %v (got %q)", err, got)
		}
	}
	return string(got)
}

func TestLogsColoursPrefixesOnATerminalOnly(t *testing.T) {
	sp := logsFixture(t)
	got := logsOnTerminal(t, "--state", sp)
	for _, want := range []string{"\x1b[" + logs.Color("source.a") + "msource.a |\x1b[0m a starting", "\x1b[" + logs.Color("sink.b") + "msink.b   |\x1b[0m b starting"} {
		if !strings.Contains(got, want) {
			t.Errorf("terminal output lacks %q:\n%q", want, got)
		}
	}
	if got := logsOnTerminal(t, "--state", sp, "--no-color"); strings.Contains(got, "\x1b") {
		t.Errorf("--no-color on a terminal: %q", got)
	}
	t.Setenv("NO_COLOR", "1")
	if got := logsOnTerminal(t, "--state", sp); strings.Contains(got, "\x1b") {
		t.Errorf("NO_COLOR on a terminal: %q", got)
	}
}
