package agent

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/radarpod/radarpod/internal/atomicfile"
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
// exposes the state in metrics and reports every outcome — each failure
// (refusal, rollback, failed attempt) to Sentry, each success as an event —
// exactly once, across restarts of the agent too.
//
// "Once across restarts" needs memory: a rollback restarts the old agent
// before the updater writes "rolled_back", and an update restarts the agent
// before "succeeded", so what the agent finds on its first read after a
// start may well be news. The outcome last reported is kept in the data
// dir (reportedFile), written atomically, and compared by identity.
type updateWatcher struct {
	a    *Agent
	last handoff.Status
	seen bool
	// reported is the identity of the last outcome reported (also on
	// disk); loaded lazily on the first poll.
	reported reportedOutcome
	loaded   bool
}

// reportedFile, in the data dir, is the outcome the agent reported last.
const reportedFile = "update-status-reported.json"

// reportedOutcome identifies one outcome the updater wrote: the updater
// stamps every write with UpdatedAt, so two outcomes never share it.
type reportedOutcome struct {
	State     handoff.State `json:"state"`
	ToVersion string        `json:"to_version,omitempty"`
	Attempt   int           `json:"attempt,omitempty"`
	UpdatedAt time.Time     `json:"updated_at"`
}

func outcomeOf(s handoff.Status) reportedOutcome {
	return reportedOutcome{State: s.State, ToVersion: s.ToVersion, Attempt: s.Attempt, UpdatedAt: s.UpdatedAt.UTC()}
}

func (o reportedOutcome) equal(p reportedOutcome) bool {
	return o.State == p.State && o.ToVersion == p.ToVersion && o.Attempt == p.Attempt && o.UpdatedAt.Equal(p.UpdatedAt)
}

func (w *updateWatcher) poll() {
	a := w.a
	if !w.loaded {
		w.loaded = true
		err := atomicfile.ReadJSON(filepath.Join(a.cfg.DataDir, reportedFile), &w.reported)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			// At worst the last outcome is reported a second time.
			a.log.Warn("cannot read which update outcome was reported last", "err", err)
			w.reported = reportedOutcome{}
		}
	}
	st, ok, err := handoff.ReadStatus(a.cfg.DataDir)
	if err != nil {
		a.report("update_status", "cannot read the updater's status file", err)
		return
	}
	if !ok || (w.seen && st.UpdatedAt.Equal(w.last.UpdatedAt) && st.State == w.last.State) {
		return
	}
	w.last, w.seen = st, true
	attrs := []any{"state", st.State, "from", st.FromVersion, "to", st.ToVersion, "digest", st.Digest, "attempt", st.Attempt}
	if st.Reason != "" {
		attrs = append(attrs, "reason", st.Reason)
	}
	if st.NextRetryAt != nil {
		attrs = append(attrs, "next_retry_at", st.NextRetryAt.Format(time.RFC3339))
	}
	outcome := st.State.Failure() || st.State == handoff.StateSucceeded
	switch {
	case outcome && !outcomeOf(st).equal(w.reported):
		if st.State.Failure() {
			a.log.Error("update not installed", attrs...) // reaches Sentry
		} else {
			a.log.Info("update installed", attrs...)
		}
		a.metrics.UpdateEvents.WithLabelValues(string(st.State)).Inc()
		w.markReported(outcomeOf(st))
	default:
		a.log.Info("updater status", attrs...)
	}
	// Last, so that a reader who sees the new state also sees the report.
	a.metrics.UpdateState.Reset()
	a.metrics.UpdateState.WithLabelValues(string(st.State), st.ToVersion).Set(1)
}

// markReported remembers o in memory and on disk. If the disk refuses, the
// outcome is still not reported again by this process; only a restart
// before the disk recovers could repeat it.
func (w *updateWatcher) markReported(o reportedOutcome) {
	w.reported = o
	if err := atomicfile.WriteJSON(filepath.Join(w.a.cfg.DataDir, reportedFile), o, 0o644); err != nil {
		w.a.report("update_status_reported", "cannot record which update outcome was reported; it may be reported again after a restart", err)
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
		if !a.scheduledRunFits() {
			continue
		}
		a.requestRun(requestFor(nil), "schedule")
	}
}
