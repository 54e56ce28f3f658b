package fleet

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/backoff"
	"github.com/radarpod/radarpod/internal/radar"
)

// pod is one modelled pod. Its decisions — when to reconnect, when to
// send the next heartbeat, how long to pause uploads and whether a sign
// of the service may cut the pause short — are the production ones
// (radar.ReconnectDelay and radar.Connected on agent.ChannelBackoff,
// agent.HeartbeatPace, agent.UploadDelay on agent.UploadPacing, the window
// of agent.UploadsInFlight). What is modelled is the plumbing between them:
// sockets, goroutines, timers and the outbox's files.
type pod struct {
	f *Fleet

	// live channel
	up bool
	bo *backoff.Backoff

	// fallback heartbeat
	pace agent.HeartbeatPace

	// uploads: the outbox (result ids, oldest first) and one delivery
	outbox      []int
	next        int // index in outbox of the next record to start this round
	inFlight    int
	failed      error
	retry, auth backoff.Backoff
	paused      bool
	wakeable    bool
	pauseGen    int // invalidates a pause's timer once a wake ended it
}

func newPod(f *Fleet) *pod {
	p := &pod{f: f, bo: agent.ChannelBackoff(f.opts.ReconnectMax), pace: agent.NewHeartbeatPace(f.opts.PingInterval, rand.Float64)}
	p.retry, p.auth = agent.UploadPacing()
	return p
}

var errDropped = fmt.Errorf("live channel read: %w", io.ErrUnexpectedEOF)

// --- live channel ---

// connectedNow puts the pod on the channel at once: the fleet's steady
// state before a scenario starts.
func (p *pod) connectedNow() {
	p.up = true
	radar.Connected(p.bo)
}

// drop is the service closing the socket (restart): the pod reconnects
// after the production delay.
func (p *pod) drop() {
	if !p.up {
		return
	}
	p.up = false
	p.scheduleReconnect(errDropped)
}

func (p *pod) scheduleReconnect(err error) {
	p.f.sim.After(radar.ReconnectDelay(p.bo, err, radar.DefaultUnauthorizedDelay), p.attempt)
}

func (p *pod) attempt() {
	if err := p.f.svc.call(Cable); err != nil {
		p.scheduleReconnect(err)
		return
	}
	p.up = true
	p.f.reconnected(p)
	radar.Connected(p.bo)
	p.wake()
}

// --- fallback heartbeat ---

// heartbeat is one tick of agent.statusLoop: a status call only while the
// channel is down; a success wakes the uploader.
func (p *pod) heartbeat() {
	if p.up {
		p.f.sim.After(p.pace.Next(), p.heartbeat)
		return
	}
	var hint time.Duration
	if err := p.f.svc.call(Status); err != nil {
		hint = radar.RetryAfterOf(err)
	} else {
		p.wake()
	}
	p.f.sim.After(p.pace.After(hint), p.heartbeat)
}

// --- uploads ---

// store adds a result to the outbox and, as the outbox's notification
// does, starts delivery if it is idle.
func (p *pod) store(id int) {
	p.outbox = append(p.outbox, id)
	if !p.paused && p.failed == nil {
		p.fill()
	}
}

// fill starts uploads oldest first until the window is full (uploadLoop's
// fill, with a sliding window and no new start after a failure).
func (p *pod) fill() {
	for p.failed == nil && p.inFlight < agent.UploadsInFlight && p.next < len(p.outbox) {
		id := p.outbox[p.next]
		p.next++
		p.inFlight++
		p.f.sim.After(p.f.opts.Latency, func() { p.uploaded(id) })
	}
	if p.inFlight == 0 && p.failed == nil && p.next >= len(p.outbox) {
		p.next = 0 // the round is over: the next one starts at the oldest
	}
}

// uploaded is the answer to one upload; the service saw it Latency after
// it started (the model has one service time for every request).
func (p *pod) uploaded(id int) {
	p.inFlight--
	err := p.f.svc.call(Upload)
	if err == nil {
		// Only a 201 removes the record (outbox rules); here at once.
		p.f.svc.deliver(id)
		if i := slices.Index(p.outbox, id); i >= 0 {
			p.outbox = slices.Delete(p.outbox, i, i+1)
			if i < p.next {
				p.next--
			}
		}
		p.retry.Reset()
		p.auth.Reset()
	} else if p.failed == nil {
		p.failed = err
	}
	if p.failed == nil {
		p.fill()
		return
	}
	if p.inFlight > 0 {
		return
	}
	// The round failed: pause, then start again from the oldest record.
	delay, wakeable := agent.UploadDelay(&p.retry, &p.auth, p.failed, false)
	p.failed, p.next, p.paused, p.wakeable = nil, 0, true, wakeable
	p.pauseGen++
	gen := p.pauseGen
	p.f.sim.After(delay, func() {
		if p.paused && p.pauseGen == gen {
			p.resume()
		}
	})
}

func (p *pod) resume() {
	p.paused = false
	p.fill()
}

// wake is agent.wakeUploader: a sign the service is back ends a pause
// that may be cut short.
func (p *pod) wake() {
	if p.paused && p.wakeable {
		p.resume()
	}
}
