// Command flowctl plans and applies streaming data pipelines.
package main

import (
	"os"

	"github.com/flowctl/flowctl/internal/cli"
)

// Set with -ldflags "-X main.version=... -X main.commit=...".
var (
	version string
	commit  string
)

func main() {
	streams := cli.Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}
	stop := startProfile()
	code := cli.Execute(os.Args[1:], streams, cli.BuildInfo{Version: version, Commit: commit})
	stop()
	os.Exit(code)
}
