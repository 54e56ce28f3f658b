package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/radarpod/radarpod/internal/netif"
	"github.com/radarpod/radarpod/internal/outbox"
	"github.com/radarpod/radarpod/internal/radar"
	"github.com/radarpod/radarpod/internal/speedtest"
	"github.com/radarpod/radarpod/internal/wallclock"
)

// lockMargin is added to the test timeout when stamping the test lock: a
// crashed agent's lock goes stale shortly after its test would have ended.
const lockMargin = 30 * time.Second

// testLoop runs queued test runs one at a time.
func (a *Agent) testLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.queue.wake:
		}
		for ctx.Err() == nil {
			run, ok := a.queue.take()
			if !ok {
				break
			}
			a.metrics.TestQueue.Set(float64(a.queue.depth()))
			a.runTests(ctx, run)
			a.queue.done()
			// A test's buffers (the NDT7 recorder alone holds up to
			// 4 MiB) are garbage once its result is stored.
			a.releaseMemory("test run")
		}
	}
}

// runTests runs every configured runner, in RADAR_TESTS order, for each
// requested target, one at a time, each under RADAR_TEST_TIMEOUT. The test
// lock is held for the whole run, so the updater never stops the agent
// between two runners of one run. A run asked for locally may name its
// runners (runRequest.runners). The run's progress and results go to
// whoever waits on it (RunNow).
func (a *Agent) runTests(ctx context.Context, run *testRun) {
	req := run.runRequest
	a.line.Lock()
	defer a.line.Unlock()
	started := time.Now()
	a.log.Info("test run started", "targets", req.targets())
	defer func() {
		if err := a.lock.Release(); err != nil {
			a.report("test_lock", "cannot release the test lock", err)
		}
		a.log.Info("test run finished", "targets", req.targets(), "duration", time.Since(started).Round(time.Millisecond).String())
	}()
	for _, name := range req.targets() {
		target, iface, err := a.resolveTarget(name)
		for _, r := range a.runners {
			if ctx.Err() != nil {
				return
			}
			if !req.wantsRunner(r.Name()) {
				continue
			}
			if av, ok := r.(availability); ok && av.Available() != nil {
				a.metrics.RunnerUp.WithLabelValues(r.Name()).Set(0)
				continue
			}
			a.metrics.RunnerUp.WithLabelValues(r.Name()).Set(1)
			if err != nil {
				// The interface the service asked for is gone or has no
				// address: that is a failed test, recorded like any other.
				now := time.Now()
				res := speedtest.Result{Runner: r.Name(), Interface: name, StartedAt: now, FinishedAt: now}
				rerr := &speedtest.Error{Runner: r.Name(), Class: speedtest.ClassNetwork, Err: err}
				run.add(localResult(a.record(r, target, iface, a.clock.Read(), res, rerr), res, rerr))
				continue
			}
			if lerr := a.lock.Acquire(r.Name(), a.cfg.TestTimeout+lockMargin); lerr != nil {
				a.report("test_lock", "cannot take the test lock; testing anyway", lerr)
			}
			started := a.clock.Read()
			rctx, cancel := context.WithTimeout(speedtest.WithProgress(ctx, run.publish), a.cfg.TestTimeout)
			res, rerr := r.Run(rctx, target)
			cancel()
			run.add(localResult(a.record(r, target, iface, started, res, rerr), res, rerr))
		}
	}
}

// resolveTarget maps an interface name ("" = default route) to what a
// runner binds to.
func (a *Agent) resolveTarget(name string) (speedtest.Target, netif.Interface, error) {
	ifs, err := a.interfaces()
	if err != nil {
		return speedtest.Target{Interface: name}, netif.Interface{}, fmt.Errorf("list interfaces: %w", err)
	}
	for _, i := range ifs {
		if name == "" && i.Default {
			return speedtest.Target{}, i, nil
		}
		if name != "" && i.Name == name {
			ip := i.SourceIP()
			if ip == nil {
				return speedtest.Target{Interface: name}, i, fmt.Errorf("interface %s has no usable address", name)
			}
			return speedtest.Target{Interface: name, LocalAddr: ip}, i, nil
		}
	}
	if name == "" {
		// No default route known (e.g. an unusual container network): let
		// the kernel choose.
		return speedtest.Target{}, netif.Interface{}, nil
	}
	return speedtest.Target{Interface: name}, netif.Interface{}, fmt.Errorf("interface %s not found", name)
}

// record keeps every outcome: a success goes to the outbox (or, standalone,
// to results.jsonl with its raw result); a failure is recorded locally and
// in metrics with its class. A failed test is not uploaded: the service has
// no way to store one, and a partial result would read as a slow line.
//
// The test's time is what started, the clock reading taken as it began,
// says: the best estimate of the real time, or — before anything
// trustworthy was known — no date at all, only the test's place on the
// boot clock (clock_synced false), dated later by clockLoop. The runner's
// own timestamps come from the system clock and serve only to measure the
// duration (on the monotonic clock, which no step of the wall clock moves).
func (a *Agent) record(r Runner, target speedtest.Target, iface netif.Interface, started wallclock.Reading, res speedtest.Result, runErr error) ResultEntry {
	if res.FinishedAt.IsZero() {
		res.FinishedAt = time.Now()
	}
	if res.StartedAt.IsZero() {
		res.StartedAt = res.FinishedAt
	}
	duration := res.FinishedAt.Sub(res.StartedAt)
	at, stamp := started.Stamp()
	if !stamp.Synced {
		// The time may have been learned while the test ran.
		if t, s, ok := a.clock.Correct(stamp); ok {
			at, stamp = t, s
		}
	}
	entry := ResultEntry{
		Time: at, Stamp: stamp, Runner: r.Name(), Interface: target.Interface,
		DurationSeconds: duration.Seconds(),
		BytesSent:       max(res.Summary.BytesSent, 0), BytesReceived: max(res.Summary.BytesReceived, 0),
	}
	// A failed test's traffic is spent too.
	a.countTestBytes(r.Name(), target.Interface, entry.BytesSent, entry.BytesReceived, started)
	m := a.metrics
	var clockAttrs []any
	if stamp.Synced {
		m.LastTestTime.WithLabelValues(r.Name()).Set(float64(at.Add(duration).Unix()))
	} else {
		// Dated once the time is known in this boot (clockLoop).
		a.undated.Add(1)
		clockAttrs = []any{"clock_synced", false}
	}
	if runErr != nil {
		class := speedtest.ClassOf(runErr)
		entry.ErrorClass, entry.Error = string(class), a.redactor.String(runErr.Error())
		m.TestsTotal.WithLabelValues(r.Name(), "error").Inc()
		m.TestFailures.WithLabelValues(r.Name(), string(class)).Inc()
		attrs := append([]any{"runner", r.Name(), "interface", target.Interface, "class", class, "err", runErr}, clockAttrs...)
		var se *speedtest.Error
		if errors.As(runErr, &se) && se.Stderr != "" {
			attrs = append(attrs, "stderr", truncate(se.Stderr, 2048))
		}
		if class == speedtest.ClassInternal {
			a.report("test_"+r.Name(), "speed test failed", nil, attrs...)
		} else {
			a.log.Warn("speed test failed", attrs...)
		}
	} else {
		s := res.Summary
		entry.DownloadMbps, entry.UploadMbps, entry.LatencyMs = &s.DownloadMbps, &s.UploadMbps, &s.LatencyMs
		m.TestsTotal.WithLabelValues(r.Name(), "ok").Inc()
		m.LastDownload.WithLabelValues(r.Name(), target.Interface).Set(s.DownloadMbps)
		m.LastUpload.WithLabelValues(r.Name(), target.Interface).Set(s.UploadMbps)
		m.LastLatency.WithLabelValues(r.Name(), target.Interface).Set(s.LatencyMs)
		a.log.Info("speed test done", append([]any{"runner", r.Name(), "interface", target.Interface,
			"download_mbps", round2(s.DownloadMbps), "upload_mbps", round2(s.UploadMbps), "latency_ms", round2(s.LatencyMs)}, clockAttrs...)...)
		if a.cfg.Standalone() {
			entry.Raw = rawAsJSON(res.Raw)
		} else {
			rec, err := a.outbox.Put(outbox.Record{
				CreatedAt: at, Clock: stamp, Runner: r.Name(), Style: res.Style, Interface: target.Interface,
				Wireless: iface.IsWLAN, ConnectionInfo: connectionInfo(iface), Result: res.Raw,
			})
			if err != nil {
				a.report("outbox_put", "cannot store a result for upload", err, "runner", r.Name())
				entry.Error = "not stored for upload: " + err.Error()
			}
			entry.OutboxID = rec.ID
			a.updateOutboxMetrics()
		}
	}
	if err := a.results.append(entry); err != nil {
		a.report("results_log", "cannot append to "+ResultsFile, err)
	}
	a.recent.add(entry, time.Now())
	return entry
}

// resultsDropped accounts for what a rotation of results.jsonl deleted.
// Standalone, that file is the only copy of the results, so the loss is
// reported (log, Sentry); with a service, every successful result has gone
// through the outbox and only the pod's own history is shortened, which is
// worth a warning but not an error report. Either way it is counted.
func (a *Agent) resultsDropped(d droppedResults) {
	a.metrics.ResultsDropped.Add(float64(d.Entries))
	attrs := []any{"dropped_entries", d.Entries, "kept", ResultsFile + " and " + ResultsFile + rotatedSuffix}
	if !d.First.IsZero() {
		// The span of the dated entries; undated ones (clock never synced)
		// are counted but have no date to show.
		attrs = append(attrs, "oldest_dropped", d.First.UTC().Format(time.RFC3339), "newest_dropped", d.Last.UTC().Format(time.RFC3339))
	}
	if a.cfg.Standalone() {
		a.report("results_rotation", ResultsFile+" rotated: its oldest copy was deleted; copy results off the pod to keep more", d.Err, attrs...)
		return
	}
	if d.Err != nil {
		attrs = append(attrs, "err", d.Err)
	}
	a.log.Warn(ResultsFile+" rotated: the pod's oldest local history was deleted (uploaded results are with the service)", attrs...)
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// connectionInfo is the protocol's optional wireless description. Only what
// the kernel reports without nl80211 is known; the rest stays absent.
func connectionInfo(iface netif.Interface) json.RawMessage {
	if !iface.IsWLAN {
		return nil
	}
	w, _ := netif.Wireless(iface.Name)
	b, err := json.Marshal(radar.ConnectionInfoFor(iface, w))
	if err != nil {
		return nil
	}
	return b
}
