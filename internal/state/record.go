package state

import (
	"encoding/json"
	"time"
)

// Component statuses recorded in state.
const (
	StatusCreating  = "creating"  // the provider call is under way or its handle is recorded, readiness not yet seen
	StatusRunning   = "running"   // started and ready
	StatusFailed    = "failed"    // did not become ready, or exited
	StatusStopped   = "stopped"   // stopped on purpose; the watcher leaves it alone
	StatusCrashloop = "crashloop" // the watcher spent its retries
)

// Record is what state knows of one component instance.
type Record struct {
	Address  string `json:"address"`
	Kind     string `json:"kind"`
	ID       string `json:"id"`
	Provider string `json:"provider"`
	// SpecHash is the hash of the desired spec last applied.
	SpecHash string `json:"spec_hash"`
	// ObjectSpecHash is the hash written on the object when it was started;
	// it differs from SpecHash after an in-place update.
	ObjectSpecHash string `json:"object_spec_hash,omitempty"`
	// Spec is the component's canonical spec with sensitive values redacted,
	// kept so a plan can show per-attribute old and new values.
	Spec json.RawMessage `json:"spec,omitempty"`
	// Handle is the provider's serialised handle (pid and start time,
	// container ID, job ID and modify index).
	Handle json.RawMessage `json:"handle,omitempty"`
	// InstanceID changes with every start of the component; tokens are bound
	// to it.
	InstanceID string `json:"instance_id,omitempty"`
	// Ports allocated by flowctl (PORT, HEALTH_PORT), kept across
	// replacements.
	Ports map[string]int `json:"ports,omitempty"`
	// TokenGeneration is the token-secret generation (Tx.TokenGeneration)
	// that signed this instance's token; 0 when it was given none. A plan
	// replaces the instance (reason token_rotated) when it is below the
	// state's generation: `flowctl tokens rotate` happened since.
	TokenGeneration uint64 `json:"token_generation,omitempty"`
	// SealedEnv is the component's environment, encrypted with a key
	// derived from the token secret (tokens.Secret.Seal), when Spec is
	// redacted (it has sensitive values): what the restart watcher needs
	// to start the component again. WorkDir is the folder its relative
	// paths resolve against (the pipeline file's).
	SealedEnv string `json:"sealed_env,omitempty"`
	WorkDir   string `json:"work_dir,omitempty"`

	Status       string    `json:"status"`
	StatusReason string    `json:"status_reason,omitempty"`
	RestartCount int       `json:"restart_count,omitempty"`
	LastExitCode *int      `json:"last_exit_code,omitempty"`
	StartedAt    time.Time `json:"started_at,omitzero"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// desiredKey is the part of a record whose change moves the serial: what was
// asked for and which object answers it. Status and counters are not in it.
func (r *Record) desiredKey() []byte {
	b, _ := json.Marshal(struct {
		A, K, I, P, H, OH string
		S, Hd             json.RawMessage
		In                string
		Ports             map[string]int
	}{r.Address, r.Kind, r.ID, r.Provider, r.SpecHash, r.ObjectSpecHash, r.Spec, r.Handle, r.InstanceID, r.Ports})
	return b
}

// Event is one entry of the append-only history.
type Event struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Operation string    `json:"operation"` // apply, destroy, restart, state-rm, force-unlock, ...
	OpID      string    `json:"op_id,omitempty"`
	Address   string    `json:"address,omitempty"`
	Action    string    `json:"action,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Result    string    `json:"result,omitempty"` // ok, failed, interrupted
	Detail    string    `json:"detail,omitempty"`
	Attempt   int       `json:"attempt,omitempty"`
	Delay     string    `json:"delay,omitempty"`
	// StartedAt is when the instance an apply started (create, replace,
	// restart) began, earlier than Time, which is when it became ready:
	// logs puts the event's marker before the instance's first line.
	StartedAt time.Time `json:"started_at,omitzero"`
}
