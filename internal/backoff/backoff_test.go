package backoff

import (
	"context"
	"testing"
	"time"
)

func TestNextGrowsAndCaps(t *testing.T) {
	tests := []struct {
		name string
		b    Backoff
		want []time.Duration
	}{
		{"channel pacing", Backoff{Initial: 500 * time.Millisecond, Max: 15 * time.Second},
			[]time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second, 15 * time.Second}},
		{"factor 3", Backoff{Initial: time.Second, Max: 20 * time.Second, Factor: 3},
			[]time.Duration{time.Second, 3 * time.Second, 9 * time.Second, 20 * time.Second}},
		{"no cap", Backoff{Initial: time.Second},
			[]time.Duration{time.Second, 2 * time.Second, 4 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.b
			for i, want := range tt.want {
				if got := b.Next(); got != want {
					t.Fatalf("delay %d = %v, want %v", i, got, want)
				}
			}
			b.Reset()
			if got := b.Next(); got != tt.want[0] {
				t.Fatalf("after Reset: %v, want %v", got, tt.want[0])
			}
		})
	}
}

func TestJitterStaysWithinBounds(t *testing.T) {
	b := &Backoff{Initial: 500 * time.Millisecond, Max: 15 * time.Second, Jitter: 0.1}
	seenLow, seenHigh := false, false
	for i := 0; i < 2000; i++ {
		b.Reset()
		d := b.Next()
		if d < 450*time.Millisecond || d > 550*time.Millisecond {
			t.Fatalf("jittered first delay %v outside 500ms ±10%%", d)
		}
		seenLow = seenLow || d < 490*time.Millisecond
		seenHigh = seenHigh || d > 510*time.Millisecond
	}
	if !seenLow || !seenHigh {
		t.Fatalf("jitter is not spread on both sides (low %v, high %v)", seenLow, seenHigh)
	}
	for i := 0; i < 20; i++ {
		b.Next()
	}
	if d := b.Next(); d < 13500*time.Millisecond || d > 16500*time.Millisecond {
		t.Fatalf("capped delay %v outside 15s ±10%%", d)
	}
}

func TestWaitHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Wait(ctx, time.Hour); err != context.Canceled {
		t.Fatalf("Wait on cancelled context = %v, want context.Canceled", err)
	}
	if err := Wait(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Wait = %v", err)
	}
}

func TestFullJitterAndSpreadNext(t *testing.T) {
	tests := []struct {
		name   string
		spread bool // SpreadNext before drawing
		steps  int  // Next calls before the one observed
		window time.Duration
	}{
		{"first", false, 0, 500 * time.Millisecond},
		{"third", false, 2, 2 * time.Second},
		{"capped", false, 20, ChannelMax},
		{"after SpreadNext", true, 0, ChannelMax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var low, high bool
			for range 2000 {
				b := Channel()
				for range tt.steps {
					b.Next()
				}
				if tt.spread {
					b.SpreadNext()
				}
				d := b.Next()
				if d < 0 || d >= tt.window {
					t.Fatalf("delay %v outside [0, %v)", d, tt.window)
				}
				low = low || d < tt.window/4
				high = high || d > tt.window*3/4
			}
			if !low || !high {
				t.Fatalf("full jitter does not cover [0, %v): low %v high %v", tt.window, low, high)
			}
		})
	}
	// SpreadNext without a cap is a reset.
	b := &Backoff{Initial: time.Second}
	b.Next()
	b.Next()
	b.SpreadNext()
	if got := b.Next(); got != time.Second {
		t.Fatalf("SpreadNext without Max, then Next = %v, want Initial", got)
	}
}
