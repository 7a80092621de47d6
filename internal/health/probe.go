// Package health holds flowctl's readiness and liveness probes and the loop
// that waits for a component to become ready.
//
// A Probe answers one question once: is the component healthy right now?
// HTTP (2xx from GET), TCP (a connection is accepted) and Exec (a command
// exits 0) are built from a component's normalised health block by
// FromConfig. Wait runs a probe repeatedly under the block's timing rules
// (start period, interval, timeout, success and failure thresholds) until
// the component is ready, is declared unhealthy, stops running, or the
// caller gives up.
package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/execpath"
)

// Probe checks a component's health once. A nil error means healthy. The
// context carries the per-check timeout.
type Probe interface {
	Check(ctx context.Context) error
}

// OutputProbe is a Probe that also reports what the check saw (an HTTP
// status and body excerpt, a command's last output lines), pass or fail.
// Wait keeps the last output in its Result. All probes of this package
// implement it.
type OutputProbe interface {
	Probe
	CheckOutput(ctx context.Context) (output string, err error)
}

// FromConfig builds the probe a health block describes. host is where the
// component listens (127.0.0.1 for processes, a container name on a Docker
// network); defaultPort is the component's HEALTH_PORT, used when the block
// says port 0. workDir and env are those of the component: an exec probe
// runs there with that environment (see Exec). A nil block yields a nil
// Probe and no error: the component has no probe.
func FromConfig(h *config.Health, host string, defaultPort int, workDir string, env []string) (Probe, error) {
	if h == nil {
		return nil, nil
	}
	port := h.Port
	if port == 0 {
		port = defaultPort
	}
	if host == "" {
		host = "127.0.0.1"
	}
	switch h.Type {
	case config.HealthHTTP:
		if h.URL != "" {
			u, err := url.Parse(h.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, fmt.Errorf("health: invalid URL %q", h.URL)
			}
			return &HTTP{URL: h.URL}, nil
		}
		if port <= 0 {
			return nil, errors.New("health: http probe without a port (no health port given and no HEALTH_PORT allocated)")
		}
		path := h.Path
		if path == "" {
			path = "/health"
		}
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		return &HTTP{URL: "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + path}, nil
	case config.HealthTCP:
		if port <= 0 {
			return nil, errors.New("health: tcp probe without a port (no health port given and no HEALTH_PORT allocated)")
		}
		return &TCP{Address: net.JoinHostPort(host, strconv.Itoa(port))}, nil
	case config.HealthExec:
		if len(h.Command) == 0 || h.Command[0] == "" {
			return nil, errors.New("health: exec probe without a command")
		}
		return &Exec{Command: h.Command, Dir: workDir, Env: env, Timeout: h.Timeout.D()}, nil
	}
	return nil, fmt.Errorf("health: unsupported probe type %q", h.Type)
}

// HTTP passes when GET URL answers 2xx (redirects are followed). Proxies
// from the environment are never used: probes talk to local addresses.
type HTTP struct {
	URL string
	// Client overrides the default client (no proxy, no keep-alive).
	Client *http.Client
}

var defaultHTTPClient = &http.Client{Transport: &http.Transport{
	Proxy:             nil,
	DisableKeepAlives: true,
	DialContext:       (&net.Dialer{}).DialContext,
}}

// bodyExcerpt is how much of a response body a probe reports.
const bodyExcerpt = 256

// Check implements Probe.
func (p *HTTP) Check(ctx context.Context) error { _, err := p.CheckOutput(ctx); return err }

// CheckOutput implements OutputProbe: the output is "STATUS: body excerpt".
func (p *HTTP) CheckOutput(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", p.URL, err)
	}
	req.Header.Set("User-Agent", "flowctl-health")
	c := p.Client
	if c == nil {
		c = defaultHTTPClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", p.URL, unwrapURLError(err))
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, bodyExcerpt+1))
	excerpt := strings.TrimSpace(string(bytes.ToValidUTF8(b, []byte("?"))))
	if len(b) > bodyExcerpt {
		excerpt = strings.TrimSpace(string(bytes.ToValidUTF8(b[:bodyExcerpt], []byte("?")))) + "…"
	}
	excerpt = strings.Join(strings.Fields(excerpt), " ")
	out := resp.Status
	if excerpt != "" {
		out += ": " + excerpt
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return out, fmt.Errorf("GET %s: %s", p.URL, out)
	}
	return out, nil
}

// unwrapURLError drops the *url.Error wrapper, whose message repeats the
// method and URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("timed out: %w", ue.Err)
		}
		return ue.Err
	}
	return err
}

// TCP passes when a TCP connection to Address is accepted.
type TCP struct {
	Address string // host:port
}

// Check implements Probe.
func (p *TCP) Check(ctx context.Context) error { _, err := p.CheckOutput(ctx); return err }

// CheckOutput implements OutputProbe.
func (p *TCP) CheckOutput(ctx context.Context) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.Address)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			err = oe.Err
		}
		return "", fmt.Errorf("connect %s: %w", p.Address, err)
	}
	_ = c.Close()
	return "connected to " + p.Address, nil
}

// Exec passes when Command exits 0 within Timeout (and the context).
//
// The command runs in Dir with exactly Env, plus the CLI's PATH when Env
// has none (a nil Env means the CLI's whole environment). Command[0]
// resolves like a component's command (package execpath). It runs in its
// own process group, which is killed on timeout.
type Exec struct {
	Command []string
	Dir     string
	Env     []string
	Timeout time.Duration // 0: only the context bounds it
}

// execTailLines is how many trailing output lines a failing exec probe reports.
const (
	execTailLines = 5
	execKeepBytes = 4096
)

// Check implements Probe.
func (p *Exec) Check(ctx context.Context) error { _, err := p.CheckOutput(ctx); return err }

// CheckOutput implements OutputProbe: the output is the command's last
// lines of combined stdout and stderr.
func (p *Exec) CheckOutput(ctx context.Context) (string, error) {
	if len(p.Command) == 0 {
		return "", errors.New("exec probe: no command")
	}
	if p.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.Timeout)
		defer cancel()
	}
	env := p.Env
	if env != nil {
		env = execpath.WithPath(env)
	}
	path, err := execpath.Resolve(p.Command[0], p.Dir, env)
	if err != nil {
		return "", fmt.Errorf("exec probe: %w", err)
	}
	var out tailBuffer
	cmd := exec.CommandContext(ctx, path, p.Command[1:]...)
	cmd.Args[0] = p.Command[0]
	cmd.Dir = p.Dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	runErr := cmd.Run()
	tail := out.lastLines(execTailLines)
	if runErr == nil {
		return tail, nil
	}
	what := runErr.Error()
	if ctx.Err() != nil {
		what = "timed out"
		if p.Timeout > 0 && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			what = "timed out after " + p.Timeout.String()
		}
	}
	msg := fmt.Sprintf("exec %s: %s", strings.Join(p.Command, " "), what)
	if tail != "" {
		msg += ": " + strings.ReplaceAll(tail, "\n", " | ")
	}
	return tail, errors.New(msg)
}

// tailBuffer keeps the last execKeepBytes bytes written to it. The command
// writes from its own goroutines one at a time (os/exec serialises a
// shared writer), so no lock is needed.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if over := len(t.b) - execKeepBytes; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) lastLines(n int) string {
	lines := strings.Split(strings.TrimRight(string(bytes.ToValidUTF8(t.b, []byte("?"))), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}
