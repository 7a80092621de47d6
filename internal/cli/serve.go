package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/serve"
	"github.com/flowctl/flowctl/internal/state"
)

// serveFlags are the flags of `flowctl serve`.
type serveFlags struct {
	listen, http                  string
	tokenSecretFile, operatorFile string
	auth                          string
	tlsCert, tlsKey, tlsClientCA  string
	logLevel                      string
	noWatch                       bool
	noDockerGateway               bool
}

func newServeCommand(g *globals) *cobra.Command {
	var (
		sf stateFlags
		f  serveFlags
	)
	cmd := &cobra.Command{
		Use:   "serve [PIPELINE]",
		Short: "Run the control plane components register and heartbeat with (foreground)",
		Long: "Runs the control plane of one pipeline in the foreground: both gRPC protocols\n" +
			"components speak (--listen), and an HTTP listener (--http) with /healthz,\n" +
			"Prometheus /metrics and /v1/status. The registry is kept in the pipeline's\n" +
			"state file. Logs go to standard error; SIGINT or SIGTERM stops it gracefully.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runServe(g, cmd, args, &sf, &f)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&sf.statePath, "state", "", "state file (default .flowctl/<pipeline>.state.db beside the pipeline file)")
	addVarFlags(fs, &sf.vars)
	fs.StringVar(&f.listen, "listen", serve.DefaultListen, "gRPC address components dial (FLOWCTL_ENDPOINT); port 0 picks a free one")
	fs.StringVar(&f.http, "http", "", "HTTP address of /healthz, /metrics and /v1/status (default: the --listen host, one port up; \"none\" turns it off)")
	fs.StringVar(&f.tokenSecretFile, "token-secret-file", "", "secret that signs component tokens (default token-secret beside the state file, created 0600)")
	fs.StringVar(&f.operatorFile, "operator-token-file", "", "operator token required by /metrics and /v1/status off loopback (default operator-token beside the state file, created 0600)")
	fs.StringVar(&f.auth, "auth", string(controlplane.AuthRequired), "component auth mode: required (a valid token, or a call attested as coming from a pipeline component), token (a valid token on every call) or permissive (anything; unproven registrations flagged)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate: serve gRPC and HTTP over TLS (with --tls-key)")
	fs.StringVar(&f.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.StringVar(&f.tlsClientCA, "tls-client-ca", "", "PEM CA bundle: require client certificates it signed (mTLS)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&f.noDockerGateway, "no-docker-gateway", false, "do not also listen on the Docker bridge's gateway (docker0), where containers reach the host as host.docker.internal")
	fs.BoolVar(&f.noWatch, "no-restart-watcher", false, "serve only: do not run the restart watcher (components that end stay ended)")
	return cmd
}

func runServe(g *globals, cmd *cobra.Command, args []string, sf *stateFlags, f *serveFlags) error {
	opts, err := serveOptions(g, cmd, args, sf, f)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err = serve.Run(ctx, opts)
	var running *serve.RunningError
	if errors.As(err, &running) {
		return fmt.Errorf("%w\n(stop it first, or use it: components reach it at %s)", err, running.Record.Endpoint())
	}
	return err
}

// serveOptions turns serve's flags into serve.Options.
func serveOptions(g *globals, cmd *cobra.Command, args []string, sf *stateFlags, f *serveFlags) (serve.Options, error) {
	mode, err := controlplane.ParseAuthMode(f.auth)
	if err != nil {
		return serve.Options{}, err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return serve.Options{}, fmt.Errorf("--log-level %q: want debug, info, warn or error", f.logLevel)
	}
	httpListen := f.http
	switch {
	case !cmd.Flags().Changed("http"):
		if httpListen, err = serve.DefaultHTTPListen(f.listen); err != nil {
			return serve.Options{}, err
		}
	case httpListen == "none" || httpListen == "off":
		httpListen = ""
	}
	statePath := sf.statePath
	var loc state.Location
	if len(args) > 0 || statePath == "" {
		// The pipeline names its state file (and creates it on first use).
		ws, err := openWorkspace(g, args, sf, true)
		if err != nil {
			return serve.Options{}, err
		}
		statePath, loc = ws.Store.Path(), ws.Store.Location()
	}
	listen := f.listen
	if !cmd.Flags().Changed("listen") {
		// Where the last control plane of the state file listened, when
		// free: its components were told that address.
		if recorded := recordedListen(statePath, loc); recorded != "" {
			listen = recorded
			if !cmd.Flags().Changed("http") {
				host, _, _ := net.SplitHostPort(recorded)
				httpListen = net.JoinHostPort(host, "0")
			}
		}
	}
	return serve.Options{
		StatePath:         statePath,
		State:             loc,
		Listen:            listen,
		HTTPListen:        httpListen,
		TokenSecretFile:   f.tokenSecretFile,
		OperatorTokenFile: f.operatorFile,
		AuthMode:          mode,
		TLSCert:           f.tlsCert,
		TLSKey:            f.tlsKey,
		TLSClientCA:       f.tlsClientCA,
		Logger:            slog.New(slog.NewTextHandler(g.streams.Err, &slog.HandlerOptions{Level: level})),
		DockerGateway:     !f.noDockerGateway,
		Watch:             !f.noWatch,
	}, nil
}

// recordedListen is the address the last control plane of the state at
// loc (when empty, the one path and the environment locate) listened on,
// when it is free now; "" otherwise.
func recordedListen(path string, loc state.Location) string {
	if loc.Path == "" {
		loc, _ = state.Locate(path, nil, nil)
	}
	st, err := state.OpenAt(loc, "", state.ReadOnly())
	if err != nil {
		return ""
	}
	listen, recorded := serve.PreferredListen(st)
	if recorded == "" || listen != recorded {
		return ""
	}
	return listen
}
