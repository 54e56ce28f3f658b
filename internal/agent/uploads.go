package agent

import (
	"context"
	"time"

	"github.com/radarpod/radarpod/internal/backoff"
	"github.com/radarpod/radarpod/internal/outbox"
	"github.com/radarpod/radarpod/internal/radar"
)

// Upload pacing. Network errors and 5xx are usually short outages: retry
// fast, backing off. Rejected credentials will not fix themselves soon, but
// an operator may fix them on the service side: keep the results and keep
// trying, slowly.
var (
	retryPacing = backoff.Backoff{Initial: time.Second, Max: 5 * time.Minute, Jitter: 0.2}
	authPacing  = backoff.Backoff{Initial: time.Minute, Max: 30 * time.Minute, Jitter: 0.2}
)

// uploadLoop delivers the outbox oldest first. Only the service's 201
// removes a record; everything else leaves it for the next attempt.
func (a *Agent) uploadLoop(ctx context.Context, id radar.Identity) {
	retry, auth := retryPacing, authPacing
	for ctx.Err() == nil {
		rec, ok, err := a.outbox.Oldest()
		if err != nil {
			a.report("outbox_read", "cannot read the outbox", err)
			a.waitForWork(ctx, time.Minute)
			continue
		}
		if !ok {
			a.waitForWork(ctx, time.Minute)
			continue
		}
		err = a.upload(ctx, id, rec)
		if err == nil {
			retry.Reset()
			auth.Reset()
			continue
		}
		if ctx.Err() != nil {
			return
		}
		class := radar.Classify(err)
		a.metrics.Uploads.WithLabelValues(string(class)).Inc()
		var delay time.Duration
		switch class {
		case radar.ClassAuth:
			delay = auth.Next()
			a.report("upload_auth", "upload refused: the service rejects this pod's credentials; results are kept", err,
				"pending", a.outbox.Stats().Records, "retry_in", delay.Round(time.Second).String())
		case radar.ClassRejected:
			delay = auth.Next()
			a.report("upload_rejected", "upload rejected by the service; results are kept", err,
				"record", rec.ID, "retry_in", delay.Round(time.Second).String())
		default:
			delay = retry.Next()
			a.log.Warn("upload failed; will retry", "err", err, "record", rec.ID,
				"pending", a.outbox.Stats().Records, "retry_in", delay.Round(time.Millisecond).String())
		}
		a.sleepOrKick(ctx, delay)
	}
}

func (a *Agent) upload(ctx context.Context, id radar.Identity, rec outbox.Record) error {
	uctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	err := a.service.UploadMeasurement(uctx, id, radar.Measurement{
		Style: rec.Style, Interface: rec.Interface, Wireless: rec.Wireless,
		ConnectionInfo: rec.ConnectionInfo, Result: rec.Result,
	})
	if err != nil {
		return err
	}
	a.metrics.Uploads.WithLabelValues("ok").Inc()
	if err := a.outbox.Remove(rec.ID); err != nil {
		// Stored by the service but still here: it will be sent again. A
		// duplicate is better than a loss; say so.
		a.report("outbox_remove", "uploaded result could not be removed from the outbox; it may be sent twice", err, "record", rec.ID)
	}
	a.log.Info("result uploaded", "record", rec.ID, "runner", rec.Runner, "interface", rec.Interface)
	a.updateOutboxMetrics()
	return nil
}

// waitForWork sleeps until a result is stored, the service comes back, or max passes.
func (a *Agent) waitForWork(ctx context.Context, max time.Duration) {
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-a.outbox.Notify():
	case <-a.kickUp:
	case <-t.C:
	}
}

// sleepOrKick waits out a backoff, cut short when the live channel
// reconnects (the service is evidently back).
func (a *Agent) sleepOrKick(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-a.kickUp:
	case <-t.C:
	}
}

func (a *Agent) evicted(e outbox.Eviction) {
	if a.evictionsCounted.Load() {
		a.metrics.OutboxEvictions.Inc()
	}
	a.report("outbox_evict", "outbox evicted a result", nil,
		"record", e.ID, "runner", e.Runner, "bytes", e.Bytes, "reason", e.Reason, "created_at", e.CreatedAt)
}

func (a *Agent) updateOutboxMetrics() {
	if a.outbox == nil {
		return
	}
	st := a.outbox.Stats()
	a.metrics.OutboxDepth.Set(float64(st.Records))
	a.metrics.OutboxBytes.Set(float64(st.Bytes))
}
