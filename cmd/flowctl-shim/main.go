//go:build linux

// Command flowctl-shim owns one process component for flowctl's process
// executor: it is what `flowctl __shim` does, in a binary that links only
// the shim (a tenth of flowctl's size, a third of its start-up time). The
// process provider runs it when it is installed beside the flowctl binary
// and falls back to `flowctl __shim` otherwise. It is not meant to be run
// by hand: it reads its instructions from file descriptor 3.
package main

import (
	"os"

	"github.com/flowctl/flowctl/internal/providers/process/shim"
)

func main() { os.Exit(shim.Main(os.Args[1:])) }
