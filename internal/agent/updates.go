package agent

import (
	"context"
	"time"

	"github.com/radarpod/radarpod/internal/buildinfo"
	"github.com/radarpod/radarpod/internal/handoff"
)

// handOffUpdate passes an announced version to the updater through the
// shared data dir. The agent never downloads binary_url: a container pod's
// version names an image tag, which only the updater may verify and install.
func (a *Agent) handOffUpdate(version, binaryURL, source string) {
	if version == buildinfo.Version {
		return
	}
	a.mu.Lock()
	dup := a.lastReq == version
	a.mu.Unlock()
	if dup {
		// The service re-announces at every sync; one request is enough.
		return
	}
	if a.balena {
		a.mu.Lock()
		a.lastReq = version
		a.mu.Unlock()
		a.log.Info("update announced; on balena the fleet's release decides the agent version, so it is not installed from here",
			"version", version, "running", buildinfo.Version)
		return
	}
	req := handoff.Request{Version: version, BinaryURL: binaryURL, Source: source, RequestedAt: time.Now().UTC()}
	if err := handoff.WriteRequest(a.cfg.DataDir, req); err != nil {
		a.report("update_request", "cannot hand the update announcement to the updater", err, "version", version)
		return
	}
	a.mu.Lock()
	a.lastReq = version
	a.mu.Unlock()
	a.metrics.UpdateEvents.WithLabelValues("requested").Inc()
	a.log.Info("update announced; request handed to the updater", "version", version, "running", buildinfo.Version, "source", source)
}

// updateWatcher follows the updater's status file: it logs every change,
// exposes the state in metrics and reports failures (refusal, rollback) to
// Sentry, since the updater itself does not talk to the pods service.
type updateWatcher struct {
	a    *Agent
	last handoff.Status
	seen bool
}

func (w *updateWatcher) poll() {
	a := w.a
	st, ok, err := handoff.ReadStatus(a.cfg.DataDir)
	if err != nil {
		a.report("update_status", "cannot read the updater's status file", err)
		return
	}
	if !ok || (w.seen && st.UpdatedAt.Equal(w.last.UpdatedAt) && st.State == w.last.State) {
		return
	}
	first := !w.seen
	w.last, w.seen = st, true
	a.metrics.UpdateState.Reset()
	a.metrics.UpdateState.WithLabelValues(string(st.State), st.ToVersion).Set(1)
	attrs := []any{"state", st.State, "from", st.FromVersion, "to", st.ToVersion, "digest", st.Digest, "attempt", st.Attempt}
	if st.Reason != "" {
		attrs = append(attrs, "reason", st.Reason)
	}
	if st.NextRetryAt != nil {
		attrs = append(attrs, "next_retry_at", st.NextRetryAt.Format(time.RFC3339))
	}
	switch {
	case st.State.Failure() && !first:
		a.metrics.UpdateEvents.WithLabelValues(string(st.State)).Inc()
		a.log.Error("update not installed", attrs...)
	case st.State == handoff.StateSucceeded && !first:
		a.metrics.UpdateEvents.WithLabelValues("succeeded").Inc()
		a.log.Info("update installed", attrs...)
	default:
		a.log.Info("updater status", attrs...)
	}
}

// scheduleLoop runs tests on the standalone schedule.
func (a *Agent) scheduleLoop(ctx context.Context) {
	s := newStandaloneSchedule(a.cfg.DataDir, a.cfg.TestsPerDay)
	next, err := s.initial(time.Now())
	if err != nil {
		a.report("schedule", "cannot persist the test schedule", err)
	}
	for {
		a.log.Info("next standalone test run scheduled", "at", next.Format(time.RFC3339))
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		// Schedule the following run before this one starts, so a crash
		// during the test does not make the pod test again at restart.
		if next, err = s.advance(time.Now()); err != nil {
			a.report("schedule", "cannot persist the test schedule", err)
		}
		a.requestRun(requestFor(nil), "schedule")
	}
}
