package fleet

import (
	"slices"
	"testing"
	"time"
)

func TestSimRunsEventsInTimeThenSchedulingOrder(t *testing.T) {
	tests := []struct {
		name  string
		at    []time.Duration // scheduled in this order, labelled 0, 1, ...
		until time.Duration
		want  []int // labels in the order they ran
		now   time.Duration
	}{
		{"time order", []time.Duration{3 * time.Second, time.Second, 2 * time.Second}, time.Minute, []int{1, 2, 0}, time.Minute},
		{"ties keep scheduling order", []time.Duration{time.Second, time.Second, 0, time.Second}, time.Minute, []int{2, 0, 1, 3}, time.Minute},
		{"stops at until", []time.Duration{time.Second, 5 * time.Second, 2 * time.Second}, 2 * time.Second, []int{0, 2}, 2 * time.Second},
		{"until is inclusive", []time.Duration{2 * time.Second}, 2 * time.Second, []int{0}, 2 * time.Second},
		{"nothing due", []time.Duration{time.Hour}, time.Minute, nil, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Sim
			var ran []int
			var clock []time.Duration
			for i, at := range tt.at {
				s.At(at, func() { ran = append(ran, i); clock = append(clock, s.Now()) })
			}
			n := s.Run(tt.until)
			if !slices.Equal(ran, tt.want) {
				t.Fatalf("ran %v, want %v", ran, tt.want)
			}
			if n != len(tt.want) {
				t.Errorf("Run returned %d, want %d", n, len(tt.want))
			}
			for k, i := range ran {
				if clock[k] != tt.at[i] {
					t.Errorf("event %d ran at %v, want %v", i, clock[k], tt.at[i])
				}
			}
			if s.Now() != tt.now {
				t.Errorf("Now after Run = %v, want %v", s.Now(), tt.now)
			}
			if s.Pending() != len(tt.at)-len(tt.want) {
				t.Errorf("Pending = %d, want %d", s.Pending(), len(tt.at)-len(tt.want))
			}
		})
	}
}

func TestSimEventsScheduleEvents(t *testing.T) {
	var s Sim
	var at []time.Duration
	var tick func()
	tick = func() {
		at = append(at, s.Now())
		if len(at) < 4 {
			s.After(10*time.Second, tick)
		}
	}
	s.After(5*time.Second, tick)
	s.Run(time.Hour)
	want := []time.Duration{5 * time.Second, 15 * time.Second, 25 * time.Second, 35 * time.Second}
	if !slices.Equal(at, want) {
		t.Fatalf("ticks at %v, want %v", at, want)
	}
	// The clock never goes back: an event scheduled in the past runs now.
	ranAt := time.Duration(-1)
	s.At(time.Second, func() { ranAt = s.Now() })
	s.Run(2 * time.Hour)
	if ranAt != time.Hour {
		t.Fatalf("event scheduled in the past ran at %v, want %v", ranAt, time.Hour)
	}
}

func TestPeakMean(t *testing.T) {
	tests := []struct {
		xs       []int
		from, to int
		peak     int
		mean     float64
	}{
		{[]int{1, 5, 3}, 0, 3, 5, 3},
		{[]int{1, 5, 3}, 0, 6, 5, 1.5}, // missing seconds count as 0
		{[]int{9, 1, 2}, 1, 3, 2, 1.5},
		{nil, 0, 10, 0, 0},
	}
	for _, tt := range tests {
		peak, mean := PeakMean(tt.xs, tt.from, tt.to)
		if peak != tt.peak || mean != tt.mean {
			t.Errorf("PeakMean(%v, %d, %d) = %d, %v; want %d, %v", tt.xs, tt.from, tt.to, peak, mean, tt.peak, tt.mean)
		}
	}
}
