package agent

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/radarpod/radarpod/internal/backoff"
	"github.com/radarpod/radarpod/internal/buildinfo"
	"github.com/radarpod/radarpod/internal/radar"
)

// ChannelBackoff is the live channel's reconnect pacing with its cap at
// max (RADAR_RECONNECT_MAX; 0 keeps backoff.ChannelMax): what the agent
// gives its CableClient, and the fleet simulation its pods.
func ChannelBackoff(max time.Duration) *backoff.Backoff {
	b := backoff.Channel()
	if max > 0 {
		b.Max = max
	}
	return b
}

// channelHandler receives the live channel's callbacks.
type channelHandler struct {
	a   *Agent
	ctx context.Context
}

func (h *channelHandler) Connected() {
	a := h.a
	a.metrics.ChannelConnected.Set(1)
	a.metrics.ChannelConnects.Inc()
	a.heartbeat()
	a.log.Info("live channel connected")
	a.setChannelUp(true)
	a.wakeUploader()
}

// wakeUploader cuts the uploader's backoff short: the service answers
// again, so what piled up is delivered now rather than at the end of it.
// It shortens only the pace of network and server failures; a refused
// upload keeps its slow pace (see authPacing).
func (a *Agent) wakeUploader() {
	select {
	case a.kickUp <- struct{}{}:
	default:
	}
}

func (h *channelHandler) Disconnected(err error) {
	a := h.a
	wasUp := a.isChannelUp()
	a.metrics.ChannelConnected.Set(0)
	a.setChannelUp(false)
	switch {
	case h.ctx.Err() != nil:
	case errors.Is(err, radar.ErrUnauthorized):
		a.report("channel_auth", "live channel: the service refused this pod's credentials; retrying slowly", err)
	case wasUp:
		a.log.Warn("live channel down; using the status fallback until it reconnects", "err", err)
	default:
		a.log.Debug("live channel attempt failed", "err", err)
	}
}

func (h *channelHandler) Heartbeat() { h.a.heartbeat() }

func (h *channelHandler) Event(ev radar.Event) {
	h.a.emit(h.ctx, serviceEvent{Event: ev, source: "channel"})
}

func (a *Agent) heartbeat() {
	now := time.Now()
	a.lastBeat.Store(now.UnixNano())
	a.metrics.LastHeartbeat.Set(float64(now.Unix()))
}

func (a *Agent) setChannelUp(up bool) {
	a.mu.Lock()
	a.channelIsUp = up
	a.mu.Unlock()
}

func (a *Agent) isChannelUp() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.channelIsUp
}

// syncPayload describes the pod for the channel's sync action.
func (a *Agent) syncPayload() radar.SyncPayload {
	return radar.SyncPayload{
		Version: buildinfo.Version, Distribution: buildinfo.Distribution(),
		OSVersion: buildinfo.OS(), HardwarePlatform: buildinfo.Arch(),
		RegistrationToken: a.cfg.RegistrationToken, NetInterfaces: a.netInterfaces(),
	}
}

func (a *Agent) netInterfaces() []radar.NetInterface {
	ifs, err := a.interfaces()
	if err != nil {
		a.report("interfaces", "cannot list network interfaces", err)
		return nil
	}
	return radar.FromNetif(ifs)
}

// statusLoop is the fallback heartbeat: while the channel is down it calls
// the status endpoint every RADAR_PING_INTERVAL, and acts on a pending test
// or update in the answer. Each pod keeps its own phase (see heartbeatPace):
// a fleet that lost the channel together does not poll together. A 429 or
// 503 with Retry-After holds the next call back at least that long.
func (a *Agent) statusLoop(ctx context.Context, id radar.Identity) {
	pace := NewHeartbeatPace(a.cfg.PingInterval, rand.Float64)
	delay := pace.First()
	for {
		if a.sleep(ctx, "status", delay) != nil {
			return
		}
		if a.isChannelUp() {
			delay = pace.Next()
			continue
		}
		delay = pace.After(a.statusOnce(ctx, id))
	}
}

// heartbeatPace spreads the fallback heartbeat. The protocol asks for one
// call every ping_freq seconds; a pod keeps that mean but draws its own
// phase at start-up (the first call comes between one and two intervals
// after the loop starts, which also leaves the channel time to connect)
// and spreads every interval by ±10%, so pods that started or lost the
// channel together — a power cut, a service restart — drift apart
// instead of polling in one wave. Nothing is tied to wall-clock
// boundaries.
//
// It is exported (HeartbeatPace) so that the fleet simulation
// (internal/bench/fleet) paces its pods' heartbeats with this very code.
type heartbeatPace struct {
	interval time.Duration
	rand     func() float64 // uniform in [0, 1)
}

// HeartbeatPace is the fallback heartbeat's pacing (see heartbeatPace).
type HeartbeatPace = heartbeatPace

// NewHeartbeatPace paces heartbeats every interval; rand is uniform in [0, 1).
func NewHeartbeatPace(interval time.Duration, rand func() float64) HeartbeatPace {
	return heartbeatPace{interval: interval, rand: rand}
}

// heartbeatSpread is the ± fraction each interval is spread by.
const heartbeatSpread = 0.1

// First is the wait before the first heartbeat: the pod's own phase.
func (p heartbeatPace) First() time.Duration { return p.first() }

// Next is the wait between two heartbeats.
func (p heartbeatPace) Next() time.Duration { return p.next() }

// After is the wait after a heartbeat whose answer asked for hint
// (Retry-After on a 429 or 503; 0 for none): the next interval, or the
// spread hint when that is longer.
func (p heartbeatPace) After(hint time.Duration) time.Duration {
	d := p.next()
	if hint > 0 {
		d = max(d, backoff.Spread(hint, p.rand()))
	}
	return d
}

func (p heartbeatPace) first() time.Duration {
	return p.interval + time.Duration(p.rand()*float64(p.interval))
}

func (p heartbeatPace) next() time.Duration {
	return time.Duration(float64(p.interval) * (1 + (p.rand()*2-1)*heartbeatSpread))
}

// statusOnce makes one heartbeat call and returns how long the service
// asked the pod to hold off (Retry-After on a 429 or 503), or 0.
func (a *Agent) statusOnce(ctx context.Context, id radar.Identity) time.Duration {
	req := radar.StatusRequest{
		Version: buildinfo.Version, Distribution: buildinfo.Distribution(),
		OSVersion: buildinfo.OS(), HardwarePlatform: buildinfo.Arch(),
		NetworkInterfaces: a.netInterfaces(),
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	resp, err := a.service.Status(cctx, id, req)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return 0
		}
		class := radar.Classify(err)
		a.metrics.StatusCalls.WithLabelValues(string(class)).Inc()
		hint := radar.RetryAfterOf(err)
		switch class {
		case radar.ClassAuth:
			a.report("status_auth", "status heartbeat: credentials rejected (403)", err)
		case radar.ClassThrottled:
			a.log.Warn("status heartbeat throttled by the service", "err", err, "retry_after", hint)
		default:
			a.log.Warn("status heartbeat failed", "err", err, "retry_after", hint)
		}
		return hint
	}
	a.metrics.StatusCalls.WithLabelValues("ok").Inc()
	a.heartbeat()
	a.wakeUploader()
	// The service keeps test_requested set until a result arrives (a
	// successful upload is what clears it), so while a run is in progress
	// or its results are still waiting in the outbox, the flag is the
	// request we are already answering: running again would add a test per
	// heartbeat for as long as the service is unreachable for uploads.
	// Once the outbox is empty a set flag is a new request.
	if resp.TestRequested && !a.queue.busy() && a.outbox.Stats().Records == 0 {
		a.emit(ctx, serviceEvent{Event: radar.Event{Kind: radar.RunTest}, source: "status"})
	}
	if resp.Update != nil && resp.Update.Version != "" {
		a.emit(ctx, serviceEvent{Event: radar.Event{Kind: radar.Update, Version: resp.Update.Version, BinaryURL: resp.Update.URL}, source: "status"})
	}
	return 0
}

// emit hands an event to the main loop.
func (a *Agent) emit(ctx context.Context, ev serviceEvent) {
	select {
	case a.events <- ev:
	case <-ctx.Done():
	}
}
