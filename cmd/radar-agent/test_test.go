//go:build linux && cgo

package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/localapi"
	"github.com/radarpod/radarpod/internal/ndt7test"
	"github.com/radarpod/radarpod/internal/netcheck"
	"github.com/radarpod/radarpod/internal/ooklatest"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/radartest"
	"github.com/radarpod/radarpod/internal/speedtest"
	"github.com/radarpod/radarpod/internal/speedtest/ndt7"
	"github.com/radarpod/radarpod/internal/speedtest/ookla"
	"github.com/radarpod/radarpod/internal/telemetry"
)

// testPod is an agent running in this process against the service double,
// serving its local endpoint (localEndpoint, as runAgent mounts it) on a
// loopback port; env is the environment a `radar-agent test` beside it has.
type testPod struct {
	env  map[string]string
	srv  *radartest.Server
	logs *proctest.LogBuffer
}

// startTestPod starts the agent with runners (ndt7 shortened so a test
// takes seconds) and env on top of the defaults.
func startTestPod(t *testing.T, env map[string]string, runners []agent.Runner) *testPod {
	t.Helper()
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	p := &testPod{srv: srv, logs: &proctest.LogBuffer{}, env: map[string]string{
		"RADAR_SERVER_URL": srv.URL, "RADAR_DATA_DIR": t.TempDir(), "RADAR_LISTEN_ADDR": proctest.FreeAddr(t),
	}}
	for k, v := range env {
		p.env[k] = v
	}
	cfg, err := config.LoadAgent(p.env)
	if err != nil {
		t.Fatal(err)
	}
	log := telemetry.NewLogger(p.logs, telemetry.LogOptions{Level: slog.LevelDebug, Format: "json"})
	metrics := telemetry.NewMetrics()
	a, err := agent.New(agent.Options{
		Config: cfg, Log: log, Metrics: metrics, Runners: runners,
		HTTPClient: srv.HTTPClient(), Dialer: srv.Dialer(),
		NetCheck: func(context.Context) netcheck.Report { return netcheck.Report{Started: time.Now()} },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { a.Run(ctx); done <- struct{}{} }()
	go func() {
		telemetry.Serve(ctx, cfg.ListenAddr, localEndpoint(cfg, a, metrics, log, (&telemetry.Redactor{}).String), log)
		done <- struct{}{}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
		if t.Failed() {
			t.Logf("agent log:\n%s", p.logs.String())
		}
	})
	proctest.WaitFor(t, wait, "the endpoint", func() bool {
		return telemetry.CheckHealth(context.Background(), cfg.ListenAddr) == nil
	})
	return p
}

func shortNDT7(ndt *ndt7test.Server) *ndt7.Runner {
	return ndt7.New(ndt7.Options{Server: ndt.Addr, Scheme: ndt.Scheme, Params: ndt7test.ShortTestParams(), SubtestDuration: ndt7test.ShortUpload})
}

// jsonEvents splits --format json output into progress events and the
// final event.
func jsonEvents(t *testing.T, stdout string) (progress []speedtest.Progress, last map[string]any) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	for i, line := range lines {
		var head map[string]any
		if err := json.Unmarshal([]byte(line), &head); err != nil {
			t.Fatalf("line %d is not JSON: %q", i+1, line)
		}
		if i == len(lines)-1 {
			return progress, head
		}
		if head["type"] != "progress" {
			t.Fatalf("line %d: %q before the last line, want progress", i+1, line)
		}
		var p speedtest.Progress
		json.Unmarshal([]byte(line), &p)
		progress = append(progress, p)
	}
	return progress, nil
}

func TestTestCommandAgainstARunningAgent(t *testing.T) {
	ndt := ndt7test.Start(t, ndt7test.Options{})
	fake := ooklatest.Install(t, t.TempDir(), ooklatest.ModeResult)
	p := startTestPod(t, nil, []agent.Runner{shortNDT7(ndt), ookla.New(ookla.Options{Bin: fake})})

	// json: live rates of both directions, then the stored result.
	code, stdout, stderr := runTest(p.env, "--runner", "ndt7", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	progress, result := jsonEvents(t, stdout)
	rated := map[speedtest.Phase]int{}
	for _, ev := range progress {
		if ev.Mbps > 0 && ev.Runner == "ndt7" && ev.Server == "127.0.0.1" {
			rated[ev.Phase]++
		}
	}
	if rated[speedtest.PhaseDownload] == 0 || rated[speedtest.PhaseUpload] == 0 {
		t.Errorf("progress %+v: want live download and upload rates", progress)
	}
	var res localapi.Result
	b, _ := json.Marshal(result)
	json.Unmarshal(b, &res)
	if !res.OK || res.Source != localapi.SourceAgent || len(res.Tests) != 1 || res.Tests[0].Runner != "ndt7" ||
		res.Tests[0].OutboxID == "" || res.Tests[0].DownloadMbps == nil || res.Tests[0].Server != "127.0.0.1" {
		t.Fatalf("result %s", b)
	}
	if strings.Contains(stderr, "in this process") {
		t.Errorf("ran in process beside a running agent: %s", stderr)
	}
	ms, err := p.srv.WaitMeasurements(context.Background(), 1)
	if err != nil || ms[0].Style != speedtest.StyleNDT7 {
		t.Fatalf("upload: %v %+v", err, ms)
	}

	// human (not a terminal: plain lines), the Ookla fixture's figures.
	code, stdout, stderr = runTest(p.env, "--runner", "ookla")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"ookla: testing…", "ookla on the default route\n", "server     opstelecom.ravisystems.com.br",
		"download   402.86 Mbit/s", "upload     47.20 Mbit/s", "latency    13.4 ms", "stored     in the outbox for upload",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("human output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "\r") {
		t.Errorf("carriage returns on a pipe:\n%q", stdout)
	}
	if _, err := p.srv.WaitMeasurements(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
}

// TestTestCommandTokenAndCrossSite: with RADAR_STATUS_TOKEN set, the CLI
// needs it in its own environment; a browser's request is refused
// whatever it carries; a runner the agent does not run is bad usage.
func TestTestCommandTokenAndCrossSite(t *testing.T) {
	fake := ooklatest.Install(t, t.TempDir(), ooklatest.ModeResult)
	p := startTestPod(t, map[string]string{"RADAR_STATUS_TOKEN": "tok-local-0123", "RADAR_TESTS": "ookla"}, []agent.Runner{ookla.New(ookla.Options{Bin: fake})})

	without := map[string]string{}
	for k, v := range p.env {
		if k != "RADAR_STATUS_TOKEN" {
			without[k] = v
		}
	}
	code, stdout, stderr := runTest(without, "--runner", "ookla")
	if code != 1 || !strings.Contains(stderr, "unauthorized") || !strings.Contains(stderr, "RADAR_STATUS_TOKEN") {
		t.Fatalf("without the token: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, stdout, stderr = runTest(p.env, "--runner", "ookla"); code != 0 {
		t.Fatalf("with the token: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, stdout, stderr = runTest(p.env, "--runner", "ndt7", "--format", "json"); code != 2 || !strings.Contains(stdout, `"class":"bad_request"`) || !strings.Contains(stdout, "RADAR_TESTS") {
		t.Fatalf("a runner the agent does not run: exit %d\n%s\n%s", code, stdout, stderr)
	}

	for _, h := range []map[string]string{{"Origin": "http://attacker.example"}, {"Sec-Fetch-Site": "cross-site"}} {
		url, _ := telemetry.LocalURL(p.env["RADAR_LISTEN_ADDR"], localapi.Path)
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"runner":"ookla"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer tok-local-0123")
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%v: HTTP %d, want 403", h, resp.StatusCode)
		}
	}
	if n := len(p.srv.Measurements()); n > 1 {
		t.Errorf("%d uploads, want at most the one test that was allowed", n)
	}
}

// TestTestCommandFailureHasClassAndHint: locate unreachable fails the test
// with exit status 1, its class and a hint naming check-network, in both
// formats; the failure is recorded by the agent like any other.
func TestTestCommandFailureHasClassAndHint(t *testing.T) {
	closed := proctest.FreeAddr(t)
	runner := ndt7.New(ndt7.Options{Scheme: "ws", LocateURL: "http://" + closed + "/v2/nearest/"})
	p := startTestPod(t, map[string]string{"RADAR_TESTS": "ndt7"}, []agent.Runner{runner})

	code, stdout, stderr := runTest(p.env)
	if code != 1 || !strings.Contains(stdout, "ndt7 on the default route: FAILED (locate)") || !strings.Contains(stdout, "hint:") || !strings.Contains(stdout, "check-network") {
		t.Fatalf("human: exit %d\n%s\n%s", code, stdout, stderr)
	}
	code, stdout, stderr = runTest(p.env, "--format", "json")
	progress, result := jsonEvents(t, stdout)
	tests, _ := result["tests"].([]any)
	if code != 1 || result["ok"] != false || len(tests) != 1 || len(progress) == 0 || progress[0].Phase != speedtest.PhaseLocate {
		t.Fatalf("json: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if tt := tests[0].(map[string]any); tt["error_class"] != "locate" || !strings.Contains(tt["hint"].(string), "check-network") {
		t.Fatalf("json test %v", tt)
	}
	if b, _ := os.ReadFile(p.env["RADAR_DATA_DIR"] + "/" + agent.ResultsFile); strings.Count(string(b), `"error_class":"locate"`) != 2 {
		t.Errorf("results.jsonl:\n%s\nwant both failures recorded", b)
	}
}

// TestTestCommandInProcess: with no agent listening the CLI runs the test
// itself, with live progress, and stores nothing.
func TestTestCommandInProcess(t *testing.T) {
	ndt := ndt7test.Start(t, ndt7test.Options{})
	dataDir := t.TempDir()
	env := map[string]string{
		"RADAR_SERVER_URL": "", "RADAR_DATA_DIR": dataDir, "RADAR_LISTEN_ADDR": proctest.FreeAddr(t),
		"RADAR_NDT7_SERVER": ndt.Addr, "RADAR_NDT7_SCHEME": "ws", "RADAR_TESTS": "ndt7",
	}
	code, stdout, stderr := runTest(env)
	if code != 0 || !strings.Contains(stderr, "testing in this process; the result is not stored") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"ndt7 download ", " Mbit/s", "ndt7 upload ", "ndt7 on the default route\n", "server     127.0.0.1", "min RTT", "stored     no (tested in this process)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if entries, _ := os.ReadDir(dataDir); len(entries) != 0 {
		t.Errorf("the in-process test stored %v", entries)
	}
}
