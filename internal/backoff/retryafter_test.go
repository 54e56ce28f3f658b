package backoff

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	httpDate := func(t time.Time) string { return t.UTC().Format(http.TimeFormat) }
	tests := []struct {
		name, value, date string
		want              time.Duration
		ok                bool
	}{
		{"absent", "", "", 0, false},
		{"seconds", "120", "", 2 * time.Minute, true},
		{"zero seconds", "0", "", 0, true},
		{"surrounding space", " 30 ", "", 30 * time.Second, true},
		{"seconds at the cap", "3600", "", time.Hour, true},
		{"seconds over the cap", "86400", "", MaxRetryAfter, true},
		{"seconds beyond int64", "99999999999999999999999", "", MaxRetryAfter, true},
		{"negative seconds", "-5", "", 0, false},
		{"fractional seconds", "1.5", "", 0, false},
		{"trailing garbage", "10s", "", 0, false},
		{"garbage", "soon", "", 0, false},
		{"date from local clock", httpDate(now.Add(90 * time.Second)), "", 90 * time.Second, true},
		{"date in the past", httpDate(now.Add(-time.Minute)), "", 0, true},
		{"date beyond the cap", httpDate(now.Add(48 * time.Hour)), "", MaxRetryAfter, true},
		// A pod whose clock reads 1970 must still wait what it was told:
		// the answer's own Date is the reference.
		{"date against the answer's Date", httpDate(now.Add(5 * time.Minute)), httpDate(now), 5 * time.Minute, true},
		{"date against a far-off answer Date", httpDate(time.Date(2030, 1, 1, 0, 10, 0, 0, time.UTC)), httpDate(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)), 10 * time.Minute, true},
		{"unusable answer Date falls back to now", httpDate(now.Add(time.Minute)), "yesterday", time.Minute, true},
		{"RFC 850 date", now.Add(time.Minute).Format(time.RFC850), "", time.Minute, true},
		{"ANSI C date", now.Add(time.Minute).Format(time.ANSIC), "", time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseRetryAfter(tt.value, tt.date, now)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("ParseRetryAfter(%q, %q) = %v, %v; want %v, %v", tt.value, tt.date, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestRetryAfterReadsHeaders(t *testing.T) {
	h := http.Header{}
	h.Set("Retry-After", "42")
	if d, ok := RetryAfter(h, time.Now()); !ok || d != 42*time.Second {
		t.Fatalf("RetryAfter = %v, %v; want 42s, true", d, ok)
	}
	if _, ok := RetryAfter(http.Header{}, time.Now()); ok {
		t.Fatal("RetryAfter of no header reported a value")
	}
}

func TestSpreadNeverShortensAndBoundsTheExtra(t *testing.T) {
	tests := []struct {
		hint     time.Duration
		u        float64
		min, max time.Duration
	}{
		{0, 0.5, 0, 0},
		{time.Minute, 0, time.Minute, time.Minute},
		{time.Minute, 0.999, time.Minute, 90 * time.Second},
		{time.Hour, 0.5, time.Hour, 90 * time.Minute},
		// Short hints still spread over at least a second.
		{time.Second, 0.5, 1500 * time.Millisecond, 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		got := Spread(tt.hint, tt.u)
		if got < tt.min || got > tt.max {
			t.Errorf("Spread(%v, %v) = %v, want within [%v, %v]", tt.hint, tt.u, got, tt.min, tt.max)
		}
	}
	// Two pods told the same value do not come back at the same instant.
	seen := map[time.Duration]bool{}
	for _, u := range []float64{0.1, 0.4, 0.7} {
		seen[Spread(time.Minute, u)] = true
	}
	if len(seen) != 3 {
		t.Fatalf("Spread ignores its random input: %v", seen)
	}
}

func TestAfterHonoursTheHintAndKeepsBackingOff(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: time.Minute}
	if d := b.After(10 * time.Minute); d < 10*time.Minute || d > 15*time.Minute {
		t.Fatalf("After(10m) = %v, want within [10m, 15m]", d)
	}
	// The hint did not reset the backoff: the next delay has grown.
	if d := b.After(0); d != 2*time.Second {
		t.Fatalf("After(0) following a hinted failure = %v, want the backoff's second delay 2s", d)
	}
	// A hint shorter than the backoff does not speed it up.
	b = Backoff{Initial: 30 * time.Second, Max: time.Minute}
	if d := b.After(time.Second); d != 30*time.Second {
		t.Fatalf("After(1s) = %v, want the backoff's own 30s", d)
	}
}
