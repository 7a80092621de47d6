// Command testcomponent is a configurable stand-in for a pipeline component,
// used by tests of executors, apply, the watcher and the CLI. Everything is
// driven by environment variables:
//
//	HEALTH_PORT        serve GET /health here: 503 until ready, then 200
//	PORT               once ready, accept connections here (HTTP: GET / answers the component id)
//	TC_START_DELAY     Go duration before becoming ready (default 0)
//	TC_NEVER_HEALTHY=1 /health always answers 503
//	TC_EXIT_AFTER      Go duration after which the process exits by itself ...
//	TC_EXIT_CODE       ... with this code (default 0)
//	TC_IGNORE_SIGTERM=1  log and ignore SIGTERM (and SIGINT)
//	TC_STOP_DELAY      Go duration to linger after SIGTERM before exiting 0
//	TC_PRINT           lines printed periodically, separated by ";"; a line
//	                   starting "stderr:" goes to stderr ("stdout:" or no
//	                   prefix: stdout); "{n}" is replaced by the round number
//	TC_PRINT_INTERVAL  Go duration between rounds (default 1s)
//	TC_PRINT_COUNT     number of rounds (default 0: forever)
//	TC_DUMP_ENV=1      print the whole environment at start ("env KEY=VALUE")
//	TC_GRANDCHILD=1    start a child process (a copy of itself that only
//	                   sleeps) to test that a component's process group is
//	                   stopped as a whole
//	TC_LISTEN_HOST     the address HEALTH_PORT and PORT listen on (default
//	                   127.0.0.1; a container needs 0.0.0.0 to be reached)
//	TC_DIAL            host:port list (comma-separated): before becoming
//	                   ready, GET http://ADDR/ until each answers, printing
//	                   "reached ADDR: BODY"
//
// Run as "testcomponent healthcheck" it is instead a health check for an
// image's HEALTHCHECK: it exits 0 when http://127.0.0.1:$HEALTH_PORT/health
// answers 200, 1 otherwise.
//
// It always prints "testcomponent starting pid=N" and, once ready,
// "testcomponent ready" to stdout.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flowctl/flowctl/pkg/contract"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		os.Exit(healthcheck())
	}
	if os.Getenv("TC_ROLE") == "grandchild" {
		fmt.Println("grandchild running")
		select {}
	}
	fmt.Printf("testcomponent starting pid=%d\n", os.Getpid())
	if os.Getenv("TC_DUMP_ENV") == "1" {
		env := os.Environ()
		sort.Strings(env)
		for _, kv := range env {
			fmt.Println("env " + kv)
		}
	}
	if os.Getenv("TC_GRANDCHILD") == "1" {
		self, err := os.Executable()
		if err != nil {
			fail("executable: %v", err)
		}
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), "TC_ROLE=grandchild")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Start(); err != nil {
			fail("start grandchild: %v", err)
		}
		fmt.Printf("grandchild pid=%d\n", cmd.Process.Pid)
	}

	var ready atomic.Bool
	neverHealthy := os.Getenv("TC_NEVER_HEALTHY") == "1"
	if hp := os.Getenv(contract.EnvHealthPort); hp != "" {
		l, err := net.Listen("tcp", net.JoinHostPort(listenHost(), hp))
		if err != nil {
			fail("listen on HEALTH_PORT %s: %v", hp, err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
			if neverHealthy || !ready.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprintln(w, "not ready")
				return
			}
			fmt.Fprintln(w, "ok")
		})
		go func() { _ = http.Serve(l, mux) }()
	}

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		for s := range sigs {
			if os.Getenv("TC_IGNORE_SIGTERM") == "1" {
				fmt.Printf("ignoring %v\n", s)
				continue
			}
			fmt.Printf("received %v, shutting down\n", s)
			if d := duration("TC_STOP_DELAY", 0); d > 0 {
				time.Sleep(d)
			}
			os.Exit(0)
		}
	}()

	if d := duration("TC_EXIT_AFTER", 0); d > 0 {
		code, _ := strconv.Atoi(os.Getenv("TC_EXIT_CODE"))
		time.AfterFunc(d, func() {
			fmt.Fprintf(os.Stderr, "exiting with code %d\n", code)
			os.Exit(code)
		})
	}

	if lines := os.Getenv("TC_PRINT"); lines != "" {
		go printer(strings.Split(lines, ";"), duration("TC_PRINT_INTERVAL", time.Second), atoi("TC_PRINT_COUNT"))
	}

	time.Sleep(duration("TC_START_DELAY", 0))
	if addrs := os.Getenv("TC_DIAL"); addrs != "" {
		for _, a := range strings.Split(addrs, ",") {
			dial(strings.TrimSpace(a))
		}
	}
	if p := os.Getenv(contract.EnvPort); p != "" {
		l, err := net.Listen("tcp", net.JoinHostPort(listenHost(), p))
		if err != nil {
			fail("listen on PORT %s: %v", p, err)
		}
		id := os.Getenv(contract.EnvComponentID)
		go func() {
			_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, id) }))
		}()
	}
	ready.Store(true)
	fmt.Println("testcomponent ready")
	select {}
}

func healthcheck() int {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://127.0.0.1:" + os.Getenv(contract.EnvHealthPort) + "/health")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, resp.Status)
		return 1
	}
	return 0
}

func listenHost() string {
	if h := os.Getenv("TC_LISTEN_HOST"); h != "" {
		return h
	}
	return "127.0.0.1"
}

// dial waits until http://addr/ answers, trying every 50ms.
func dial(addr string) {
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get("http://" + addr + "/")
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			_ = resp.Body.Close()
			fmt.Printf("reached %s: %s\n", addr, strings.TrimSpace(string(body)))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func printer(lines []string, every time.Duration, count int) {
	for n := 1; count == 0 || n <= count; n++ {
		for _, l := range lines {
			l = strings.ReplaceAll(l, "{n}", strconv.Itoa(n))
			if rest, ok := strings.CutPrefix(l, "stderr:"); ok {
				fmt.Fprintln(os.Stderr, rest)
			} else {
				fmt.Fprintln(os.Stdout, strings.TrimPrefix(l, "stdout:"))
			}
		}
		time.Sleep(every)
	}
}

func duration(key string, def time.Duration) time.Duration {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		fail("%s: %v", key, err)
	}
	return d
}

func atoi(key string) int {
	v := os.Getenv(key)
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		fail("%s: %v", key, err)
	}
	return n
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "testcomponent: "+format+"\n", args...)
	os.Exit(97)
}
