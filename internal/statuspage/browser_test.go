//go:build linux && cgo

package statuspage

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/browsertest"
	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/ndt7test"
	"github.com/radarpod/radarpod/internal/netcheck"
	"github.com/radarpod/radarpod/internal/ooklatest"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/radartest"
	"github.com/radarpod/radarpod/internal/speedtest/ndt7"
	"github.com/radarpod/radarpod/internal/speedtest/ookla"
	"github.com/radarpod/radarpod/internal/telemetry"
)

// wait bounds every wait here; generous, the machine is shared.
const wait = 90 * time.Second

// livePod is a real agent, connected to the pods-service double, measuring
// against an in-process ndt-server and the fake Ookla CLI, with its status
// page served on loopback the way cmd/radar-agent mounts it.
type livePod struct {
	agent   *agent.Agent
	service *radartest.Server
	url     string
	logs    *proctest.LogBuffer
}

func startLivePod(t *testing.T, dataDir string) *livePod {
	t.Helper()
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	ndt := ndt7test.Start(t, ndt7test.Options{})
	fakeOokla := ooklatest.Install(t, t.TempDir(), ooklatest.ModeResult)
	cfg, err := config.LoadAgent(map[string]string{
		"RADAR_SERVER_URL": srv.URL, "RADAR_DATA_DIR": dataDir, "RADAR_LISTEN_ADDR": "", "RADAR_PING_INTERVAL": "1s",
		"RADAR_POD_NAME": "Riverside Library",
	})
	if err != nil {
		t.Fatal(err)
	}
	logs := &proctest.LogBuffer{}
	log := telemetry.NewLogger(logs, telemetry.LogOptions{Level: slog.LevelDebug})
	a, err := agent.New(agent.Options{
		Config: cfg, Log: log, HTTPClient: srv.HTTPClient(), Dialer: srv.Dialer(),
		Runners: []agent.Runner{
			ndt7.New(ndt7.Options{Server: ndt.Addr, Scheme: ndt.Scheme, Params: ndt7test.ShortTestParams(), SubtestDuration: ndt7test.ShortUpload}),
			ookla.New(ookla.Options{Bin: fakeOokla}),
		},
		// The check's verdict, without its traffic to the internet.
		NetCheck: func(context.Context) netcheck.Report {
			return netcheck.Report{Started: time.Now(), Duration: 900 * time.Millisecond, Rows: []netcheck.RowResult{
				{ID: "pods", Service: "Radar pods service", Required: true, Verdict: netcheck.Pass, Duration: 120 * time.Millisecond,
					Probes: []netcheck.ProbeResult{{Target: "radar.exactlylabs.com:443", OK: true}}},
				{ID: "locate", Service: "M-Lab locate", Required: true, Verdict: netcheck.Pass, Duration: 95 * time.Millisecond,
					Probes: []netcheck.ProbeResult{{Target: "locate.measurementlab.net:443", OK: true}}},
				{ID: "ookla", Service: "Ookla speedtest servers", Required: false, Verdict: netcheck.Fail, Duration: 5 * time.Second,
					Step: "tcp", Hint: "port 8080 blocked or filtered (timeout)"},
			}}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()

	mux := http.NewServeMux()
	mux.Handle("/", ForAgent(a, cfg, log, func(s string) string { return s }).Handler())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	t.Cleanup(func() {
		hs.Close()
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("the agent did not stop within 15s")
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	})
	return &livePod{agent: a, service: srv, url: "http://" + ln.Addr().String(), logs: logs}
}

// TestStatusPageInABrowser opens the page of a running pod with 35 days
// of fixture history in headless Chromium: the results table and charts
// show the history (the right number of points per series), the button
// runs a real test through the agent's queue — uploaded like any other —
// and its result appears; the page logs no error, asks nothing of any
// origin but the pod's, and weighs at most 100 KB.
func TestStatusPageInABrowser(t *testing.T) {
	b := browsertest.Start(t)
	dir := t.TempDir()
	fx := writeFixture(t, dir, time.Now().UTC())
	pod := startLivePod(t, dir)
	proctest.WaitFor(t, wait, "registered, live channel up", func() bool {
		s := pod.agent.Snapshot()
		return s.ChannelUp && s.PodID != 0 && s.NetCheck != nil
	})
	before := len(pod.agent.RecentResults())

	// The page's weight, as the browser gets it.
	resp, err := http.Get(pod.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	t.Logf("page: %d bytes with %d results in the history", len(body), before)
	if len(body) > 100_000 {
		t.Errorf("the page is %d bytes, over 100 KB", len(body))
	}

	b.Do(t, wait, chromedp.Navigate(pod.url+"/"), chromedp.WaitVisible("#results table"))
	if rows := browsertest.Eval[int](t, b, `document.querySelectorAll("#results tbody tr").length`); rows != tableRows {
		t.Errorf("%d result rows, want %d", rows, tableRows)
	}
	// Every chart: one polyline per series, as many points as results.
	type line struct {
		Range, Metric, Series string
		Points                int
	}
	lines := browsertest.Eval[[]line](t, b, `Array.from(document.querySelectorAll(".range polyline")).map(p => ({
		Range: p.closest(".range").dataset.range, Metric: p.closest(".chartbox").dataset.metric,
		Series: p.dataset.series, Points: p.points.numberOfItems}))`)
	for _, rg := range []string{"7d", "30d"} {
		for _, m := range metrics {
			got := map[string]int{}
			for _, l := range lines {
				if l.Range == rg && l.Metric == m.ID {
					got[l.Series] = l.Points
				}
			}
			if len(got) != len(fx.points[rg]) {
				t.Errorf("%s %s chart: series %v, want %v", rg, m.ID, got, fx.points[rg])
			}
			for series, n := range fx.points[rg] {
				if got[series] != n {
					t.Errorf("%s %s chart: %q has %d points, want %d", rg, m.ID, series, got[series], n)
				}
			}
		}
	}
	legend := browsertest.Eval[[]string](t, b, `Array.from(document.querySelectorAll(".legend li")).map(li => li.textContent)`)
	if !slices.Equal(legend, []string{"NDT7 (M-Lab)", "Ookla", "Ookla on wlan0"}) {
		t.Errorf("legend %q", legend)
	}
	// The 30-day tab switches the charts without a script.
	b.Do(t, wait, chromedp.Click(`label[for="r-30d"]`), chromedp.WaitVisible(".range-30d svg"))
	b.Do(t, wait, chromedp.Click(`label[for="r-7d"]`), chromedp.WaitVisible(".range-7d svg"))
	b.Screenshot(t, "status-page-full.png")
	// docs/status-page.png, shown in the README, is the window's view:
	// RADAR_UPDATE_DOCS=1 refreshes it.
	shot, _ := b.ScreenshotViewport(t, "status-page.png")
	if os.Getenv("RADAR_UPDATE_DOCS") != "" {
		copyFile(t, shot, filepath.Join("..", "..", "docs", "status-page.png"))
	}

	// The button: progress shows, the new results arrive through the
	// queue, the outbox and the upload, and the page lists them.
	browsertest.Eval[bool](t, b, `(() => {
		sessionStorage.setItem("seen", "");
		const box = document.getElementById("run-status");
		new MutationObserver(() => sessionStorage.setItem("seen", sessionStorage.getItem("seen") + "|" + box.className + ": " + box.textContent))
			.observe(box, {attributes: true, childList: true, characterData: true, subtree: true});
		return true;
	})()`)
	b.Do(t, wait, chromedp.Click("#run-button"))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ms, err := pod.service.WaitMeasurements(ctx, 2)
	if err != nil {
		t.Fatalf("the button's test was not uploaded: %v", err)
	}
	if ms[0].Style != "NDT7" || ms[1].Style != "OOKLA" {
		t.Errorf("uploads %s, %s; want NDT7 then OOKLA", ms[0].Style, ms[1].Style)
	}
	b.Do(t, wait, chromedp.WaitVisible("#run-status.done"))
	seen := browsertest.Eval[string](t, b, `sessionStorage.getItem("seen")`)
	if !strings.Contains(seen, "run running") {
		t.Errorf("no progress shown while the test ran: %q", seen)
	}
	if after := len(pod.agent.RecentResults()); after != before+2 {
		t.Errorf("history has %d results, want %d", after, before+2)
	}
	top := browsertest.Eval[[]string](t, b, `Array.from(document.querySelectorAll("#results tbody tr")).slice(0, 2).map(tr => tr.innerText)`)
	for i, want := range []string{"Ookla", "NDT7 (M-Lab)"} {
		if i >= len(top) || !strings.Contains(top[i], "just now") || !strings.Contains(top[i], want) || strings.Contains(top[i], "Failed") {
			t.Errorf("row %d after the test: %q, want a new %s result", i, top, want)
		}
	}
	b.Screenshot(t, "status-page-after-test.png")

	if errs := b.Errors(); len(errs) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(errs, "\n"))
	}
	if foreign := b.ForeignRequests(pod.url); len(foreign) > 0 {
		t.Errorf("requests beyond the pod:\n%s", strings.Join(foreign, "\n"))
	}
	var urls []string
	for _, r := range b.Requests() {
		urls = append(urls, fmt.Sprintf("%s %s %s", r.Method, r.URL, r.Failed))
	}
	t.Logf("requests:\n%s", strings.Join(urls, "\n"))
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("copied to %s", to)
}
