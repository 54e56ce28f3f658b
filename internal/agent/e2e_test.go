//go:build linux && cgo

package agent_test

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/ndt7test"
	"github.com/radarpod/radarpod/internal/ooklatest"
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
	waitFor(t, "outbox drained", func() bool { return testutil.ToFloat64(p.metrics.OutboxDepth) == 0 })
	if got := testutil.ToFloat64(p.metrics.TestsTotal.WithLabelValues("ndt7", "ok")); got != 3 {
		t.Errorf("ndt7 ok tests = %v, want 3", got)
	}
	if got := testutil.ToFloat64(p.metrics.LastDownload.WithLabelValues("ookla", iface)); got < 400 || got > 405 {
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

func TestUploadsSurviveServerErrorsAndTimeouts(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	fake := ooklatest.Install(t, t.TempDir(), ooklatest.ModeResult)
	srv.SetUploadResponder(func(n int) (int, time.Duration) {
		switch {
		case n <= 2:
			return 500, 0
		case n == 3:
			return 503, 0
		}
		return 0, 0
	})
	srv.SetPendingTest(true)
	p := startPod(t, podOptions{env: map[string]string{"RADAR_SERVER_URL": srv.URL, "RADAR_TESTS": "ookla", "RADAR_OOKLA_BIN": fake}})
	waitMeasurements(t, srv, 1)
	srv.SendRunTest(nil)
	waitMeasurements(t, srv, 2)
	if n := len(srv.UploadAttempts()); n < 5 {
		t.Errorf("upload attempts = %d, want the 3 failures plus 2 successes", n)
	}
	waitFor(t, "outbox drained", func() bool { return testutil.ToFloat64(p.metrics.OutboxDepth) == 0 })
	if got := testutil.ToFloat64(p.metrics.Uploads.WithLabelValues("server")); got != 3 {
		t.Errorf("server-error uploads counted = %v, want 3", got)
	}
}

func TestChannelDownUsesStatusFallbackThenReconnects(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	fake := ooklatest.Install(t, t.TempDir(), ooklatest.ModeResult)
	p := startPod(t, podOptions{env: map[string]string{"RADAR_SERVER_URL": srv.URL, "RADAR_TESTS": "ookla", "RADAR_OOKLA_BIN": fake}})
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
	if got := testutil.ToFloat64(p.metrics.ChannelConnected); got != 0 {
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
	calls := len(srv.StatusCalls())
	waitFor(t, "channel gauge", func() bool { return testutil.ToFloat64(p.metrics.ChannelConnected) == 1 })
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
	// Three requests while the first run is in progress coalesce into one run.
	srv.SendRunTest(nil)
	srv.SendRunTest([]string{"no-such-if0"})
	srv.SendRunTest(nil)
	waitFor(t, "the requests to reach the agent", func() bool {
		return testutil.ToFloat64(p.metrics.TestRequested.WithLabelValues("channel")) == 4
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
	if got := testutil.ToFloat64(p.metrics.TestFailures.WithLabelValues("ookla", "network")); got != 1 {
		t.Errorf("failed tests counted = %v", got)
	}
	waitMeasurements(t, srv, 2)
}

func TestStandaloneModeWritesResultsLocally(t *testing.T) {
	fake := ooklatest.Install(t, t.TempDir(), ooklatest.ModeResult)
	dir := t.TempDir()
	// A run that came due while the pod was off runs at start-up.
	os.WriteFile(filepath.Join(dir, agent.ScheduleFile), []byte(`{"next_run_at":"2020-01-01T00:00:00Z"}`), 0o644)
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
	if got := testutil.ToFloat64(p.metrics.LastDownload.WithLabelValues("ookla", "")); got < 402 {
		t.Fatalf("metrics last download = %v", got)
	}
}

func TestNetworkCheckAtStartAndWhenTheChannelStaysDown(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	p := startPod(t, podOptions{env: map[string]string{"RADAR_SERVER_URL": srv.URL, "RADAR_TESTS": "ookla"}, netCheckAfter: 2 * time.Second})
	waitFor(t, "the start-up check", func() bool { return p.netChecks.Load() == 1 })
	waitFor(t, "the verdict in metrics", func() bool {
		return testutil.ToFloat64(p.metrics.NetCheckTime) > 0 && testutil.ToFloat64(p.metrics.NetCheckPass.WithLabelValues("pods")) == 0
	})
	if got := testutil.ToFloat64(p.metrics.NetCheckPass.WithLabelValues("locate")); got != 1 {
		t.Errorf("locate row = %v, want 1", got)
	}
	waitFor(t, "subscription", func() bool { return srv.Subscribed() > 0 })
	time.Sleep(3 * time.Second)
	if n := p.netChecks.Load(); n != 1 {
		t.Fatalf("%d checks while the channel is up, want only the start-up one", n)
	}
	srv.SetChannelDown(true)
	srv.DropConnections()
	waitFor(t, "a check after the channel stayed down", func() bool { return p.netChecks.Load() == 2 })
	if log := p.logs.String(); !strings.Contains(log, "port 443 blocked or filtered (timeout)") || !strings.Contains(log, "channel down for") {
		t.Errorf("the verdict and its reason were not logged:\n%s", log)
	}
}
