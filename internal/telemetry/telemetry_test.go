package telemetry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/sentrytest"
)

const (
	podSecret = "s3cr3tPodKey"
	dsnKey    = "publicdsnkey123"
)

func TestLoggerRedactsSecrets(t *testing.T) {
	tests := []struct {
		format string
		log    func(*slog.Logger)
	}{
		{"json", func(l *slog.Logger) { l.Info("registered with secret " + podSecret) }},
		{"json", func(l *slog.Logger) { l.Warn("upload", "err", fmt.Errorf("post client_secret=%s: refused", podSecret)) }},
		{"text", func(l *slog.Logger) { l.Info("auth", "header", "Basic r123:"+podSecret) }},
		{"json", func(l *slog.Logger) { l.With("k", podSecret).Info("with attrs") }},
	}
	for i, tt := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			var buf bytes.Buffer
			r := &Redactor{}
			r.Add(podSecret)
			tt.log(NewLogger(&buf, LogOptions{Format: tt.format, Redactor: r}))
			if strings.Contains(buf.String(), podSecret) {
				t.Fatalf("secret leaked into log: %s", buf.String())
			}
			if !strings.Contains(buf.String(), Redacted) {
				t.Fatalf("log line lost the redaction marker: %s", buf.String())
			}
		})
	}
}

func TestLoggerPrintsDurationsReadably(t *testing.T) {
	var buf bytes.Buffer
	NewLogger(&buf, LogOptions{}).Info("x", "timeout", 90*time.Second)
	if !strings.Contains(buf.String(), `"timeout":"1m30s"`) {
		t.Fatalf("duration logged as %s", buf.String())
	}
}

// TestRedactorRedactsEverySecret: every non-empty secret is redacted, the
// short ones (an operator's registration token may be "a") where they
// stand alone, the long ones anywhere.
func TestRedactorRedactsEverySecret(t *testing.T) {
	tests := []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"one-letter token as a value", []string{"a"}, `registration_token=a name="a" a`, `registration_token=[REDACTED] name="[REDACTED]" [REDACTED]`},
		{"one-letter token inside words", []string{"a"}, "data path /var/a/b", "data path /var/[REDACTED]/b"},
		{"short token in JSON", []string{"t0k"}, `{"registration_token":"t0k","x":"t0ken"}`, `{"registration_token":"[REDACTED]","x":"t0ken"}`},
		{"short token next to punctuation", []string{"abc12"}, "Basic r1:abc12, (abc12) abc12.", "Basic r1:[REDACTED], ([REDACTED]) [REDACTED]."},
		{"short token overlapping itself", []string{"aa"}, "aaa aa", "aaa [REDACTED]"},
		{"short token next to non-ASCII letters", []string{"ab"}, "éab ab", "éab [REDACTED]"},
		{"long secret inside a word", []string{"s3cr3tPodKey"}, "Basic cjE6s3cr3tPodKeyX=", "Basic cjE6[REDACTED]X="},
		{"longest first", []string{"tok", "tok-abcdefgh"}, "tok-abcdefgh tok", "[REDACTED] [REDACTED]"},
		{"empty secret ignored", []string{""}, "nothing to hide", "nothing to hide"},
		{"the whole string", []string{"x"}, "x", "[REDACTED]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Redactor{}
			r.Add(tt.secrets...)
			if got := r.String(tt.in); got != tt.want {
				t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestShortTokenNeverReachesLogsOrSentry: a short registration token given
// to Setup is redacted from the log line and the Sentry event alike.
func TestShortTokenNeverReachesLogsOrSentry(t *testing.T) {
	const token = "k9x"
	srv := sentrytest.Start(t, dsnKey)
	var buf bytes.Buffer
	p, err := Setup(&buf, ProcessOptions{Component: "radar-agent", DSN: srv.DSN, Secrets: []string{token}})
	if err != nil {
		t.Fatal(err)
	}
	p.Log.Error("registration refused", "token", token, "err", fmt.Errorf("POST registration_token=%s: 422", token))
	p.Sentry.Flush(10 * time.Second)
	events := srv.WaitEvents(1, 30*time.Second)
	if len(events) == 0 {
		t.Fatal("no Sentry event")
	}
	for where, text := range map[string]string{"log": buf.String(), "Sentry event": string(events[0].Raw)} {
		if strings.Contains(text, token) {
			t.Errorf("the token reached the %s: %s", where, text)
		}
		if !strings.Contains(text, Redacted) {
			t.Errorf("the %s lost the redaction marker: %s", where, text)
		}
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "INFO": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError} {
		got, err := ParseLevel(in)
		if err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseLevel("verbose"); err == nil {
		t.Error("ParseLevel accepted an unknown level")
	}
}

func TestSentryEventsCarryTagsAndNoSecrets(t *testing.T) {
	srv := sentrytest.Start(t, dsnKey)
	r := &Redactor{}
	r.Add(podSecret)
	s, err := NewSentry(SentryOptions{
		DSN: srv.DSN, Release: "1.2.3", Redactor: r,
		Tags: map[string]string{"version": "1.2.3", "distribution": "linux-arm64", "arch": "arm64"},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.SetTag("pod_id", "rabc123def45")
	log := NewLogger(io.Discard, LogOptions{Redactor: r, Sentry: s})
	log.Error("upload rejected", "err", errors.New("403 for secret "+podSecret), "dsn", srv.DSN)
	log.Info("not reported")
	s.Flush(5 * time.Second)

	events := srv.WaitEvents(1, 5*time.Second)
	if len(events) != 1 {
		t.Fatalf("got %d events, want exactly 1 (info must not be reported)", len(events))
	}
	tags := events[0].Tags()
	for k, want := range map[string]string{"pod_id": "rabc123def45", "version": "1.2.3", "distribution": "linux-arm64", "arch": "arm64"} {
		if tags[k] != want {
			t.Errorf("tag %s = %q, want %q", k, tags[k], want)
		}
	}
	raw := string(events[0].Raw)
	for _, secret := range []string{podSecret, dsnKey} {
		if strings.Contains(raw, secret) {
			t.Errorf("event contains secret %q: %s", secret, raw)
		}
	}
	if !strings.Contains(raw, "upload rejected") {
		t.Errorf("event lost the message: %s", raw)
	}
}

func TestSentryPanicIsCapturedFlushedAndRepanicked(t *testing.T) {
	srv := sentrytest.Start(t, dsnKey)
	s, err := NewSentry(SentryOptions{DSN: srv.DSN, Redactor: &Redactor{}})
	if err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("re-panicked value = %v, want boom", r)
			}
		}()
		defer s.RepanicAfterReport()
		panic("boom")
	}()
	if ev := srv.WaitEvents(1, 5*time.Second); len(ev) != 1 {
		t.Fatalf("panic produced %d events, want 1", len(ev))
	}
}

func TestDisabledSentryIsSafe(t *testing.T) {
	s, err := NewSentry(SentryOptions{})
	if err != nil || s.Enabled() {
		t.Fatalf("empty DSN: %v, enabled=%v", err, s.Enabled())
	}
	s.Capture("x", errors.New("y"), nil)
	s.SetTag("a", "b")
	var nilSentry *Sentry
	nilSentry.Capture("x", nil, nil)
	if _, err := NewSentry(SentryOptions{DSN: "::not a dsn " + dsnKey}); err == nil || strings.Contains(err.Error(), dsnKey) {
		t.Fatalf("invalid DSN error = %v (must fail without echoing the DSN)", err)
	}
}

func TestHealthEndpoint(t *testing.T) {
	dir := t.TempDir()
	h := &Health{DataDir: dir, MaxSilence: time.Minute}
	srv := httptest.NewServer(Handler(NewMetrics(), h))
	defer srv.Close()
	get := func() int {
		resp, err := http.Get(srv.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(); code != 503 {
		t.Fatalf("before first beat: %d, want 503", code)
	}
	h.Beat()
	if code := get(); code != 200 {
		t.Fatalf("after beat: %d, want 200", code)
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	if os.Geteuid() != 0 { // root ignores directory permissions
		if code := get(); code != 503 {
			t.Fatalf("read-only data dir: %d, want 503", code)
		}
	}
	os.Chmod(dir, 0o700)
	h.MaxSilence = time.Nanosecond
	time.Sleep(time.Millisecond)
	if code := get(); code != 503 {
		t.Fatalf("silent main loop: %d, want 503", code)
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "radar_outbox_records") {
		t.Fatalf("metrics page lacks radar series")
	}
}

func TestHealthDataDirGone(t *testing.T) {
	h := &Health{DataDir: t.TempDir() + "/missing", MaxSilence: time.Minute}
	h.Beat()
	if err := h.Check(); err == nil || !strings.Contains(err.Error(), "data dir") {
		t.Fatalf("Check with missing data dir = %v", err)
	}
}

func TestCheckHealthAgainstServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h := &Health{MaxSilence: time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, addr, Handler(NewMetrics(), h), slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	defer func() { cancel(); <-done }()
	var last error
	for i := 0; i < 100; i++ {
		if last = CheckHealth(context.Background(), addr); last != nil && strings.Contains(last.Error(), "503") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if last == nil || !strings.Contains(last.Error(), "503") {
		t.Fatalf("CheckHealth before beat = %v, want a 503 error", last)
	}
	h.Beat()
	if err := CheckHealth(context.Background(), addr); err != nil {
		t.Fatalf("CheckHealth after beat: %v", err)
	}
	_, port, _ := net.SplitHostPort(addr)
	if err := CheckHealth(context.Background(), "0.0.0.0:"+port); err != nil {
		t.Fatalf("CheckHealth via unspecified listen address: %v", err)
	}
}
