package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/radarpod/radarpod/internal/atomicfile"
	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/telemetry"
	"github.com/radarpod/radarpod/internal/wallclock"
)

// BudgetFile holds the data budget's usage in the data dir, so a restart
// (or an update, which is a restart) neither forgets what the month's
// tests moved nor resets it.
const BudgetFile = "data-budget.json"

// BudgetStatus is the data budget as the status page and `radar-agent
// test` show it.
type BudgetStatus struct {
	// Limit is RADAR_DATA_BUDGET in bytes; 0 means no budget (Used is
	// counted all the same).
	Limit int64
	// Used is what the tests moved in the current period.
	Used int64
	// PeriodStart and PeriodEnd bound the current period (UTC, from
	// RADAR_DATA_BUDGET_RESET_DAY). Both are zero while the pod has not
	// known the time since the budget file was lost (a Pi without RTC
	// before its clock syncs): usage is counted meanwhile and lands in the
	// period the clock names once it is trusted.
	PeriodStart, PeriodEnd time.Time
	// SkippedThisPeriod counts the scheduled runs the budget skipped.
	SkippedThisPeriod int
	// NextRunEstimate is what the next scheduled run is expected to move
	// (all runners, on the default route).
	NextRunEstimate int64
}

// Exceeded reports whether the budget is set and used up.
func (s BudgetStatus) Exceeded() bool { return s.Limit > 0 && s.Used >= s.Limit }

// Remaining is what is left of the budget (never negative); 0 without one.
func (s BudgetStatus) Remaining() int64 { return max(s.Limit-s.Used, 0) }

// DataBudget returns the data budget's current state.
func (a *Agent) DataBudget() BudgetStatus {
	r := a.clock.Read()
	return a.budget.status(r.Estimate, r.Synced, a.runnerNames())
}

// Bounds of what BudgetFile may hold: it lives in a volume, and what is
// read from it is checked, never trusted.
const (
	budgetFileMax = 64 << 10
	// budgetRecent is how many recent tests per runner the estimate of the
	// next one looks at (their median).
	budgetRecent = 5
	// maxCount bounds every byte count read back (1 EB: far beyond any
	// month, far from int64 overflow when added up).
	maxCount = 1 << 60
	maxSkips = 1 << 20
)

// defaultTestEstimate is what a runner's test is expected to move before
// the pod has seen one: a 10 s download at ~150 Mbit/s and an upload at
// ~20 Mbit/s. A faster line spends more on its first test; every later
// estimate comes from the line's own tests.
const defaultTestEstimate = 200_000_000

// budgetState is BudgetFile's content.
type budgetState struct {
	Version     int       `json:"version"`
	PeriodStart time.Time `json:"period_start,omitzero"`
	PeriodEnd   time.Time `json:"period_end,omitzero"`
	UsedBytes   int64     `json:"used_bytes"`
	// UnsyncedBytes is the part of UsedBytes counted while the clock was
	// not trusted since it last was: if the period turns out to have
	// ended meanwhile, those bytes are carried into the new one (a budget
	// errs on the side of counting).
	UnsyncedBytes int64 `json:"unsynced_bytes,omitempty"`
	Skipped       int   `json:"skipped,omitempty"`
	// Recent holds the byte counts of the last tests of each runner,
	// oldest first: the estimate of the next test.
	Recent map[string][]int64 `json:"recent,omitempty"`
}

const budgetVersion = 1

// validate refuses a state no agent writes.
func (s *budgetState) validate() error {
	switch {
	case s.Version != budgetVersion:
		return fmt.Errorf("version %d, want %d", s.Version, budgetVersion)
	case s.PeriodStart.IsZero() != s.PeriodEnd.IsZero():
		return errors.New("period has one end only")
	case !s.PeriodStart.IsZero() && (!s.PeriodEnd.After(s.PeriodStart) || s.PeriodEnd.Sub(s.PeriodStart) > 31*24*time.Hour):
		return fmt.Errorf("period %s to %s is not a month", s.PeriodStart, s.PeriodEnd)
	case s.UsedBytes < 0 || s.UsedBytes > maxCount, s.UnsyncedBytes < 0 || s.UnsyncedBytes > s.UsedBytes:
		return fmt.Errorf("byte counts out of range (used %d, unsynced %d)", s.UsedBytes, s.UnsyncedBytes)
	case s.Skipped < 0 || s.Skipped > maxSkips:
		return fmt.Errorf("skip count %d out of range", s.Skipped)
	}
	for name, recent := range s.Recent {
		if !slices.Contains(config.Runners, name) || len(recent) > budgetRecent {
			return fmt.Errorf("recent tests of %q: not a runner, or more than %d", name, budgetRecent)
		}
		for _, n := range recent {
			if n <= 0 || n > maxCount {
				return fmt.Errorf("recent test of %q moved %d bytes", name, n)
			}
		}
	}
	return nil
}

// budgetPeriod is the budget period holding t: from resetDay (1–28, so
// every month has it) at 00:00 UTC to the same day of the next month.
func budgetPeriod(t time.Time, resetDay int) (start, end time.Time) {
	resetDay = min(max(resetDay, 1), 28)
	y, m, d := t.UTC().Date()
	if d < resetDay {
		m-- // time.Date normalises month 0 to December of the year before
	}
	return time.Date(y, m, resetDay, 0, 0, 0, 0, time.UTC), time.Date(y, m+1, resetDay, 0, 0, 0, 0, time.UTC)
}

// dataBudget counts what tests move and decides whether a scheduled run
// fits. It is fed the clock's best estimate and whether it is trusted: the
// period only ever moves on a trusted time, so a Pi booting at 1970 (or at
// fake-hwclock's last save) neither resets the month nor starts one that
// is not now.
type dataBudget struct {
	mu       sync.Mutex
	path     string
	limit    int64
	resetDay int
	log      *slog.Logger
	metrics  *telemetry.Metrics
	// recount sums the local results of a period, for a lost or garbage
	// BudgetFile (see rebuild).
	recount func(start, end time.Time) (int64, map[string][]int64, error)
	st      budgetState
	// rebuild: BudgetFile was missing or unreadable at start; once the
	// time is known, the period's usage is recounted from the results.
	rebuild bool
}

func openDataBudget(cfg config.Agent, log *slog.Logger, m *telemetry.Metrics, recount func(start, end time.Time) (int64, map[string][]int64, error)) *dataBudget {
	b := &dataBudget{
		path: filepath.Join(cfg.DataDir, BudgetFile), limit: int64(cfg.DataBudget), resetDay: cfg.DataBudgetResetDay,
		log: log, metrics: m, recount: recount,
		st: budgetState{Version: budgetVersion},
	}
	st, err := readBudget(b.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		b.rebuild = true
	case err != nil:
		b.rebuild = true
		log.Warn("data budget file unreadable; the period's usage is recounted from the local results", "file", BudgetFile, "err", err)
	default:
		b.st = st
	}
	b.publish()
	return b
}

// readBudget reads and validates BudgetFile: a regular file of bounded
// size holding a state some agent could have written.
func readBudget(path string) (budgetState, error) {
	var st budgetState
	fi, err := os.Lstat(path)
	if err != nil {
		return st, err
	}
	if !fi.Mode().IsRegular() {
		return st, fmt.Errorf("%s is not a regular file (%s)", filepath.Base(path), fi.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return st, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, budgetFileMax+1))
	if err != nil {
		return st, err
	}
	if len(b) > budgetFileMax {
		return st, fmt.Errorf("larger than %d KiB", budgetFileMax>>10)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		return budgetState{}, fmt.Errorf("decode: %w", err)
	}
	if err := st.validate(); err != nil {
		return budgetState{}, err
	}
	return st, nil
}

// advanceLocked moves the period to the one holding now, if now is
// trusted. It reports whether the state changed.
func (b *dataBudget) advanceLocked(now time.Time, trusted bool) bool {
	if !trusted {
		return false
	}
	start, end := budgetPeriod(now, b.resetDay)
	switch {
	case b.rebuild || b.st.PeriodStart.IsZero():
		// The usage is recounted from the results: those of the period,
		// and this boot's undated ones (tests before the clock was
		// trusted). What this process counted is in them, so the larger
		// of the two is kept, never the sum.
		used, recent, err := b.recount(start, end)
		if err != nil {
			b.log.Warn("data budget: cannot recount the period's usage from the local results; counting from what this run has seen", "err", err)
		}
		b.st.UsedBytes = max(b.st.UsedBytes, used)
		if len(b.st.Recent) == 0 {
			b.st.Recent = recent
		}
		b.rebuild = false
	case b.st.PeriodStart.Equal(start):
		if b.st.UnsyncedBytes == 0 {
			return false
		}
	case !now.Before(b.st.PeriodEnd):
		b.log.Info("data budget: a new period starts", "period_start", start.Format(time.DateOnly), "period_end", end.Format(time.DateOnly),
			"previous_used_bytes", b.st.UsedBytes, "carried_bytes", b.st.UnsyncedBytes)
		b.st.UsedBytes, b.st.Skipped = b.st.UnsyncedBytes, 0
	default:
		// The reset day changed, or the trusted time is before the
		// period on file (written under a clock that was wrong): keep
		// the larger count rather than forget what was spent.
		used, _, err := b.recount(start, end)
		if err != nil {
			b.log.Warn("data budget: cannot recount the period's usage from the local results", "err", err)
		}
		b.st.UsedBytes = max(b.st.UsedBytes, used)
	}
	b.st.PeriodStart, b.st.PeriodEnd, b.st.UnsyncedBytes = start, end, 0
	return true
}

// add counts a test's bytes in the current period (the period on file
// while the clock is not trusted) and remembers them for the estimate.
func (b *dataBudget) add(runner string, n int64, now time.Time, trusted bool) {
	if n <= 0 {
		return
	}
	n = min(n, maxCount)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advanceLocked(now, trusted)
	b.st.UsedBytes = min(b.st.UsedBytes+n, maxCount)
	if !trusted {
		b.st.UnsyncedBytes = min(b.st.UnsyncedBytes+n, b.st.UsedBytes)
	}
	if slices.Contains(config.Runners, runner) {
		if b.st.Recent == nil {
			b.st.Recent = map[string][]int64{}
		}
		r := append(b.st.Recent[runner], n)
		b.st.Recent[runner] = r[max(len(r)-budgetRecent, 0):]
	}
	b.saveLocked()
}

// skip counts a scheduled run the budget skipped.
func (b *dataBudget) skip() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.st.Skipped = min(b.st.Skipped+1, maxSkips)
	b.saveLocked()
}

// status is the budget at now, with the estimate of a run of runners.
func (b *dataBudget) status(now time.Time, trusted bool, runners []string) BudgetStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.advanceLocked(now, trusted) {
		b.saveLocked()
	}
	s := BudgetStatus{
		Limit: b.limit, Used: b.st.UsedBytes, PeriodStart: b.st.PeriodStart, PeriodEnd: b.st.PeriodEnd,
		SkippedThisPeriod: b.st.Skipped,
	}
	for _, r := range runners {
		s.NextRunEstimate += b.estimateLocked(r)
	}
	return s
}

// estimateLocked is what the next test of runner is expected to move: the
// median of its recent tests (one slow or failed test does not make the
// next look cheap, nor one fast test expensive), or the default before
// the first.
func (b *dataBudget) estimateLocked(runner string) int64 {
	recent := slices.Clone(b.st.Recent[runner])
	if len(recent) == 0 {
		return defaultTestEstimate
	}
	slices.Sort(recent)
	return recent[len(recent)/2]
}

// saveLocked persists the state and publishes the metrics. A failed write
// is logged: the count goes on in memory and is written with the next test.
func (b *dataBudget) saveLocked() {
	b.publishLocked()
	if err := atomicfile.WriteJSON(b.path, b.st, 0o644); err != nil {
		b.log.Warn("data budget: cannot persist the period's usage; a restart would recount it from the local results", "err", err)
	}
}

func (b *dataBudget) publish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.publishLocked()
}

func (b *dataBudget) publishLocked() {
	b.metrics.DataBudgetLimit.Set(float64(b.limit))
	b.metrics.DataBudgetUsed.Set(float64(b.st.UsedBytes))
	end := 0.0
	if !b.st.PeriodEnd.IsZero() {
		end = float64(b.st.PeriodEnd.Unix())
	}
	b.metrics.DataBudgetPeriodEnd.Set(end)
}

// runnerNames are the runners a scheduled run would use now.
func (a *Agent) runnerNames() []string {
	var names []string
	for _, r := range a.runners {
		if av, ok := r.(availability); ok && av.Available() != nil {
			continue
		}
		names = append(names, r.Name())
	}
	return names
}

// scheduledRunFits decides, before a scheduled run, whether it fits in
// the budget: if the run's estimate would take the period past it, the
// run is skipped with one INFO line and counted. Without a budget every
// run fits.
func (a *Agent) scheduledRunFits() bool {
	if a.budget.limit <= 0 {
		return true
	}
	s := a.DataBudget()
	if s.Used+s.NextRunEstimate <= s.Limit {
		return true
	}
	a.budget.skip()
	a.metrics.TestsSkipped.WithLabelValues("data_budget").Inc()
	a.log.Info("scheduled test run skipped: it would exceed the data budget", budgetAttrs(s)...)
	return false
}

// noteOverBudget logs and counts a requested run (the service's, a local
// `radar-agent test`) that the budget would have skipped: it runs anyway.
func (a *Agent) noteOverBudget(source string) {
	if a.budget.limit <= 0 || source == "schedule" {
		return
	}
	s := a.DataBudget()
	if s.Used+s.NextRunEstimate <= s.Limit {
		return
	}
	a.metrics.TestsOverBudget.WithLabelValues(source).Inc()
	a.log.Warn("test run requested over the data budget; running it (only scheduled runs are skipped)",
		append([]any{"source", source, "over_budget", true}, budgetAttrs(s)...)...)
}

// budgetAttrs are the figures a person needs to judge a budget decision.
func budgetAttrs(s BudgetStatus) []any {
	attrs := []any{"budget_bytes", s.Limit, "used_bytes", s.Used, "estimate_bytes", s.NextRunEstimate,
		"budget", formatBytes(s.Limit), "used", formatBytes(s.Used), "estimate", formatBytes(s.NextRunEstimate)}
	if s.PeriodEnd.IsZero() {
		return append(attrs, "resets", "unknown until the clock is trusted")
	}
	return append(attrs, "resets", s.PeriodEnd.Format(time.DateOnly))
}

// formatBytes writes n in decimal units, as data plans are sold.
func formatBytes(n int64) string {
	switch {
	case n >= 1e12:
		return fmt.Sprintf("%.2f TB", float64(n)/1e12)
	case n >= 1e9:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}

// countTestBytes accounts for a test's traffic: the metric, and the
// budget, in the period of the time the test started. Only interfaces a
// test moved data on get a series, so the labels stay bounded by the
// pod's real interfaces.
func (a *Agent) countTestBytes(runner, iface string, sent, received int64, started wallclock.Reading) {
	if iface == "" {
		iface = "default"
	}
	if sent > 0 {
		a.metrics.TestBytes.WithLabelValues(runner, iface, "sent").Add(float64(sent))
	}
	if received > 0 {
		a.metrics.TestBytes.WithLabelValues(runner, iface, "received").Add(float64(received))
	}
	a.budget.add(runner, max(sent, 0)+max(received, 0), started.Estimate, started.Synced)
}

// recountResults sums the bytes of the local results in [start, end) and
// this boot's undated ones, reading both generations of results.jsonl a
// line at a time, and collects each runner's last tests for the estimate.
func (a *Agent) recountResults(start, end time.Time) (int64, map[string][]int64, error) {
	boot := a.clock.BootID()
	var used int64
	recent := map[string][]int64{}
	var errs []error
	for _, path := range []string{a.results.path + rotatedSuffix, a.results.path} {
		_, err := scanLines(path, func(line []byte) error {
			var e struct {
				Time          time.Time `json:"time"`
				BootID        string    `json:"boot_id"`
				Runner        string    `json:"runner"`
				BytesSent     int64     `json:"bytes_sent"`
				BytesReceived int64     `json:"bytes_received"`
			}
			if json.Unmarshal(line, &e) != nil {
				return nil
			}
			n := max(e.BytesSent, 0) + max(e.BytesReceived, 0)
			if n <= 0 || n > maxCount {
				return nil
			}
			if slices.Contains(config.Runners, e.Runner) {
				r := append(recent[e.Runner], n)
				recent[e.Runner] = r[max(len(r)-budgetRecent, 0):]
			}
			inPeriod := !e.Time.IsZero() && !e.Time.Before(start) && e.Time.Before(end)
			if inPeriod || (e.Time.IsZero() && e.BootID == boot) {
				used = min(used+n, maxCount)
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return used, recent, errors.Join(errs...)
}
