package agent

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/netcheck"
	"github.com/radarpod/radarpod/internal/netif"
	"github.com/radarpod/radarpod/internal/outbox"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/radar"
	"github.com/radarpod/radarpod/internal/radartest"
	"github.com/radarpod/radarpod/internal/sentrytest"
	"github.com/radarpod/radarpod/internal/speedtest"
	"github.com/radarpod/radarpod/internal/telemetry"
)

// serviceRig is an agent built by New against a radartest service, with a
// loopback Sentry, for tests that need to reach into the package.
type serviceRig struct {
	a      *Agent
	srv    *radartest.Server
	sentry *sentrytest.Server
	logs   *proctest.LogBuffer
}

func newServiceRig(t *testing.T, env map[string]string, setup func(*radartest.Server)) *serviceRig {
	t.Helper()
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	if setup != nil {
		setup(srv)
	}
	full := map[string]string{
		"RADAR_SERVER_URL": srv.URL, "RADAR_DATA_DIR": t.TempDir(), "RADAR_LISTEN_ADDR": "",
		"RADAR_PING_INTERVAL": "1s", "RADAR_RECONNECT_MAX": "2s", "RADAR_TESTS": "ookla",
	}
	for k, v := range env {
		full[k] = v
	}
	cfg, err := config.LoadAgent(full)
	if err != nil {
		t.Fatal(err)
	}
	st := sentrytest.Start(t, "rigpublickey0001")
	logs := &proctest.LogBuffer{}
	proc, err := telemetry.Setup(logs, telemetry.ProcessOptions{Component: "radar-agent", DSN: st.DSN, Level: slog.LevelDebug, Format: "text"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{
		Config: cfg, Log: proc.Log, Sentry: proc.Sentry, Redactor: proc.Redactor,
		Runners:    []Runner{}, // nothing runs tests here
		Interfaces: func() ([]netif.Interface, error) { return nil, nil },
		HTTPClient: srv.HTTPClient(), Dialer: srv.Dialer(),
		NetCheck: func(context.Context) netcheck.Report { return netcheck.Report{Started: time.Now()} },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	})
	return &serviceRig{a: a, srv: srv, sentry: st, logs: logs}
}

// run runs the agent until the test ends.
func (r *serviceRig) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(wait):
			t.Error("agent did not stop")
		}
	})
}

func (r *serviceRig) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := r.srv.Wait(ctx, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// ooklaRecord is a minimal Ookla result the service parses.
func ooklaRecord(id string) outbox.Record {
	return outbox.Record{Runner: "ookla", Style: radar.StyleOokla, Result: fmt.Appendf(nil,
		`{"type":"result","timestamp":"2024-05-01T10:00:00Z","ping":{"jitter":0.7,"latency":13.4},`+
			`"download":{"bandwidth":50357709,"bytes":529086852,"elapsed":10616},"upload":{"bandwidth":5899553,"bytes":44203740,"elapsed":7708},`+
			`"packetLoss":0,"result":{"id":%q}}`, id)}
}

// pauseCall is one backoff wait of the uploader.
type pauseCall struct {
	d        time.Duration
	wakeable bool
}

// TestRefusedUploadPacing drives the uploader through one refused upload
// per case against the service double, with the live channel down so the
// status heartbeat answers — and wakes the uploader — every second, as on
// a pod whose channel is blocked.
//
// A refusal (bad credentials, a rejected request) keeps the result in the
// outbox, is reported to Sentry, and is retried at the slow pace, which no
// wake-up cuts short: the refused upload is retried once, after the pause,
// when the service accepts again. An outage (503) is retried at the fast
// pace, and a wake-up — the service is back — does cut that short.
//
// The uploader's pause is replaced by one that ends only when the test
// releases it or, if the agent allows it, on a wake-up: so "no wake-up ends
// a slow pause" is a recorded decision, not a race against the clock.
func TestRefusedUploadPacing(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		class    radar.Class
		slow     bool
		reported string // message of the Sentry event; "" = not reported
	}{
		{"403 credentials", 403, radar.ClassAuth, true, "upload refused: the service rejects this pod's credentials"},
		{"404 wrong client_secret", 404, radar.ClassAuth, true, "upload refused: the service rejects this pod's credentials"},
		{"422 rejected request", 422, radar.ClassRejected, true, "upload rejected by the service"},
		{"503 outage", 503, radar.ClassServer, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var refusing atomic.Bool
			refusing.Store(true)
			r := newServiceRig(t, nil, func(srv *radartest.Server) {
				srv.SetChannelDown(true)
				srv.SetResponder(radartest.EndpointUpload, func(int) radartest.Reply {
					if refusing.Load() {
						return radartest.Reply{Status: tt.status}
					}
					return radartest.Reply{}
				})
			})
			if _, err := r.a.outbox.Put(ooklaRecord("00000000-0000-4000-8000-000000000001")); err != nil {
				t.Fatal(err)
			}
			pauses := make(chan pauseCall, 16)
			release := make(chan struct{})
			r.a.pause = func(ctx context.Context, d time.Duration, wake <-chan struct{}) {
				select {
				case pauses <- pauseCall{d: d, wakeable: wake != nil}:
				default: // the test reads the first few
				}
				select {
				case <-ctx.Done():
				case <-wake: // nil for a pause no wake-up may end
				case <-release:
				}
			}
			r.run(t)

			var first pauseCall
			select {
			case first = <-pauses:
			case <-time.After(wait):
				t.Fatal("the uploader never paused after the refusal")
			}
			attempts := r.srv.UploadAttempts()
			if len(attempts) != 1 || attempts[0].Status != tt.status {
				t.Fatalf("attempts before the pause: %+v", attempts)
			}
			if got := r.a.outbox.Stats().Records; got != 1 {
				t.Fatalf("%d records in the outbox after the refusal, want the result kept", got)
			}
			if got := r.a.metrics.Uploads.WithLabelValues(string(tt.class)).Value(); got != 1 {
				t.Errorf("uploads{result=%s} = %v, want 1", tt.class, got)
			}
			if first.wakeable == tt.slow {
				t.Fatalf("pause after %d: wakeable=%v, want %v", tt.status, first.wakeable, !tt.slow)
			}
			if tt.slow {
				if min := time.Duration(float64(authPacing.Initial) * (1 - authPacing.Jitter)); first.d < min {
					t.Errorf("pause after %d is %v, want the slow pace (at least %v)", tt.status, first.d, min)
				}
			} else if first.d > retryPacing.Initial*2 {
				t.Errorf("pause after a 503 is %v, want the fast pace", first.d)
			}

			// Two heartbeats answered while the uploader waits: the second is
			// only sent once the first has returned and woken the uploader.
			calls := len(r.srv.StatusCalls())
			r.waitFor(t, "two status answers during the pause", func() bool { return len(r.srv.StatusCalls()) >= calls+2 })

			if tt.slow {
				// Nothing has read the wake-up: it is still pending, and the
				// refused result was not sent again.
				if len(r.a.kickUp) != 1 {
					t.Errorf("wake-up consumed during a slow pause")
				}
				if n := len(r.srv.UploadAttempts()); n != 1 {
					t.Errorf("%d upload attempts during the slow pause, want the one refused", n)
				}
				if !sentReport(r.a.sentry, r.sentry, tt.reported) {
					t.Errorf("no Sentry event reports %q", tt.reported)
				}
				refusing.Store(false)
				close(release) // the slow pace has passed
			} else {
				// Only a wake-up can end this pause: the test never releases it.
				refusing.Store(false)
			}

			ms := waitMeasurementsRig(t, r.srv, 1)
			if ms[0].Ookla == nil || ms[0].Ookla.ResultID != "00000000-0000-4000-8000-000000000001" {
				t.Fatalf("delivered %+v", ms[0])
			}
			r.waitFor(t, "the outbox to drain", func() bool { return r.a.outbox.Stats().Records == 0 })
			if n := len(r.srv.UploadAttempts()); tt.slow && n != 2 {
				t.Errorf("%d upload attempts, want the refused one and one after the slow pause", n)
			}
			if got := r.a.metrics.Uploads.WithLabelValues("ok").Value(); got != 1 {
				t.Errorf("uploads{result=ok} = %v, want 1", got)
			}
		})
	}
}

func waitMeasurementsRig(t *testing.T, srv *radartest.Server, n int) []radartest.Measurement {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ms, err := srv.WaitMeasurements(ctx, n)
	if err != nil {
		t.Fatalf("waiting for %d measurements: %v", n, err)
	}
	return ms
}

// TestPendingResultsHoldBackTheServicesTestRequest proves the status
// fallback's rule for test_requested: the service keeps the flag set until
// an upload arrives, so while a run is in progress or its results wait in
// the outbox the flag is the request already being answered; only with
// both done is it a new request.
func TestPendingResultsHoldBackTheServicesTestRequest(t *testing.T) {
	tests := []struct {
		name    string
		pending int  // results waiting in the outbox
		running bool // a run in progress
		wantRun bool
	}{
		{"results waiting for upload", 1, false, false},
		{"a run in progress", 0, true, false},
		{"both", 2, true, false},
		{"nothing pending", 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := radartest.Start(t, radartest.Options{})
			client := radar.NewClient(srv.URL, srv.HTTPClient())
			id, err := client.Register(t.Context(), radar.RegisterRequest{})
			if err != nil {
				t.Fatal(err)
			}
			srv.SetPendingTest(true)
			a := uploadTestAgent(t, fillOutbox(t, tt.pending), client)
			a.interfaces = func() ([]netif.Interface, error) { return nil, nil }
			a.queue, a.events = newRunQueue(), make(chan serviceEvent, 4)
			if tt.running {
				a.queue.add(requestFor(nil))
				a.queue.take()
			}
			a.statusOnce(t.Context(), id)
			// statusOnce hands events over before it returns.
			if calls := srv.StatusCalls(); len(calls) != 1 || !srv.PendingTest() {
				t.Fatalf("status calls %d, pending test %v: the service did not ask for a test", len(calls), srv.PendingTest())
			}
			var runs int
			for len(a.events) > 0 {
				if ev := <-a.events; ev.Kind == radar.RunTest && ev.source == "status" {
					runs++
				}
			}
			if ran := runs == 1; ran != tt.wantRun || runs > 1 {
				t.Fatalf("%d runs requested, want run=%v", runs, tt.wantRun)
			}
		})
	}
}

// fixedRunner returns the same successful result every time.
type fixedRunner struct{}

func (fixedRunner) Name() string { return "ookla" }

func (fixedRunner) Run(context.Context, speedtest.Target) (speedtest.Result, error) {
	now := time.Now()
	return speedtest.Result{Runner: "ookla", Style: radar.StyleOokla, StartedAt: now, FinishedAt: now,
		Raw: ooklaRecord("00000000-0000-4000-8000-000000000002").Result, Summary: speedtest.Summary{DownloadMbps: 402.86}}, nil
}

// TestStandaloneRotationLossIsCountedAndReported: in standalone mode
// results.jsonl is the only copy of the results, so entries its rotation
// deletes show in the metric and reach the log and Sentry, never silently.
func TestStandaloneRotationLossIsCountedAndReported(t *testing.T) {
	dir := t.TempDir()
	cfg, err := config.LoadAgent(map[string]string{"RADAR_SERVER_URL": "", "RADAR_DATA_DIR": dir, "RADAR_LISTEN_ADDR": "", "RADAR_TESTS": "ookla"})
	if err != nil {
		t.Fatal(err)
	}
	st := sentrytest.Start(t, "rigpublickey0002")
	logs := &proctest.LogBuffer{}
	proc, err := telemetry.Setup(logs, telemetry.ProcessOptions{Component: "radar-agent", DSN: st.DSN, Format: "text"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{Config: cfg, Log: proc.Log, Sentry: proc.Sentry, Redactor: proc.Redactor, Runners: []Runner{fixedRunner{}},
		Interfaces: func() ([]netif.Interface, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
	// Each entry carries its raw result (~400 bytes): a few per generation.
	a.results.max = 1500
	const n = 9
	for range n {
		a.runTests(t.Context(), newTestRun(requestFor(nil)))
	}
	kept := len(readResultFile(t, filepath.Join(dir, ResultsFile))) + len(readResultFile(t, filepath.Join(dir, ResultsFile+rotatedSuffix)))
	dropped := a.metrics.ResultsDropped.Value()
	if dropped == 0 || int(dropped)+kept != n {
		t.Fatalf("radar_results_dropped_total = %v with %d entries kept, want the %d runs accounted for", dropped, kept, n)
	}
	if !strings.Contains(logs.String(), "results.jsonl rotated: its oldest copy was deleted") || !strings.Contains(logs.String(), "dropped_entries=") {
		t.Errorf("the loss was not logged:\n%s", logs.String())
	}
	if !sentReport(proc.Sentry, st, "oldest copy was deleted") {
		t.Fatal("the loss did not reach Sentry")
	}
}

// sentReport flushes the client and reports whether an event received by
// the loopback Sentry contains msg. The report is made before the caller
// looks: only delivery can be pending.
func sentReport(client *telemetry.Sentry, st *sentrytest.Server, msg string) bool {
	client.Flush(wait)
	for _, ev := range st.Events() {
		if strings.Contains(string(ev.Raw), msg) {
			return true
		}
	}
	return false
}
