package plan

import (
	"fmt"

	"github.com/flowctl/flowctl/internal/state"
)

// ControlPlaneSeen is what a plan knows of the control plane flowctl runs
// for the state file (`flowctl serve`): part of reality, like the
// components' objects. The caller observes it (serve.ObserveControlPlane).
type ControlPlaneSeen struct {
	// Managed: flowctl runs it for this state file. A control plane the
	// pipeline or the operator names is theirs to run, and never planned.
	Managed bool
	// Running: its process lives. Answering: it accepts connections.
	Running, Answering bool
	// Detail says why it is not running or not answering: "pid 4641
	// exited".
	Detail string
	// Listen is where a control plane started now would listen: the
	// address recorded in state, unless it is taken.
	Listen string
}

// Control-plane actions.
const (
	// ControlPlaneStart starts the control plane (it is not running).
	ControlPlaneStart = "start"
	// ControlPlaneRestart stops the one that does not answer and starts a
	// new one.
	ControlPlaneRestart = "restart"
)

// Reasons of a control-plane change.
const (
	ReasonControlPlaneDown       Reason = "control_plane_not_running"
	ReasonControlPlaneUnanswered Reason = "control_plane_not_answering"
)

// ControlPlaneChange is the plan's change to the control plane: it must run
// while any component of the pipeline runs (they register and heartbeat
// with it; its watcher restarts them).
type ControlPlaneChange struct {
	Action string `json:"action"`
	Reason Reason `json:"reason"`
	Detail string `json:"detail"`
	// Listen is where it will listen.
	Listen string `json:"listen,omitempty"`
}

// Describe is the change in words: "control plane will be started (it is
// not running: pid 4641 exited)".
func (c *ControlPlaneChange) Describe() string {
	verb := "started"
	if c.Action == ControlPlaneRestart {
		verb = "restarted"
	}
	return fmt.Sprintf("control plane will be %s (%s)", verb, c.Detail)
}

// decideControlPlane plans the control plane: started (or restarted) when
// it does not run (or answer) while components of the pipeline run and
// stay. A destroy stops it whatever it is; nothing is planned for it.
func (d *decider) decideControlPlane(changes []*Change) *ControlPlaneChange {
	cp := d.in.ControlPlane
	if cp == nil || !cp.Managed || d.in.Options.Destroy || (cp.Running && cp.Answering) {
		return nil
	}
	if !d.componentsStayRunning(changes) {
		return nil
	}
	ch := &ControlPlaneChange{Action: ControlPlaneStart, Reason: ReasonControlPlaneDown, Detail: cp.Detail, Listen: cp.Listen}
	if cp.Running {
		ch.Action, ch.Reason = ControlPlaneRestart, ReasonControlPlaneUnanswered
	}
	return ch
}

// componentsStayRunning reports whether a recorded component runs (as
// observed; as recorded without a refresh) and the plan keeps it.
func (d *decider) componentsStayRunning(changes []*Change) bool {
	deleted := map[string]bool{}
	for _, ch := range changes {
		if ch.Action.IsDelete() {
			deleted[ch.Address] = true
		}
	}
	for addr, rec := range d.records {
		if deleted[addr] || len(rec.Handle) == 0 || rec.Status == state.StatusStopped {
			continue
		}
		if o, ok := d.r.Observed[addr]; ok {
			if o.Running {
				return true
			}
			continue
		}
		if d.in.Options.NoRefresh && rec.Status == state.StatusRunning {
			return true
		}
	}
	return false
}
