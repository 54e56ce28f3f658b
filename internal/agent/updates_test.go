package agent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/netcheck"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/sentrytest"
	"github.com/radarpod/radarpod/internal/telemetry"
)

// watcherPod is a standalone agent whose logs go to a buffer and whose
// errors go to a loopback Sentry, for watching the updater's status file.
type watcherPod struct {
	metrics *telemetry.Metrics
	sentry  *telemetry.Sentry
	logs    *proctest.LogBuffer
	stop    func()
}

func startWatcherPod(t *testing.T, dir, dsn string) *watcherPod {
	t.Helper()
	cfg, err := config.LoadAgent(map[string]string{
		"RADAR_DATA_DIR": dir, "RADAR_SERVER_URL": "", "RADAR_LISTEN_ADDR": "", "RADAR_TESTS": "ndt7", "RADAR_TESTS_PER_DAY": "0.01",
	})
	if err != nil {
		t.Fatal(err)
	}
	p := &watcherPod{metrics: telemetry.NewMetrics(), logs: &proctest.LogBuffer{}}
	proc, err := telemetry.Setup(p.logs, telemetry.ProcessOptions{Component: "radar-agent", DSN: dsn, Format: "text"})
	if err != nil {
		t.Fatal(err)
	}
	p.sentry = proc.Sentry
	a, err := agent.New(agent.Options{
		Config: cfg, Log: proc.Log, Metrics: p.metrics, Sentry: proc.Sentry,
		NetCheck: func(context.Context) netcheck.Report { return netcheck.Report{Started: time.Now()} },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	stopped := false
	p.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent Run: %v", err)
		}
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("agent log:\n%s", p.logs.String())
		}
	})
	return p
}

// seen waits until the agent has taken in a status with this state: the
// gauge is set last in a poll, after the outcome was logged (and so queued
// for Sentry) and counted. Sentry is flushed, so what was reported arrived.
func (p *watcherPod) seen(t *testing.T, st handoff.State, version string) {
	t.Helper()
	waitFor(t, "the agent to take in the "+string(st)+" status", func() bool {
		return p.metrics.UpdateState.WithLabelValues(string(st), version).Value() == 1
	})
	p.sentry.Flush(10 * time.Second)
}

func (p *watcherPod) events(st handoff.State) float64 {
	return p.metrics.UpdateEvents.WithLabelValues(string(st)).Value()
}

func writeStatus(t *testing.T, dir string, s handoff.Status) {
	t.Helper()
	if err := handoff.WriteStatus(dir, s); err != nil {
		t.Fatal(err)
	}
}

func notInstalledEvents(srv *sentrytest.Server) int {
	n := 0
	for _, e := range srv.Events() {
		if strings.Contains(string(e.Raw), "update not installed") {
			n++
		}
	}
	return n
}

// A rollback restarts the old agent before the updater writes
// "rolled_back", so the agent often meets the failure on its first read
// after a start. It must still be reported — logged, counted, sent to
// Sentry — and exactly once: not again by the next agent process on the
// same data volume, while a later failure is reported in its turn.
func TestUpdateFailureIsReportedOnceAcrossRestarts(t *testing.T) {
	srv := sentrytest.Start(t, "0123456789abcdef0123456789abcdef")
	dir := t.TempDir()
	rolledBack := handoff.Status{State: handoff.StateRolledBack, FromVersion: "1.0.0", ToVersion: "2.0.0",
		Reason: "wait_healthy: container not healthy (unhealthy after 31s)", Attempt: 1, UpdatedAt: time.Now().UTC()}
	writeStatus(t, dir, rolledBack)

	first := startWatcherPod(t, dir, srv.DSN)
	first.seen(t, handoff.StateRolledBack, "2.0.0")
	if n := first.events(handoff.StateRolledBack); n != 1 {
		t.Errorf("rolled_back counted %v times, want 1", n)
	}
	if !strings.Contains(first.logs.String(), "update not installed") || !strings.Contains(first.logs.String(), "container not healthy") {
		t.Errorf("rollback not logged with its reason:\n%s", first.logs.String())
	}
	if n := len(srv.WaitEvents(1, time.Minute)); n != 1 || notInstalledEvents(srv) != 1 {
		t.Fatalf("Sentry events after the first agent: %d, want the one rollback", n)
	}
	first.stop()

	// The same status, read by the next agent process: old news.
	second := startWatcherPod(t, dir, srv.DSN)
	second.seen(t, handoff.StateRolledBack, "2.0.0")
	if n := second.events(handoff.StateRolledBack); n != 0 {
		t.Errorf("the restarted agent counted the old rollback again (%v)", n)
	}
	if got := notInstalledEvents(srv); got != 1 {
		t.Errorf("the restarted agent reported the old rollback to Sentry again (%d events)", got)
	}

	// A new failure is reported by the running agent, once.
	refused := handoff.Status{State: handoff.StateRefused, FromVersion: "1.0.0", ToVersion: "2.0.0",
		Reason: "revoked: signer 1f revoked", Attempt: 2, UpdatedAt: time.Now().UTC().Add(time.Second)}
	writeStatus(t, dir, refused)
	second.seen(t, handoff.StateRefused, "2.0.0")
	if n := second.events(handoff.StateRefused); n != 1 {
		t.Errorf("refused counted %v times, want 1", n)
	}
	srv.WaitEvents(2, time.Minute)
	if got := notInstalledEvents(srv); got != 2 {
		t.Errorf("Sentry has %d failure events, want 2 (the rollback, the refusal)", got)
	}
}
