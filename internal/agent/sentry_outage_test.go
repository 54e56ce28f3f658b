package agent

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/atomicfile"
	"github.com/radarpod/radarpod/internal/benchreport"
	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/netcheck"
	"github.com/radarpod/radarpod/internal/netif"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/radartest"
	"github.com/radarpod/radarpod/internal/sentrytest"
	"github.com/radarpod/radarpod/internal/telemetry"
)

var recordSentry = flag.Bool("sentry.record", false, "record the Sentry outage figure in bench/out/sentry.json and bench/results.json")

// sentryOutageCommand reproduces the figure.
const sentryOutageCommand = "make bench-sentry"

// fastClock runs speed times faster than real time from the moment it is
// made: the agent's report pacing and Sentry's limits live a day in
// 24h/speed.
type fastClock struct {
	start time.Time
	real  time.Time
	speed float64
}

func (c *fastClock) now() time.Time {
	return c.start.Add(time.Duration(float64(time.Since(c.real)) * c.speed))
}

// TestSentryOutage24h counts the Sentry events of a pod whose service is
// gone for 24 hours and then comes back: the real agent (registration,
// live channel, status fallback, uploader with ten results queued,
// network check) against the service double, reporting through the real
// logger and Sentry client to a loopback Sentry.
//
// During the outage every HTTP call is hung up on (a network error) and
// every channel upgrade answered 503, and the network check finds the
// pods service unreachable. The agent's own report pacing (the hourly
// throttle, the network check's repeat) and Sentry's limits run on a
// clock 3600 times real time, so the day passes in 24 s; the retries
// themselves keep their real-time pace, which offers Sentry at least as
// many occurrences per simulated hour as the throttle lets through.
func TestSentryOutage24h(t *testing.T) {
	const speed = 3600.0
	outage := 24 * time.Hour
	clock := &fastClock{start: time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC), real: time.Now(), speed: speed}

	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	var down atomic.Bool
	hangup := func(int) radartest.Reply {
		if down.Load() {
			return radartest.Reply{Hangup: true}
		}
		return radartest.Reply{}
	}
	for _, ep := range []radartest.Endpoint{radartest.EndpointRegister, radartest.EndpointStatus, radartest.EndpointUpload} {
		srv.SetResponder(ep, hangup)
	}
	dir := t.TempDir()
	cfg, err := config.LoadAgent(map[string]string{
		"RADAR_SERVER_URL": srv.URL, "RADAR_DATA_DIR": dir, "RADAR_LISTEN_ADDR": "",
		"RADAR_PING_INTERVAL": "1s", "RADAR_RECONNECT_MAX": "2s", "RADAR_TESTS": "ookla",
	})
	if err != nil {
		t.Fatal(err)
	}
	st := sentrytest.Start(t, "outagepublickey1")
	logs := &proctest.LogBuffer{}
	proc, err := telemetry.Setup(logs, telemetry.ProcessOptions{
		Component: "radar-agent", DSN: st.DSN, Level: slog.LevelDebug, Format: "text",
		StateDir: dir, Now: clock.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	pods := netcheck.RowResult{ID: "pods", Service: "Radar pods service", Required: true, Verdict: netcheck.Pass}
	a, err := New(Options{
		Config: cfg, Log: proc.Log, Sentry: proc.Sentry, Redactor: proc.Redactor,
		Runners:    []Runner{},
		Interfaces: func() ([]netif.Interface, error) { return nil, nil },
		HTTPClient: srv.HTTPClient(), Dialer: srv.Dialer(),
		PingTimeout: 5 * time.Second,
		// Ticks every 100 ms real (6 simulated minutes); the check repeats
		// every 30 simulated minutes while the channel is down.
		NetCheckAfter: time.Second,
		NetCheck: func(context.Context) netcheck.Report {
			row := pods
			if down.Load() {
				row.Verdict, row.Step, row.Hint = netcheck.Fail, "tcp", "connection refused"
			}
			return netcheck.Report{Started: time.Now(), Rows: []netcheck.RowResult{row}}
		},
		Now: clock.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	})
	waitUp := func(what string) {
		t.Helper()
		proctest.WaitFor(t, wait, what, a.isChannelUp)
	}
	waitUp("the live channel")

	// The service goes away, with ten results waiting to be uploaded.
	down.Store(true)
	srv.SetChannelDown(true)
	srv.DropConnections()
	for i := range 10 {
		if _, err := a.outbox.Put(ooklaRecord(fmt.Sprintf("00000000-0000-4000-8000-0000000000%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	outageStart := clock.now()
	for clock.now().Sub(outageStart) < outage {
		time.Sleep(100 * time.Millisecond)
	}
	// It comes back: the channel reconnects and the backlog drains.
	down.Store(false)
	srv.SetChannelDown(false)
	waitUp("the live channel after the outage")
	proctest.WaitFor(t, wait, "the backlog to drain", func() bool { return a.outbox.Stats().Records == 0 })
	if n := len(srv.Measurements()); n != 10 {
		t.Errorf("%d results delivered after the outage, want 10", n)
	}
	// An hour (simulated) after the return, for anything reported late.
	time.Sleep(time.Duration(float64(time.Hour) / speed))
	proc.Sentry.Flush(wait)
	events := st.Events()
	stats := proc.Sentry.Stats()
	for _, ev := range events {
		t.Logf("event: %v", ev.JSON["fingerprint"])
	}
	t.Logf("Sentry: %d events sent of %d offered (%d held back) for a %v outage and return", len(events), stats.Offered, stats.Suppressed, outage)
	if stats.Offered < 10 {
		t.Errorf("only %d events offered: the scenario did not exercise the agent's reporting", stats.Offered)
	}
	const target = 5
	if len(events) > target {
		t.Errorf("%d Sentry events for a 24 h outage and return, want at most %d", len(events), target)
	}
	if *recordSentry {
		recordFigure(t, benchreport.Figure{
			Name: "sentry/outage_24h/events", Value: float64(len(events)), Unit: "events", Op: "<=", Target: target,
			Command: sentryOutageCommand,
			Notes: fmt.Sprintf("the agent against radartest, service gone 24 h (HTTP hung up, channel 503, network check failing) with 10 results queued, then back; "+
				"report pacing and Sentry limits on a clock 3600x real; %d error reports offered to Sentry, %d held back by the per-pod limits", stats.Offered, stats.Suppressed),
		})
	}
}

// recordFigure writes the figure to bench/out/sentry.json (what make bench
// merges) and puts it into bench/results.json in place.
func recordFigure(t *testing.T, f benchreport.Figure) {
	root, err := proctest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := benchreport.Write(root, "sentry", []benchreport.Figure{f}); err != nil {
		t.Fatal(err)
	}
	f.Evaluate()
	path := filepath.Join(root, "bench", "results.json")
	var all []benchreport.Figure
	if err := atomicfile.ReadJSON(path, &all); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	kept := all[:0]
	for _, g := range all {
		if g.Name != f.Name {
			kept = append(kept, g)
		}
	}
	all = append(kept, f)
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	if err := atomicfile.WriteJSON(path, all, 0o644); err != nil {
		t.Fatal(err)
	}
}
