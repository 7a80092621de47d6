package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
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
	// A %p in the name is the process id: an apply and the serve it
	// starts (which inherits the variable) write a profile each.
	path = strings.ReplaceAll(path, "%p", strconv.Itoa(os.Getpid()))
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
