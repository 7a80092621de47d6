// Package pgtest runs a real PostgreSQL server for tests — Debian's
// postgresql package — in a temporary folder, on 127.0.0.1 and a free
// port, as an unprivileged user (PostgreSQL refuses to run as root), and
// stops it when the test ends.
package pgtest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Server is a running PostgreSQL server.
type Server struct {
	// ConnStr reaches the database "postgres" as the superuser "flowctl"
	// with Password, over TCP.
	ConnStr  string
	Password string
	Port     int
	dir      string
	bin      string
	cred     *syscall.Credential
	t        testing.TB
	durable  bool
}

// Options configure StartWith.
type Options struct {
	// Durable keeps fsync on, as a production server has it: for
	// benchmarks. Tests run without it, faster.
	Durable bool
}

// BinDir finds the folder of initdb and pg_ctl (/usr/lib/postgresql/<ver>/bin,
// the newest); under CI=true a missing one fails the test, elsewhere it
// skips it.
func BinDir(t testing.TB) string {
	t.Helper()
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(found, func(i, j int) bool { return version(found[i]) > version(found[j]) })
	if len(found) > 0 {
		return filepath.Dir(found[0])
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	msg := "PostgreSQL is not installed (apt-get install -y postgresql; .ci/run installs it)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func version(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

// Start initialises a cluster in a temporary folder and starts it; the
// test's cleanup stops it and removes the folder.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := BinDir(t)
	sweepAbandoned(bin)
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	// A test process killed at its -timeout runs no cleanup: the next
	// Start stops its server (sweepAbandoned).
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Server{dir: dir, bin: bin, t: t, Password: "pw-" + randomHex(12), durable: opts.Durable}
	if os.Geteuid() == 0 {
		s.cred = unprivileged(t)
		if err := os.Chown(dir, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.chown(pwfile)
	data := filepath.Join(dir, "data")
	s.run("initdb", "-D", data, "-U", "flowctl", "--pwfile", pwfile, "--auth=scram-sha-256", "-E", "UTF8", "--no-sync")
	s.Port = freePort(t)
	s.ConnStr = fmt.Sprintf("postgres://flowctl:%s@127.0.0.1:%d/postgres?sslmode=disable", s.Password, s.Port)
	s.run("pg_ctl", "start", "-w", "-D", data, "-l", filepath.Join(dir, "log"), "-o", s.serverOptions())
	t.Cleanup(func() { _ = s.pgctl("stop", "-w", "-m", "immediate", "-D", data) })
	return s
}

const dirPrefix = "flowctl-pgtest-"

// sweepAbandoned stops the servers of test processes that no longer exist
// and removes their folders.
func sweepAbandoned(bin string) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue // its test still runs
		}
		cmd := exec.Command(filepath.Join(bin, "pg_ctl"), "stop", "-w", "-m", "immediate", "-D", filepath.Join(dir, "data"))
		if fi, err := os.Stat(dir); err == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 && st.Uid != 0 {
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: st.Uid, Gid: st.Gid}}
			}
		}
		_ = cmd.Run()
		_ = os.RemoveAll(dir)
	}
}

func (s *Server) serverOptions() string {
	o := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", s.Port, s.dir)
	if !s.durable {
		o += " -c fsync=off"
	}
	return o
}

// Restart stops the server (fast: open sessions are ended) and starts it
// again on the same port.
func (s *Server) Restart() {
	s.t.Helper()
	s.run("pg_ctl", "restart", "-w", "-m", "fast", "-D", filepath.Join(s.dir, "data"), "-l", filepath.Join(s.dir, "log"), "-o", s.serverOptions())
}

// Stop stops the server; Start it again with StartAgain.
func (s *Server) Stop() {
	s.t.Helper()
	s.run("pg_ctl", "stop", "-w", "-m", "fast", "-D", filepath.Join(s.dir, "data"))
}

// StartAgain starts a stopped server on its port.
func (s *Server) StartAgain() {
	s.t.Helper()
	s.run("pg_ctl", "start", "-w", "-D", filepath.Join(s.dir, "data"), "-l", filepath.Join(s.dir, "log"), "-o", s.serverOptions())
}

// Log is the server's log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "log"))
	return string(b)
}

func (s *Server) run(name string, args ...string) {
	s.t.Helper()
	if err := s.pgctlNamed(name, args...); err != nil {
		s.t.Fatalf("%s: %v\n%s", name, err, s.Log())
	}
}

func (s *Server) pgctl(args ...string) error { return s.pgctlNamed("pg_ctl", args...) }

func (s *Server) pgctlNamed(name string, args ...string) error {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (s *Server) chown(path string) {
	if s.cred != nil {
		_ = os.Chown(path, int(s.cred.Uid), int(s.cred.Gid))
	}
}

// unprivileged is the user the server runs as when the tests run as root:
// postgres (the package's own) or nobody.
func unprivileged(t testing.TB) *syscall.Credential {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	t.Fatal("no unprivileged user (postgres, nobody) to run PostgreSQL as")
	return nil
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
