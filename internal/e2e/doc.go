// Package e2e holds end-to-end tests that run the flowctl binary as a real
// process against real processes and a real bbolt file: each test builds
// flowctl and the test component (internal/testutil), writes a pipeline
// into a temporary folder, and drives plan, apply, destroy and the state
// commands through exec.Command, checking the exit codes and output, the
// state file, and the processes found in /proc.
//
// Every test uses a pipeline name of its own: the engine gives each
// component FLOWCTL_PIPELINE=<name>, which is how the tests find the
// processes a pipeline left running, and how their cleanup (a destroy, then
// SIGKILL for anything still marked) makes sure none outlives the test.
package e2e
