package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// envCPUProfile is the variable naming the file startProfile writes:
// flowctl's own knob, not part of the component contract (pkg/contract).
const envCPUProfile = "FLOWCTL_CPUPROFILE"

// startProfile writes a CPU profile of this run to the file named by
// envCPUProfile, for looking into flowctl's own cost (see bench/).
// The returned function ends it.
func startProfile() func() {
	path := os.Getenv(envCPUProfile)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", envCPUProfile, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", envCPUProfile, err)
		_ = f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }
}
