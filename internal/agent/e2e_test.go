//go:build linux && cgo

package agent_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/ndt7test"
	"github.com/radarpod/radarpod/internal/netcheck"
	"github.com/radarpod/radarpod/internal/ooklatest"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/radar"
	"github.com/radarpod/radarpod/internal/radartest"
	"github.com/radarpod/radarpod/internal/speedtest/ndt7"
	"github.com/radarpod/radarpod/internal/speedtest/ookla"
)

// shortRunners are the production runners with the ndt7 test shortened by
// the server's early exit, so a run takes seconds instead of 20 s.
func shortRunners(ndt *ndt7test.Server, ooklaBin string) func(config.Agent) []agent.Runner {
	return func(cfg config.Agent) []agent.Runner {
		return []agent.Runner{
			ndt7.New(ndt7.Options{Server: ndt.Addr, Scheme: ndt.Scheme, RootCAs: caPool(ndt), Params: ndt7test.ShortTestParams(), SubtestDuration: ndt7test.ShortUpload}),
			ookla.New(ookla.Options{Bin: ooklaBin}),
		}
	}
}

func caPool(ndt *ndt7test.Server) *x509.CertPool {
	if ndt.CA == nil {
		return nil
	}
	return ndt.CA.Pool
}

// veth creates a real second interface with a TEST-NET address, so a
// per-interface test binds to it for real. Loopback peers accept
// connections from it.
func veth(t *testing.T) (name string, ip net.IP) {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	name, peer := "rp"+hex.EncodeToString(b), "rq"+hex.EncodeToString(b)
	ip = net.IPv4(192, 0, 2, 10+b[0]%200).To4()
	for _, args := range [][]string{
		{"link", "add", name, "type", "veth", "peer", "name", peer},
		{"addr", "add", ip.String() + "/32", "dev", name},
		{"link", "set", name, "up"},
		{"link", "set", peer, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	t.Cleanup(func() { exec.Command("ip", "link", "del", name).Run() })
	return name, ip
}

func TestPodEndToEnd(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	ndt := ndt7test.Start(t, ndt7test.Options{})
	ooklaDir := t.TempDir()
	fake := ooklatest.Install(t, ooklaDir, ooklatest.ModeResult)
	srv.SetPendingTest(true) // transmitted as run_test during sync
	p := startPod(t, podOptions{
		env:     map[string]string{"RADAR_SERVER_URL": srv.URL, "RADAR_REGISTRATION_TOKEN": "tok-e2e-0123", "RADAR_POD_NAME": "library"},
		runners: shortRunners(ndt, fake),
	})

	// register → channel → sync → run_test → two uploads, NDT7 first (RADAR_TESTS order).
	ms := waitMeasurements(t, srv, 2)
	regs := srv.Registrations()
	if len(regs) != 1 || regs[0].Token != "tok-e2e-0123" || regs[0].Name == nil || *regs[0].Name != "library" {
		t.Fatalf("registrations = %+v", regs)
	}
	conns := srv.Connections()
	if len(conns) == 0 || conns[0].ServiceStarted != "true" || conns[0].Status != 101 {
		t.Fatalf("first connection = %+v", conns)
	}
	syncs := srv.Syncs()
	if len(syncs) == 0 || syncs[0].Payload.Version == "" || syncs[0].Payload.RegistrationToken != "tok-e2e-0123" || len(syncs[0].Payload.NetInterfaces) == 0 {
		t.Fatalf("sync = %+v", syncs)
	}
	checkPair(t, ms[0:2], "")

	st, err := os.Stat(filepath.Join(p.cfg.DataDir, radar.IdentityFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("identity file: %v, mode %v", err, st.Mode())
	}

	// A malformed frame is reported and survived; test_requested → two more.
	srv.SendRaw(`{"identifier": garbage`)
	srv.SendRunTest(nil)
	ms = waitMeasurements(t, srv, 4)
	checkPair(t, ms[2:4], "")

	// A test on a named interface binds both runners to its address.
	iface, ip := veth(t)
	srv.SendRunTest([]string{iface})
	ms = waitMeasurements(t, srv, 6)
	checkPair(t, ms[4:6], iface)
	if !bytes.Contains(ms[4].Raw, []byte(ip.String())) {
		t.Errorf("ndt7 result does not show the bound source %s", ip)
	}
	if args := strings.Join(ooklatest.Args(t, ooklaDir), " "); !strings.Contains(args, "--ip="+ip.String()) && !strings.Contains(args, "--ip "+ip.String()) {
		t.Errorf("ookla not bound to %s: %s", ip, args)
	}

	// version_changed → update request for the updater; the binary is never fetched.
	srv.SendVersionChanged("99.1.0", "/client_versions/99.1.0/distributions/linux-arm64/download?signed=true")
	waitFor(t, "update request", func() bool {
		r, ok, _ := handoff.ReadRequest(p.cfg.DataDir)
		return ok && r.Version == "99.1.0" && r.Source == "channel"
	})

	// Every result delivered, none left behind; every test recorded locally and in metrics.
	waitFor(t, "outbox drained", func() bool { return p.metrics.OutboxDepth.Value() == 0 })
	if got := p.metrics.TestsTotal.WithLabelValues("ndt7", "ok").Value(); got != 3 {
		t.Errorf("ndt7 ok tests = %v, want 3", got)
	}
	if got := p.metrics.LastDownload.WithLabelValues("ookla", iface).Value(); got < 400 || got > 405 {
		t.Errorf("last ookla download on %s = %v, want the fixture's 402.86", iface, got)
	}
	if entries := p.results(); len(entries) != 6 || entries[0].OutboxID == "" || entries[0].DownloadMbps == nil {
		t.Errorf("results.jsonl = %+v", entries)
	}
	if !strings.Contains(p.logs.String(), "unrecognised message") {
		t.Error("malformed frame was not reported")
	}
	if len(srv.Registrations()) != 1 {
		t.Errorf("pod registered %d times", len(srv.Registrations()))
	}
	id, _, _ := radar.LoadIdentity(p.cfg.DataDir)
	if strings.Contains(p.logs.String(), id.Secret) || strings.Contains(p.logs.String(), "tok-e2e-0123") {
		t.Error("a secret reached the log")
	}
}

// checkPair asserts an NDT7 then an OOKLA measurement, parsed the way the
// service parses them.
func checkPair(t *testing.T, ms []radartest.Measurement, iface string) {
	t.Helper()
	n, o := ms[0], ms[1]
	if n.Style != "NDT7" || o.Style != "OOKLA" {
		t.Fatalf("styles = %s, %s; want NDT7 then OOKLA", n.Style, o.Style)
	}
	for _, m := range ms {
		if m.ParseErr != nil || m.Interface != iface {
			t.Fatalf("measurement %s: parse error %v, interface %q want %q", m.Style, m.ParseErr, m.Interface, iface)
		}
	}
	if n.NDT7.Download <= 0 || n.NDT7.Upload <= 0 || n.NDT7.MinRTT <= 0 || n.NDT7.DownloadID == "" || n.NDT7.UploadID == "" {
		t.Errorf("ndt7 parsed as %+v", n.NDT7)
	}
	if o.Ookla.ResultID != "ea8e5ec3-e2fa-4994-a9fe-559c8d4dc6fd" || !bytes.Equal(bytes.TrimSpace(o.Raw), ooklatest.Result()) {
		t.Errorf("ookla result was not passed through unchanged: %+v", o.Ookla)
	}
}

// TestPodOverTLS runs against HTTPS/wss peers, building the runners from
// configuration (RADAR_NDT7_SCHEME=wss with RADAR_NDT7_CA_FILE): the full
// production wiring, at the price of a full-length ndt7 test.
func TestPodOverTLS(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{TLS: true, PingInterval: time.Second})
	ndt := ndt7test.Start(t, ndt7test.Options{TLS: true})
	srv.SetPendingTest(true)
	startPod(t, podOptions{
		server: srv,
		env: map[string]string{
			"RADAR_SERVER_URL": srv.URL, "RADAR_TESTS": "ndt7", "RADAR_NDT7_SERVER": ndt.Addr,
			"RADAR_NDT7_SCHEME": "wss", "RADAR_NDT7_CA_FILE": ndt.CA.File,
		},
	})
	ms := waitMeasurements(t, srv, 1)
	if ms[0].Style != "NDT7" || ms[0].NDT7 == nil || ms[0].NDT7.Download <= 0 {
		t.Fatalf("measurement over wss = %+v", ms[0])
	}
	if !strings.HasPrefix(srv.CableURL(), "wss://") || srv.Subscribed() == 0 {
		t.Fatalf("live channel over wss not subscribed")
	}
}

// TestUploadsSurviveServerErrorsAndTimeouts: the first result meets two
// 500s, a 503 and an upload the service holds beyond the agent's upload
// timeout; it is retried through all of them and stored once, as is the
// next one.
func TestUploadsSurviveServerErrorsAndTimeouts(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	fake := ooklatest.Install(t, t.TempDir(), ooklatest.ModeResult)
	srv.SetUploadResponder(func(n int) (int, time.Duration) {
		switch {
		case n <= 2:
			return 500, 0
		case n == 3:
			return 503, 0
		case n == 4:
			// Held far beyond the upload timeout: the agent gives up, and
			// the double records the attempt as abandoned, not stored.
			return 0, time.Hour
		}
		return 0, 0
	})
	srv.SetPendingTest(true)
	p := startPod(t, podOptions{
		env: map[string]string{"RADAR_SERVER_URL": srv.URL, "RADAR_TESTS": "ookla", "RADAR_OOKLA_BIN": fake},
		// Short, so the held upload times out in seconds; long enough
		// that a loopback upload on a busy machine does not (one stored
		// and then timed out would be stored twice).
		uploadTimeout: 8 * time.Second,
	})
	waitMeasurements(t, srv, 1)
	srv.SendRunTest(nil)
	ms := waitMeasurements(t, srv, 2)
	waitFor(t, "outbox drained", func() bool { return p.metrics.OutboxDepth.Value() == 0 })
	// The held attempt is recorded only once the double notices the agent
	// gone, which may be at its Close: look for the others by number.
	last := 0
	for _, a := range srv.UploadAttempts() {
		last = max(last, a.N)
		if a.N == 4 && a.Stored {
			t.Errorf("the held upload was stored: %+v", a)
		}
	}
	if last < 6 {
		t.Errorf("upload attempts = %d, want the 3 errors, the timeout and 2 successes", last)
	}
	if got := p.metrics.Uploads.WithLabelValues("server").Value(); got != 3 {
		t.Errorf("server-error uploads counted = %v, want 3", got)
	}
	// At least the held one; a loopback upload slowed past the timeout by
	// a loaded machine would add one more, and is retried like it.
	if got := p.metrics.Uploads.WithLabelValues("network").Value(); got < 1 {
		t.Errorf("timed-out uploads counted = %v, want at least 1", got)
	}
	if len(ms) != 2 || len(srv.Measurements()) != 2 {
		t.Errorf("%d measurements stored, want 2: a timed-out upload must not be stored", len(srv.Measurements()))
	}
}

func TestChannelDownUsesStatusFallbackThenReconnects(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	fake := ooklatest.Install(t, t.TempDir(), ooklatest.ModeResult)
	p := startPod(t, podOptions{env: map[string]string{"RADAR_SERVER_URL": srv.URL, "RADAR_TESTS": "ookla", "RADAR_OOKLA_BIN": fake,
		"RADAR_PING_INTERVAL": "1s"}})
	waitFor(t, "subscription", func() bool { return srv.Subscribed() > 0 })

	srv.SetChannelDown(true)
	srv.DropConnections()
	waitFor(t, "a status call", func() bool { return len(srv.StatusCalls()) > 0 })
	if c := srv.StatusCalls()[0]; c.FirstPing() {
		t.Errorf("status after a successful connection sent service_first_ping %s", c.ServiceFirstPing)
	}
	// The fallback honours a pending test and a pending update.
	srv.SetPendingTest(true)
	srv.SetPendingUpdate("98.0.0", "/client_versions/98.0.0/distributions/linux-amd64/download")
	if ms := waitMeasurements(t, srv, 1); ms[0].Style != "OOKLA" {
		t.Fatalf("measurement = %+v", ms[0])
	}
	waitFor(t, "update request from the status answer", func() bool {
		r, ok, _ := handoff.ReadRequest(p.cfg.DataDir)
		return ok && r.Version == "98.0.0" && r.Source == "status"
	})
	if got := p.metrics.ChannelConnected.Value(); got != 0 {
		t.Errorf("channel_connected = %v while down", got)
	}

	srv.SetChannelDown(false)
	waitFor(t, "reconnection", func() bool {
		cs := srv.Connections()
		return cs[len(cs)-1].Status == 101 && srv.Subscribed() > 0
	})
	for _, c := range srv.Connections()[1:] {
		if c.ServiceStarted != "false" {
			t.Fatalf("reconnection sent Sec-Radar-Service-Started %q", c.ServiceStarted)
		}
	}
	// Counted once the agent knows the channel is up (the subscription is
	// confirmed before its sync reaches the agent): at most the call then
	// in flight comes after.
	waitFor(t, "channel gauge", func() bool { return p.metrics.ChannelConnected.Value() == 1 })
	calls := len(srv.StatusCalls())
	time.Sleep(3 * time.Second) // three ping intervals
	if extra := len(srv.StatusCalls()) - calls; extra > 1 {
		t.Errorf("%d status calls while the channel is up; the fallback must stop", extra)
	}
}

func TestRequestsDuringARunAreQueuedNotDropped(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	fake := ooklatest.Install(t, t.TempDir(), ooklatest.ModeResult)
	gate := &gatedRunner{Runner: ookla.New(ookla.Options{Bin: fake}), started: make(chan struct{}), release: make(chan struct{})}
	srv.SetPendingTest(true)
	p := startPod(t, podOptions{
		env:     map[string]string{"RADAR_SERVER_URL": srv.URL, "RADAR_TESTS": "ookla"},
		runners: func(config.Agent) []agent.Runner { return []agent.Runner{gate} },
	})
	select {
	case <-gate.started:
	case <-time.After(wait):
		t.Fatal("first run never started")
	}
	// Three requests while the first run is in progress coalesce into one
	// run. The run started from the sync, so the pod is subscribed.
	for _, ifaces := range [][]string{nil, {"no-such-if0"}, nil} {
		if n := srv.SendRunTest(ifaces); n != 1 {
			t.Fatalf("test_requested %v reached %d pods, want the one", ifaces, n)
		}
	}
	waitFor(t, "the requests to reach the agent", func() bool {
		return p.metrics.TestRequested.WithLabelValues("channel").Value() == 4
	})
	close(gate.release)
	waitFor(t, "coalesced run", func() bool { return len(p.results()) >= 3 })
	entries := p.results()
	if entries[1].Interface != "" || entries[1].ErrorClass != "" || entries[2].Interface != "no-such-if0" || entries[2].ErrorClass != "network" {
		t.Errorf("coalesced run recorded as %+v, %+v", entries[1], entries[2])
	}
	time.Sleep(2 * time.Second)
	if n := len(p.results()); n != 3 {
		t.Errorf("%d test entries; the three requests must make exactly one more run (default route + no-such-if0)", n)
	}
	if got := p.metrics.TestFailures.WithLabelValues("ookla", "network").Value(); got != 1 {
		t.Errorf("failed tests counted = %v", got)
	}
	waitMeasurements(t, srv, 2)
}

func TestStandaloneModeWritesResultsLocally(t *testing.T) {
	fake := ooklatest.Install(t, t.TempDir(), ooklatest.ModeResult)
	dir := t.TempDir()
	// A scheduled run due right after start-up (schedule_test.go covers
	// one missed while the pod was off).
	due := time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339Nano)
	os.WriteFile(filepath.Join(dir, agent.ScheduleFile), []byte(`{"next_run_at":"`+due+`"}`), 0o644)
	p := startPod(t, podOptions{env: map[string]string{"RADAR_SERVER_URL": "", "RADAR_DATA_DIR": dir, "RADAR_TESTS": "ookla", "RADAR_OOKLA_BIN": fake}})
	waitFor(t, "a standalone result", func() bool { return len(p.results()) == 1 })
	e := p.results()[0]
	if e.Runner != "ookla" || e.DownloadMbps == nil || *e.DownloadMbps < 402 || e.LatencyMs == nil {
		t.Fatalf("entry = %+v", e)
	}
	var raw map[string]any
	if err := json.Unmarshal(e.Raw, &raw); err != nil || raw["type"] != "result" {
		t.Fatalf("raw result not kept: %s", e.Raw)
	}
	if _, err := os.Stat(filepath.Join(dir, radar.IdentityFile)); !os.IsNotExist(err) {
		t.Fatal("standalone pod registered")
	}
	var st struct {
		NextRunAt time.Time `json:"next_run_at"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, agent.ScheduleFile))
	json.Unmarshal(b, &st)
	if until := time.Until(st.NextRunAt); until < 14*time.Minute || until > 12*time.Hour+time.Minute {
		t.Fatalf("next run in %v, want within [15m, 2×6h]", until)
	}
	if got := p.metrics.LastDownload.WithLabelValues("ookla", "").Value(); got < 402 {
		t.Fatalf("metrics last download = %v", got)
	}
}

// TestNetworkCheckAtStartAndWhenTheChannelStaysDown runs the real network
// check (netcheck.Check) against loopback peers: the pods service row
// against the service double, and a required row whose port refuses
// connections. The agent runs it at start-up and again once the channel
// has been down for NetCheckAfter, and exposes each verdict it got — in
// radar_network_check_pass{row} and in its log, with the hint the check
// produced — including the pods row turning to fail once the service is
// unreachable.
func TestNetworkCheckAtStartAndWhenTheChannelStaysDown(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	refused := proctest.FreePort(t)
	reports := make(chan netcheck.Report, 8)
	p := startPod(t, podOptions{env: map[string]string{"RADAR_SERVER_URL": srv.URL, "RADAR_TESTS": "ookla"},
		netCheck: podsRowCheck(reports, netcheck.Requirement{
			ID: netcheck.RowSentry, Service: "Sentry (here: a loopback port nothing listens on)", Required: true,
			Checks: []netcheck.Probe{{Kind: netcheck.ProbeTCP, Host: "127.0.0.1", Port: refused}},
		}),
		// Far above the channel's start on loopback, even on a loaded machine:
		// a check before the channel first came up would be a second one.
		netCheckAfter: 5 * time.Second})

	first := nextReport(t, reports)
	pods, sentry := row(t, first, netcheck.RowPods), row(t, first, netcheck.RowSentry)
	if pods.Verdict != netcheck.Pass || sentry.Verdict != netcheck.Fail || sentry.Step != netcheck.StepTCP || sentry.Hint == "" {
		t.Fatalf("start-up check against the loopback peers: pods %+v, refused port %+v", pods, sentry)
	}
	// The service answered the check the way it answers a browser.
	if !stepDetailHas(pods, "HTTP 301 Moved Permanently to "+srv.URL+"/users/sign_in") {
		t.Errorf("pods row passed on %+v, want the service's redirect to its sign-in page", pods.Probes)
	}
	waitFor(t, "the start-up verdict in metrics", func() bool {
		return p.metrics.NetCheckTime.Value() > 0 &&
			p.metrics.NetCheckPass.WithLabelValues(netcheck.RowPods).Value() == 1 &&
			p.metrics.NetCheckPass.WithLabelValues(netcheck.RowSentry).Value() == 0
	})
	waitFor(t, "the start-up verdict in the log", func() bool {
		return logHas(p, `"why":"start-up"`) && logHas(p, "network check failed") && logHas(p, jsonText(sentry.Hint))
	})
	waitFor(t, "subscription", func() bool { return srv.Subscribed() > 0 })
	// The check asked for the service's root, not as a pod; every upgrade
	// the service saw is the pod's authenticated channel (the double
	// fails the test on any other).
	assertCheckVisits(t, srv, 1)
	for _, c := range srv.Connections() {
		if c.UnixUser == "" {
			t.Errorf("an upgrade not authenticated as the pod: %+v", c)
		}
	}
	time.Sleep(3 * time.Second) // not a timing assertion: it gives a wrong agent the chance to check again
	if n := p.netChecks.Load(); n != 1 {
		t.Fatalf("%d checks while the channel is up, want only the start-up one", n)
	}

	// The service goes away: the channel stays down, and the check says
	// why, on the pods row.
	srv.Close()
	second := nextReport(t, reports)
	pods = row(t, second, netcheck.RowPods)
	if pods.Verdict != netcheck.Fail || pods.Step != netcheck.StepTCP || !strings.Contains(pods.Hint, "connection refused on port") {
		t.Fatalf("check with the service gone: pods row %+v, want a TCP failure with its hint", pods)
	}
	waitFor(t, "the channel-down verdict in metrics and the log", func() bool {
		return p.metrics.NetCheckPass.WithLabelValues(netcheck.RowPods).Value() == 0 &&
			logHas(p, "channel down for") && logHas(p, jsonText(pods.Hint))
	})
}

// podsRowCheck is the real network check of the pods row for the pod's
// configuration, plus extra rows, against loopback peers; each report is
// also sent on reports.
func podsRowCheck(reports chan<- netcheck.Report, extra ...netcheck.Requirement) func(context.Context, config.Agent) netcheck.Report {
	return func(ctx context.Context, cfg config.Agent) netcheck.Report {
		var reqs []netcheck.Requirement
		for _, r := range netcheck.Requirements(cfg, config.Updater{}) {
			if r.ID == netcheck.RowPods {
				reqs = append(reqs, r)
			}
		}
		r := netcheck.Check(ctx, append(reqs, extra...), netcheck.CheckOptions{
			// Loopback peers only: never a proxy from the environment.
			Proxy: func(*http.Request) (*url.URL, error) { return nil, nil },
		})
		reports <- r
		return r
	}
}

// assertCheckVisits checks that the service saw n requests for its root,
// each a GET / without credentials whose User-Agent is not a pod's.
func assertCheckVisits(t *testing.T, srv *radartest.Server, n int) {
	t.Helper()
	vs := srv.Visits()
	if len(vs) != n {
		t.Fatalf("%d requests for the service's root, want %d (one per check)", len(vs), n)
	}
	for _, v := range vs {
		if ua := v.Header.Get("User-Agent"); v.Method != http.MethodGet || v.Path != "/" || ua == "" || strings.HasPrefix(ua, "RadarPods") || v.Header.Get("Authorization") != "" {
			t.Errorf("the check's request %s %s as %q (Authorization %v): want a GET / that is no pod's", v.Method, v.Path, ua, v.Header.Get("Authorization") != "")
		}
	}
}

func stepDetailHas(r netcheck.RowResult, s string) bool {
	for _, p := range r.Probes {
		for _, st := range p.Steps {
			if strings.Contains(st.Detail, s) {
				return true
			}
		}
	}
	return false
}

func nextReport(t *testing.T, reports <-chan netcheck.Report) netcheck.Report {
	t.Helper()
	select {
	case r := <-reports:
		return r
	case <-time.After(wait):
		t.Fatal("the agent ran no network check")
	}
	return netcheck.Report{}
}

func row(t *testing.T, r netcheck.Report, id string) netcheck.RowResult {
	t.Helper()
	for _, row := range r.Rows {
		if row.ID == id {
			return row
		}
	}
	t.Fatalf("no row %s in %+v", id, r)
	return netcheck.RowResult{}
}

func logHas(p *pod, s string) bool { return strings.Contains(p.logs.String(), s) }

// jsonText is s as it appears inside a JSON log line.
func jsonText(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}
