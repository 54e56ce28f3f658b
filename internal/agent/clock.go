package agent

import (
	"context"
	"errors"
	"time"

	"github.com/radarpod/radarpod/internal/wallclock"
)

// clockPoll is how often clockLoop looks at the clock: the kernel's sync
// status has no event to wait for, and a few seconds' delay in dating
// results costs nothing.
const clockPoll = 5 * time.Second

// restamper is what dating undated results needs of the outbox beyond
// Outbox. *outbox.Store implements it.
type restamper interface {
	Restamp(date func(time.Time, wallclock.Stamp) (time.Time, wallclock.Stamp, bool)) (int, error)
}

// clockState is what the log says about the clock; it is said again only
// when it changes.
type clockState struct {
	synced, wallTrusted bool
	source              wallclock.Source
}

// clockLoop follows the clock. It logs whether results can be dated, and
// why not, each time that changes; and once the time is known it dates
// what was recorded before — outbox records and results.jsonl entries of
// this boot with clock_synced false — from the boot clock. Results of an
// earlier boot cannot be dated (the boot clock they were placed on is
// gone): they stay undated, and are never shown as a real date.
//
// Uploads do not wait for any of this (see send).
func (a *Agent) clockLoop(ctx context.Context) {
	tick := time.NewTicker(clockPoll)
	defer tick.Stop()
	var logged, pending *clockState
	// looked: results.jsonl and the outbox were searched once since the
	// start (an earlier run in this boot may have left undated results).
	looked := false
	for {
		r := a.clock.Read()
		cur := clockState{synced: r.Synced, wallTrusted: r.WallErr == nil, source: r.Source}
		switch {
		case logged != nil && *logged == cur:
			pending = nil
		case !r.Synced && (pending == nil || *pending != cur):
			// A pod whose kernel is not synchronized learns the time from
			// the service's first answer, a moment after the start: say
			// "untrusted" only when it lasts.
			pending = &cur
		default:
			a.logClock(r)
			logged, pending = &cur, nil
		}
		if r.Synced && (!looked || a.undated.Load() > 0) {
			n := a.undated.Swap(0)
			if err := a.dateResults(); err != nil {
				a.undated.Add(max(n, 1))
				a.report("clock_dating", "cannot date the results recorded before the clock was synchronized; retrying", err)
			} else {
				looked = true
			}
		}
		// The budget period turns over on a trusted time only; looking
		// here keeps its metrics current between tests.
		a.DataBudget()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (a *Agent) logClock(r wallclock.Reading) {
	switch {
	case !r.Synced:
		a.log.Warn("clock not trusted: results are recorded without a date (clock_synced=false) and dated once the time is known; uploads go on, the service dates them on arrival",
			"reason", r.WallErr)
	case r.WallErr != nil:
		a.log.Warn("system clock wrong: results are dated by the pods service's time", "clock_source", r.Source,
			"time", r.Estimate.UTC().Format(time.RFC3339), "reason", r.WallErr)
	default:
		a.log.Info("clock trusted: results are dated", "clock_source", r.Source)
	}
}

// dateResults dates the undated results of this boot, in results.jsonl
// and in the outbox.
func (a *Agent) dateResults() error {
	var errs []error
	logged, err := a.results.correct(a.clock.BootID(), a.clock.Correct)
	if err != nil {
		errs = append(errs, err)
	}
	if logged > 0 {
		// The status page's copy shows the entries with their new dates.
		if err := a.recent.reload(time.Now()); err != nil {
			a.log.Warn("cannot reread the results history for the status page", "err", err)
		}
	}
	queued := 0
	if box, ok := a.outbox.(restamper); ok {
		queued, err = box.Restamp(func(_ time.Time, s wallclock.Stamp) (time.Time, wallclock.Stamp, bool) {
			return a.clock.Correct(s)
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	if logged+queued > 0 {
		a.log.Info("results recorded before the clock was synchronized are dated now, from the boot clock",
			"results_log_entries", logged, "outbox_records", queued)
	}
	return errors.Join(errs...)
}
