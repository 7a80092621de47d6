package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/relay"
	"github.com/flowctl/flowctl/internal/serve"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/watch"
)

// Component states `status` reports.
const (
	stateRunning    = "running"
	stateStarting   = "starting"
	stateUnhealthy  = "unhealthy"
	stateRestarting = "restarting"
	stateCrashloop  = "crashloop"
	stateStopped    = "stopped"
	stateMissing    = "missing"
)

// statusWatchEvery is how often --watch redraws.
const statusWatchEvery = 2 * time.Second

// observeTimeout bounds one executor's answer about one component.
const observeTimeout = 5 * time.Second

func newStatusCommand(g *globals) *cobra.Command {
	var (
		sf     stateFlags
		output string
		asJSON bool
		watch  bool
	)
	cmd := &cobra.Command{
		Use:   "status [PIPELINE]",
		Short: "Show each component: state, health, registration, heartbeat, restarts, uptime",
		Long: "Shows one row per component, from the state file, what the executors report\n" +
			"(reality) and the control plane's registry as recorded in the state. Works\n" +
			"from the state file alone (--state), and when the control plane is down.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if asJSON {
				output = "json"
			}
			if output != "table" && output != "json" {
				return fmt.Errorf("-o %q: want table or json", output)
			}
			ws, err := openWorkspace(g, args, &sf, true)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			if !watch {
				return renderStatus(ctx, g, ws, output, false)
			}
			ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
			defer stop()
			return watchStatus(ctx, g, ws, output, statusWatchEvery)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&sf.statePath, "state", "", "state file (default .flowctl/<pipeline>.state.db beside the pipeline file)")
	addVarFlags(fs, &sf.vars)
	fs.StringVarP(&output, "output", "o", "table", "table or json")
	fs.BoolVar(&asJSON, "json", false, "same as -o json")
	fs.BoolVarP(&watch, "watch", "w", false, "redraw every 2s until interrupted")
	return cmd
}

// watchStatus redraws until ctx ends. On a terminal each table replaces the
// last; otherwise (and for JSON) they follow one another.
func watchStatus(ctx context.Context, g *globals, ws *workspace, output string, every time.Duration) error {
	redraw := output == "table" && isTerminal(g.streams.Out)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if redraw {
			fmt.Fprint(g.streams.Out, "\x1b[H\x1b[2J")
		}
		if err := renderStatus(ctx, g, ws, output, true); err != nil && ctx.Err() == nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if !redraw && output == "table" {
			fmt.Fprintln(g.streams.Out)
		}
	}
}

func renderStatus(ctx context.Context, g *globals, ws *workspace, output string, compact bool) error {
	doc, err := collectStatus(ctx, ws, time.Now())
	if err != nil {
		return err
	}
	if output == "json" {
		var b []byte
		if compact {
			b, err = json.Marshal(doc)
		} else {
			b, err = json.MarshalIndent(doc, "", "  ")
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(g.streams.Out, "%s\n", b)
		return nil
	}
	return writeStatusTable(g.streams.Out, doc)
}

// statusDoc is `status -o json`.
type statusDoc struct {
	Pipeline     string             `json:"pipeline"`
	Lineage      string             `json:"lineage"`
	Serial       uint64             `json:"serial"`
	StateFile    string             `json:"state_file"`
	Time         time.Time          `json:"time"`
	ControlPlane controlPlaneStatus `json:"control_plane"`
	Components   []statusRow        `json:"components"`
	// Unmanaged are registrations attributed to no component.
	Unmanaged []unmanagedRow `json:"unmanaged"`
	// DataFlows are the relay's per-edge counters, as serve last saved
	// them.
	DataFlows []relay.Edge `json:"data_flows"`
}

// controlPlaneStatus says whether a serve is running for the state file.
type controlPlaneStatus struct {
	Running bool `json:"running"`
	// The fields below describe the running serve, or the last one when a
	// record is left (Running false: it was killed).
	PID       int       `json:"pid,omitempty"`
	StartedAt time.Time `json:"started_at,omitzero"`
	GRPC      string    `json:"grpc,omitempty"`
	HTTP      string    `json:"http,omitempty"`
	TLS       bool      `json:"tls,omitempty"`
	AuthMode  string    `json:"auth_mode,omitempty"`
}

// statusRow is one component.
type statusRow struct {
	Address  string `json:"address"`
	Executor string `json:"executor"`
	// State is running, starting, unhealthy, restarting, crashloop, stopped
	// or missing; Detail says why when it is not running.
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
	// Health is healthy, unhealthy, starting, degraded, no-heartbeat, or ""
	// when nothing reports it.
	Health string `json:"health,omitempty"`
	// RegisteredAs are the registrations attributed to the component.
	RegisteredAs        []registeredAs `json:"registered_as"`
	LastHeartbeat       time.Time      `json:"last_heartbeat,omitzero"`
	HeartbeatAgeSeconds *float64       `json:"heartbeat_age_seconds,omitempty"`
	Restarts            int            `json:"restarts"`
	StartedAt           time.Time      `json:"started_at,omitzero"`
	UptimeSeconds       *float64       `json:"uptime_seconds,omitempty"`
	// Auth is token or unauthenticated (of the latest registration).
	Auth       string `json:"auth,omitempty"`
	InState    bool   `json:"in_state"`
	InPipeline bool   `json:"in_pipeline"`
}

// registeredAs is one registration of a component.
type registeredAs struct {
	ServiceID    string `json:"service_id"`
	Protocol     string `json:"protocol"`
	AttributedBy string `json:"attributed_by"`
	Alive        bool   `json:"alive"`
	Healthy      bool   `json:"healthy"`
	Status       string `json:"status"`
}

// unmanagedRow is a registration no component claims.
type unmanagedRow struct {
	ServiceID     string    `json:"service_id"`
	Protocol      string    `json:"protocol"`
	Type          string    `json:"type,omitempty"`
	ClaimedID     string    `json:"claimed_id,omitempty"`
	Alive         bool      `json:"alive"`
	LastHeartbeat time.Time `json:"last_heartbeat,omitzero"`
	Auth          string    `json:"auth"`
	RemoteAddr    string    `json:"remote_addr,omitempty"`
}

// collectStatus reads the state, the registry persisted in it, the serve
// record, and asks each record's executor about its object.
func collectStatus(ctx context.Context, ws *workspace, now time.Time) (*statusDoc, error) {
	doc := &statusDoc{StateFile: ws.store.Path(), Time: now.UTC(), Components: []statusRow{}, Unmanaged: []unmanagedRow{}, DataFlows: serve.RelayEdges(ws.store)}
	if doc.DataFlows == nil {
		doc.DataFlows = []relay.Edge{}
	}
	var recs []*state.Record
	watched := map[string]watch.State{}
	err := ws.store.View(func(tx *state.Tx) error {
		m := tx.Meta()
		doc.Pipeline, doc.Lineage, doc.Serial = m.Pipeline, m.Lineage, m.Serial
		var err error
		if recs, err = tx.Components(); err != nil {
			return err
		}
		return tx.ForEachData(watch.DataNamespace, func(k string, v []byte) error {
			if st, err := watch.UnmarshalState(v); err == nil {
				watched[k] = st
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	regs, err := controlplane.ReadRegistrations(ws.store, now)
	if err != nil {
		return nil, err
	}
	rec, err := serve.ReadRecord(ws.store)
	if err != nil {
		return nil, err
	}
	if rec != nil {
		doc.ControlPlane = controlPlaneStatus{
			Running: rec.Alive(), PID: rec.Process.PID, StartedAt: rec.StartedAt,
			GRPC: rec.GRPC, HTTP: rec.HTTP, TLS: rec.TLS, AuthMode: string(rec.AuthMode),
		}
	}
	observed := observeRecords(ctx, ws.providers, recs)

	byAddr := map[string]*state.Record{}
	for _, r := range recs {
		byAddr[r.Address] = r
	}
	regsOf := map[string][]controlplane.Registration{}
	for _, r := range regs {
		if r.Component == "" {
			doc.Unmanaged = append(doc.Unmanaged, unmanagedRow{
				ServiceID: r.ServiceID, Protocol: string(r.Protocol), Type: r.Type, ClaimedID: r.ClaimedID,
				Alive: r.Alive, LastHeartbeat: r.LastHeartbeat, Auth: string(r.Auth), RemoteAddr: r.RemoteAddr,
			})
			continue
		}
		regsOf[r.Component] = append(regsOf[r.Component], r)
	}
	var addrs []string
	desired := map[string]*config.Component{}
	if ws.pipeline != nil {
		for _, c := range ws.pipeline.Components {
			desired[c.Address()] = c
			addrs = append(addrs, c.Address())
		}
	}
	var extra []string
	for _, r := range recs {
		if desired[r.Address] == nil {
			extra = append(extra, r.Address)
		}
	}
	sort.Strings(extra)
	addrs = append(addrs, extra...)
	for _, addr := range addrs {
		row := statusFor(addr, byAddr[addr], desired[addr], observed[addr], regsOf[addr], doc.ControlPlane.Running, now)
		if st, ok := watched[addr]; ok && byAddr[addr] != nil && (st.Instance == "" || st.Instance == byAddr[addr].InstanceID) {
			withWatcher(&row, byAddr[addr], st, now)
		}
		doc.Components = append(doc.Components, row)
	}
	return doc, nil
}

// observation is an executor's answer about one record.
type observation struct {
	obs providers.Observed
	err error
}

// observeRecords asks the executors about every record, in parallel.
func observeRecords(ctx context.Context, reg *providers.Registry, recs []*state.Record) map[string]*observation {
	out := make(map[string]*observation, len(recs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, r := range recs {
		if len(r.Handle) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := &observation{}
			prov, err := reg.Get(r.Provider)
			if err == nil {
				octx, cancel := context.WithTimeout(ctx, observeTimeout)
				o.obs, err = prov.Observe(octx, r.Handle)
				cancel()
			}
			o.err = err
			mu.Lock()
			out[r.Address] = o
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// statusFor computes one row. The state comes first from what flowctl
// decided (stopped, crashloop), then from reality (gone, exited), then from
// readiness and the registry (starting, unhealthy).
func statusFor(addr string, rec *state.Record, desired *config.Component, o *observation, regs []controlplane.Registration, serveUp bool, now time.Time) statusRow {
	row := statusRow{Address: addr, InState: rec != nil, InPipeline: desired != nil, RegisteredAs: []registeredAs{}}
	if desired != nil {
		row.Executor = desired.Executor
	}
	var latest *controlplane.Registration
	alive, healthy := false, false
	for i := range regs {
		r := &regs[i]
		row.RegisteredAs = append(row.RegisteredAs, registeredAs{
			ServiceID: r.ServiceID, Protocol: string(r.Protocol), AttributedBy: string(r.AttributedBy),
			Alive: r.Alive, Healthy: r.Healthy, Status: r.Status,
		})
		if r.LastHeartbeat.After(row.LastHeartbeat) {
			row.LastHeartbeat = r.LastHeartbeat
		}
		if latest == nil || r.RegisteredAt.After(latest.RegisteredAt) {
			latest = r
		}
		alive = alive || r.Alive
		healthy = healthy || r.Healthy
	}
	if !row.LastHeartbeat.IsZero() {
		age := now.Sub(row.LastHeartbeat).Seconds()
		row.HeartbeatAgeSeconds = &age
	}
	if latest != nil {
		row.Auth = string(latest.Auth)
	}
	if rec == nil {
		row.State, row.Detail = stateMissing, "not applied"
		return row
	}
	row.Executor = rec.Provider
	row.Restarts = rec.RestartCount

	// Health: the registry's word, else the executor's own check.
	switch {
	case len(regs) > 0 && healthy:
		row.Health = controlplane.StatusHealthy
	case len(regs) > 0 && !alive:
		row.Health = "no-heartbeat"
	case latest != nil && latest.Status != controlplane.StatusUnknown:
		row.Health = latest.Status
	case len(regs) > 0:
		row.Health = controlplane.StatusUnhealthy
	case o != nil && o.err == nil && o.obs.Health != "":
		row.Health = o.obs.Health
	}

	running := false
	switch {
	case rec.Status == state.StatusStopped:
		row.State, row.Detail = stateStopped, rec.StatusReason
	case rec.Status == state.StatusCrashloop:
		row.State, row.Detail = stateCrashloop, rec.StatusReason
	case o == nil:
		// No handle: the start never returned one.
		row.State, row.Detail = stateMissing, "no object recorded"
		if rec.Status == state.StatusCreating {
			row.State, row.Detail = stateStarting, "being created"
		}
	case o.err != nil:
		// Reality is out of reach (the engine is down): say what state
		// recorded, and why there is no more.
		row.State, running = recordedState(rec.Status), rec.Status == state.StatusRunning
		row.Detail = "executor unreachable: " + firstLine(o.err.Error())
	case !o.obs.Exists:
		row.State, row.Detail = stateMissing, "the object is gone (removed outside flowctl?)"
	case !o.obs.Running:
		row.State, row.Detail = stateStopped, o.obs.Detail
		if row.Detail == "" {
			row.Detail = "exited"
		}
		if serveUp && restartsAfter(rec, o.obs.ExitCode) {
			row.State = stateRestarting
		}
	default:
		running = true
		row.State = stateRunning
		switch {
		case rec.Status == state.StatusCreating:
			row.State, row.Detail = stateStarting, "waiting for readiness"
		case rec.Status == state.StatusFailed:
			row.State, row.Detail = stateUnhealthy, orDefault(rec.StatusReason, "did not become ready")
		case o.obs.Health == providers.HealthUnhealthy:
			row.State, row.Detail = stateUnhealthy, "the executor's health check fails"
		case o.obs.Health == providers.HealthStarting:
			row.State, row.Detail = stateStarting, "the executor's health check has not passed yet"
		case len(regs) > 0 && !alive:
			row.State, row.Detail = stateUnhealthy, "registered, but no heartbeat within 3 intervals"
		case latest != nil && (latest.Status == controlplane.StatusUnhealthy || latest.Status == controlplane.StatusDegraded):
			row.State, row.Detail = stateUnhealthy, "reports "+latest.Status
		case latest != nil && latest.Status == controlplane.StatusStarting:
			row.State, row.Detail = stateStarting, "reports starting"
		}
	}
	if running {
		started := rec.StartedAt
		if o != nil && o.err == nil && !o.obs.StartedAt.IsZero() {
			started = o.obs.StartedAt
		}
		if !started.IsZero() {
			row.StartedAt = started
			up := now.Sub(started).Seconds()
			row.UptimeSeconds = &up
		}
	}
	return row
}

// recordedState maps a recorded status to a reported state.
func recordedState(s string) string {
	switch s {
	case state.StatusRunning:
		return stateRunning
	case state.StatusCreating:
		return stateStarting
	case state.StatusFailed:
		return stateUnhealthy
	case state.StatusCrashloop:
		return stateCrashloop
	}
	return stateStopped
}

// restartsAfter reports whether the restart policy recorded with the
// component's spec brings it back after it exited with code.
func restartsAfter(rec *state.Record, code *int) bool {
	c, err := watch.ComponentOf(rec)
	if err != nil {
		return false
	}
	if c.Restart.Policy == "" {
		c.Restart.Policy = config.DefaultRestartPolicy
	}
	end := watch.Exited(-1) // unknown: taken as a failure
	if code != nil {
		end = watch.Exited(*code)
	}
	return watch.PolicyOf(c.Restart).Restarts(end)
}

// writeStatusTable renders the human form.
func writeStatusTable(w io.Writer, doc *statusDoc) error {
	fmt.Fprintf(w, "Pipeline %s (state %s, serial %d)\n", doc.Pipeline, doc.StateFile, doc.Serial)
	cp := doc.ControlPlane
	switch {
	case cp.Running:
		line := fmt.Sprintf("Control plane: running (pid %d, up %s) on %s", cp.PID, humanDuration(doc.Time.Sub(cp.StartedAt)), cp.GRPC)
		if cp.HTTP != "" {
			line += ", HTTP " + cp.HTTP
		}
		if cp.TLS {
			line += ", TLS"
		}
		fmt.Fprintf(w, "%s, auth %s\n", line, cp.AuthMode)
	case cp.PID != 0:
		fmt.Fprintf(w, "Control plane: not running (the last one, pid %d, ended without cleaning up); registry as last recorded\n", cp.PID)
	default:
		fmt.Fprintln(w, "Control plane: not running; registry as last recorded")
	}
	fmt.Fprintln(w)
	if len(doc.Components) == 0 {
		fmt.Fprintln(w, "No components.")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ADDRESS\tEXECUTOR\tSTATE\tHEALTH\tREGISTERED AS\tHEARTBEAT\tRESTARTS\tUPTIME\tAUTH\tDETAIL")
		for _, r := range doc.Components {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n",
				r.Address, dash(r.Executor), r.State, dash(r.Health), registeredText(r.RegisteredAs),
				ageText(r.HeartbeatAgeSeconds), r.Restarts, uptimeText(r.UptimeSeconds), dash(r.Auth), r.Detail)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(doc.DataFlows) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Data flows (moved by the relay):")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FROM\tTO\tEVENTS\tBYTES\tLAST EVENT")
		for _, e := range doc.DataFlows {
			last := "-"
			if !e.LastAt.IsZero() {
				a := doc.Time.Sub(e.LastAt).Seconds()
				last = ageText(&a)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", e.From, e.To, e.Events, e.Bytes, last)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(doc.Unmanaged) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Unmanaged registrations (attributed to no component):")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SERVICE ID\tPROTOCOL\tTYPE\tCLAIMED ID\tALIVE\tHEARTBEAT\tAUTH\tPEER")
		for _, u := range doc.Unmanaged {
			var age *float64
			if !u.LastHeartbeat.IsZero() {
				a := doc.Time.Sub(u.LastHeartbeat).Seconds()
				age = &a
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\t%s\t%s\n", u.ServiceID, u.Protocol, dash(u.Type), dash(u.ClaimedID), u.Alive, ageText(age), u.Auth, dash(u.RemoteAddr))
		}
		return tw.Flush()
	}
	return nil
}

func registeredText(rs []registeredAs) string {
	if len(rs) == 0 {
		return "-"
	}
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = r.ServiceID + " (" + r.Protocol + ")"
	}
	return strings.Join(parts, ", ")
}

func ageText(secs *float64) string {
	if secs == nil {
		return "-"
	}
	return humanDuration(time.Duration(*secs*float64(time.Second))) + " ago"
}

func uptimeText(secs *float64) string {
	if secs == nil {
		return "-"
	}
	return humanDuration(time.Duration(*secs * float64(time.Second)))
}

// humanDuration renders d with its two largest units: 45s, 3m12s, 2h5m, 3d4h.
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%dh", s/86400, s%86400/3600)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// withWatcher completes a row with the restart watcher's view: a pending
// restart ("backoff: exited code=2, attempt 3 of 5, next attempt in 4s") or
// a crash loop with its last exit code and reason.
func withWatcher(row *statusRow, rec *state.Record, st watch.State, now time.Time) {
	c, err := watch.ComponentOf(rec)
	if err != nil {
		return
	}
	t := watch.Restore(watch.PolicyOf(c.Restart), fixedClock(now), nil, st)
	ws := t.Status()
	switch ws.Phase {
	case watch.PhaseBackoff:
		if row.State != stateRunning {
			row.State, row.Detail = stateRestarting, ws.String()
		}
	case watch.PhaseCrashloop:
		row.State, row.Detail = stateCrashloop, ws.String()
	}
}

// fixedClock is a watch.Clock stopped at one time.
type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }
