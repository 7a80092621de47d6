package apply

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Interruptible gives an apply the two-step Ctrl-C of the CLI: the first
// interrupt (or SIGTERM) closes stop — steps under way finish, nothing new
// starts —, the second cancels the returned context, aborting them. Each is
// announced on w. Call release when the apply is over.
func Interruptible(ctx context.Context, w io.Writer) (_ context.Context, stop <-chan struct{}, release func()) {
	ctx, cancel := context.WithCancel(ctx)
	stopped := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		n := 0
		for {
			select {
			case <-sigs:
				n++
				if n == 1 {
					fmt.Fprintln(w, "\nInterrupt received: finishing the steps under way; nothing new will start. Interrupt again to abort them.")
					close(stopped)
				} else {
					fmt.Fprintln(w, "\nTwo interrupts received: aborting.")
					cancel()
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return ctx, stopped, func() {
		signal.Stop(sigs)
		cancel()
	}
}

// WriteFailures says on w that op did not complete after elapsed, and why
// for each component that failed or was not started.
func (r *Result) WriteFailures(w io.Writer, op string, elapsed time.Duration) {
	fmt.Fprintf(w, "Error: %s did not complete (%s):\n", op, elapsed.Round(100*time.Millisecond))
	for _, o := range r.Failed() {
		if o.Skipped != "" {
			fmt.Fprintf(w, "  %s: %s\n", o.Address, o.Skipped)
			continue
		}
		fmt.Fprintf(w, "  %s: %s failed: %v\n", o.Address, o.Action, o.Err)
	}
}
