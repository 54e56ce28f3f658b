package agent

import (
	"context"
	"errors"
	"time"

	"github.com/radarpod/radarpod/internal/buildinfo"
	"github.com/radarpod/radarpod/internal/radar"
)

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
	a.metrics.LastHeartbeat.Set(float64(time.Now().Unix()))
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
// or update in the answer.
func (a *Agent) statusLoop(ctx context.Context, id radar.Identity) {
	t := time.NewTicker(a.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if a.isChannelUp() {
			continue
		}
		a.statusOnce(ctx, id)
	}
}

func (a *Agent) statusOnce(ctx context.Context, id radar.Identity) {
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
			return
		}
		class := radar.Classify(err)
		a.metrics.StatusCalls.WithLabelValues(string(class)).Inc()
		if class == radar.ClassAuth {
			a.report("status_auth", "status heartbeat: credentials rejected (403)", err)
		} else {
			a.log.Warn("status heartbeat failed", "err", err)
		}
		return
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
}

// emit hands an event to the main loop.
func (a *Agent) emit(ctx context.Context, ev serviceEvent) {
	select {
	case a.events <- ev:
	case <-ctx.Done():
	}
}
