package health

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flowctl/flowctl/internal/config"
)

// ErrUnhealthy is returned (wrapped) by Wait when the probe failed
// FailureThreshold consecutive times after the start period.
var ErrUnhealthy = errors.New("health check failed")

// ErrStopped is returned (wrapped, together with the error alive returned)
// by Wait when the component stopped running before it became ready.
var ErrStopped = errors.New("component stopped before becoming ready")

// Result describes a wait for readiness.
type Result struct {
	Attempts int           // checks run
	Output   string        // output of the last check (OutputProbe only)
	LastErr  error         // error of the last check; nil when it passed
	Elapsed  time.Duration // from the call to the verdict
}

// Polling before the first success. Readiness latency adds up along the
// DAG during apply (a component starts only when its inputs are ready), so
// the wait between checks is short while the component has never passed:
// fastBase + elapsed/fastDivisor, capped at fastMax and at Interval. The
// delay polling adds to a component's readiness is thus at most a
// twentieth of the time it took to become ready, plus fastBase, and never
// more than fastMax; a component that is ready in 200 ms is seen ready
// within 20 ms of it (10 ms on average), at the cost of a dozen cheap
// checks (a refused connection, or one local HTTP request). Once the probe
// has passed, checks follow Interval as configured.
const (
	fastBase    = 10 * time.Millisecond
	fastDivisor = 20
	fastMax     = 100 * time.Millisecond
)

// Defaults used when Wait is given no health block (config normalisation
// fills these in for every block it produces).
var defaultHealth = config.Health{
	Interval:         config.DefaultHealthInterval,
	Timeout:          config.DefaultHealthTimeout,
	FailureThreshold: config.DefaultFailureThreshold,
	SuccessThreshold: config.DefaultSuccessThreshold,
}

// Wait runs probe until the component is ready and returns how it went.
//
// The rules, with the values of h (zero values take the defaults):
//   - the first check runs at once; each check is bounded by Timeout;
//   - the component is ready after SuccessThreshold consecutive passes;
//   - failures during StartPeriod never count; after it, a failure counts
//     at most once per Interval (checks before the first success run more
//     often than Interval, see fastBase, but do not fail a component
//     sooner), and FailureThreshold consecutive counted failures make the
//     component unhealthy: an error wrapping ErrUnhealthy and the last
//     check's error. A slow starter is thus given StartPeriod +
//     FailureThreshold × Interval;
//   - alive, when not nil, is asked before each check and after each
//     failed one; its error (e.g. "exited with code 2") ends the wait at
//     once with an error wrapping ErrStopped and that error;
//   - the end of ctx ends the wait with an error wrapping ctx.Err().
func Wait(ctx context.Context, probe Probe, h *config.Health, alive func() error) (Result, error) {
	cfg := defaultHealth
	if h != nil {
		cfg.StartPeriod = h.StartPeriod
		if h.Interval > 0 {
			cfg.Interval = h.Interval
		}
		if h.Timeout > 0 {
			cfg.Timeout = h.Timeout
		}
		if h.FailureThreshold > 0 {
			cfg.FailureThreshold = h.FailureThreshold
		}
		if h.SuccessThreshold > 0 {
			cfg.SuccessThreshold = h.SuccessThreshold
		}
	}
	interval, timeout := cfg.Interval.D(), cfg.Timeout.D()

	start := time.Now()
	var res Result
	finish := func(err error) (Result, error) {
		res.Elapsed = time.Since(start)
		return res, err
	}
	checkAlive := func() error {
		if alive == nil {
			return nil
		}
		if err := alive(); err != nil {
			if res.LastErr != nil {
				return fmt.Errorf("%w: %w (last check: %v)", ErrStopped, err, res.LastErr)
			}
			return fmt.Errorf("%w: %w", ErrStopped, err)
		}
		return nil
	}
	ctxErr := func() error {
		if res.LastErr != nil {
			return fmt.Errorf("waiting for readiness: %w (after %d checks; last: %v)", ctx.Err(), res.Attempts, res.LastErr)
		}
		return fmt.Errorf("waiting for readiness: %w", ctx.Err())
	}

	graceEnd := start.Add(cfg.StartPeriod.D())
	lastCounted := graceEnd // a failure counts only Interval after this
	successes, failures := 0, 0
	everPassed := false
	for {
		if ctx.Err() != nil {
			return finish(ctxErr())
		}
		if err := checkAlive(); err != nil {
			return finish(err)
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		res.Output, res.LastErr = check(cctx, probe)
		cancel()
		res.Attempts++
		now := time.Now()
		if res.LastErr != nil && ctx.Err() != nil {
			return finish(ctxErr())
		}

		var wait time.Duration
		if res.LastErr == nil {
			everPassed = true
			successes++
			failures = 0
			lastCounted = now
			if successes >= cfg.SuccessThreshold {
				return finish(nil)
			}
			wait = interval
		} else {
			successes = 0
			if err := checkAlive(); err != nil {
				return finish(err)
			}
			if !now.Before(graceEnd) && now.Sub(lastCounted) >= interval {
				failures++
				lastCounted = now
				if failures >= cfg.FailureThreshold {
					return finish(fmt.Errorf("%w %d consecutive times: %w", ErrUnhealthy, failures, res.LastErr))
				}
			}
			wait = interval
			if !everPassed {
				wait = min(fastBase+now.Sub(start)/fastDivisor, fastMax, interval)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return finish(ctxErr())
		case <-t.C:
		}
	}
}

func check(ctx context.Context, p Probe) (string, error) {
	if op, ok := p.(OutputProbe); ok {
		return op.CheckOutput(ctx)
	}
	return "", p.Check(ctx)
}
