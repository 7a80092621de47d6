// Command controlplane is the control-plane load generator: N simulated
// components register, then heartbeat at a fixed rate (or as fast as they
// can), and it reports sustained heartbeats/s and latency percentiles.
//
//	go run ./bench/controlplane -n 1000 -rate 1s -duration 30s
//	go run ./bench/controlplane -n 1000 -rate 0 -concurrency 64 -duration 20s   # max throughput
//	go run ./bench/controlplane -n 100 -addr 127.0.0.1:8080 -protocol legacy  # any server of the older protocol
//	go run ./bench/controlplane -n 1000 -rate 0 -duration 20s -client raw   # leaner heartbeat client (rawclient.go)
//
// With no -addr it starts the control plane itself, as a separate process
// (this program re-executed with -serve) on a temporary state file, so that
// the server's peak RSS (VmHWM) and CPU time can be read from /proc and are
// not mixed with the load generator's. -inprocess runs it in this process
// instead (then no RSS is reported: it would be meaningless).
//
// -serve runs only the server (for a server on another machine or under a
// profiler); a load generator started with -addr and the same -n, -tokens
// and -token-secret-file drives it.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

type config struct {
	n           int
	rate        time.Duration
	duration    time.Duration
	addr        string
	protocol    string
	client      string
	tokens      bool
	concurrency int
	timeout     time.Duration
	regConc     int
	inprocess   bool
	jsonOut     bool
	secretFile  string
	stateDir    string

	// -serve mode
	serve      bool
	listen     string
	cpuProfile string
	memProfile string

	clientCPUProfile string
}

func main() {
	var c config
	flag.IntVar(&c.n, "n", 1000, "simulated components")
	flag.DurationVar(&c.rate, "rate", time.Second, "heartbeat interval of each component; 0: as fast as possible from -concurrency callers")
	flag.DurationVar(&c.duration, "duration", 30*time.Second, "length of the heartbeat phase")
	flag.StringVar(&c.addr, "addr", "", "control plane host:port; empty: start one (a separate process)")
	flag.StringVar(&c.protocol, "protocol", "both", "v1, legacy, or both (half the components each)")
	flag.StringVar(&c.client, "client", "grpc", "heartbeat client: grpc (grpc-go), or raw (a minimal HTTP/2 client that costs the generator less CPU; registration stays on grpc-go)")
	flag.BoolVar(&c.tokens, "tokens", false, "send component tokens (the server started here then runs in auth mode required)")
	flag.IntVar(&c.concurrency, "concurrency", 64, "concurrent callers when -rate 0")
	flag.DurationVar(&c.timeout, "timeout", 5*time.Second, "deadline of each call")
	flag.IntVar(&c.regConc, "register-concurrency", 64, "concurrent registrations during start-up")
	flag.BoolVar(&c.inprocess, "inprocess", false, "run the server in this process (RSS then not reported)")
	flag.BoolVar(&c.jsonOut, "json", false, "print the result as JSON")
	flag.StringVar(&c.secretFile, "token-secret-file", "", "token secret (with -tokens and -addr, or -serve); default: a temporary one")
	flag.StringVar(&c.stateDir, "state-dir", "", "server state folder (-serve); default: a temporary one")
	flag.BoolVar(&c.serve, "serve", false, "run only the control plane (for -addr runs elsewhere)")
	flag.StringVar(&c.listen, "listen", "127.0.0.1:0", "-serve: listen address")
	flag.StringVar(&c.cpuProfile, "server-cpuprofile", "", "write the server's CPU profile to this file")
	flag.StringVar(&c.memProfile, "server-memprofile", "", "write the server's heap profile (at the end) to this file")
	flag.StringVar(&c.clientCPUProfile, "cpuprofile", "", "write the load generator's CPU profile to this file")
	flag.Parse()

	var err error
	if c.serve {
		err = serveMain(c)
	} else {
		err = loadMain(c)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "controlplane bench:", err)
		os.Exit(1)
	}
}
