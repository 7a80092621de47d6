// Command sdkcomponent is a test component built on pkg/component: it
// registers with the control plane the way SDK components do (blocking
// until the control plane answers), heartbeats, and serves /health.
// Environment knobs, besides what pkg/component reads:
//
//	TC_START_DELAY     Go duration after registering before it is healthy
//	TC_EXIT_AFTER      Go duration after which it exits by itself ...
//	TC_EXIT_CODE       ... with this code (default 0)
//	TC_HEARTBEAT_STOP  Go duration after which it stops heartbeating (it
//	                   keeps running and stays healthy on /health)
//
// It prints "sdkcomponent starting", "registered service_id=ID" and
// "sdkcomponent ready" to stdout.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flowctl/flowctl/pkg/component"
	"github.com/flowctl/flowctl/pkg/contract"
)

func main() {
	fmt.Println("sdkcomponent starting")
	cfg := component.FromEnv()
	info := component.Info{Name: "sdkcomponent", Version: "test"}
	switch kind, _, _ := strings.Cut(os.Getenv(contract.EnvComponentAddress), "."); kind {
	case "source":
		info.Type = component.Source
	case "processor":
		info.Type = component.Processor
	case "sink":
		info.Type = component.Sink
	}
	c, err := component.New(cfg, info)
	if err != nil {
		fail(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := c.Start(ctx); err != nil {
		fail(err)
	}
	fmt.Printf("registered service_id=%s\n", c.ServiceID())
	if d := duration("TC_EXIT_AFTER"); d > 0 {
		code, _ := strconv.Atoi(os.Getenv("TC_EXIT_CODE"))
		time.AfterFunc(d, func() {
			fmt.Fprintf(os.Stderr, "exiting with code %d\n", code)
			os.Exit(code)
		})
	}
	time.Sleep(duration("TC_START_DELAY"))
	c.SetHealthy(true)
	fmt.Println("sdkcomponent ready")
	if d := duration("TC_HEARTBEAT_STOP"); d > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(d):
			fmt.Println("stopping heartbeats")
			c.StopHeartbeats()
			<-ctx.Done()
		}
	}
	<-ctx.Done()
	fmt.Println("sdkcomponent stopping")
	_ = c.Close(context.Background())
}

func duration(key string) time.Duration {
	d, _ := time.ParseDuration(os.Getenv(key))
	return d
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sdkcomponent:", err)
	os.Exit(1)
}
