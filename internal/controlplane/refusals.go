package controlplane

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flowctl/flowctl/internal/state"
)

// Refusal is a call the control plane refused, as kept for apply: while it
// waits for a component to register, a refusal of that component's call
// says at once why it will not (docs/control-plane.md, "Refusals").
type Refusal struct {
	At time.Time `json:"at"`
	// Component is the address the call was for (its token's subject, the
	// component it was attested as or claimed to be); "" when unknown.
	Component string `json:"component,omitempty"`
	// InstanceID is the instance of the token the call carried, if any.
	InstanceID string `json:"instance_id,omitempty"`
	Method     string `json:"method"`
	Reason     string `json:"reason"`
	Detail     string `json:"detail"`
	Peer       string `json:"peer,omitempty"`
}

// refusalPrefix keys the last refusal of each component in the
// registry's namespace: "x/<address>", "x/-" for calls of no known
// component.
const refusalPrefix = "x/"

// refusalEvery bounds how often the refusal of one component is written
// when neither its reason nor its instance changed: a caller retrying in
// a loop must not keep the state file busy.
const refusalEvery = time.Second

type refusals struct {
	mu   sync.Mutex
	last map[string]Refusal
}

func refusalKey(component string) string {
	if component == "" {
		return refusalPrefix + "-"
	}
	return refusalPrefix + component
}

// recordRefusal keeps r as its component's last refusal, in memory and in
// the state.
func (s *Server) recordRefusal(r Refusal) {
	key := refusalKey(r.Component)
	s.refusals.mu.Lock()
	if s.refusals.last == nil {
		s.refusals.last = map[string]Refusal{}
	}
	prev, had := s.refusals.last[key]
	s.refusals.last[key] = r
	s.refusals.mu.Unlock()
	if had && prev.Reason == r.Reason && prev.InstanceID == r.InstanceID && r.At.Sub(prev.At) < refusalEvery {
		return
	}
	if s.opts.Store == nil {
		return
	}
	v, err := json.Marshal(&r)
	if err != nil {
		return
	}
	s.enqueue(op{key: key, value: v})
	s.kickFlush()
}

// Refusals returns the last refusal of each component (and of calls of no
// known component), oldest first.
func (s *Server) Refusals() []Refusal {
	s.refusals.mu.Lock()
	out := make([]Refusal, 0, len(s.refusals.last))
	for _, r := range s.refusals.last {
		out = append(out, r)
	}
	s.refusals.mu.Unlock()
	sortRefusals(out)
	return out
}

// ReadRefusals reads the refusals a control plane kept in store.
func ReadRefusals(store *state.Store) ([]Refusal, error) {
	var out []Refusal
	err := store.View(func(tx *state.Tx) error {
		return tx.ForEachData(Namespace, func(key string, value []byte) error {
			if !strings.HasPrefix(key, refusalPrefix) {
				return nil
			}
			var r Refusal
			if json.Unmarshal(value, &r) == nil {
				out = append(out, r)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read control-plane refusals: %w", err)
	}
	sortRefusals(out)
	return out, nil
}

func sortRefusals(list []Refusal) {
	slices.SortFunc(list, func(a, b Refusal) int { return a.At.Compare(b.At) })
}
