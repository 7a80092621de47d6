// Package watch is the restart watcher's policy: given a component's
// restart settings and what happened to it, it decides whether to restart
// it, after what delay, and when to give up (crashloop). It is pure code —
// no I/O, no goroutines, no wall clock: time comes from a Clock and jitter
// from a Rand, both injected, so every decision is reproducible in tests.
//
// # The tracker
//
// One Tracker follows one component. Its whole memory is a State value,
// which is plain data meant to be persisted (state's data bucket, namespace
// DataNamespace, key = the component address) after every call that changes
// it. A watcher that restarts — flowctl serve killed in the middle of a
// backoff — restores each tracker with Restore and carries on: the attempt
// count, the pending attempt's due time and the stability timer survive.
//
// The policy vocabulary follows the pipeline's restart block:
//
//   - never: no failure is ever restarted.
//   - on-failure: a non-zero exit, a kill by signal, failed liveness probes,
//     missed heartbeats and a failed start are restarted; an exit with code
//     0 is a component that finished, and is left alone.
//   - always: every end is restarted, a clean exit too (unless-stopped is
//     normalised to always by config).
//
// The delay before attempt n (1-based) is initial × multiplier^(n-1),
// capped at max, with ±10% jitter, and never more than max. max_retries
// bounds the attempts of one failure streak (-1: no bound); once they are
// spent the next failure puts the component in crashloop, where it stays
// until something other than the watcher starts it again (an apply). A
// streak ends, and the count goes back to zero, when the component has run
// healthy for ResetAfter (10 minutes by default) before it fails.
//
// # How the reconciler loop drives it
//
// The loop (in serve) owns the I/O; for every component state says should
// run (never one that is stopped or destroyed) it keeps a tracker and
// calls:
//
//   - Restore(policy, clock, rand, saved) when it starts, or New when there
//     is nothing saved; PolicyOf(component.Restart) gives the policy.
//   - Reset() when it sees an instance it did not start itself (a new
//     InstanceID in state written by apply): a deliberate start ends any
//     streak or crashloop.
//   - Healthy() whenever the instance is seen running and healthy (ready,
//     liveness passing, heartbeating); the first call after a start begins
//     the stability period.
//   - Failed(f) when the instance is seen to end or fail: an exit (the
//     shim's exit record, a Docker "die" event, or the poll), Liveness.Probe
//     reporting N consecutive failures, Heartbeat.Missed, or a restart's
//     provider call failing. The Decision says what to do; Failed is
//     idempotent while a decision is pending, so the event and the safety
//     poll may both report the same end.
//   - On ActRestart: record status and the reason (Status gives "next
//     attempt in …" for status), wait until Decision.At on the clock
//     (NextAttempt after a restore), wait for the operation lock (never
//     fight an apply), start a new instance, and write the record and one
//     history event {Operation "restart", Address, Reason, Attempt,
//     Delay: Delay.String()} stamped with the time the start began, so
//     that `flowctl logs` can put its restart marker before the new
//     instance's first line. Then call Restarted().
//   - On ActCrashloop: write status crashloop with the reason and the last
//     exit code; start nothing.
//   - On ActNone: the policy leaves the component as it is (failed, or
//     finished on exit 0 under on-failure).
//
// A Tracker is not safe for concurrent use: the loop handles one component
// in one goroutine, or guards it.
package watch
