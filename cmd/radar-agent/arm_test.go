//go:build linux && cgo

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/m-lab/ndt-server/metadata"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/ndt7test"
	"github.com/radarpod/radarpod/internal/ooklatest"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/radar"
	"github.com/radarpod/radarpod/internal/radartest"
)

// piCPU is a Raspberry Pi the agent must serve, as qemu-user emulates it:
// the release binary for its platform, run on a CPU model with or without
// AES in hardware.
type piCPU struct {
	name string
	emu  proctest.Emulator
	// aes: the CPU encrypts in hardware, so RADAR_NDT7_SCHEME=auto must
	// choose wss; without it, ws.
	aes bool
	// evidence names the feature flag the agent must have consulted.
	evidence string
	// What the pod must call itself: sync's and status's distribution and
	// hardware_platform, as the field agent reports them.
	distribution, hardware string
}

var piCPUs = []piCPU{
	// A Pi 5 (Cortex-A76, crypto extension present).
	{"arm64-aes", proctest.Emulator{Platform: proctest.LinuxARM64, CPU: "cortex-a76"}, true, "AESARM", "linux-arm64", "arm64"},
	// A Pi 4 or Pi 3 on a 64-bit OS: a Cortex-A72/A53 built without the
	// crypto extension. qemu 7.2 gives every arm64 model AES and has no
	// property to drop it alone; neon=off,vfp=off clears the AES (and
	// FP/SIMD) ID fields, while qemu-user still runs FP/SIMD instructions
	// and still sets their HWCAP bits, so the binary sees fp, asimd,
	// crc32 and no aes, pmull, sha1 or sha2: the Pi 4's set.
	{"arm64-noaes", proctest.Emulator{Platform: proctest.LinuxARM64, CPU: "cortex-a72,neon=off,vfp=off"}, false, "AESARM", "linux-arm64", "arm64"},
	// A Pi 2 (Cortex-A7), or a Pi 3/4 on a 32-bit OS: no AES.
	{"armv7-noaes", proctest.Emulator{Platform: proctest.LinuxARMv7, CPU: "cortex-a7"}, false, "ARM.HasAES", "linux-armv7", "arm"},
	// An ARMv8 core with the crypto extension on a 32-bit OS (a Pi 5).
	{"armv7-aes", proctest.Emulator{Platform: proctest.LinuxARMv7, CPU: "max"}, true, "ARM.HasAES", "linux-armv7", "arm"},
}

// emulatedWait bounds each wait on an emulated pod: qemu runs the agent
// several times slower than native, and the machine is shared. Nothing
// asserts on how long anything took.
const emulatedWait = 3 * time.Minute

// TestPodOnRaspberryPiCPUs runs the arm64 and armv7 release builds of the
// agent under qemu-user through the pod's life against the strict service
// double and M-Lab's ndt-server: register, channel and sync, a requested
// test (a production-length ndt7 test, ~20 s, and the Ookla stand-in)
// whose upload the service refuses, a stop, and a restart on the status
// fallback that delivers the waiting results exactly once. Each CPU gets
// an ndt7 server of the one scheme it must choose (wss with its CA for
// AES, plain ws otherwise), so a wrong choice fails the test.
func TestPodOnRaspberryPiCPUs(t *testing.T) {
	for _, cpu := range piCPUs {
		t.Run(cpu.name, func(t *testing.T) {
			// Parallel first: the arm64 and armv7 builds run at once.
			t.Parallel()
			bin := proctest.BuildFor(t, "./cmd/radar-agent", cpu.emu.Platform)
			runPodOnCPU(t, cpu, bin)
		})
	}
}

func runPodOnCPU(t *testing.T, cpu piCPU, bin string) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 4*emulatedWait)
	defer cancel()
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	ndt := ndt7test.Start(t, ndt7test.Options{TLS: cpu.aes})
	ooklaDir, dataDir := t.TempDir(), t.TempDir()
	const token = "tok-pi-0042"
	env := map[string]string{
		"RADAR_SERVER_URL": srv.URL, "RADAR_DATA_DIR": dataDir, "RADAR_REGISTRATION_TOKEN": token,
		"RADAR_TESTS": "ndt7,ookla", "RADAR_NDT7_SERVER": ndt.Addr, "RADAR_NDT7_SCHEME": "auto",
		"RADAR_OOKLA_BIN":   ooklatest.Install(t, ooklaDir, ooklatest.ModeResult),
		"RADAR_LISTEN_ADDR": "", "RADAR_LOG_FORMAT": "json",
		// No status fallback while the channel starts (slow under qemu): a
		// status call first would answer the pending test as well, and the
		// sync's run_test would queue a second run. The restart sets 1s.
		"RADAR_PING_INTERVAL": "10m",
	}
	if cpu.aes {
		env["RADAR_NDT7_CA_FILE"] = ndt.CA.File
	}

	// 1. Register, connect, sync; the pending test arrives as run_test;
	// the service refuses the uploads, so both results wait in the outbox.
	srv.SetUploadResponder(func(int) (int, time.Duration) { return http.StatusServiceUnavailable, 0 })
	srv.SetPendingTest(true)
	p := cpu.emu.Start(t, bin, env)
	var ledger []agent.ResultEntry
	proctest.WaitFor(t, emulatedWait, "the requested test's two results", func() bool {
		ledger = readResults(t, dataDir)
		return len(ledger) >= 2 || slices.ContainsFunc(ledger, func(e agent.ResultEntry) bool { return e.Error != "" })
	})
	scheme, reason := ndt7SchemeLog(t, p.Output())
	wantScheme := map[bool]string{true: "wss", false: "ws"}[cpu.aes]
	if scheme != wantScheme || !strings.Contains(reason, cpu.evidence) {
		t.Errorf("ndt7 scheme %q (%s), want %s decided by %s", scheme, reason, wantScheme, cpu.evidence)
	}
	if len(ledger) != 2 || ledger[0].Runner != "ndt7" || ledger[1].Runner != "ookla" {
		t.Fatalf("results.jsonl = %+v, want ndt7 then ookla", ledger)
	}
	for _, e := range ledger {
		if e.Error != "" || e.OutboxID == "" || e.DownloadMbps == nil || *e.DownloadMbps <= 0 || e.UploadMbps == nil {
			t.Fatalf("%s result %+v: want a measurement stored for upload", e.Runner, e)
		}
	}
	tested := time.Now()
	t.Logf("%s: registered, synced and ran the requested test in %v (ndt7 over %s: %.1f Mbit/s down, %.1f up)",
		cpu.name, tested.Sub(began).Round(time.Second), scheme, *ledger[0].DownloadMbps, *ledger[0].UploadMbps)
	if err := srv.Wait(ctx, func() bool { return len(srv.UploadAttempts()) > 0 }); err != nil {
		t.Fatalf("no upload attempted: %v", err)
	}
	stop(t, p)

	regs := srv.Registrations()
	if len(regs) != 1 || regs[0].Token != token {
		t.Fatalf("registrations = %+v", regs)
	}
	id := regs[0].UnixUser
	if n := len(srv.Measurements()); n != 0 {
		t.Fatalf("%d measurements stored while the service refused uploads", n)
	}
	waiting := outboxIDs(t, dataDir)
	if want := []string{ledger[0].OutboxID, ledger[1].OutboxID}; !slices.Equal(waiting, want) {
		t.Fatalf("outbox after the stop holds %v, want the two results %v", waiting, want)
	}
	firstContact(t, srv, began, "first start")
	syncs := srv.Syncs()
	if len(syncs) == 0 || !slices.ContainsFunc(srv.Connections(), func(c radartest.Connection) bool {
		return c.Status == http.StatusSwitchingProtocols && c.UnixUser == id
	}) {
		t.Fatalf("no channel connection and sync (syncs %d, connections %+v)", len(syncs), srv.Connections())
	}
	for _, s := range syncs {
		checkPlatform(t, "sync", cpu, s.Payload.Distribution, s.Payload.HardwarePlatform, s.Payload.OSVersion, s.Payload.Version)
		if s.Payload.RegistrationToken != token || len(s.Payload.NetInterfaces) == 0 {
			t.Errorf("sync payload %+v: want the registration token and the interfaces", s.Payload)
		}
	}
	// The server closes here: the restarted pod has no test to run.
	download, upload := subtests(t, ndt, cpu)

	// 2. Restart with the channel down: the pod heartbeats on the status
	// fallback and delivers what waited, exactly once. The waiting
	// results answer the request (the service clears it once one is
	// stored); clearing it now, rather than when the first upload lands,
	// keeps the restarted pod from racing into a second 20-s test the
	// scenario does not need.
	srv.SetPendingTest(false)
	srv.SetUploadResponder(nil)
	srv.SetChannelDown(true)
	env["RADAR_PING_INTERVAL"] = "1s"
	restarted := time.Now()
	p = cpu.emu.Start(t, bin, env)
	if _, err := srv.WaitMeasurements(ctx, 2); err != nil {
		t.Fatalf("waiting results not delivered after the restart: %v", err)
	}
	if err := srv.Wait(ctx, func() bool { return len(statusSince(srv, restarted)) > 0 }); err != nil {
		t.Fatalf("no status heartbeat while the channel was down: %v", err)
	}
	srv.SetChannelDown(false)
	if err := srv.Wait(ctx, func() bool {
		return slices.ContainsFunc(srv.Syncs(), func(s radartest.Sync) bool { return s.Time.After(restarted) })
	}); err != nil {
		t.Fatalf("restarted pod never synced on the channel once it was back: %v", err)
	}
	proctest.WaitFor(t, emulatedWait, "the outbox to drain", func() bool { return len(outboxIDs(t, dataDir)) == 0 })
	stop(t, p)
	t.Logf("%s: restarted and delivered the waiting results in %v; whole scenario %v",
		cpu.name, time.Since(restarted).Round(time.Second), time.Since(began).Round(time.Second))

	// Uploads are pipelined (oldest started first, a shorter one may
	// finish first): the order the service stored them in is not asserted.
	ms := srv.Measurements()
	slices.SortFunc(ms, func(a, b radartest.Measurement) int { return strings.Compare(a.Style, b.Style) })
	if len(ms) != 2 || ms[0].Style != "NDT7" || ms[1].Style != "OOKLA" {
		t.Fatalf("stored %d measurements (%v), want the two waiting results once each", len(ms), styles(ms))
	}
	for _, m := range ms {
		if m.ParseErr != nil || m.UnixUser != id || m.Interface != "" {
			t.Errorf("measurement %s: parse error %v, pod %q, interface %q", m.Style, m.ParseErr, m.UnixUser, m.Interface)
		}
	}
	if n := ms[0].NDT7; n == nil || n.DownloadID != download || n.UploadID != upload || n.Download <= 0 || n.Upload <= 0 || n.MinRTT <= 0 {
		t.Errorf("ndt7 measurement %+v is not the test the server ran (download %s, upload %s)", n, download, upload)
	}
	if !bytes.Equal(bytes.TrimSpace(ms[1].Raw), ooklatest.Result()) {
		t.Errorf("ookla measurement is not the CLI's result, unchanged:\n%s", ms[1].Raw)
	}
	if n := len(srv.Registrations()); n != 1 {
		t.Errorf("pod registered %d times", n)
	}
	firstContact(t, srv, restarted, "restart")
	calls := statusSince(srv, restarted)
	if !calls[0].FirstPing() {
		t.Errorf("restarted pod's first status call sent service_first_ping %s", calls[0].ServiceFirstPing)
	}
	for _, c := range srv.StatusCalls() {
		var req radar.StatusRequest
		if err := json.Unmarshal(c.Raw, &req); err != nil {
			t.Fatalf("status body %s: %v", c.Raw, err)
		}
		checkPlatform(t, "status", cpu, req.Distribution, req.HardwarePlatform, req.OSVersion, req.Version)
	}
	for _, s := range srv.Syncs() {
		checkPlatform(t, "sync", cpu, s.Payload.Distribution, s.Payload.HardwarePlatform, s.Payload.OSVersion, s.Payload.Version)
	}
}

// stop stops the pod as Docker does (SIGTERM, which qemu-user passes on)
// and expects a clean exit.
func stop(t *testing.T, p *proctest.Process) {
	t.Helper()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if code, err := p.Wait(time.Minute); err != nil || code != 0 {
		t.Fatalf("after SIGTERM: exit %d, %v", code, err)
	}
}

func checkPlatform(t *testing.T, where string, cpu piCPU, distribution, hardware, osVersion, version string) {
	t.Helper()
	if distribution != cpu.distribution || hardware != cpu.hardware || osVersion != "linux" || version != proctest.TestVersion {
		t.Errorf("%s sent distribution %q, hardware_platform %q, os_version %q, version %q; want %q, %q, linux, %s",
			where, distribution, hardware, osVersion, version, cpu.distribution, cpu.hardware, proctest.TestVersion)
	}
}

// firstContact checks that the process started at since introduced itself
// as freshly started on its first contact, whichever came first: a channel
// upgrade (Sec-Radar-Service-Started) or a status call
// (service_first_ping).
func firstContact(t *testing.T, srv *radartest.Server, since time.Time, what string) {
	t.Helper()
	var first time.Time
	fresh := false
	for _, c := range srv.Connections() {
		if c.Time.After(since) && (first.IsZero() || c.Time.Before(first)) {
			first, fresh = c.Time, c.ServiceStarted == "true"
		}
	}
	for _, c := range statusSince(srv, since) {
		if first.IsZero() || c.Time.Before(first) {
			first, fresh = c.Time, c.FirstPing()
		}
	}
	if first.IsZero() || !fresh {
		t.Errorf("%s: the first contact with the service (at %v) did not say the service had just started", what, first)
	}
}

func statusSince(srv *radartest.Server, since time.Time) []radartest.StatusCall {
	var out []radartest.StatusCall
	for _, c := range srv.StatusCalls() {
		if c.Time.After(since) {
			out = append(out, c)
		}
	}
	return out
}

// subtests closes the ndt7 server, which waits for each subtest's record,
// and returns the UUIDs of the test it ran: one download and one upload,
// from the emulated architecture (the client reports client_arch =
// GOARCH). The server speaks only the scheme the CPU calls for, so a test
// that reached it chose right.
func subtests(t *testing.T, ndt *ndt7test.Server, cpu piCPU) (download, upload string) {
	t.Helper()
	if err := ndt.Close(); err != nil {
		t.Fatalf("close the ndt7 server: %v", err)
	}
	subs, err := ndt.Subtests()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		a := s.Download
		if a == nil {
			a = s.Upload
		}
		if a == nil {
			t.Fatalf("ndt7 server recorded a subtest that is neither download nor upload: %+v", s)
		}
		if !slices.Contains(a.ClientMetadata, metadata.NameValue{Name: "client_arch", Value: cpu.hardware}) {
			t.Errorf("ndt7 subtest %s came from a client with %v, want client_arch %s", a.UUID, a.ClientMetadata, cpu.hardware)
		}
		switch {
		case s.Download != nil && download == "":
			download = a.UUID
		case s.Upload != nil && upload == "":
			upload = a.UUID
		default:
			t.Fatalf("ndt7 server ran %d subtests, more than one test's", len(subs))
		}
	}
	if download == "" || upload == "" {
		t.Fatalf("ndt7 server (%s) recorded %d subtests, want a download and an upload", ndt.Scheme, len(subs))
	}
	return download, upload
}

// ndt7SchemeLog returns the scheme the agent logged choosing, and why.
func ndt7SchemeLog(t *testing.T, output string) (scheme, reason string) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(output))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var l struct{ Msg, Scheme, Reason string }
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "ndt7 scheme chosen" {
			return l.Scheme, l.Reason
		}
	}
	t.Fatalf("the agent did not log its ndt7 scheme:\n%s", output)
	return "", ""
}

// outboxIDs lists the records waiting in the pod's outbox, oldest first.
func outboxIDs(t *testing.T, dataDir string) []string {
	t.Helper()
	recs, err := filepath.Glob(filepath.Join(dataDir, "outbox", "*.rec"))
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, 0, len(recs))
	for _, r := range recs {
		ids = append(ids, strings.TrimSuffix(filepath.Base(r), ".rec"))
	}
	slices.Sort(ids)
	return ids
}

func styles(ms []radartest.Measurement) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Style)
	}
	return out
}
