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
}

// NewEngine builds the apply engine that `flowctl apply` and the restart
// watcher share: components are told where the control plane is, each
// instance gets its own token, a component that registers is ready once
// registered, and sensitive environments are sealed in state.
func NewEngine(o EngineOptions) (*apply.Engine, error) {
	var meta state.Meta
	if err := o.Store.View(func(tx *state.Tx) error { meta = tx.Meta(); return nil }); err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	iss := tokens.NewIssuer(o.Secret)
	return apply.New(apply.Wiring{
		Store: o.Store, Providers: o.Providers, Log: o.Log,
		ControlPlane:    o.Endpoint,
		TokenGeneration: o.Generation,
		Token: func(c *config.Component, instanceID string) (string, error) {
			return iss.Issue(tokens.Subject{Address: c.Address(), Pipeline: meta.Pipeline, Lineage: meta.Lineage, InstanceID: instanceID})
		},
		Registered: WaitRegistered(o.Registrations),
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
// source) holds a live, healthy registration of c's instance.
func WaitRegistered(source func() ([]controlplane.Registration, error)) func(ctx context.Context, c *config.Component, instanceID string, since time.Time) error {
	return func(ctx context.Context, c *config.Component, instanceID string, since time.Time) error {
		if !Registers(c) {
			return nil
		}
		step := 10 * time.Millisecond
		var last string
		for {
			regs, err := source()
			if err != nil {
				return err
			}
			last = "it has not registered"
			for _, r := range regs {
				if r.Component != c.Address() {
					continue
				}
				if r.InstanceID != "" && r.InstanceID != instanceID {
					continue // an earlier instance's
				}
				if r.InstanceID == "" && r.RegisteredAt.Before(since.Add(-time.Second)) {
					continue // registered before this instance started
				}
				if r.Healthy {
					return nil
				}
				last = fmt.Sprintf("registered as %s, status %s", r.ServiceID, r.Status)
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("not ready: waiting for it to register with the control plane: %w (%s)", ctx.Err(), last)
			case <-time.After(step):
			}
			step = min(step*2, 200*time.Millisecond)
		}
	}
}
