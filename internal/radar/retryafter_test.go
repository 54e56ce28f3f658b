package radar_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/backoff"
	"github.com/radarpod/radarpod/internal/radar"
	"github.com/radarpod/radarpod/internal/radartest"
)

// Every HTTP call of the pods service reports the Retry-After of a 429 or
// 503 with the failure, and a 429 is throttling, not a failure class that
// escalates.
func TestRetryAfterOnEveryCall(t *testing.T) {
	date := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		status int
		header http.Header
		class  radar.Class
		want   time.Duration
	}{
		{"429 seconds", 429, http.Header{"Retry-After": {"120"}}, radar.ClassThrottled, 2 * time.Minute},
		{"503 seconds", 503, http.Header{"Retry-After": {"30"}}, radar.ClassServer, 30 * time.Second},
		{"503 HTTP-date against the answer's Date", 503, http.Header{
			"Retry-After": {date.Add(10 * time.Minute).Format(http.TimeFormat)},
		}, radar.ClassServer, 10 * time.Minute},
		{"429 without Retry-After", 429, nil, radar.ClassThrottled, 0},
		{"429 asking for a day is capped", 429, http.Header{"Retry-After": {"86400"}}, radar.ClassThrottled, backoff.MaxRetryAfter},
		{"429 garbage Retry-After", 429, http.Header{"Retry-After": {"later"}}, radar.ClassThrottled, 0},
		// Only 429 and 503 mean "not now".
		{"500 with Retry-After", 500, http.Header{"Retry-After": {"60"}}, radar.ClassServer, 0},
	}
	calls := []struct {
		ep   radartest.Endpoint
		call func(ctx context.Context, c *radar.Client, id radar.Identity) error
	}{
		{radartest.EndpointRegister, func(ctx context.Context, c *radar.Client, _ radar.Identity) error {
			_, err := c.Register(ctx, radar.RegisterRequest{})
			return err
		}},
		{radartest.EndpointStatus, func(ctx context.Context, c *radar.Client, id radar.Identity) error {
			_, err := c.Status(ctx, id, radar.StatusRequest{})
			return err
		}},
		{radartest.EndpointUpload, func(ctx context.Context, c *radar.Client, id radar.Identity) error {
			return c.UploadMeasurement(ctx, id, radar.Measurement{Style: radar.StyleOokla, Result: []byte(`{"type":"result"}`)})
		}},
	}
	for _, call := range calls {
		for _, tc := range tests {
			t.Run(string(call.ep)+"/"+tc.name, func(t *testing.T) {
				srv := radartest.Start(t, radartest.Options{})
				c, id := register(t, srv)
				h := tc.header.Clone()
				if h == nil {
					h = http.Header{}
				}
				// The service's clock is the reference for an HTTP-date.
				h.Set("Date", date.Format(http.TimeFormat))
				srv.SetResponder(call.ep, func(int) radartest.Reply { return radartest.Reply{Status: tc.status, Header: h} })
				err := call.call(ctxT(t), c, id)
				if err == nil {
					t.Fatal("call succeeded")
				}
				if got := radar.Classify(err); got != tc.class {
					t.Errorf("Classify(%v) = %q, want %q", err, got, tc.class)
				}
				if !radar.Classify(err).Retryable() {
					t.Errorf("%v is not retryable", err)
				}
				if got := radar.RetryAfterOf(err); got != tc.want {
					t.Errorf("RetryAfterOf(%v) = %v, want %v", err, got, tc.want)
				}
			})
		}
	}
}

// A 429 or 503 answer to the channel's upgrade with Retry-After holds the
// next attempt back at least that long, spread; without one the protocol's
// backoff paces it.
func TestCableHonoursRetryAfterOnTheUpgrade(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		header   http.Header
		min, max time.Duration
	}{
		{"429 Retry-After 2", 429, http.Header{"Retry-After": {"2"}}, 2 * time.Second, 3 * time.Second},
		{"503 Retry-After 3", 503, http.Header{"Retry-After": {"3"}}, 3 * time.Second, 4500 * time.Millisecond},
		{"429 without Retry-After", 429, nil, 0, 110 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, radartest.Options{}, nil)
			// Never actually wait: the delay chosen is what is checked.
			radar.SetWait(r.cable, func(ctx context.Context, d time.Duration) error {
				r.mu.Lock()
				r.delays = append(r.delays, d)
				r.mu.Unlock()
				return backoff.Wait(ctx, 10*time.Millisecond)
			})
			r.srv.SetResponder(radartest.EndpointCable, func(int) radartest.Reply {
				return radartest.Reply{Status: tc.status, Header: tc.header}
			})
			r.run(t)
			eventually(t, "two refused upgrades", func() bool { return len(r.waits()) >= 2 })
			_, _, disc, _ := r.rec.snapshot()
			var ue *radar.UpgradeError
			if !errors.As(disc[0], &ue) || ue.Code != tc.status || errors.Is(disc[0], radar.ErrUnauthorized) {
				t.Fatalf("Disconnected(%v), want an UpgradeError %d", disc[0], tc.status)
			}
			for i, d := range r.waits()[:2] {
				if d < tc.min || d > tc.max {
					t.Errorf("wait %d = %v, want within [%v, %v]", i, d, tc.min, tc.max)
				}
			}
		})
	}
}
