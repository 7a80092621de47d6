package serve

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/tokens"
)

func TestWaitRecordReturnsTheRecordOfTheProcessItWaitsFor(t *testing.T) {
	store := newState(t)
	s := start(t, store, Options{})
	rec, err := WaitRecord(t.Context(), store, os.Getpid(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rec.GRPC != s.addrs.GRPC {
		t.Fatalf("record of %s, want the serve on %s", rec.GRPC, s.addrs.GRPC)
	}
}

func TestWaitRecordReportsAChildThatExitedBeforeRecordingItself(t *testing.T) {
	store := newState(t)
	exited := make(chan struct{})
	close(exited)
	if _, err := WaitRecord(t.Context(), store, 1, exited); !errors.Is(err, ErrExited) {
		t.Fatalf("err = %v, want ErrExited", err)
	}
}

func TestWaitRecordGivesUpWhenItsContextEnds(t *testing.T) {
	store := newState(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := WaitRecord(ctx, store, 1, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestEnsureUsesTheControlPlaneServingTheStateFile(t *testing.T) {
	store := newState(t)
	s := start(t, store, Options{})
	cp, err := Ensure(t.Context(), EnsureOptions{Store: store, Executable: func() (string, error) {
		return "", errors.New("Ensure must not start another")
	}})
	if err != nil {
		t.Fatal(err)
	}
	if cp.Endpoint != s.addrs.GRPC || cp.Started || cp.External {
		t.Fatalf("control plane %+v, want the running one on %s", cp, s.addrs.GRPC)
	}
}

func TestEnsureChecksANamedControlPlaneAnswers(t *testing.T) {
	store := newState(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	answering := l.Addr().String()
	defer l.Close()
	cp, err := Ensure(t.Context(), EnsureOptions{Store: store, Address: answering})
	if err != nil {
		t.Fatal(err)
	}
	if cp.Endpoint != answering || !cp.External || cp.Started {
		t.Fatalf("control plane %+v, want the external %s", cp, answering)
	}

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	silent := closed.Addr().String()
	_ = closed.Close()
	_, err = Ensure(t.Context(), EnsureOptions{Store: store, Address: silent})
	if err == nil || !strings.Contains(err.Error(), "the control plane "+silent+" does not answer") {
		t.Fatalf("err = %v, want that %s does not answer", err, silent)
	}
}

func TestTokenSecretIsCreatedPrivateBesideTheState(t *testing.T) {
	store := newState(t)
	secret, gen, err := TokenSecret(store)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(tokens.DefaultSecretPath(store.Path()))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || secret.Path() != tokens.DefaultSecretPath(store.Path()) {
		t.Fatalf("secret %s mode %v", secret.Path(), fi.Mode().Perm())
	}
	var want uint64
	if err := store.View(func(tx *state.Tx) error { want = tx.TokenGeneration(); return nil }); err != nil {
		t.Fatal(err)
	}
	if gen != want {
		t.Fatalf("generation %d, want the state's %d", gen, want)
	}
}

func TestLogPathIsServeLogInTheStateFolder(t *testing.T) {
	if got, want := LogPath("/p/.flowctl/ttp.state.db"), "/p/.flowctl/serve.log"; got != want {
		t.Fatalf("LogPath = %q, want %q", got, want)
	}
}

func TestLastLogLines(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing file", filepath.Join(dir, "none.log"), "no log"},
		{"fewer lines than asked", write("short.log", "a\nb\n"), "a | b"},
		{"only the last lines", write("long.log", "a\nb\nc\nd\n"), "c | d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lastLogLines(tc.path, 2); got != tc.want {
				t.Fatalf("lastLogLines = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestIsLoopbackListen(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true,
		"localhost:8080": true,
		"[::1]:8080":     true,
		"0.0.0.0:8080":   false,
		":8080":          false,
		"10.1.2.3:8080":  false,
		"no port":        false,
	} {
		if got := isLoopbackListen(addr); got != want {
			t.Errorf("isLoopbackListen(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestServeRunsTheRestartWatcherOnlyWhenAsked(t *testing.T) {
	for _, watch := range []bool{true, false} {
		t.Run(map[bool]string{true: "watch", false: "no watch"}[watch], func(t *testing.T) {
			// No component to look after: the watcher starts nothing.
			store, err := state.Open(filepath.Join(t.TempDir(), ".flowctl", testPipeline+".state.db"), testPipeline)
			if err != nil {
				t.Fatal(err)
			}
			s := start(t, store, Options{Watch: watch})
			// Run returns once its background work has.
			if err := s.stop(); err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(s.logs.String(), "restart watcher running"); got != watch {
				t.Fatalf("restart watcher running logged: %v, want %v\n%s", got, watch, s.logs)
			}
		})
	}
}
