// Package backoff owns retry pacing: exponential growth with a cap and
// symmetric jitter, a context-aware wait, and the reading of a server's
// Retry-After (bounded, and spread so that pods told the same value do not
// return together). Every retry loop in the pod uses it so that a fleet of
// pods never retries in lockstep.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff yields successive delays: Initial, Initial*Factor, ... capped at
// Max, each spread by ±Jitter (a fraction, 0.1 = ±10%), or, with Full,
// drawn uniformly from [0, that delay) ("full jitter": Jitter is then
// ignored). The zero Factor means 2. A Backoff is not safe for concurrent
// use.
type Backoff struct {
	Initial time.Duration
	Max     time.Duration
	Factor  float64
	Jitter  float64
	Full    bool

	attempt int
}

// ChannelMax is the default cap of the live channel's reconnect delay
// (RADAR_RECONNECT_MAX overrides it), and the window over which a fleet
// that lost the channel together comes back (see Channel). 8 minutes
// spreads 10,000 pods to about 21 reconnects a second, peaks within 3x
// the mean of the 10 minutes after a service restart with a margin for
// chance (docs/fleet.md measures it; 5 minutes came to 2.9x).
// A pod waiting on it is not cut off: the status heartbeat carries its
// test requests meanwhile.
const ChannelMax = 8 * time.Minute

// Channel is the live channel's reconnect pacing: 0.5 s doubling to
// ChannelMax, with full jitter. The protocol's own pacing (0.5 s doubling
// to 15 s, ±10%) keeps a fleet that lost the channel together in step:
// every pod tries again within the same second, and again, in waves (the
// fleet simulation in internal/bench/fleet measured the whole fleet in one
// second). Full jitter breaks the waves; SpreadNext, called once a
// channel is up, spreads the return after a service restart.
func Channel() *Backoff {
	return &Backoff{Initial: 500 * time.Millisecond, Max: ChannelMax, Full: true}
}

// Next returns the delay before the next attempt and advances.
func (b *Backoff) Next() time.Duration {
	d := b.base()
	b.attempt++
	if b.Full {
		return time.Duration(rand.Float64() * float64(d))
	}
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

// SpreadNext makes the next delay the capped one (with Full, drawn from
// the whole window [0, Max)), after a success whose loss would hit many
// clients at once: when a service restarts, every pod's channel drops in
// the same instant, and a backoff reset to Initial would bring the whole
// fleet back within Initial — one wave. With no Max it is Reset.
func (b *Backoff) SpreadNext() {
	b.attempt = 0
	if b.Max <= 0 {
		return
	}
	f := b.Factor
	if f == 0 {
		f = 2
	}
	for d := float64(b.Initial); d < float64(b.Max) && f > 1 && b.attempt < 64; d *= f {
		b.attempt++
	}
}

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
