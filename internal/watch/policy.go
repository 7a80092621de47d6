package watch

import (
	"math"
	"time"

	"github.com/flowctl/flowctl/internal/config"
)

// Defaults that the pipeline's restart block does not carry.
const (
	// DefaultJitter spreads each delay over ±10%, so that components failing
	// together do not restart in lockstep.
	DefaultJitter = 0.10
	// DefaultResetAfter is how long an instance must run healthy for its
	// failure streak to be forgotten.
	DefaultResetAfter = 10 * time.Minute
	// HeartbeatGrace is how many cadences of silence make a heartbeat
	// missed: 3 allows for one lost beat and a late one.
	HeartbeatGrace = 3
)

// Policy is a component's restart policy with every default filled in.
type Policy struct {
	// Name is config.RestartNever, RestartOnFailure or RestartAlways.
	Name string
	// MaxRetries bounds the restarts of one failure streak;
	// config.UnlimitedRetries (-1) means no bound.
	MaxRetries int
	Initial    time.Duration
	Max        time.Duration
	Multiplier float64
	// Jitter is the fraction by which a delay may vary either way.
	Jitter float64
	// ResetAfter is the healthy run that ends a failure streak.
	ResetAfter time.Duration
}

// PolicyOf turns a normalised restart block into a Policy.
func PolicyOf(r config.Restart) Policy {
	p := Policy{
		Name:       r.Policy,
		MaxRetries: r.MaxRetries,
		Initial:    r.Backoff.Initial.D(),
		Max:        r.Backoff.Max.D(),
		Multiplier: r.Backoff.Multiplier,
		Jitter:     DefaultJitter,
		ResetAfter: DefaultResetAfter,
	}
	if p.Name == "unless-stopped" {
		p.Name = config.RestartAlways
	}
	return p
}

// Restarts reports whether the policy restarts after f.
func (p Policy) Restarts(f Failure) bool {
	switch p.Name {
	case config.RestartAlways:
		return true
	case config.RestartOnFailure:
		return !f.Clean()
	}
	return false
}

// retriesLeft reports whether attempt (1-based) is within MaxRetries.
func (p Policy) retriesLeft(attempt int) bool {
	return p.MaxRetries < 0 || attempt <= p.MaxRetries
}

// BaseDelay is the delay before attempt n (1-based) without jitter:
// Initial × Multiplier^(n-1), capped at Max.
func (p Policy) BaseDelay(n int) time.Duration {
	if p.Initial <= 0 {
		return 0
	}
	if n < 1 {
		n = 1
	}
	m := math.Max(p.Multiplier, 1)
	d := float64(p.Initial) * math.Pow(m, float64(n-1))
	if p.Max > 0 && d >= float64(p.Max) {
		return p.Max
	}
	if d >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}

// Delay is the delay before attempt n with jitter: BaseDelay(n) scaled by
// a factor in [1-Jitter, 1+Jitter) chosen by r (a value in [0, 1)), and
// never more than Max.
func (p Policy) Delay(n int, r float64) time.Duration {
	base := p.BaseDelay(n)
	if base == 0 {
		return 0
	}
	j := math.Min(math.Max(p.Jitter, 0), 1)
	d := float64(base) * (1 + j*(2*r-1))
	if p.Max > 0 && d > float64(p.Max) {
		return p.Max
	}
	if d >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}
