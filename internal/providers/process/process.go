//go:build linux

// Package process runs pipeline components as local processes, each owned
// by a shim so that it outlives the flowctl command that started it. It
// works on Linux only: identities, orphans and ports are read from /proc.
//
// # The shim
//
// Start runs the shim (package shim: the flowctl-shim binary installed
// beside flowctl, or flowctl re-executed in the hidden mode `flowctl __shim
// ADDRESS`) in a session of its own (setsid): Ctrl-C in the terminal
// and the end of the CLI do not reach it. The shim starts the component in
// a process group of its own, copies its stdout and stderr line by line
// into Dir/logs/<address>.log ("<RFC 3339 UTC ns> <stdout|stderr> <line>",
// rotated by size into .log.1, .log.2, ...), forwards SIGTERM, SIGINT,
// SIGHUP and SIGQUIT to the component's group, and keeps the run record
// Dir/run/<address>.json: who the shim and the component are (pid and
// start time, never a pid alone), the pipeline, lineage, instance ID and
// spec hash, the command, when it started, and once it has exited when and
// how. When the component exits, the shim kills whatever is left of its
// process group, records the exit and exits too. Its own diagnostics go to
// Dir/run/<address>.shim.log. Stop removes the run record and the shim log;
// the component's log stays.
//
// # The component's environment
//
// The component gets exactly spec.Env, with three exceptions: PATH is the
// CLI's own when spec.Env has none (so that "python3" or "sh" resolve and
// work as in the user's shell); the contract's FLOWCTL_PIPELINE,
// FLOWCTL_LINEAGE, FLOWCTL_INSTANCE_ID, FLOWCTL_SPEC_HASH and
// FLOWCTL_COMPONENT_ADDRESS (package contract) are filled in from the spec
// when spec.Env lacks them (the engine normally injects them); and two
// markers are always set: FLOWCTL_MANAGED_BY=process-shim and
// FLOWCTL_RUN_RECORD=<path of the run record>. Nothing else of the CLI's
// environment is inherited. With these, List finds a component whose run
// record was lost by reading /proc/PID/environ.
//
// The command is Component.Command followed by Component.Args. A command
// containing a slash (./bin/x) resolves against spec.WorkDir, the pipeline
// file's folder, which is also the working directory; a bare name is
// looked up on the PATH the component gets (package execpath).
//
// # Identity
//
// A handle names the run record and the identities (pid + start ticks +
// boot ID) of the shim and the component. Nothing is ever signalled unless
// its identity still matches, so a recycled pid is never touched.
package process

import (
	"path/filepath"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/images"
	"github.com/flowctl/flowctl/internal/providers"
)

// Name is the executor name of this provider.
const Name = "process"

// Markers the provider sets besides the component contract: they are this
// provider's own, for recognising its processes in /proc.
const (
	// EnvManagedBy marks a process as a component started by this provider;
	// its value is ManagedByValue.
	EnvManagedBy   = "FLOWCTL_MANAGED_BY"
	ManagedByValue = "process-shim"
	// EnvRunRecord is the absolute path of the component's run record.
	EnvRunRecord = "FLOWCTL_RUN_RECORD"
	// EnvShimRecord is set on the shim itself (not the component): the run
	// record it keeps. It lets List recognise a component's shim.
	EnvShimRecord = "FLOWCTL_SHIM_RECORD"
)

// Defaults of Options.
const (
	DefaultLogMaxSize   = 10 << 20
	DefaultLogMaxFiles  = 3
	DefaultStartTimeout = 5 * time.Second
)

// Options configure the provider.
type Options struct {
	// Dir is the state folder (e.g. /path/.flowctl): logs go to Dir/logs,
	// run records and shim diagnostics to Dir/run. Required.
	Dir string
	// ShimCommand runs the shim; the component address is appended.
	// Default: flowctl-shim beside the executable (LeanShimName) when it
	// is there, else [os.Executable(), "__shim"].
	ShimCommand []string
	// ShimEnv is the shim's environment (it inherits nothing else from the
	// CLI); tests use it to make the test binary act as the shim.
	ShimEnv []string
	// LogMaxSize is the size at which a log file is rotated (default 10 MiB);
	// LogMaxFiles is how many files a log may span, the current one
	// included (default 3: x.log, x.log.1, x.log.2). 1 truncates instead.
	LogMaxSize  int64
	LogMaxFiles int
	// StartTimeout bounds how long Start waits for the shim to report that
	// the component started (default 5 s).
	StartTimeout time.Duration
	// Images is the image cache components given an image run from
	// (default: the user's, images.DefaultDir).
	Images *images.Store
}

// Provider runs components as local processes under a shim.
type Provider struct {
	opts Options
	// images is the default image cache, opened on first use (image.go).
	images imageCache
}

var _ providers.Provider = (*Provider)(nil)

// New returns a process provider.
func New(opts Options) *Provider {
	if opts.LogMaxSize <= 0 {
		opts.LogMaxSize = DefaultLogMaxSize
	}
	if opts.LogMaxFiles <= 0 {
		opts.LogMaxFiles = DefaultLogMaxFiles
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = DefaultStartTimeout
	}
	if abs, err := filepath.Abs(opts.Dir); err == nil && opts.Dir != "" {
		opts.Dir = abs
	}
	return &Provider{opts: opts}
}

// Name implements providers.Provider.
func (p *Provider) Name() string { return Name }

// RunRecordPath is where the run record of the component at address lives.
func (p *Provider) RunRecordPath(address string) string {
	return filepath.Join(p.runDir(), fileName(address)+".json")
}

// LogPath is the (current) log file of the component at address.
func (p *Provider) LogPath(address string) string {
	return filepath.Join(p.logDir(), fileName(address)+".log")
}

func (p *Provider) shimLogPath(address string) string {
	return filepath.Join(p.runDir(), fileName(address)+".shim.log")
}

func (p *Provider) runDir() string { return filepath.Join(p.opts.Dir, "run") }
func (p *Provider) logDir() string { return filepath.Join(p.opts.Dir, "logs") }

// fileName turns an address into a file name (addresses are KIND.ID with
// a conservative ID, but never trust that with a path).
func fileName(address string) string {
	var b strings.Builder
	for _, r := range address {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := b.String()
	if s == "" || s == "." || s == ".." {
		s = "_" + s
	}
	return s
}

// logPathFromRecord derives Dir/logs/<name>.log from Dir/run/<name>.json.
func logPathFromRecord(recordPath string) string {
	dir := filepath.Dir(filepath.Dir(recordPath))
	name := strings.TrimSuffix(filepath.Base(recordPath), ".json")
	return filepath.Join(dir, "logs", name+".log")
}

// shimLogFromRecord derives Dir/run/<name>.shim.log from Dir/run/<name>.json.
func shimLogFromRecord(recordPath string) string {
	return strings.TrimSuffix(recordPath, ".json") + ".shim.log"
}
