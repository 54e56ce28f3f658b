// Package fleet owns the fleet simulation: thousands of pods against one
// pods service, on a virtual clock (a discrete-event simulator, Sim), to
// measure what the fleet does to the service when something goes wrong —
// a service restart that drops every live channel at once, and a long
// outage after which every pod holds a backlog of results.
//
// The pods' decisions are the production code: the channel's reconnect
// delay (radar.ReconnectDelay on agent.ChannelBackoff, radar.Connected), the
// fallback heartbeat's pace (agent.HeartbeatPace), the uploader's pause
// and wake-up rules (agent.UploadDelay on agent.UploadPacing) and its
// window (agent.UploadsInFlight), and Retry-After as the production
// clients read it (backoff.Spread via those functions). What is modelled
// is everything between the decisions: sockets, timers, the outbox's
// files and the service itself (Service: down windows, a capacity per
// second answered 503 or 429 with Retry-After beyond it, a count of
// attempts per second and of deliveries per result id). docs/fleet.md
// describes the model and the figures.
package fleet

import (
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/radarpod/radarpod/internal/backoff"
)

// Options describe a fleet and its service.
type Options struct {
	Pods int
	// PingInterval and ReconnectMax are the pods' RADAR_PING_INTERVAL and
	// RADAR_RECONNECT_MAX.
	PingInterval time.Duration
	ReconnectMax time.Duration
	// Latency is the service time of an upload: it is answered (and
	// stored) Latency after it starts. Upgrades and status calls are
	// answered at once.
	Latency time.Duration
	// RestartDown is how long a restarting service refuses connections.
	RestartDown time.Duration
	// Outage is the long outage; Results are queued per pod during it.
	Outage  time.Duration
	Results int
	// Capacity (requests a second, any kind) and RetryAfter of the service
	// in the capacity runs; the other runs have an unlimited service.
	Capacity   int
	RetryAfter time.Duration
	// Throttle429 makes the capacity run answer 429 instead of 503.
	Throttle429 bool
	// Seed seeds the model's own randomness (phases, result times); the
	// production code draws from math/rand/v2 as it does in a pod.
	Seed uint64
	// Command reproduces the run, for the figures.
	Command string
	Log     io.Writer
}

// Defaults fills unset options with the figures' values.
func (o *Options) Defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if o.Pods <= 0 {
		o.Pods = 10000
	}
	def(&o.PingInterval, 15*time.Second)
	def(&o.ReconnectMax, backoff.ChannelMax)
	def(&o.Latency, 200*time.Millisecond)
	def(&o.RestartDown, 30*time.Second)
	def(&o.Outage, time.Hour)
	def(&o.RetryAfter, 30*time.Second)
	if o.Results <= 0 {
		o.Results = 10
	}
	if o.Capacity <= 0 {
		o.Capacity = 1000
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// Fleet is one simulation run: pods, the service and the clock.
type Fleet struct {
	opts Options
	sim  *Sim
	svc  *Service
	pods []*pod
	rnd  *rand.Rand

	reconnects []time.Duration
	dropped    int
}

// NewFleet builds opts.Pods pods, every one on the live channel and with
// its heartbeat at its own phase: the fleet's steady state.
func NewFleet(opts Options) *Fleet {
	sim := &Sim{}
	f := &Fleet{opts: opts, sim: sim, svc: NewService(sim), rnd: rand.New(rand.NewPCG(opts.Seed, 0x5eed))}
	for range opts.Pods {
		p := newPod(f)
		p.connectedNow()
		f.pods = append(f.pods, p)
		sim.At(time.Duration(f.rnd.Float64()*float64(opts.PingInterval)), p.heartbeat)
	}
	return f
}

// Service is the fleet's service model.
func (f *Fleet) Service() *Service { return f.svc }

// Sim is the fleet's clock.
func (f *Fleet) Sim() *Sim { return f.sim }

func (f *Fleet) reconnected(*pod) { f.reconnects = append(f.reconnects, f.sim.Now()) }

// DropAll is a service restart as the pods see it: every channel closes now.
func (f *Fleet) DropAll() {
	for _, p := range f.pods {
		if p.up {
			f.dropped++
		}
		p.drop()
	}
}

// Queue stores results ids [first, first+len(pods)*n) in the pods' outboxes,
// n per pod, each at a random time in [from, to).
func (f *Fleet) Queue(n int, from, to time.Duration) {
	id := 0
	for _, p := range f.pods {
		for range n {
			rid := id
			id++
			at := from + time.Duration(f.rnd.Float64()*float64(to-from))
			f.sim.At(at, func() { p.store(rid) })
		}
	}
}

// Connected is how many pods are on the channel.
func (f *Fleet) Connected() int {
	n := 0
	for _, p := range f.pods {
		if p.up {
			n++
		}
	}
	return n
}

// Pending is how many results wait in the pods' outboxes.
func (f *Fleet) Pending() int {
	n := 0
	for _, p := range f.pods {
		n += len(p.outbox)
	}
	return n
}

// ReconnectQuantile is the time after since by which fraction q of the
// dropped pods were back on the channel, and false if they were not.
func (f *Fleet) ReconnectQuantile(q float64, since time.Duration) (time.Duration, bool) {
	need := int(math.Ceil(q * float64(f.dropped)))
	if need == 0 {
		return 0, true
	}
	if len(f.reconnects) < need {
		return 0, false
	}
	rs := slices.Clone(f.reconnects)
	slices.Sort(rs)
	return rs[need-1] - since, true
}

// RunUntil runs the clock until cond holds (checked every virtual second)
// or limit passes; it returns whether cond held.
func (f *Fleet) RunUntil(limit time.Duration, cond func() bool) bool {
	for f.sim.Now() < limit {
		if cond() {
			return true
		}
		f.sim.Run(f.sim.Now() + time.Second)
	}
	return cond()
}

// PeakMean returns the highest count in xs[from:to] and the mean over
// that window (missing seconds count as 0).
func PeakMean(xs []int, from, to int) (peak int, mean float64) {
	sum := 0
	for i := from; i < to; i++ {
		if i < len(xs) {
			sum += xs[i]
			peak = max(peak, xs[i])
		}
	}
	if to <= from {
		return peak, 0
	}
	return peak, float64(sum) / float64(to-from)
}

// LastNonZero is the last second in xs with a count, or -1.
func LastNonZero(xs []int) int {
	for i := len(xs) - 1; i >= 0; i-- {
		if xs[i] > 0 {
			return i
		}
	}
	return -1
}
