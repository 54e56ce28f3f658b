package agent

import (
	"errors"
	"io/fs"
	"math"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/radarpod/radarpod/internal/atomicfile"
	"github.com/radarpod/radarpod/internal/config"
)

// ScheduleFile persists the next standalone run, so a restarting (or crash
// looping) pod neither forgets a due test nor runs one at every restart.
const ScheduleFile = "schedule.json"

// minGap is the shortest gap between standalone runs: tests use the line
// they measure, and back-to-back runs would disturb the household.
const minGap = 15 * time.Minute

// firstRunDelay is how soon a freshly installed standalone pod runs its
// first test: the installer wants to see it work.
const firstRunDelay = 10 * time.Second

// catchUpSpread is the window a run missed while the pod was off is
// spread over after start-up. Pods that lose power together (an area's
// outage, a school switching off for the weekend) boot together: running
// every missed test at boot would hit M-Lab's servers and the pods service
// from all of them in the same second (docs/fleet.md).
const catchUpSpread = 15 * time.Minute

// catchUpDelay is how long after start-up a missed run waits: uniform in
// [0, min(catchUpSpread, mean/2)), u uniform in [0, 1). Half the mean
// keeps the most frequent schedule (96 a day, a 15-minute mean) from
// pushing the missed run past the next one.
func catchUpDelay(mean time.Duration, u float64) time.Duration {
	spread := min(catchUpSpread, mean/2)
	if !(u >= 0 && u < 1) {
		u = 0
	}
	return time.Duration(u * float64(spread))
}

// nextGap draws an exponentially distributed gap (a Poisson schedule: runs
// land at every time of day, not on a grid) with the given mean, clamped to
// [minGap, 2×mean]. u is uniform in [0, 1).
//
// The arithmetic stays in float64 until the clamps are applied: converting
// an out-of-range float to a Duration is implementation-defined (on amd64
// it yields a huge negative value), and a negative gap means tests back to
// back. minGap is applied last, so it wins over any mean, and a NaN (which
// fails every comparison) lands on it too.
func nextGap(mean time.Duration, u float64) time.Duration {
	gap := -math.Log1p(-u) * float64(mean)
	if upper := 2 * float64(mean); gap > upper {
		gap = upper
	}
	if !(gap >= float64(minGap)) {
		return minGap
	}
	if gap >= float64(maxGap) {
		return maxGap
	}
	return time.Duration(gap)
}

// maxGap is 2 × the longest mean configuration allows: the gap after the
// schedule is clamped whatever it is handed.
const maxGap = time.Duration(2 * float64(24*time.Hour) / config.MinTestsPerDay)

// meanGap is the schedule's mean gap for RADAR_TESTS_PER_DAY. The
// configuration rejects values outside [MinTestsPerDay, MaxTestsPerDay]
// (NaN included); clamping here as well keeps the schedule sane for any
// caller.
func meanGap(testsPerDay float64) time.Duration {
	if !(testsPerDay >= config.MinTestsPerDay) {
		testsPerDay = config.MinTestsPerDay
	}
	testsPerDay = min(testsPerDay, config.MaxTestsPerDay)
	return time.Duration(float64(24*time.Hour) / testsPerDay)
}

type scheduleState struct {
	NextRunAt time.Time `json:"next_run_at"`
}

// standaloneSchedule decides when standalone runs happen.
type standaloneSchedule struct {
	path string
	mean time.Duration
	rand func() float64
}

func newStandaloneSchedule(dataDir string, testsPerDay float64) *standaloneSchedule {
	return &standaloneSchedule{path: filepath.Join(dataDir, ScheduleFile), mean: meanGap(testsPerDay), rand: rand.Float64}
}

// initial returns when the first run after start-up is due.
func (s *standaloneSchedule) initial(now time.Time) (time.Time, error) {
	var st scheduleState
	err := atomicfile.ReadJSON(s.path, &st)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s.save(now.Add(firstRunDelay))
	case err != nil, st.NextRunAt.After(now.Add(2 * s.mean)):
		// Unreadable, or written under a clock that has since jumped back:
		// start a fresh gap rather than wait for a date that may be years off.
		return s.advance(now)
	case st.NextRunAt.Before(now):
		// Missed while the pod was off: run soon, at a point of its own
		// (saved, so a restart meanwhile keeps it).
		return s.save(now.Add(catchUpDelay(s.mean, s.rand())))
	}
	return st.NextRunAt, nil
}

// advance schedules the run after the one starting at now.
func (s *standaloneSchedule) advance(now time.Time) (time.Time, error) {
	return s.save(now.Add(nextGap(s.mean, s.rand())))
}

func (s *standaloneSchedule) save(t time.Time) (time.Time, error) {
	return t, atomicfile.WriteJSON(s.path, scheduleState{NextRunAt: t.UTC()}, 0o644)
}
