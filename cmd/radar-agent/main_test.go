package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/ooklatest"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/radar"
	"github.com/radarpod/radarpod/internal/radartest"
	"github.com/radarpod/radarpod/internal/sentrytest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	proctest.Cleanup()
	os.Exit(code)
}

const wait = 60 * time.Second

func TestInvalidConfigurationExitsTwoNamingTheVariable(t *testing.T) {
	bin := proctest.Build(t, "./cmd/radar-agent")
	tests := []struct {
		env     map[string]string
		wantVar string
		hidden  string
	}{
		{map[string]string{"RADAR_SERVER_URL": "radar.example.org"}, "RADAR_SERVER_URL", ""},
		{map[string]string{"RADAR_SERVER_URL": "gopher://radar.example.org"}, "RADAR_SERVER_URL", ""},
		// Plain http off this machine would carry the pod secret in clear text.
		{map[string]string{"RADAR_SERVER_URL": "http://radar.example.org"}, "RADAR_SERVER_URL", ""},
		{map[string]string{"RADAR_SERVER_URL": "http://172.17.0.1:3000", "RADAR_ALLOW_INSECURE_SERVER": "yes please"}, "RADAR_ALLOW_INSECURE_SERVER", ""},
		{map[string]string{"RADAR_NDT7_SCHEME": "tls"}, "RADAR_NDT7_SCHEME", ""},
		{map[string]string{"RADAR_TEST_TIMEOUT": "forever"}, "RADAR_TEST_TIMEOUT", ""},
		{map[string]string{"RADAR_PING_INTERVAL": "-15s"}, "RADAR_PING_INTERVAL", ""},
		{map[string]string{"RADAR_TESTS": "ndt7,speedof.me"}, "RADAR_TESTS", ""},
		{map[string]string{"RADAR_TESTS_PER_DAY": "-4"}, "RADAR_TESTS_PER_DAY", ""},
		{map[string]string{"RADAR_TESTS_PER_DAY": "NaN"}, "RADAR_TESTS_PER_DAY", ""},
		{map[string]string{"RADAR_TESTS_PER_DAY": "1e-300"}, "RADAR_TESTS_PER_DAY", ""},
		{map[string]string{"RADAR_SERVER_URL": "https://pod:hunter2pass@radar.example.org"}, "RADAR_SERVER_URL", "hunter2pass"},
		{map[string]string{"RADAR_OUTBOX_MAX_BYTES": "-1"}, "RADAR_OUTBOX_MAX_BYTES", ""},
		// 2^64 + 1 GiB: used to wrap to 1 GiB and be accepted.
		{map[string]string{"RADAR_OUTBOX_MAX_BYTES": "17179869185GiB"}, "RADAR_OUTBOX_MAX_BYTES", ""},
		// The largest duration: the lock margin added to it overflowed.
		{map[string]string{"RADAR_TEST_TIMEOUT": "2562047h"}, "RADAR_TEST_TIMEOUT", ""},
		{map[string]string{"RADAR_LOG_LEVEL": "chatty"}, "RADAR_LOG_LEVEL", ""},
		{map[string]string{"RADAR_LISTEN_ADDR": "localhost"}, "RADAR_LISTEN_ADDR", ""},
		{map[string]string{"RADAR_NDT7_CA_FILE": "/nonexistent/ca.pem"}, "RADAR_NDT7_CA_FILE", ""},
		{map[string]string{"SENTRY_DSN": "not-a-dsn-secretkey123"}, "SENTRY_DSN", "secretkey123"},
		{map[string]string{"RADAR_REGISTRATION_TOKEN_FILE": "/nonexistent/token"}, "RADAR_REGISTRATION_TOKEN_FILE", ""},
	}
	for _, tt := range tests {
		t.Run(tt.wantVar, func(t *testing.T) {
			env := map[string]string{"RADAR_DATA_DIR": t.TempDir()}
			for k, v := range tt.env {
				env[k] = v
			}
			code, out := proctest.Run(t, bin, env, 10*time.Second)
			if code != 2 {
				t.Fatalf("exit %d, want 2; output:\n%s", code, out)
			}
			if !strings.Contains(out, tt.wantVar) || !strings.Contains(out, "allowed") {
				t.Fatalf("output does not name %s and the allowed values:\n%s", tt.wantVar, out)
			}
			if tt.hidden != "" && strings.Contains(out, tt.hidden) {
				t.Fatalf("secret value echoed:\n%s", out)
			}
		})
	}
}

func TestSubcommands(t *testing.T) {
	bin := proctest.Build(t, "./cmd/radar-agent")
	env := map[string]string{"RADAR_REGISTRATION_TOKEN": "tok-subcmd-secret", "RADAR_TSETS": "ookla", "RADAR_DATA_DIR": t.TempDir()}
	code, out := proctest.Run(t, bin, env, 10*time.Second, "config")
	if code != 0 || strings.Contains(out, "tok-subcmd-secret") || !strings.Contains(out, "RADAR_REGISTRATION_TOKEN=[REDACTED]") {
		t.Fatalf("config: exit %d\n%s", code, out)
	}
	if !strings.Contains(out, "RADAR_TSETS") {
		t.Fatalf("config did not warn about the unknown RADAR_TSETS:\n%s", out)
	}
	code, out = proctest.Run(t, bin, nil, 10*time.Second, "version")
	if code != 0 || !strings.Contains(out, proctest.TestVersion) || !strings.Contains(out, "linux-") {
		t.Fatalf("version: exit %d\n%s", code, out)
	}
	if code, out = proctest.Run(t, bin, nil, 10*time.Second, "frobnicate"); code != 2 || !strings.Contains(out, "usage") {
		t.Fatalf("unknown command: exit %d\n%s", code, out)
	}
	// No agent listening: unhealthy is exit 1 (Docker reserves 2).
	if code, _ = proctest.Run(t, bin, map[string]string{"RADAR_LISTEN_ADDR": proctest.FreeAddr(t)}, 15*time.Second, "healthcheck"); code != 1 {
		t.Fatalf("healthcheck without agent: exit %d, want 1", code)
	}
}

// standaloneEnv runs the binary standalone with the fake Ookla CLI.
func standaloneEnv(t *testing.T, mode ooklatest.Mode) (map[string]string, string) {
	dir := t.TempDir()
	ooklaDir := t.TempDir()
	return map[string]string{
		"RADAR_SERVER_URL": "", "RADAR_DATA_DIR": dir, "RADAR_TESTS": "ookla", "RADAR_LOG_FORMAT": "json",
		"RADAR_OOKLA_BIN": ooklatest.Install(t, ooklaDir, mode), "RADAR_LISTEN_ADDR": proctest.FreeAddr(t),
	}, ooklaDir
}

func TestHealthcheckAgainstRunningAgent(t *testing.T) {
	bin := proctest.Build(t, "./cmd/radar-agent")
	env, _ := standaloneEnv(t, ooklatest.ModeResult)
	proctest.Start(t, bin, env)
	proctest.WaitFor(t, wait, "healthy", func() bool {
		code, _ := proctest.Run(t, bin, env, 15*time.Second, "healthcheck")
		return code == 0
	})
	// The standalone schedule runs a fresh pod's first test within seconds.
	proctest.WaitFor(t, wait, "first standalone result", func() bool { return len(readResults(t, env["RADAR_DATA_DIR"])) == 1 })
}

func readResults(t *testing.T, dir string) []agent.ResultEntry {
	f, err := os.Open(filepath.Join(dir, agent.ResultsFile))
	if err != nil {
		return nil
	}
	defer f.Close()
	e, err := agent.ReadResults(f)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestSIGTERMCancelsTheRunningTestAndExitsZero(t *testing.T) {
	bin := proctest.Build(t, "./cmd/radar-agent")
	env, ooklaDir := standaloneEnv(t, ooklatest.ModeHang)
	p := proctest.Start(t, bin, env)
	// The network check also runs the CLI (--servers); wait for a test run.
	proctest.WaitFor(t, wait, "the test to start", func() bool {
		for _, args := range ooklatest.Calls(t, ooklaDir) {
			if !slices.Contains(args, "--servers") {
				return true
			}
		}
		return false
	})
	// The fake CLI records its own pid and its child's: without them the
	// check below would check nothing.
	proctest.WaitFor(t, wait, "the fake CLI's pids", func() bool { return len(ooklatest.PIDs(t, ooklaDir)) == 2 })
	sent := time.Now()
	p.Signal(syscall.SIGTERM)
	code, err := p.Wait(15 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("after SIGTERM: exit %d, %v\n%s", code, err, p.Output())
	}
	t.Logf("exited %v after SIGTERM", time.Since(sent).Round(time.Millisecond))
	entries := readResults(t, env["RADAR_DATA_DIR"])
	if len(entries) != 1 || entries[0].ErrorClass != "canceled" {
		t.Fatalf("cancelled test recorded as %+v", entries)
	}
	for _, pid := range ooklatest.PIDs(t, ooklaDir) {
		if ooklatest.Alive(pid) {
			t.Errorf("speedtest process %d survived the agent", pid)
		}
	}
}

// TestSupervise covers every way the agent can stop. After a signal the
// exit status is 0 whatever happens, including a Run that does not return
// within the grace (abandoned, and logged); without one, Run returning is
// an error unless it returned nil.
func TestSupervise(t *testing.T) {
	boom := errors.New("identity file corrupt")
	tests := []struct {
		name     string
		signal   bool
		run      func(ctx context.Context) error // nil: never returns
		wantCode int
		wantLog  string
	}{
		{"run fails on its own", false, func(context.Context) error { return boom }, 1, "identity file corrupt"},
		{"run returns on its own", false, func(context.Context) error { return nil }, 0, "radar-agent stopped"},
		{"signal, clean shutdown", true, func(ctx context.Context) error { <-ctx.Done(); return nil }, 0, "radar-agent stopped"},
		{"signal, error on the way out", true, func(ctx context.Context) error { <-ctx.Done(); return boom }, 0, "identity file corrupt"},
		{"signal, shutdown stuck past the grace", true, nil, 0, "shutdown grace expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			if tt.run != nil {
				go func() { done <- tt.run(ctx) }()
			}
			if tt.signal {
				cancel()
			}
			var logs strings.Builder
			// The grace only decides whether the stuck case gives up; any
			// length gives the same outcome for the others, which return first.
			grace := time.Hour
			if tt.run == nil {
				grace = 10 * time.Millisecond
			}
			code, signalled := supervise(ctx, done, grace, slog.New(slog.NewTextHandler(&logs, nil)))
			if code != tt.wantCode {
				t.Errorf("exit status %d, want %d", code, tt.wantCode)
			}
			if signalled.IsZero() != !tt.signal {
				t.Errorf("signal time %v with signal=%v", signalled, tt.signal)
			}
			if !strings.Contains(logs.String(), tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, logs.String())
			}
		})
	}
}

// TestFlushTimeoutFitsTheShutdownBudget: after a signal, the agent's grace
// plus the final flush never exceed what Docker allows before SIGKILL.
func TestFlushTimeoutFitsTheShutdownBudget(t *testing.T) {
	stop := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		stopAt time.Time
		now    time.Time
		want   time.Duration
	}{
		{"no signal", time.Time{}, stop, maxFlush},
		{"agent stopped at once", stop, stop.Add(100 * time.Millisecond), maxFlush},
		{"agent used the whole grace", stop, stop.Add(shutdownGrace), min(maxFlush, shutdownBudget-exitMargin-shutdownGrace)},
		{"budget nearly spent", stop, stop.Add(shutdownBudget - exitMargin - time.Second), time.Second},
		{"budget spent", stop, stop.Add(shutdownBudget), 0},
	}
	for _, tt := range tests {
		if got := flushTimeout(tt.stopAt, tt.now); got != tt.want {
			t.Errorf("%s: flushTimeout = %v, want %v", tt.name, got, tt.want)
		}
	}
	if shutdownGrace+min(maxFlush, shutdownBudget-exitMargin-shutdownGrace)+exitMargin > shutdownBudget {
		t.Errorf("grace %v + flush + margin %v exceed the %v budget", shutdownGrace, exitMargin, shutdownBudget)
	}
}

// TestKilledMidUploadDeliversAfterRestart kills the agent with SIGKILL while
// the service holds its upload, restarts it, and checks the result arrives
// and the pod did not register again.
func TestKilledMidUploadDeliversAfterRestart(t *testing.T) {
	bin := proctest.Build(t, "./cmd/radar-agent")
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	hold, inflight := make(chan struct{}), make(chan struct{})
	var once sync.Once
	srv.SetResponder(radartest.EndpointUpload, func(n int) radartest.Reply {
		once.Do(func() { close(inflight) })
		select {
		case <-hold:
			return radartest.Reply{}
		default:
			return radartest.Reply{Delay: time.Hour}
		}
	})
	srv.SetPendingTest(true)
	env := map[string]string{
		"RADAR_SERVER_URL": srv.URL, "RADAR_DATA_DIR": t.TempDir(), "RADAR_TESTS": "ookla",
		"RADAR_OOKLA_BIN": ooklatest.Install(t, t.TempDir(), ooklatest.ModeResult), "RADAR_LISTEN_ADDR": "",
	}
	p := proctest.Start(t, bin, env)
	select {
	case <-inflight:
	case <-time.After(wait):
		t.Fatalf("no upload started\n%s", p.Output())
	}
	p.Kill()
	if len(srv.Measurements()) != 0 {
		t.Fatal("upload completed before the kill; the test did not kill mid-upload")
	}
	close(hold)
	srv.SetPendingTest(false)
	// Every upgrade the double records is the pod's own channel: the
	// start-up network check never opens one (the double fails the test
	// on an upgrade without credentials).
	before := len(srv.Connections())
	proctest.Start(t, bin, env)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ms, err := srv.WaitMeasurements(ctx, 1)
	if err != nil {
		t.Fatalf("pending result not delivered after restart: %v", err)
	}
	if ms[0].Style != "OOKLA" || ms[0].Ookla == nil {
		t.Fatalf("delivered %+v", ms[0])
	}
	if n := len(srv.Registrations()); n != 1 {
		t.Fatalf("pod registered %d times", n)
	}
	// The upload does not wait for the channel: wait for the restarted
	// process's first connection rather than read whichever is last.
	if err := srv.Wait(ctx, func() bool { return len(srv.Connections()) > before }); err != nil {
		t.Fatalf("restarted process never connected the channel: %v", err)
	}
	if c := srv.Connections()[before]; c.ServiceStarted != "true" || c.UnixUser != ms[0].UnixUser {
		t.Fatalf("restarted process's first upgrade: Sec-Radar-Service-Started %q as %q, want true as the pod %s", c.ServiceStarted, c.UnixUser, ms[0].UnixUser)
	}
}

func TestSentryEventsCarryTagsAndNoSecrets(t *testing.T) {
	bin := proctest.Build(t, "./cmd/radar-agent")
	const dsnKey = "dsnpublickey0042"
	sentry := sentrytest.Start(t, dsnKey)
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	// Every upload is refused as if the credentials were wrong: an error the
	// agent must report.
	srv.SetUploadResponder(func(int) (int, time.Duration) { return 403, 0 })
	srv.SetPendingTest(true)
	dir := t.TempDir()
	env := map[string]string{
		"RADAR_SERVER_URL": srv.URL, "RADAR_DATA_DIR": dir, "RADAR_TESTS": "ookla", "RADAR_LISTEN_ADDR": "",
		"RADAR_OOKLA_BIN": ooklatest.Install(t, t.TempDir(), ooklatest.ModeResult), "SENTRY_DSN": sentry.DSN,
		"RADAR_REGISTRATION_TOKEN": "tok-sentry-secret-77",
	}
	p := proctest.Start(t, bin, env)
	// The refused upload's report, not merely the first event: the
	// start-up network check (no internet here) may report before the pod
	// has registered, when there is no pod id to tag yet.
	refused := func(e sentrytest.Event) bool { return bytes.Contains(e.Raw, []byte("rejects this pod's credentials")) }
	var events []sentrytest.Event
	proctest.WaitFor(t, wait, "the Sentry event of the refused upload", func() bool {
		events = sentry.Events()
		return slices.ContainsFunc(events, refused)
	})
	id, ok, _ := radar.LoadIdentity(dir)
	if !ok {
		t.Fatal("no identity stored")
	}
	tags := events[slices.IndexFunc(events, refused)].Tags()
	if tags["pod_id"] != id.UnixUser {
		t.Errorf("tag pod_id = %q, want %q (tags %v)", tags["pod_id"], id.UnixUser, tags)
	}
	for _, ev := range events {
		tags := ev.Tags()
		for k, want := range map[string]string{"version": proctest.TestVersion, "component": "radar-agent"} {
			if tags[k] != want {
				t.Errorf("tag %s = %q, want %q (tags %v)", k, tags[k], want, tags)
			}
		}
		if tags["distribution"] == "" || tags["arch"] == "" {
			t.Errorf("tags lack distribution/arch: %v", tags)
		}
	}
	p.Signal(syscall.SIGTERM)
	p.Wait(15 * time.Second)
	for _, body := range sentry.Bodies() {
		for _, ev := range splitEvents(body) {
			for _, secret := range []string{id.Secret, "tok-sentry-secret-77", dsnKey} {
				if strings.Contains(ev, secret) {
					t.Errorf("Sentry event contains a secret (%q...): %s", secret[:3], ev)
				}
			}
		}
	}
	if strings.Contains(p.Output(), id.Secret) {
		t.Error("the pod secret reached the log")
	}
}

// splitEvents returns the event items of an envelope (the envelope header
// legitimately names the DSN it is addressed to).
func splitEvents(body []byte) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	sc.Scan()
	for sc.Scan() {
		var hdr struct{ Type string }
		if json.Unmarshal(sc.Bytes(), &hdr) != nil || !sc.Scan() {
			break
		}
		if hdr.Type == "event" {
			out = append(out, sc.Text())
		}
	}
	return out
}
