package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/sentrytest"
)

// fakeClock is the limits' clock, moved by the test.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)} }
func (c *fakeClock) set(t time.Time)     { c.t = t }

func TestFingerprint(t *testing.T) {
	type custom struct{ error }
	tests := []struct {
		name    string
		msg     string
		err     error
		want    string
		network bool
	}{
		{"message only", "netcheck failed", nil, "message|netcheck failed", false},
		{"details do not split", "upload rejected", fmt.Errorf("record 17: %w", errors.New("422")), "error|upload rejected|*errors.errorString", false},
		{"type of the innermost error", "x", fmt.Errorf("a: %w", &custom{errors.New("b")}), "error|x|*telemetry.custom", false},
		{"refused", "register failed", &url.Error{Op: "Post", URL: "http://h", Err: &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}}, "network|refused", true},
		{"refused, another message", "status failed", fmt.Errorf("status: %w", syscall.ECONNREFUSED), "network|refused", true},
		{"dns", "y", &net.DNSError{Err: "no such host", Name: "radar.example"}, "network|dns", true},
		{"reset", "y", fmt.Errorf("read: %w", syscall.ECONNRESET), "network|reset", true},
		{"unreachable", "y", fmt.Errorf("dial: %w", syscall.ENETUNREACH), "network|unreachable", true},
		{"timeout", "y", fmt.Errorf("upload: %w", context.DeadlineExceeded), "network|timeout", true},
		{"hang-up", "y", &url.Error{Op: "Post", URL: "http://h", Err: io.EOF}, "network|eof", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fp, network := fingerprint(tt.msg, tt.err)
			if fp != tt.want || network != tt.network {
				t.Fatalf("fingerprint = %q, %v; want %q, %v", fp, network, tt.want, tt.network)
			}
		})
	}
}

// occurrence is one event offered to the limiter at an offset from the start.
type occurrence struct {
	at      time.Duration
	fp      string
	network bool
}

func every(step, until time.Duration, fp string, network bool) []occurrence {
	var out []occurrence
	for at := time.Duration(0); at < until; at += step {
		out = append(out, occurrence{at, fp, network})
	}
	return out
}

func TestLimiterPolicy(t *testing.T) {
	distinct := func(n int) []occurrence {
		var out []occurrence
		for i := range n {
			out = append(out, occurrence{time.Duration(i) * time.Second, fmt.Sprintf("message|bug %d", i), false})
		}
		return out
	}
	tests := []struct {
		name string
		occ  []occurrence
		sent int
	}{
		{"one fault every 10 minutes for a day", every(10*time.Minute, 24*time.Hour, "message|netcheck", false), 2},
		{"one fault every 10 minutes for a week", every(10*time.Minute, 7*24*time.Hour, "message|netcheck", false), 14},
		{"a network error every 15 s for a day", every(15*time.Second, 24*time.Hour, "network|refused", true), 1},
		{"many distinct faults at once hit the daily cap", distinct(50), DailyEventCap},
		{"the cap is per rolling day", append(distinct(50), occurrence{25 * time.Hour, "message|late", false}), DailyEventCap + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			start := clock.t
			l := newLimiter("", clock.now)
			sent := 0
			for _, o := range tt.occ {
				clock.set(start.Add(o.at))
				if ok, _ := l.admit(o.fp, o.network); ok {
					sent++
				}
			}
			if sent != tt.sent {
				t.Fatalf("sent %d of %d, want %d", sent, len(tt.occ), tt.sent)
			}
			if st := l.snapshot(); st.Offered != len(tt.occ) || st.Sent != sent || st.Suppressed != len(tt.occ)-sent {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestLimiterReportsWhatItHeldBack(t *testing.T) {
	clock := newFakeClock()
	start := clock.t
	l := newLimiter("", clock.now)
	if ok, d := l.admit("message|x", false); !ok || d["occurrences"] != 1 {
		t.Fatalf("first = %v, %v", ok, d)
	}
	for i := 1; i <= 5; i++ {
		clock.set(start.Add(time.Duration(i) * time.Hour))
		if ok, _ := l.admit("message|x", false); ok {
			t.Fatalf("repeat %d sent", i)
		}
	}
	clock.set(start.Add(FingerprintWindow))
	ok, d := l.admit("message|x", false)
	if !ok {
		t.Fatal("not sent after the window")
	}
	want := map[string]any{"occurrences": 6, "first_seen": start.Add(time.Hour).Format(time.RFC3339), "last_seen": start.Add(FingerprintWindow).Format(time.RFC3339)}
	for k, v := range want {
		if d[k] != v {
			t.Errorf("details[%s] = %v, want %v", k, d[k], v)
		}
	}
}

// The limits survive the process: a crash loop is one event, not one per
// restart. A garbled, oversized or unreadable file starts afresh.
func TestLimiterPersists(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	restarts := 0
	for range 100 { // a restart a minute for 100 minutes
		l := newLimiter(dir, clock.now)
		if ok, _ := l.admit("panic|runtime.Error|main.start", false); ok {
			restarts++
		}
		clock.add(time.Minute)
	}
	if restarts != 1 {
		t.Fatalf("%d events from 100 crash-looping restarts, want 1", restarts)
	}
	b, err := os.ReadFile(filepath.Join(dir, SentryLimitsFile))
	if err != nil || strings.Contains(string(b), "panic") {
		t.Fatalf("limits file %q (%v): want hashes, no event text", b, err)
	}
	for name, content := range map[string][]byte{
		"garbage":   []byte("{\x00not json"),
		"oversized": []byte(`{"day_sent":0,"pad":"` + strings.Repeat("x", maxLimitsFile) + `"}`),
		"negative":  []byte(`{"day_sent":-99,"fingerprints":{"k":null}}`),
	} {
		if err := os.WriteFile(filepath.Join(dir, SentryLimitsFile), content, 0o600); err != nil {
			t.Fatal(err)
		}
		l := newLimiter(dir, clock.now)
		if ok, _ := l.admit("message|y", false); !ok && name != "negative" {
			t.Errorf("%s file: first event held back", name)
		}
	}
	// A negative day count is clamped to the cap, never read as room for more.
	os.WriteFile(filepath.Join(dir, SentryLimitsFile), []byte(`{"day_start":"`+clock.t.Format(time.RFC3339)+`","day_sent":-99}`), 0o600)
	if ok, _ := newLimiter(dir, clock.now).admit("message|z", false); ok {
		t.Error("a negative day count let an event through the cap")
	}
}

func TestLimiterBoundsItsState(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	l := newLimiter(dir, clock.now)
	for i := range 500 {
		clock.add(time.Hour)
		l.admit(fmt.Sprintf("message|%d", i), false)
	}
	if n := len(l.st.Prints); n > maxFingerprints {
		t.Fatalf("%d fingerprints kept, want at most %d", n, maxFingerprints)
	}
	if fi, err := os.Stat(filepath.Join(dir, SentryLimitsFile)); err != nil || fi.Size() > maxLimitsFile {
		t.Fatalf("limits file: %v, %v", fi, err)
	}
}

// A clock that jumps back does not reopen every window.
func TestLimiterClockBackwards(t *testing.T) {
	clock := newFakeClock()
	l := newLimiter("", clock.now)
	l.admit("message|x", false)
	clock.add(-30 * 24 * time.Hour)
	if ok, _ := l.admit("message|x", false); ok {
		t.Fatal("a clock set back reopened the window")
	}
	clock.add(FingerprintWindow)
	if ok, _ := l.admit("message|x", false); !ok {
		t.Fatal("held back for more than a window after the clock was set back")
	}
}

// Through the Sentry client: repeats are one event with their count, and
// the event is fingerprinted for Sentry's grouping.
func TestSentryCaptureIsLimited(t *testing.T) {
	st := sentrytest.Start(t, "limitpublickey01")
	clock := newFakeClock()
	s, err := NewSentry(SentryOptions{DSN: st.DSN, Redactor: &Redactor{}, Now: clock.now, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		s.Capture("status heartbeat failed", fmt.Errorf("post %d: %w", i, syscall.ECONNREFUSED), map[string]any{"attempt": i})
		s.Capture("cannot store a result", fmt.Errorf("disk %d", i), nil)
		clock.add(time.Hour)
	}
	if !s.Flush(10 * time.Second) {
		t.Fatal("events not flushed in 10 s")
	}
	events := st.WaitEvents(5, 10*time.Second)
	// network|refused at 0h and 24h; the storage fault at 0h, 12h, 24h.
	if len(events) != 5 {
		t.Fatalf("%d events, want 5: %v", len(events), events)
	}
	last := events[len(events)-1].JSON
	details, _ := last["contexts"].(map[string]any)["details"].(map[string]any)
	if details["occurrences"] == nil || details["first_seen"] == nil || details["last_seen"] == nil {
		t.Errorf("event details %v lack the occurrence counts", details)
	}
	if fp, _ := events[0].JSON["fingerprint"].([]any); len(fp) != 1 {
		t.Errorf("event fingerprint %v", events[0].JSON["fingerprint"])
	}
	if got := s.Stats(); got.Offered != 60 || got.Sent != 5 {
		t.Errorf("stats %+v", got)
	}
}
