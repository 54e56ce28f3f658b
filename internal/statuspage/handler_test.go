package statuspage

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/netcheck"
	"github.com/radarpod/radarpod/internal/speedtest"
)

// historyPod is a Pod whose history is a data dir's files, read as the
// agent reads them at start.
type historyPod struct {
	snap    agent.Snapshot
	entries []agent.ResultEntry
}

func (p *historyPod) Snapshot() agent.Snapshot           { return p.snap }
func (p *historyPod) RecentResults() []agent.ResultEntry { return p.entries }

func loadPod(t *testing.T, dir string, now time.Time) *historyPod {
	t.Helper()
	p := &historyPod{snap: agent.Snapshot{PodName: "library", PodID: 42, ServerURL: "https://radar.example.org",
		ChannelUp: true, LastHeartbeat: now.Add(-10 * time.Second)}}
	err := agent.ReadHistory(dir, now.Add(-agent.RecentWindow), func(e agent.ResultEntry) error {
		p.entries = append(p.entries, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPageOfAFixtureHistory renders the page of 35 days of history with
// every section filled, and checks what needs no browser: the size bound,
// the 50 rows, no secret, and no URL the page would fetch from elsewhere.
func TestPageOfAFixtureHistory(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC()
	writeFixture(t, dir, now)
	pod := loadPod(t, dir, now)
	pod.snap.OutboxRecords, pod.snap.OldestUndelivered = 2, now.Add(-3*time.Hour)
	pod.snap.NetCheck = &netcheck.Report{Started: now.Add(-time.Hour), Rows: []netcheck.RowResult{
		{ID: "pods", Service: "Radar pods service", Required: true, Verdict: netcheck.Pass, Duration: 80 * time.Millisecond,
			Probes: []netcheck.ProbeResult{{Target: "radar.example.org:443", OK: true}}},
		{ID: "ookla", Service: "Ookla servers", Required: false, Verdict: netcheck.Fail, Step: "tcp", Hint: "port 8080 blocked or filtered (timeout)"},
	}}
	if err := handoff.WriteStatus(dir, handoff.Status{State: handoff.StateRefused, ToVersion: "9.9.9", Reason: "signature not trusted", UpdatedAt: now.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	s := New(Options{Pod: pod, DataDir: dir, Token: "s3cret-token-value",
		RunTest: func(context.Context, func(speedtest.Progress)) error { return nil },
		Budget: func() (Budget, bool) {
			return Budget{Limit: 50e9, Used: 12.5e9, PeriodStart: now.AddDate(0, 0, -3), PeriodEnd: now.AddDate(0, 1, -3)}, true
		},
	})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET / = %s\n%s", resp.Status, page)
	}
	t.Logf("page: %d bytes", len(body))
	if len(body) > 100<<10 {
		t.Errorf("page is %d bytes, over 100 KiB", len(body))
	}
	if n := strings.Count(page, "<tr") - 1 - len(pod.snap.NetCheck.Rows) - 1; n != tableRows {
		t.Errorf("%d result rows, want %d", n, tableRows)
	}
	for _, want := range []string{"library", "Pod ID", "42", "Connected", "2, the oldest measured 3 hours ago", "Refused a new version (version 9.9.9)",
		"signature not trusted", "port 8080 blocked or filtered (timeout)", "12.5 GB of 50.0 GB (25%)", `name="token"`, "Ookla on wlan0", "Failed (timeout)"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page does not show %q", want)
		}
	}
	if strings.Contains(page, "s3cret-token-value") {
		t.Error("the page shows RADAR_STATUS_TOKEN")
	}
	// Every URL in the page stays on the pod: relative, data:, or none.
	for _, m := range regexp.MustCompile(`(?:src|href|action)="([^"]*)"|url\(([^)]*)\)`).FindAllStringSubmatch(page, -1) {
		u := m[1] + m[2]
		if u != "" && !strings.HasPrefix(u, "/") && !strings.HasPrefix(u, "data:") && !strings.HasPrefix(u, "#") {
			t.Errorf("the page refers to %q", u)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
}

// TestTestButtonChecks: the button runs a test only for a request of the
// page itself (CSRF token, Origin, Sec-Fetch-Site) and, without
// RADAR_STATUS_TOKEN, only for a page opened on the pod: addressed to
// localhost and sent from loopback or the container's gateway (the engine's
// proxy of the port compose publishes on the host's loopback); with the
// token, only with it.
func TestTestButtonChecks(t *testing.T) {
	const (
		pod     = "127.0.0.1:41000"  // a browser on the pod, agent outside a container
		gateway = "172.18.0.1:41000" // the engine's proxy: a browser on the pod, agent in a container
		lan     = "192.168.1.50:41000"
	)
	csrf := url.Values{"csrf": {"CSRF"}}
	for _, tc := range []struct {
		name    string
		token   string
		host    string
		remote  string
		form    url.Values
		headers map[string]string
		want    int
	}{
		{"page on the pod", "", "localhost:9100", pod, csrf, map[string]string{"Origin": "http://localhost:9100", "Sec-Fetch-Site": "same-origin"}, http.StatusSeeOther},
		{"page on the pod through the published port", "", "localhost:9100", gateway, csrf, map[string]string{"Origin": "http://localhost:9100", "Sec-Fetch-Site": "same-origin"}, http.StatusSeeOther},
		{"loopback address, no browser headers", "", "127.0.0.1:9100", pod, csrf, nil, http.StatusSeeOther},
		{"ipv6 loopback", "", "[::1]:9100", "[::1]:41000", csrf, nil, http.StatusSeeOther},
		{"ipv4-mapped loopback sender", "", "localhost:9100", "[::ffff:127.0.0.1]:41000", csrf, nil, http.StatusSeeOther},
		{"no csrf token", "", "localhost:9100", pod, url.Values{}, nil, http.StatusForbidden},
		{"wrong csrf token", "", "localhost:9100", pod, url.Values{"csrf": {"CSRG"}}, nil, http.StatusForbidden},
		{"another site's form", "", "localhost:9100", pod, csrf, map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
		{"cross-site fetch", "", "localhost:9100", pod, csrf, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"DNS rebinding (foreign Host)", "", "rebind.example:9100", pod, csrf, map[string]string{"Origin": "http://rebind.example:9100"}, http.StatusForbidden},
		{"LAN without a token", "", "192.168.1.20:9100", lan, csrf, nil, http.StatusForbidden},
		{"LAN naming localhost in Host", "", "localhost:9100", lan, csrf, nil, http.StatusForbidden},
		{"another container naming localhost", "", "localhost:9100", "172.18.0.3:41000", csrf, nil, http.StatusForbidden},
		{"LAN with the token", "tok-123456", "192.168.1.20:9100", lan, url.Values{"csrf": {"CSRF"}, "token": {"tok-123456"}}, map[string]string{"Origin": "http://192.168.1.20:9100"}, http.StatusSeeOther},
		{"LAN with a wrong token", "tok-123456", "192.168.1.20:9100", lan, url.Values{"csrf": {"CSRF"}, "token": {"tok-123457"}}, nil, http.StatusForbidden},
		{"token set, none given, even on the pod", "tok-123456", "localhost:9100", pod, csrf, nil, http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var runs atomic.Int32
			release := make(chan struct{})
			s := New(Options{Pod: &historyPod{}, DataDir: t.TempDir(), Token: tc.token,
				LocalPeer: func(a netip.Addr) bool { return a == netip.MustParseAddr("172.18.0.1") },
				RunTest: func(ctx context.Context, progress func(speedtest.Progress)) error {
					runs.Add(1)
					<-release
					return nil
				}})
			defer close(release)
			form := url.Values{}
			for k, v := range tc.form {
				if k == "csrf" && v[0] == "CSRF" {
					v = []string{s.csrf}
				}
				form[k] = v
			}
			req := httptest.NewRequest("POST", "/test", strings.NewReader(form.Encode()))
			req.Host = tc.host
			req.RemoteAddr = tc.remote
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("POST /test = %d (%s), want %d", rec.Code, strings.TrimSpace(rec.Body.String()), tc.want)
			}
			started := tc.want == http.StatusSeeOther
			if started {
				waitUntil(t, func() bool { return runs.Load() == 1 })
			}
			// A second press while the test runs starts nothing more.
			rec = httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req.Clone(context.Background()))
			if started {
				var v RunView
				get := httptest.NewRecorder()
				s.Handler().ServeHTTP(get, httptest.NewRequest("GET", "/test/progress", nil))
				if err := json.Unmarshal(get.Body.Bytes(), &v); err != nil || v.State != "running" {
					t.Errorf("progress %s (%v), want running", get.Body.String(), err)
				}
			}
			if got := runs.Load(); (got == 1) != started || got > 1 {
				t.Errorf("%d tests run", got)
			}
		})
	}
}

// TestPageOffersTheButtonOnlyWhereItWorks: the page offers the button
// where a press would be allowed and says why not elsewhere, by the same
// rule as the press (a forged Host from the LAN gets the read-only page).
func TestPageOffersTheButtonOnlyWhereItWorks(t *testing.T) {
	for _, tc := range []struct {
		name, token, host, remote string
		button                    bool
	}{
		{"on the pod", "", "localhost:9100", "127.0.0.1:41000", true},
		{"through the published port", "", "localhost:9100", "172.18.0.1:41000", true},
		{"from the LAN", "", "192.168.1.20:9100", "192.168.1.50:41000", false},
		{"from the LAN naming localhost", "", "localhost:9100", "192.168.1.50:41000", false},
		{"from the LAN with a token set", "tok-123456", "192.168.1.20:9100", "192.168.1.50:41000", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Options{Pod: &historyPod{}, DataDir: t.TempDir(), Token: tc.token,
				LocalPeer: func(a netip.Addr) bool { return a == netip.MustParseAddr("172.18.0.1") },
				RunTest:   func(context.Context, func(speedtest.Progress)) error { return nil }})
			req := httptest.NewRequest("GET", "/", nil)
			req.Host, req.RemoteAddr = tc.host, tc.remote
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, req)
			page := rec.Body.String()
			if rec.Code != http.StatusOK {
				t.Fatalf("GET / = %d", rec.Code)
			}
			if got := strings.Contains(page, `id="run-button"`); got != tc.button {
				t.Errorf("button offered: %v, want %v", got, tc.button)
			}
			if note := strings.Contains(page, "set RADAR_STATUS_TOKEN on the pod"); note == tc.button {
				t.Errorf("read-only note shown: %v, want %v", note, !tc.button)
			}
		})
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUpdateStatusNotFollowedThroughALink: a status file planted as a
// link (the updater's side of the volume is not the page's to trust) is
// reported, not read.
func TestUpdateStatusNotFollowedThroughALink(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(t.TempDir(), "secret.json")
	if err := os.WriteFile(secret, []byte(`{"state":"succeeded","reason":"read through a link"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, handoff.StatusFile)); err != nil {
		t.Fatal(err)
	}
	s := New(Options{Pod: &historyPod{}, DataDir: dir})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if page := rec.Body.String(); strings.Contains(page, "read through a link") || !strings.Contains(page, "not followed") {
		t.Errorf("update section of a linked status file:\n%s", page)
	}
}

// TestPageOfANewStandalonePod: a pod with nothing measured yet says so in
// every section rather than showing empty tables.
func TestPageOfANewStandalonePod(t *testing.T) {
	s := New(Options{Pod: &historyPod{snap: agent.Snapshot{Standalone: true}}, DataDir: t.TempDir()})
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	page := rec.Body.String()
	if rec.Code != http.StatusOK {
		t.Fatalf("GET / = %d", rec.Code)
	}
	for want, n := range map[string]int{
		"Standalone":                     1,
		"No successful test yet":         1,
		"No results yet":                 1,
		"No results in this period yet":  6,
		"Not available on this pod":      1, // no RunTest: no button
		"no update has been handled yet": 1,
		"no result yet":                  1,
	} {
		if got := strings.Count(page, want); got < n {
			t.Errorf("%q appears %d times, want %d", want, got, n)
		}
	}
	if strings.Contains(page, "<polyline") || strings.Contains(page, `id="run-form"`) {
		t.Error("an empty pod's page draws lines or offers the button")
	}
}
