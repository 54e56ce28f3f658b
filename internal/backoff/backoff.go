// Package backoff owns retry pacing: exponential growth with a cap and
// symmetric jitter, and a context-aware wait. Every retry loop in the pod uses
// it so that a fleet of pods never retries in lockstep.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff yields successive delays: Initial, Initial*Factor, ... capped at
// Max, each spread by ±Jitter (a fraction, 0.1 = ±10%). The zero Factor means 2.
// A Backoff is not safe for concurrent use.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
	Factor  float64
	Jitter  float64

	attempt int
}

// Channel is the pacing the protocol prescribes for the live channel:
// 0.5 s doubling to a 15 s cap, ±10%.
func Channel() *Backoff {
	return &Backoff{Initial: 500 * time.Millisecond, Max: 15 * time.Second, Jitter: 0.1}
}

// Next returns the delay before the next attempt and advances.
func (b *Backoff) Next() time.Duration {
	d := b.base()
	b.attempt++
	if b.Jitter > 0 {
		spread := (rand.Float64()*2 - 1) * b.Jitter
		d = time.Duration(float64(d) * (1 + spread))
	}
	return d
}

func (b *Backoff) base() time.Duration {
	f := b.Factor
	if f == 0 {
		f = 2
	}
	d := float64(b.Initial)
	for i := 0; i < b.attempt; i++ {
		d *= f
		if b.Max > 0 && d >= float64(b.Max) {
			return b.Max
		}
	}
	if b.Max > 0 && d > float64(b.Max) {
		return b.Max
	}
	return time.Duration(d)
}

// Attempts is how many delays Next has handed out since the last Reset.
func (b *Backoff) Attempts() int { return b.attempt }

// Reset starts over from Initial, after a success.
func (b *Backoff) Reset() { b.attempt = 0 }

// Wait sleeps for d or until ctx is done, whichever comes first, and returns
// ctx.Err() in the latter case.
func Wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
