package agent_test

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/netcheck"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/radartest"
	"github.com/radarpod/radarpod/internal/speedtest"
	"github.com/radarpod/radarpod/internal/telemetry"
	"github.com/radarpod/radarpod/internal/wallclock"
)

// wait bounds every wait in these tests; generous because the machine is shared.
const wait = 90 * time.Second

// pod is an agent running in-process against real peers.
type pod struct {
	t         *testing.T
	cfg       config.Agent
	agent     *agent.Agent
	metrics   *telemetry.Metrics
	logs      *proctest.LogBuffer
	cancel    context.CancelFunc
	done      chan error
	netChecks atomic.Int32
}

type podOptions struct {
	env     map[string]string
	runners func(cfg config.Agent) []agent.Runner
	server  *radartest.Server
	// netCheckAfter shortens the channel-down delay before a network check.
	netCheckAfter time.Duration
	// netCheck replaces the stub verdict (blockedPods) with a check of the
	// test's choosing; it is handed the pod's configuration.
	netCheck func(context.Context, config.Agent) netcheck.Report
	// uploadTimeout shortens the bound on one upload.
	uploadTimeout time.Duration
	// clock is the pod's wallclock (a Pi's clock in the clock tests).
	clock *wallclock.Clock
	// httpClient, when set, wraps the server's HTTP client; dialer
	// replaces its WebSocket dialer.
	httpClient func(*http.Client) *http.Client
	dialer     *websocket.Dialer
	// redactor, when set, is the agent's redactor.
	redactor *telemetry.Redactor
}

// blockedPods is the verdict the network check reports in the tests that
// are not about it, so they make no traffic beyond their own peers (the
// real check would try M-Lab, Ookla and the registry). The agent's use of a
// real check is TestNetworkCheckAtStartAndWhenTheChannelStaysDown's.
var blockedPods = netcheck.Report{Rows: []netcheck.RowResult{
	{ID: "pods", Service: "Radar pods service", Required: true, Verdict: netcheck.Fail, Step: "tcp", Hint: "port 443 blocked or filtered (timeout)"},
	{ID: "locate", Service: "M-Lab locate", Required: true, Verdict: netcheck.Pass},
}}

func startPod(t *testing.T, o podOptions) *pod {
	t.Helper()
	env := map[string]string{"RADAR_DATA_DIR": t.TempDir(), "RADAR_LISTEN_ADDR": "",
		// The status fallback stays out of the way unless a test sets a
		// short interval: a first status call that beats a slow channel
		// start answers the pending test too, and the sync's run_test then
		// queues a second run the test does not expect.
		"RADAR_PING_INTERVAL": "10m",
		// Reconnect within seconds after a drop (the default spreads a fleet over minutes).
		"RADAR_RECONNECT_MAX": "2s"}
	for k, v := range o.env {
		env[k] = v
	}
	cfg, err := config.LoadAgent(env)
	if err != nil {
		t.Fatal(err)
	}
	p := &pod{t: t, cfg: cfg, metrics: telemetry.NewMetrics(), logs: &proctest.LogBuffer{}, done: make(chan error, 1)}
	opts := agent.Options{
		Config: cfg, Metrics: p.metrics,
		Log: telemetry.NewLogger(p.logs, telemetry.LogOptions{Level: slog.LevelDebug}),
		NetCheck: func(ctx context.Context) netcheck.Report {
			p.netChecks.Add(1)
			if o.netCheck != nil {
				return o.netCheck(ctx, cfg)
			}
			r := blockedPods
			r.Started = time.Now()
			return r
		},
		NetCheckAfter: o.netCheckAfter,
		UploadTimeout: o.uploadTimeout,
		Clock:         o.clock,
		Redactor:      o.redactor,
	}
	if o.runners != nil {
		opts.Runners = o.runners(cfg)
	}
	if o.server != nil {
		opts.HTTPClient, opts.Dialer = o.server.HTTPClient(), o.server.Dialer()
		if o.httpClient != nil {
			opts.HTTPClient = o.httpClient(opts.HTTPClient)
		}
		if o.dialer != nil {
			opts.Dialer = o.dialer
		}
	}
	a, err := agent.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	p.agent = a
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go func() { p.done <- a.Run(ctx) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("agent log:\n%s", p.logs.String())
		}
	})
	return p
}

func (p *pod) stop() {
	p.cancel()
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Errorf("agent Run returned %v", err)
		}
		p.done <- nil
	case <-time.After(10 * time.Second):
		p.t.Errorf("agent did not stop within 10s of cancellation")
	}
}

func (p *pod) results() []agent.ResultEntry {
	f, err := os.Open(filepath.Join(p.cfg.DataDir, agent.ResultsFile))
	if err != nil {
		return nil
	}
	defer f.Close()
	entries, _ := agent.ReadResults(f)
	return entries
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	proctest.WaitFor(t, wait, what, cond)
}

func waitMeasurements(t *testing.T, srv *radartest.Server, n int) []radartest.Measurement {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ms, err := srv.WaitMeasurements(ctx, n)
	if err != nil {
		t.Fatalf("waiting for %d measurements (have %d): %v", n, len(srv.Measurements()), err)
	}
	return ms
}

// gatedRunner holds its first run until released, so requests can be sent
// while a run is provably in progress.
type gatedRunner struct {
	agent.Runner
	once    sync.Once
	started chan struct{}
	release chan struct{}
}

func (g *gatedRunner) Run(ctx context.Context, t speedtest.Target) (speedtest.Result, error) {
	g.once.Do(func() {
		close(g.started)
		<-g.release
	})
	return g.Runner.Run(ctx, t)
}
