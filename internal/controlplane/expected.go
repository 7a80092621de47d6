package controlplane

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/pkg/contract"
)

// ExpectedComponent is a pipeline component the control plane may see
// register: what the state says about it.
type ExpectedComponent struct {
	// Address is KIND.ID (source.ledger); it is a token's subject.
	Address string
	// ID is the pipeline id (ledger); components send it as component_id
	// or ComponentInfo.id.
	ID string
	// HealthPort is the HEALTH_PORT flowctl assigned (0: none).
	HealthPort int
	// InstanceID is the current instance; a token whose jti differs belongs
	// to a replaced instance and is refused.
	InstanceID string
	// Provider and Handle name the instance's object (its executor and the
	// handle it returned): what an Attestor checks a tokenless call
	// against. Empty while the instance is being started.
	Provider string
	Handle   []byte
	// Auth is the component's own auth mode (its `auth` attribute); ""
	// follows the server's.
	Auth AuthMode
}

func (c *ExpectedComponent) equal(o *ExpectedComponent) bool {
	return c.Address == o.Address && c.ID == o.ID && c.HealthPort == o.HealthPort && c.InstanceID == o.InstanceID &&
		c.Provider == o.Provider && string(c.Handle) == string(o.Handle) && c.Auth == o.Auth
}

// ExpectedComponents tells the server which components the pipeline has.
// It is called at start, every Options.ExpectedRefresh, and whenever a call
// names a component, instance or id the server does not know, or cannot be
// attested yet (callers asking at once share one read), so an
// implementation may read the state file each time.
type ExpectedComponents interface {
	ExpectedComponents() ([]ExpectedComponent, error)
}

// ExpectedFunc adapts a function to ExpectedComponents.
type ExpectedFunc func() ([]ExpectedComponent, error)

// ExpectedComponents calls f.
func (f ExpectedFunc) ExpectedComponents() ([]ExpectedComponent, error) { return f() }

// StaticExpected is a fixed list, replaceable with Set (tests, benchmarks).
type StaticExpected struct {
	mu   sync.Mutex
	list []ExpectedComponent
}

// NewStaticExpected returns a StaticExpected holding list.
func NewStaticExpected(list ...ExpectedComponent) *StaticExpected {
	return &StaticExpected{list: list}
}

// Set replaces the list; the server sees it at its next refresh
// (Server.RefreshExpected forces one).
func (s *StaticExpected) Set(list ...ExpectedComponent) {
	s.mu.Lock()
	s.list = append([]ExpectedComponent(nil), list...)
	s.mu.Unlock()
}

// ExpectedComponents returns the list.
func (s *StaticExpected) ExpectedComponents() ([]ExpectedComponent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ExpectedComponent(nil), s.list...), nil
}

// StateExpected reads the expected components from the component records
// of a state file: address, id, Ports["HEALTH_PORT"], instance id. A
// destroyed component has no record, so its tokens are refused.
func StateExpected(store *state.Store) ExpectedComponents {
	return ExpectedFunc(func() ([]ExpectedComponent, error) {
		var out []ExpectedComponent
		err := store.View(func(tx *state.Tx) error {
			recs, err := tx.Components()
			if err != nil {
				return err
			}
			for _, r := range recs {
				var spec struct {
					Auth AuthMode `json:"auth"`
				}
				_ = json.Unmarshal(r.Spec, &spec) // a record without a spec has no override
				out = append(out, ExpectedComponent{
					Address:    r.Address,
					ID:         r.ID,
					HealthPort: r.Ports[contract.EnvHealthPort],
					InstanceID: r.InstanceID,
					Provider:   r.Provider,
					Handle:     r.Handle,
					Auth:       spec.Auth,
				})
			}
			return nil
		})
		return out, err
	})
}

// expectedIndex is an immutable view of the expected components, swapped
// atomically on refresh so the call path reads it without locking.
type expectedIndex struct {
	// at is when the read that made it started; gen counts the refreshes
	// that changed what it holds.
	at     time.Time
	seq    uint64
	gen    uint64
	list   []ExpectedComponent
	byAddr map[string]*ExpectedComponent
	// byID and byPort hold nil for a key shared by several components
	// (ambiguous: attribute by neither).
	byID   map[string]*ExpectedComponent
	byPort map[int]*ExpectedComponent
}

func newExpectedIndex(list []ExpectedComponent, at time.Time) *expectedIndex {
	x := &expectedIndex{
		at:     at,
		byAddr: make(map[string]*ExpectedComponent, len(list)),
		byID:   make(map[string]*ExpectedComponent, len(list)),
		byPort: make(map[int]*ExpectedComponent, len(list)),
		list:   list,
	}
	for i := range list {
		c := &list[i]
		if c.Address == "" {
			continue
		}
		x.byAddr[c.Address] = c
		if c.ID != "" {
			if _, dup := x.byID[c.ID]; dup {
				x.byID[c.ID] = nil
			} else {
				x.byID[c.ID] = c
			}
		}
		if c.HealthPort > 0 {
			if _, dup := x.byPort[c.HealthPort]; dup {
				x.byPort[c.HealthPort] = nil
			} else {
				x.byPort[c.HealthPort] = c
			}
		}
	}
	return x
}

// sameAs says whether x holds the same components as o.
func (x *expectedIndex) sameAs(o *expectedIndex) bool {
	if len(x.list) != len(o.list) {
		return false
	}
	for i := range x.list {
		if !x.list[i].equal(&o.list[i]) {
			return false
		}
	}
	return true
}

// component finds the component an id the component sent names: a pipeline
// id (ledger) or an address (source.ledger).
func (x *expectedIndex) component(id string) *ExpectedComponent {
	if id == "" {
		return nil
	}
	if c := x.byID[id]; c != nil {
		return c
	}
	return x.byAddr[id]
}

// healthPortOf extracts the port of a health endpoint URL
// (http://localhost:8088/health), or of a bare host:port; 0 when none.
func healthPortOf(endpoint string) int {
	endpoint = strings.TrimSpace(endpoint)
	if endpoint == "" {
		return 0
	}
	var port string
	if strings.Contains(endpoint, "://") {
		u, err := url.Parse(endpoint)
		if err != nil {
			return 0
		}
		port = u.Port()
	} else {
		hostport, _, _ := strings.Cut(endpoint, "/")
		if i := strings.LastIndexByte(hostport, ':'); i >= 0 {
			port = hostport[i+1:]
		}
	}
	n, err := strconv.Atoi(port)
	if err != nil || n <= 0 || n > 65535 {
		return 0
	}
	return n
}
