package bench

import (
	"testing"
	"time"
)

func TestRound(t *testing.T) {
	for _, tc := range []struct {
		v      float64
		digits int
		want   float64
	}{
		{11.44, 1, 11.4},
		{11.45, 1, 11.5},
		{-0.105, 2, -0.11}, // halves away from zero, both signs
		{0.105, 2, 0.11},
		{127139, 0, 127139},
		{5.1249, 2, 5.12},
	} {
		if got := Round(tc.v, tc.digits); got != tc.want {
			t.Errorf("Round(%v, %d) = %v, want %v", tc.v, tc.digits, got, tc.want)
		}
	}
}

func TestMedianAndSeconds(t *testing.T) {
	s := func(f ...float64) []time.Duration {
		ds := make([]time.Duration, len(f))
		for i, x := range f {
			ds[i] = time.Duration(x * float64(time.Second))
		}
		return ds
	}
	for _, tc := range []struct {
		name    string
		ds      []time.Duration
		median  float64
		seconds string
	}{
		{"none", nil, 0, ""},
		{"one", s(2.5), 2.5, "2.50"},
		{"odd, unsorted", s(3, 1, 2), 2, "3.00 1.00 2.00"},
		{"even: mean of the middle two", s(4, 1, 3, 2), 2.5, "4.00 1.00 3.00 2.00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Median(tc.ds); got != tc.median {
				t.Errorf("Median = %v, want %v", got, tc.median)
			}
			if got := Seconds(tc.ds); got != tc.seconds {
				t.Errorf("Seconds = %q, want %q", got, tc.seconds)
			}
		})
	}
}
