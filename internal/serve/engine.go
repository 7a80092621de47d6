package serve

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/flowctl/flowctl/internal/apply"
	"github.com/flowctl/flowctl/internal/config"
	"github.com/flowctl/flowctl/internal/controlplane"
	"github.com/flowctl/flowctl/internal/providers"
	"github.com/flowctl/flowctl/internal/state"
	"github.com/flowctl/flowctl/internal/tokens"
)

// EngineOptions say how the components an engine starts reach and prove
// themselves to a control plane.
type EngineOptions struct {
	Store     *state.Store
	Providers *providers.Registry
	Log       *slog.Logger
	// Endpoint is the control plane's host:port, injected as
	// FLOWCTL_ENDPOINT.
	Endpoint string
	// Secret signs each instance's component token; Generation is the
	// secret's generation that state records with each instance.
	Secret     *tokens.Secret
	Generation uint64
	// Registrations reads the control plane's registry: readiness of a
	// component that registers includes its registration.
	Registrations func() ([]controlplane.Registration, error)
	// Refusals reads the calls the control plane refused, so that the wait
	// for a registration ends at once with the reason; nil reads those the
	// control plane keeps in Store.
	Refusals func() ([]controlplane.Refusal, error)
}

// NewEngine builds the apply engine that `flowctl apply` and the restart
// watcher share: components are told where the control plane is, each
// instance gets its own token and the key that verifies the relay's data
// tokens, a component that registers is ready once registered, and
// sensitive environments are sealed in state.
func NewEngine(o EngineOptions) (*apply.Engine, error) {
	var meta state.Meta
	if err := o.Store.View(func(tx *state.Tx) error { meta = tx.Meta(); return nil }); err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	iss := tokens.NewIssuer(o.Secret)
	dataKeyPath := tokens.DefaultDataKeyPath(o.Store.Path())
	if _, err := tokens.LoadOrCreateDataKey(dataKeyPath); err != nil {
		return nil, err
	}
	refusals := o.Refusals
	if refusals == nil {
		store := o.Store
		refusals = func() ([]controlplane.Refusal, error) { return controlplane.ReadRefusals(store) }
	}
	return apply.New(apply.Wiring{
		Store: o.Store, Providers: o.Providers, Log: o.Log,
		ControlPlane:    o.Endpoint,
		TokenGeneration: o.Generation,
		DataPlaneKey: func() (string, error) {
			k, err := tokens.LoadOrCreateDataKey(dataKeyPath)
			if err != nil {
				return "", err
			}
			return k.PublicString(), nil
		},
		Token: func(c *config.Component, instanceID string) (string, error) {
			return iss.Issue(tokens.Subject{Address: c.Address(), Pipeline: meta.Pipeline, Lineage: meta.Lineage, InstanceID: instanceID})
		},
		Registered: WaitRegistered(o.Registrations, refusals),
		Seal:       o.Secret.Seal,
	}), nil
}

// Registers says whether apply waits for c to register with the control
// plane before counting it ready: `register = true`, or ENABLE_FLOWCTL=true
// set by the user (flowctl sets it for every component, but only a
// component the user says registers is waited for).
func Registers(c *config.Component) bool {
	if c.Register {
		return true
	}
	v, ok := c.Env["ENABLE_FLOWCTL"]
	return ok && !v.Deferred && strings.EqualFold(v.Value, "true")
}

// RegistrationsIn reads the control plane's registry as persisted in a
// state file.
func RegistrationsIn(store *state.Store) func() ([]controlplane.Registration, error) {
	return func() ([]controlplane.Registration, error) { return controlplane.ReadRegistrations(store, time.Now()) }
}

// WaitRegistered waits until the control plane's registry (read by
// source) holds a live, healthy registration of c's instance. It ends at
// once when the control plane refused a call of that instance (refusals,
// which may be nil), and says what it saw when it gives up: a refusal of a
// call it could not tie to any component, or an unmanaged registration
// that may be this component's, with why it was not attributed.
func WaitRegistered(source func() ([]controlplane.Registration, error), refusals func() ([]controlplane.Refusal, error)) func(ctx context.Context, c *config.Component, instanceID string, since time.Time) error {
	return func(ctx context.Context, c *config.Component, instanceID string, since time.Time) error {
		if !Registers(c) {
			return nil
		}
		w := registrationWait{c: c, instance: instanceID, since: since.Add(-time.Second)}
		step := 10 * time.Millisecond
		for {
			regs, err := source()
			if err != nil {
				return err
			}
			if w.registered(regs) {
				return nil
			}
			if refusals != nil {
				list, err := refusals()
				if err != nil {
					return err
				}
				if err := w.refused(list); err != nil {
					return err
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("not ready: waiting for it to register with the control plane: %w (%s)", ctx.Err(), w.last)
			case <-time.After(step):
			}
			step = min(step*2, 200*time.Millisecond)
		}
	}
}

// registrationWait is what WaitRegistered has seen of one instance.
type registrationWait struct {
	c        *config.Component
	instance string
	since    time.Time
	// last says what was last seen, for the message when the wait ends.
	last string
}

// registered says whether regs hold a healthy registration of the
// instance, and notes what else they say about it.
func (w *registrationWait) registered(regs []controlplane.Registration) bool {
	w.last = "it has not registered"
	var unmanaged []string
	for _, r := range regs {
		if r.RegisteredAt.Before(w.since) {
			continue
		}
		if r.Component == "" {
			if r.ClaimedID == "" || r.ClaimedID == w.c.ID || r.ClaimedID == w.c.Address() {
				unmanaged = append(unmanaged, fmt.Sprintf("registered as unmanaged %s, not attributed because %s", r.ServiceID, r.Unattributed))
			}
			continue
		}
		if r.Component != w.c.Address() || r.InstanceID != "" && r.InstanceID != w.instance {
			continue // another component's, or an earlier instance's
		}
		if r.Healthy {
			return true
		}
		w.last = fmt.Sprintf("registered as %s, status %s", r.ServiceID, r.Status)
		return false
	}
	if len(unmanaged) > 0 {
		w.last = "it has not registered; seen since it started: " + strings.Join(unmanaged, "; ")
	}
	return false
}

// refused returns an error for a refusal of a call of the instance (or of
// its component, without a token) since it started; a refusal of a call
// of no known component is only noted.
func (w *registrationWait) refused(list []controlplane.Refusal) error {
	for i := len(list) - 1; i >= 0; i-- {
		f := list[i]
		if f.At.Before(w.since) {
			continue
		}
		switch {
		case f.Component == w.c.Address() && (f.InstanceID == "" || f.InstanceID == w.instance):
			return fmt.Errorf("not ready: the control plane refused its registration: %s: %s", f.Reason, f.Detail)
		case f.Component == "":
			w.last += fmt.Sprintf("; the control plane refused a call from %s it could not tie to a component: %s: %s", f.Peer, f.Reason, f.Detail)
		}
	}
	return nil
}
