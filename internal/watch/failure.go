package watch

import (
	"fmt"
	"time"
)

// Kind says how a component instance ended or failed.
type Kind string

// The kinds of failure the watcher reacts to. Their string values are
// persisted in State; never change one.
const (
	// KindExited: the instance exited by itself with Failure.ExitCode.
	KindExited Kind = "exited"
	// KindSignaled: the instance was killed by Failure.Signal (a kill -9, the
	// OOM killer), outside flowctl's own stops.
	KindSignaled Kind = "signaled"
	// KindLiveness: its liveness probe failed Failure.Count times in a row.
	KindLiveness Kind = "liveness"
	// KindHeartbeat: it stopped heartbeating for Failure.Silence, more than
	// HeartbeatGrace times its cadence.
	KindHeartbeat Kind = "heartbeat"
	// KindStartFailed: the watcher's attempt to start a new instance failed
	// (Failure.Detail says why).
	KindStartFailed Kind = "start-failed"
	// KindGone: the object no longer exists (removed behind flowctl's
	// back); how it ended is unknown.
	KindGone Kind = "gone"
	// KindNotRunning: the object exists and does not run, with neither an
	// exit code nor a signal to tell (a container created but never
	// started); Failure.Detail is the executor's word.
	KindNotRunning Kind = "not-running"
)

// Failure is one observed end or failure of an instance.
type Failure struct {
	Kind Kind
	// ExitCode of KindExited.
	ExitCode int
	// Signal of KindSignaled, by name ("SIGKILL").
	Signal string
	// Count of consecutive failed liveness probes (KindLiveness).
	Count int
	// Silence since the last heartbeat (KindHeartbeat).
	Silence time.Duration
	// Detail of KindStartFailed: the provider's error, first line; of
	// KindNotRunning: what the executor says of the object.
	Detail string
	// Unwatched: the failure happened, or was first seen, while nobody
	// watched (the control plane was down, or its watcher had a gap). It is
	// restarted by the policy but never counted against max_retries: the
	// control plane's absence is not the component's failure.
	Unwatched bool
}

// Exited is a Failure for an exit with code.
func Exited(code int) Failure { return Failure{Kind: KindExited, ExitCode: code} }

// Signaled is a Failure for a kill by signal (e.g. "SIGKILL").
func Signaled(signal string) Failure { return Failure{Kind: KindSignaled, Signal: signal} }

// LivenessFailed is a Failure for n consecutive failed liveness probes.
func LivenessFailed(n int) Failure { return Failure{Kind: KindLiveness, Count: n} }

// HeartbeatMissed is a Failure for no heartbeat during silence.
func HeartbeatMissed(silence time.Duration) Failure {
	return Failure{Kind: KindHeartbeat, Silence: silence}
}

// StartFailed is a Failure of the watcher's own start of a new instance.
func StartFailed(err error) Failure {
	return Failure{Kind: KindStartFailed, Detail: firstLine(err.Error())}
}

// Gone is a Failure for an object that no longer exists.
func Gone() Failure { return Failure{Kind: KindGone} }

// NotRunning is a Failure for an object that does not run and tells
// neither an exit code nor a signal; detail is the executor's description.
func NotRunning(detail string) Failure { return Failure{Kind: KindNotRunning, Detail: detail} }

// Reason is the failure as history and status spell it: "exited code=2",
// "killed by SIGKILL", "liveness failed 3×", "heartbeat missed for 31s",
// "start failed: ...".
func (f Failure) Reason() string {
	switch f.Kind {
	case KindExited:
		return fmt.Sprintf("exited code=%d", f.ExitCode)
	case KindSignaled:
		return "killed by " + f.Signal
	case KindLiveness:
		return fmt.Sprintf("liveness failed %d×", f.Count)
	case KindHeartbeat:
		return "heartbeat missed for " + f.Silence.Round(time.Second).String()
	case KindStartFailed:
		return "start failed: " + f.Detail
	case KindGone:
		return "removed (the object no longer exists)"
	case KindNotRunning:
		if f.Detail == "" {
			return "not running"
		}
		return "not running: " + f.Detail
	}
	return string(f.Kind)
}

// Clean reports whether the failure is a successful end: an exit with code
// 0. Only always restarts it.
func (f Failure) Clean() bool { return f.Kind == KindExited && f.ExitCode == 0 }

// exitCode is the exit code to show in status, if the failure has one.
func (f Failure) exitCode() *int {
	if f.Kind != KindExited {
		return nil
	}
	c := f.ExitCode
	return &c
}

func firstLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}
