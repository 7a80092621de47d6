// Package plan turns the desired pipeline, the state and what the executors
// report of reality into an ordered change set: what to create, update,
// replace, restart, delete or adopt, each with the reason why.
//
// Making a plan has two steps: Observe asks the providers what reality
// looks like and returns it as a value (Reality); Decide, which calls no
// provider, turns desired × state × reality into the changes. Make does
// both. A Plan is the in-memory model; the planfile codec (file.go) is its
// reviewed, saved form, and render.go its human form.
package plan

// Action is what a change does to one component. Each action has its own
// symbol, used by rendering and by the compact text form alike.
type Action string

// The actions. Values are explicit strings so that saved plans stay
// readable and adding one never renumbers another.
const (
	NoOp         Action = "no-op"
	Create       Action = "create"
	Update       Action = "update"
	Replace      Action = "replace"
	Restart      Action = "restart"
	Delete       Action = "delete"
	DeleteOrphan Action = "delete-orphan"
	Adopt        Action = "adopt"
)

// Symbol is the action's mark in rendered plans.
func (a Action) Symbol() string {
	switch a {
	case Create:
		return "+"
	case Update:
		return "~"
	case Replace:
		return "-/+"
	case Restart:
		return "^"
	case Delete, DeleteOrphan:
		return "-"
	case Adopt:
		return "<="
	}
	return " "
}

// IsDelete reports whether the action removes an object.
func (a Action) IsDelete() bool { return a == Delete || a == DeleteOrphan }

// Reason says why a change is planned.
type Reason string

// Reason codes. They appear in plan JSON and in history.
const (
	ReasonNotInState       Reason = "not_in_state"
	ReasonSpecChanged      Reason = "spec_changed"
	ReasonDeletedOutside   Reason = "deleted_outside"
	ReasonChangedOutside   Reason = "changed_outside"
	ReasonExited           Reason = "exited"
	ReasonNotInConfig      Reason = "not_in_config"
	ReasonOrphan           Reason = "orphan"
	ReasonAdoptUnrecorded  Reason = "adopt_unrecorded"
	ReasonReplaceByRequest Reason = "replace_by_request"
	ReasonExecutorChanged  Reason = "executor_changed"
	ReasonDestroy          Reason = "destroy_requested"
	ReasonUpToDate         Reason = "up_to_date"
)

// Describe is the human sentence for a reason.
func (r Reason) Describe() string {
	switch r {
	case ReasonNotInState:
		return "not yet created"
	case ReasonSpecChanged:
		return "the configuration changed"
	case ReasonDeletedOutside:
		return "deleted outside flowctl"
	case ReasonChangedOutside:
		return "changed outside flowctl"
	case ReasonExited:
		return "not running"
	case ReasonNotInConfig:
		return "no longer in the configuration"
	case ReasonOrphan:
		return "not in state: an orphan of this pipeline"
	case ReasonAdoptUnrecorded:
		return "running and matching the configuration, but missing from state"
	case ReasonReplaceByRequest:
		return "replacement requested with -replace"
	case ReasonExecutorChanged:
		return "the executor changed"
	case ReasonDestroy:
		return "destroy requested"
	case ReasonTainted:
		return "its last start never became ready"
	case ReasonStartUnconfirmed:
		return "started by an apply that ended before it was ready"
	case ReasonTokenRotated:
		return "its token was signed with a token secret rotated since"
	}
	return string(r)
}
