// Package attest proves which pipeline component opened a connection to
// the control plane, so that a component that sends no token can still be
// admitted and attributed with certainty (auth = required).
//
// It holds the kernel tables the process executor reads (/proc/net/tcp,
// /proc/PID/fd: a connection's socket and the process that holds it) and
// Providers, the control plane's Attestor over the executors that
// implement providers.WorkloadAttester. Executors without that capability
// (nomad) cannot attest: their components need a token, or auth =
// permissive.
package attest
