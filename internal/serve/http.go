package serve

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/state"
)

// Status is the document GET /v1/status answers: the pipeline's components
// as the state records them, joined with the registry, plus every
// registration (unmanaged ones included) and the control plane's counters.
// It holds no token and no secret.
type Status struct {
	Pipeline      string                       `json:"pipeline"`
	Lineage       string                       `json:"lineage"`
	Serial        uint64                       `json:"serial"`
	Time          time.Time                    `json:"time"`
	Serve         Record                       `json:"serve"`
	Components    []ComponentStatus            `json:"components"`
	Registrations []controlplane.Registration  `json:"registrations"`
	Metrics       controlplane.MetricsSnapshot `json:"metrics"`
}

// ComponentStatus is one component record with what the registry knows of
// it.
type ComponentStatus struct {
	Address  string `json:"address"`
	Kind     string `json:"kind"`
	ID       string `json:"id"`
	Executor string `json:"executor"`
	// Status and StatusReason are as recorded in the state (running,
	// creating, failed, stopped, crashloop).
	Status       string         `json:"status"`
	StatusReason string         `json:"status_reason,omitempty"`
	RestartCount int            `json:"restart_count"`
	StartedAt    time.Time      `json:"started_at,omitzero"`
	Ports        map[string]int `json:"ports,omitempty"`
	// Registered, Alive and Healthy: some registration attributed to the
	// component is.
	Registered    bool      `json:"registered"`
	Alive         bool      `json:"alive"`
	Healthy       bool      `json:"healthy"`
	ServiceIDs    []string  `json:"service_ids,omitempty"`
	LastHeartbeat time.Time `json:"last_heartbeat,omitzero"`
	// Auth is token or unauthenticated (of the most recent registration).
	Auth controlplane.AuthState `json:"auth,omitempty"`
}

// httpAPI serves /healthz, /metrics and /v1/status.
type httpAPI struct {
	cp           *controlplane.Server
	store        *state.Store
	rec          Record
	opToken      string
	requireToken bool
	log          *slog.Logger
	metrics      http.Handler
}

func newHTTPAPI(cp *controlplane.Server, store *state.Store, rec Record, opToken string, requireToken bool, log *slog.Logger, extra ...prometheus.Collector) *httpAPI {
	reg := newMetricsRegistry(cp, controlplane.StateExpected(store), log)
	for _, c := range extra {
		reg.MustRegister(c)
	}
	return &httpAPI{
		cp: cp, store: store, rec: rec, opToken: opToken, requireToken: requireToken, log: log,
		metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}),
	}
}

func (a *httpAPI) handler() http.Handler {
	mux := http.NewServeMux()
	// /healthz answers whoever asks: it says only that serve is up.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", a.operator(a.metrics))
	mux.Handle("GET /v1/status", a.operator(http.HandlerFunc(a.status)))
	return mux
}

// operator guards an operator endpoint: off loopback, it requires the
// operator token.
func (a *httpAPI) operator(next http.Handler) http.Handler {
	if !a.requireToken {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !checkOperator(r, a.opToken) {
			a.log.Warn("serve: refused an operator request without a valid operator token", "path", r.URL.Path, "peer", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="flowctl"`)
			http.Error(w, "operator token required: send \"Authorization: Bearer <token>\" (the token is in the operator-token file beside the state file)", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (a *httpAPI) status(w http.ResponseWriter, r *http.Request) {
	doc, err := a.statusDoc()
	if err != nil {
		a.log.Error("serve: /v1/status: read the state", "err", err)
		http.Error(w, "could not read the state file", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(doc)
}

func (a *httpAPI) statusDoc() (*Status, error) {
	doc := &Status{Time: time.Now().UTC(), Serve: a.rec, Components: []ComponentStatus{}}
	var recs []*state.Record
	err := a.store.View(func(tx *state.Tx) error {
		m := tx.Meta()
		doc.Pipeline, doc.Lineage, doc.Serial = m.Pipeline, m.Lineage, m.Serial
		var err error
		recs, err = tx.Components()
		return err
	})
	if err != nil {
		return nil, err
	}
	doc.Registrations = a.cp.Snapshot()
	if doc.Registrations == nil {
		doc.Registrations = []controlplane.Registration{}
	}
	doc.Metrics = a.cp.Metrics()
	doc.Components = joinComponents(recs, doc.Registrations)
	return doc, nil
}

// joinComponents pairs each component record with the registrations
// attributed to it (registrations ordered as Snapshot orders them).
func joinComponents(recs []*state.Record, regs []controlplane.Registration) []ComponentStatus {
	out := make([]ComponentStatus, 0, len(recs))
	for _, rec := range recs {
		cs := ComponentStatus{
			Address: rec.Address, Kind: rec.Kind, ID: rec.ID, Executor: rec.Provider,
			Status: rec.Status, StatusReason: rec.StatusReason, RestartCount: rec.RestartCount,
			StartedAt: rec.StartedAt, Ports: rec.Ports,
		}
		var latest time.Time
		for _, reg := range regs {
			if reg.Component != rec.Address {
				continue
			}
			cs.Registered = true
			cs.Alive = cs.Alive || reg.Alive
			cs.Healthy = cs.Healthy || reg.Healthy
			cs.ServiceIDs = append(cs.ServiceIDs, reg.ServiceID)
			if reg.LastHeartbeat.After(cs.LastHeartbeat) {
				cs.LastHeartbeat = reg.LastHeartbeat
			}
			if !reg.RegisteredAt.Before(latest) {
				latest, cs.Auth = reg.RegisteredAt, reg.Auth
			}
		}
		out = append(out, cs)
	}
	return out
}
