package agent

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/backoff"
	"github.com/radarpod/radarpod/internal/radar"
	"github.com/radarpod/radarpod/internal/radartest"
)

// retryAfter is a 429 or 503 answer carrying Retry-After, as the service,
// or a proxy in front of it, sends.
func retryAfter(status int, value string) radartest.Reply {
	return radartest.Reply{Status: status, Header: http.Header{"Retry-After": {value}}}
}

// waitLog records the waits the agent chose for registration and the
// status heartbeat, and lets each pass after a moment instead of its
// length: the delay chosen is what the tests check, never the clock.
type waitLog struct {
	mu    sync.Mutex
	waits map[string][]time.Duration
}

func hookWaits(a *Agent) *waitLog {
	w := &waitLog{waits: map[string][]time.Duration{}}
	a.wait = func(ctx context.Context, why string, d time.Duration) error {
		w.mu.Lock()
		w.waits[why] = append(w.waits[why], d)
		w.mu.Unlock()
		return backoff.Wait(ctx, 20*time.Millisecond)
	}
	return w
}

func (w *waitLog) get(why string) []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.waits[why]...)
}

// errorLines returns the log lines at level ERROR: what reaches Sentry.
func errorLines(logs string) []string {
	var out []string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "level=ERROR") {
			out = append(out, l)
		}
	}
	return out
}

func within(t *testing.T, what string, d, lo, hi time.Duration) {
	t.Helper()
	if d < lo || d > hi {
		t.Errorf("%s: waited %v, want within [%v, %v]", what, d, lo, hi)
	}
}

// Registration waits out a 429's and a 503's Retry-After (spread, never
// shorter); the 429 is not reported as an error, the 503 is, as any
// failed registration.
func TestRegisterHonoursRetryAfter(t *testing.T) {
	r := newServiceRig(t, nil, func(srv *radartest.Server) {
		srv.SetChannelDown(true)
		srv.SetResponder(radartest.EndpointRegister, func(n int) radartest.Reply {
			switch n {
			case 1:
				return retryAfter(429, "300")
			case 2:
				return retryAfter(503, "60")
			}
			return radartest.Reply{}
		})
	})
	w := hookWaits(r.a)
	r.run(t)
	r.waitFor(t, "the registration", func() bool { return len(r.srv.Registrations()) == 1 })
	waits := w.get("register")
	if len(waits) != 2 {
		t.Fatalf("registration waits %v, want one after each refusal", waits)
	}
	within(t, "after 429 Retry-After: 300", waits[0], 300*time.Second, 450*time.Second)
	within(t, "after 503 Retry-After: 60", waits[1], 60*time.Second, 90*time.Second)
	errs := errorLines(r.logs.String())
	if len(errs) != 1 || !strings.Contains(errs[0], "503") {
		t.Errorf("error lines %q, want only the 503's report", errs)
	}
	// The status line, not "429" alone: a random event id or a timestamp
	// in the 503's report may hold those digits.
	if sentReport(r.a.sentry, r.sentry, "HTTP status 429") {
		t.Error("the 429 reached Sentry")
	}
}

// The status heartbeat waits out Retry-After, then returns to its pace; a
// 429 is logged as throttling, never as an error.
func TestStatusHonoursRetryAfter(t *testing.T) {
	r := newServiceRig(t, nil, func(srv *radartest.Server) {
		srv.SetChannelDown(true)
		srv.SetResponder(radartest.EndpointStatus, func(n int) radartest.Reply {
			switch n {
			case 1:
				return retryAfter(429, "120")
			case 2:
				return retryAfter(503, "30")
			}
			return radartest.Reply{}
		})
	})
	w := hookWaits(r.a)
	r.run(t)
	r.waitFor(t, "three status calls", func() bool { return len(r.srv.StatusCalls()) >= 1 && len(w.get("status")) >= 4 })
	waits := w.get("status")
	interval := r.a.cfg.PingInterval
	within(t, "phase before the first call", waits[0], interval, 2*interval)
	within(t, "after 429 Retry-After: 120", waits[1], 120*time.Second, 180*time.Second)
	within(t, "after 503 Retry-After: 30", waits[2], 30*time.Second, 45*time.Second)
	within(t, "after an answer", waits[3], interval*9/10, interval*11/10)
	if got := r.a.metrics.StatusCalls.WithLabelValues(string(radar.ClassThrottled)).Value(); got != 1 {
		t.Errorf("status_calls{result=throttled} = %v, want 1", got)
	}
	if errs := errorLines(r.logs.String()); len(errs) != 0 {
		t.Errorf("error lines %q, want none", errs)
	}
}

// An upload answered 429 or 503 with Retry-After keeps its result and
// waits out the time asked for: no wake-up (the service answering a
// heartbeat) ends that wait early, and a 429 is never reported nor paced
// as a refusal.
func TestUploadHonoursRetryAfter(t *testing.T) {
	tests := []struct {
		name     string
		reply    radartest.Reply
		class    radar.Class
		lo, hi   time.Duration
		wakeable bool
	}{
		{"429 Retry-After 120", retryAfter(429, "120"), radar.ClassThrottled, 120 * time.Second, 180 * time.Second, false},
		{"503 Retry-After 60", retryAfter(503, "60"), radar.ClassServer, 60 * time.Second, 90 * time.Second, false},
		{"429 HTTP-date", retryAfter(429, time.Now().Add(10*time.Minute).UTC().Format(http.TimeFormat)),
			radar.ClassThrottled, 9 * time.Minute, 16 * time.Minute, false},
		// Without Retry-After a 429 waits the outage pace, which no
		// heartbeat cuts short, and never the slow refusal pace.
		{"429 without Retry-After", radartest.Reply{Status: 429}, radar.ClassThrottled,
			time.Duration(float64(retryPacing.Initial) * (1 - retryPacing.Jitter)), 2 * retryPacing.Initial, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			refusing := true
			r := newServiceRig(t, nil, func(srv *radartest.Server) {
				srv.SetChannelDown(true)
				srv.SetResponder(radartest.EndpointUpload, func(int) radartest.Reply {
					mu.Lock()
					defer mu.Unlock()
					if refusing {
						return tt.reply
					}
					return radartest.Reply{}
				})
			})
			if _, err := r.a.outbox.Put(ooklaRecord("00000000-0000-4000-8000-000000000002")); err != nil {
				t.Fatal(err)
			}
			pauses := make(chan pauseCall, 16)
			release := make(chan struct{})
			r.a.pause = func(ctx context.Context, d time.Duration, wake <-chan struct{}) {
				select {
				case pauses <- pauseCall{d: d, wakeable: wake != nil}:
				default:
				}
				select {
				case <-ctx.Done():
				case <-wake:
				case <-release:
				}
			}
			r.run(t)
			var first pauseCall
			select {
			case first = <-pauses:
			case <-time.After(wait):
				t.Fatal("the uploader never paused")
			}
			within(t, "upload pause", first.d, tt.lo, tt.hi)
			if first.wakeable != tt.wakeable {
				t.Errorf("pause wakeable=%v, want %v", first.wakeable, tt.wakeable)
			}
			if got := r.a.metrics.Uploads.WithLabelValues(string(tt.class)).Value(); got != 1 {
				t.Errorf("uploads{result=%s} = %v, want 1", tt.class, got)
			}
			// Heartbeats answered meanwhile do not end the wait.
			calls := len(r.srv.StatusCalls())
			r.waitFor(t, "two status answers during the pause", func() bool { return len(r.srv.StatusCalls()) >= calls+2 })
			if n := len(r.srv.UploadAttempts()); n != 1 {
				t.Errorf("%d upload attempts during the wait, want the one refused", n)
			}
			if errs := errorLines(r.logs.String()); len(errs) != 0 {
				t.Errorf("error lines %q, want none", errs)
			}
			mu.Lock()
			refusing = false
			mu.Unlock()
			close(release)
			waitMeasurementsRig(t, r.srv, 1)
			r.waitFor(t, "the outbox to drain", func() bool { return r.a.outbox.Stats().Records == 0 })
		})
	}
}

// Two pods draw their own heartbeat phase: started together, they do not
// poll together.
func TestHeartbeatPhasesDiffer(t *testing.T) {
	var firsts []time.Duration
	for range 2 {
		r := newServiceRig(t, nil, func(srv *radartest.Server) { srv.SetChannelDown(true) })
		w := hookWaits(r.a)
		r.run(t)
		r.waitFor(t, "a status call", func() bool { return len(r.srv.StatusCalls()) >= 1 })
		first := w.get("status")[0]
		within(t, "phase", first, r.a.cfg.PingInterval, 2*r.a.cfg.PingInterval)
		firsts = append(firsts, first)
	}
	if firsts[0] == firsts[1] {
		t.Fatalf("both pods chose the phase %v", firsts[0])
	}
}

func TestHeartbeatPace(t *testing.T) {
	const interval = 15 * time.Second
	tests := []struct {
		u           float64
		first, next time.Duration
	}{
		{0, interval, interval * 9 / 10},
		{0.5, interval * 3 / 2, interval},
		{0.999, interval*2 - 15*time.Millisecond, interval*11/10 - 3*time.Millisecond},
	}
	for _, tt := range tests {
		p := heartbeatPace{interval: interval, rand: func() float64 { return tt.u }}
		if got := p.first(); got.Round(time.Millisecond) != tt.first {
			t.Errorf("u=%v: first = %v, want %v", tt.u, got, tt.first)
		}
		if got := p.next(); got.Round(time.Millisecond) != tt.next {
			t.Errorf("u=%v: next = %v, want %v", tt.u, got, tt.next)
		}
	}
}
