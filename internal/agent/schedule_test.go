package agent

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

func TestNextGapClampsAndAveragesNearMean(t *testing.T) {
	tests := []struct {
		perDay float64
		u      float64
		want   time.Duration
	}{
		{4, 0, minGap},                // shortest draws clamp up
		{4, 0.999999, 12 * time.Hour}, // longest clamp to 2×mean
		{1, 0.5, 59887 * time.Second}, // 24h · ln 2
	}
	for _, tt := range tests {
		got := nextGap(meanGap(tt.perDay), tt.u)
		if d := got - tt.want; d < -time.Second || d > time.Second {
			t.Errorf("nextGap(perDay=%v, u=%v) = %v, want %v", tt.perDay, tt.u, got, tt.want)
		}
	}
	// Whatever it is handed, a gap is never shorter than minGap (tests back
	// to back) nor longer than the longest mean allows.
	edges := []struct {
		name string
		mean time.Duration
		u    float64
	}{
		{"tiny tests per day", meanGap(1e-300), 0.5},
		{"NaN tests per day", meanGap(math.NaN()), 0.5},
		{"infinite tests per day", meanGap(math.Inf(1)), 0.5},
		{"negative tests per day", meanGap(-4), 0.5},
		{"negative mean", -time.Hour, 0.5},
		{"zero mean", 0, 0.5},
		{"largest mean, longest draw", math.MaxInt64, math.Nextafter(1, 0)},
		{"NaN draw", meanGap(4), math.NaN()},
		{"draw of 1", meanGap(4), 1},
	}
	for _, e := range edges {
		if got := nextGap(e.mean, e.u); got < minGap || got > maxGap {
			t.Errorf("%s: nextGap(%v, %v) = %v, want within [%v, %v]", e.name, e.mean, e.u, got, minGap, maxGap)
		}
	}
	if got := meanGap(1e-300); got != meanGap(0.01) {
		t.Errorf("meanGap(1e-300) = %v, want the mean of the smallest accepted value, %v", got, meanGap(0.01))
	}
	// The distribution: bounded, and a median near mean·ln2 as an exponential's is.
	mean := meanGap(4)
	r := rand.New(rand.NewPCG(1, 2))
	gaps := make([]time.Duration, 20000)
	for i := range gaps {
		gaps[i] = nextGap(mean, r.Float64())
		if gaps[i] < minGap || gaps[i] > 2*mean {
			t.Fatalf("gap %v outside [%v, %v]", gaps[i], minGap, 2*mean)
		}
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	median := gaps[len(gaps)/2]
	if want := time.Duration(0.693 * float64(mean)); median < want*95/100 || median > want*105/100 {
		t.Errorf("median gap %v, want ≈ %v", median, want)
	}
}

func TestStandaloneSchedulePersists(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s := newStandaloneSchedule(dir, 4)
	first, err := s.initial(now)
	if err != nil || !first.Equal(now.Add(firstRunDelay)) {
		t.Fatalf("fresh pod first run = %v, %v", first, err)
	}
	next, err := s.advance(now)
	if err != nil || next.Before(now.Add(minGap)) || next.After(now.Add(12*time.Hour)) {
		t.Fatalf("advance = %v, %v", next, err)
	}
	// A restart keeps the schedule instead of running at once.
	if got, _ := newStandaloneSchedule(dir, 4).initial(now.Add(time.Minute)); !got.Equal(next) {
		t.Fatalf("after restart next = %v, want %v", got, next)
	}
	// Overdue after downtime: run within the catch-up window, at a point
	// drawn for this pod and kept across a restart meanwhile.
	later := next.Add(time.Hour)
	overdue := newStandaloneSchedule(dir, 4)
	overdue.rand = func() float64 { return 0.5 }
	got, err := overdue.initial(later)
	if want := later.Add(catchUpSpread / 2); err != nil || !got.Equal(want) {
		t.Fatalf("overdue run scheduled at %v (%v), want %v", got, err, want)
	}
	if again, _ := newStandaloneSchedule(dir, 4).initial(later.Add(time.Minute)); !again.Equal(got) {
		t.Fatalf("a restart moved the overdue run from %v to %v", got, again)
	}
	// A date far in the future (clock jumped back) is replaced by a fresh gap.
	s.save(now.Add(1000 * time.Hour))
	if got, _ := newStandaloneSchedule(dir, 4).initial(now); got.After(now.Add(12 * time.Hour)) {
		t.Fatalf("implausible schedule kept: %v", got)
	}
	os.WriteFile(filepath.Join(dir, ScheduleFile), []byte("{garbage"), 0o644)
	if got, err := newStandaloneSchedule(dir, 4).initial(now); err != nil || got.Before(now.Add(minGap)) {
		t.Fatalf("corrupt schedule: %v, %v", got, err)
	}
}

// Pods that come back from one power cut together spread their missed
// runs over the catch-up window instead of all running at boot.
func TestMissedRunsAreSpreadAcrossPods(t *testing.T) {
	tests := []struct {
		name        string
		testsPerDay float64
		window      time.Duration
	}{
		{"default 4 a day", 4, catchUpSpread},
		{"96 a day: half the mean", 96, 7*time.Minute + 30*time.Second},
		{"0.01 a day", 0.01, catchUpSpread},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			boot := time.Date(2026, 12, 4, 7, 0, 0, 0, time.UTC)
			const pods = 1000
			var perMinute = map[int]int{}
			for range pods {
				dir := t.TempDir()
				s := newStandaloneSchedule(dir, tt.testsPerDay)
				if _, err := s.save(boot.Add(-time.Hour)); err != nil {
					t.Fatal(err)
				}
				at, err := s.initial(boot)
				if err != nil {
					t.Fatal(err)
				}
				d := at.Sub(boot)
				if d < 0 || d >= tt.window {
					t.Fatalf("missed run at boot+%v, want within [0, %v)", d, tt.window)
				}
				perMinute[int(d/time.Minute)]++
			}
			// Uniform over the window: no minute holds more than 3x its share.
			minutes := int((tt.window + time.Minute - 1) / time.Minute)
			for m, n := range perMinute {
				if share := pods / minutes; n > 3*share {
					t.Errorf("minute %d after boot holds %d of %d missed runs (share %d)", m, n, pods, share)
				}
			}
			if len(perMinute) < minutes {
				t.Errorf("missed runs fall in %d of the window's %d minutes", len(perMinute), minutes)
			}
		})
	}
	if d := catchUpDelay(time.Hour, math.NaN()); d != 0 {
		t.Errorf("catchUpDelay(NaN) = %v, want 0", d)
	}
}
