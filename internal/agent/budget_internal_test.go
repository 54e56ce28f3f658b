package agent

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/netcheck"
	"github.com/radarpod/radarpod/internal/netif"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/telemetry"
	"github.com/radarpod/radarpod/internal/wallclock"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestBudgetPeriod: the period runs from the reset day at 00:00 UTC to the
// same day of the next month, across year ends and short months, whatever
// the time zone the time is given in.
func TestBudgetPeriod(t *testing.T) {
	for _, tc := range []struct {
		at         string
		resetDay   int
		start, end string
	}{
		{"2026-12-04T07:00:00Z", 1, "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"2026-12-01T00:00:00Z", 1, "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"2026-11-30T23:59:59Z", 1, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"},
		// Before the reset day: the period began last month (December of
		// the year before, in January).
		{"2027-01-10T12:00:00Z", 15, "2026-12-15T00:00:00Z", "2027-01-15T00:00:00Z"},
		{"2026-12-20T12:00:00Z", 15, "2026-12-15T00:00:00Z", "2027-01-15T00:00:00Z"},
		{"2027-01-15T00:00:00Z", 15, "2027-01-15T00:00:00Z", "2027-02-15T00:00:00Z"},
		// Day 28 exists in every month, leap year or not.
		{"2028-02-29T10:00:00Z", 28, "2028-02-28T00:00:00Z", "2028-03-28T00:00:00Z"},
		{"2027-03-01T10:00:00Z", 28, "2027-02-28T00:00:00Z", "2027-03-28T00:00:00Z"},
		{"2027-02-27T10:00:00Z", 28, "2027-01-28T00:00:00Z", "2027-02-28T00:00:00Z"},
		// A time given in another zone counts by its UTC date: 01:00 on
		// the 1st at UTC+5 is still the 28th in UTC.
		{"2027-03-01T01:00:00+05:00", 1, "2027-02-01T00:00:00Z", "2027-03-01T00:00:00Z"},
		// Out-of-range days (the configuration refuses them) are clamped.
		{"2026-12-04T07:00:00Z", 0, "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"},
		{"2026-12-30T07:00:00Z", 31, "2026-12-28T00:00:00Z", "2027-01-28T00:00:00Z"},
	} {
		t.Run(tc.at+"/"+string(rune('0'+tc.resetDay/10))+string(rune('0'+tc.resetDay%10)), func(t *testing.T) {
			start, end := budgetPeriod(utc(tc.at), tc.resetDay)
			if !start.Equal(utc(tc.start)) || !end.Equal(utc(tc.end)) || start.Location() != time.UTC {
				t.Errorf("budgetPeriod = %s .. %s, want %s .. %s", start, end, tc.start, tc.end)
			}
		})
	}
}

// budgetStep is one event of TestDataBudgetClock: a test's bytes counted
// (add > 0) or the budget looked at, at a time the clock trusts or not.
type budgetStep struct {
	at      string
	trusted bool
	add     int64
	// want after the step
	used       int64
	start, end string // "" = no period known
}

// TestDataBudgetClock: the period moves only on a trusted time. A Pi
// booting at 1970 keeps counting into the period on file and never resets
// it; once the time is known, a period that ended meanwhile starts afresh
// carrying what was counted in the dark, and a lost file is recounted.
func TestDataBudgetClock(t *testing.T) {
	const dec, jan = "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z"
	const nov = "2026-11-01T00:00:00Z"
	boot := "1970-01-01T00:00:20Z"
	for _, tc := range []struct {
		name    string
		file    *budgetState // nil: no file (recount)
		recount int64
		steps   []budgetStep
	}{
		{
			name: "same period, untrusted boot keeps it", file: &budgetState{PeriodStart: utc(dec), PeriodEnd: utc(jan), UsedBytes: 900},
			steps: []budgetStep{
				{at: boot, used: 900, start: dec, end: jan},
				{at: boot, add: 100, used: 1000, start: dec, end: jan},
				{at: "2026-12-05T10:00:00Z", trusted: true, used: 1000, start: dec, end: jan},
			},
		},
		{
			name: "period ended while the clock was untrusted: what was counted in the dark is carried", file: &budgetState{PeriodStart: utc(nov), PeriodEnd: utc(dec), UsedBytes: 900},
			steps: []budgetStep{
				{at: boot, add: 50, used: 950, start: nov, end: dec},
				{at: "2026-12-04T07:00:00Z", trusted: true, used: 50, start: dec, end: jan},
				{at: "2026-12-04T08:00:00Z", trusted: true, add: 25, used: 75, start: dec, end: jan},
			},
		},
		{
			name: "period rolls over on a trusted clock", file: &budgetState{PeriodStart: utc(nov), PeriodEnd: utc(dec), UsedBytes: 900},
			steps: []budgetStep{
				{at: "2026-11-30T23:00:00Z", trusted: true, add: 10, used: 910, start: nov, end: dec},
				{at: "2026-12-01T00:00:00Z", trusted: true, used: 0, start: dec, end: jan},
			},
		},
		{
			name: "no file and no time: counted, period unknown, then recounted", recount: 300,
			steps: []budgetStep{
				{at: boot, add: 100, used: 100},
				{at: "2026-12-04T07:00:00Z", trusted: true, used: 300, start: dec, end: jan},
			},
		},
		{
			name: "recount never lowers what this run counted", recount: 40,
			steps: []budgetStep{
				{at: boot, add: 100, used: 100},
				{at: "2026-12-04T07:00:00Z", trusted: true, used: 100, start: dec, end: jan},
			},
		},
		{
			name: "file from a clock that ran ahead: the period follows the trusted time, the count is kept",
			file: &budgetState{PeriodStart: utc("2030-05-01T00:00:00Z"), PeriodEnd: utc("2030-06-01T00:00:00Z"), UsedBytes: 700}, recount: 10,
			steps: []budgetStep{
				{at: "2026-12-04T07:00:00Z", trusted: true, used: 700, start: dec, end: jan},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.file != nil {
				tc.file.Version = budgetVersion
				if err := os.WriteFile(filepath.Join(dir, BudgetFile), mustJSON(t, tc.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			logs := &proctest.LogBuffer{}
			b := openDataBudget(config.Agent{DataDir: dir, DataBudget: 1000, DataBudgetResetDay: 1},
				slog.New(slog.NewJSONHandler(logs, nil)), telemetry.NewMetrics(),
				func(start, end time.Time) (int64, map[string][]int64, error) { return tc.recount, nil, nil })
			for i, s := range tc.steps {
				if s.add > 0 {
					b.add("ndt7", s.add, utc(s.at), s.trusted)
				}
				st := b.status(utc(s.at), s.trusted, nil)
				var start, end string
				if !st.PeriodStart.IsZero() {
					start, end = st.PeriodStart.Format(time.RFC3339), st.PeriodEnd.Format(time.RFC3339)
				}
				if st.Used != s.used || start != s.start || end != s.end {
					t.Fatalf("step %d: used %d, period %q..%q; want %d, %q..%q\n%s", i+1, st.Used, start, end, s.used, s.start, s.end, logs)
				}
				// What is on disk says the same: a restart here resumes it.
				var onDisk budgetState
				if err := json.Unmarshal(mustRead(t, filepath.Join(dir, BudgetFile)), &onDisk); err == nil && s.add > 0 && onDisk.UsedBytes != s.used {
					t.Fatalf("step %d: file holds %d, want %d", i+1, onDisk.UsedBytes, s.used)
				}
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBudgetEstimate: the next test is expected to move the median of the
// runner's last five; the default before the first.
func TestBudgetEstimate(t *testing.T) {
	b := openDataBudget(config.Agent{DataDir: t.TempDir(), DataBudgetResetDay: 1}, slog.New(slog.DiscardHandler), telemetry.NewMetrics(),
		func(time.Time, time.Time) (int64, map[string][]int64, error) { return 0, nil, nil })
	now := utc("2026-12-04T07:00:00Z")
	if got := b.status(now, true, []string{"ndt7", "ookla"}).NextRunEstimate; got != 2*defaultTestEstimate {
		t.Fatalf("first estimate %d, want 2 defaults", got)
	}
	for _, n := range []int64{900, 100, 500, 300, 700, 200} { // the first falls out of the window
		b.add("ndt7", n, now, true)
	}
	st := b.status(now, true, []string{"ndt7"})
	if st.NextRunEstimate != 300 || st.Used != 2700 {
		t.Fatalf("estimate %d (want 300, the median of 100 200 300 500 700), used %d", st.NextRunEstimate, st.Used)
	}
	if got := b.status(now, true, []string{"ndt7", "ookla"}).NextRunEstimate; got != 300+defaultTestEstimate {
		t.Fatalf("estimate %d with a runner never seen", got)
	}
}

// trustedAgent is a standalone agent (no runners) whose clock reads at,
// synchronized, so the budget period is known.
func trustedAgent(t *testing.T, dir string, at time.Time, env map[string]string) (*Agent, *proctest.LogBuffer) {
	t.Helper()
	e := map[string]string{"RADAR_SERVER_URL": "", "RADAR_DATA_DIR": dir, "RADAR_LISTEN_ADDR": "", "RADAR_TESTS": "ookla"}
	for k, v := range env {
		e[k] = v
	}
	cfg, err := config.LoadAgent(e)
	if err != nil {
		t.Fatal(err)
	}
	logs := &proctest.LogBuffer{}
	a, err := New(Options{
		Config: cfg, Log: telemetry.NewLogger(logs, telemetry.LogOptions{Level: slog.LevelDebug}),
		Runners: []Runner{}, Interfaces: func() ([]netif.Interface, error) { return nil, nil },
		NetCheck: func(context.Context) netcheck.Report { return netcheck.Report{} },
		Clock: wallclock.New(wallclock.Options{
			Now:       func() time.Time { return at },
			Kernel:    func() (wallclock.KernelState, error) { return wallclock.KernelSynced, nil },
			BuildTime: at.Add(-24 * time.Hour),
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	return a, logs
}

// TestGarbageBudgetFileIsRecountedFromResults: the budget file is in a
// volume and may hold anything; whatever it holds, the agent starts, logs
// it, and recounts the period from results.jsonl (both generations:
// entries of the period and this boot's undated ones, not older ones).
func TestGarbageBudgetFileIsRecountedFromResults(t *testing.T) {
	now := utc("2026-12-04T07:00:00Z")
	valid := func(mod func(*budgetState)) string {
		st := budgetState{Version: budgetVersion, PeriodStart: utc("2026-12-01T00:00:00Z"), PeriodEnd: utc("2027-01-01T00:00:00Z"), UsedBytes: 5}
		mod(&st)
		b, _ := json.Marshal(st)
		return string(b)
	}
	for _, tc := range []struct {
		name, content string
		dir           bool // a directory in the file's place
	}{
		{name: "not JSON", content: "\x00\x01garbage"},
		{name: "empty", content: ""},
		{name: "torn", content: `{"version":1,"period_start":"2026-12-01T00:00:00Z","used_by`},
		{name: "unknown version", content: valid(func(s *budgetState) { s.Version = 7 })},
		{name: "negative usage", content: valid(func(s *budgetState) { s.UsedBytes = -1 })},
		{name: "unsynced above used", content: valid(func(s *budgetState) { s.UnsyncedBytes = 6 })},
		{name: "a period of a year", content: valid(func(s *budgetState) { s.PeriodEnd = s.PeriodStart.AddDate(1, 0, 0) })},
		{name: "half a period", content: valid(func(s *budgetState) { s.PeriodEnd = time.Time{} })},
		{name: "unknown runner", content: valid(func(s *budgetState) { s.Recent = map[string][]int64{"iperf": {1}} })},
		{name: "too many recent", content: valid(func(s *budgetState) { s.Recent = map[string][]int64{"ndt7": {1, 2, 3, 4, 5, 6}} })},
		{name: "unknown field", content: `{"version":1,"used_bytes":1,"evil":true}`},
		{name: "huge", content: `{"version":1,"used_bytes":1` + strings.Repeat(" ", budgetFileMax) + `}`},
		{name: "a directory", dir: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, BudgetFile)
			if tc.dir {
				if err := os.Mkdir(path, 0o755); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			// Local history: last month's test, two of this period (one
			// in the rotated generation), a failed test that moved data,
			// an undated one of this boot and one of an earlier boot.
			clockBoot := func(a *Agent) string { return a.clock.BootID() }
			a, logs := trustedAgent(t, dir, now, map[string]string{"RADAR_DATA_BUDGET": "10GB"})
			write := func(name string, es ...ResultEntry) {
				var b []byte
				for _, e := range es {
					b = append(append(b, mustJSON(t, e)...), '\n')
				}
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write(ResultsFile+rotatedSuffix,
				ResultEntry{Time: utc("2026-11-20T10:00:00Z"), Runner: "ookla", BytesSent: 1000, BytesReceived: 1000},
				ResultEntry{Time: utc("2026-12-01T00:00:00Z"), Runner: "ookla", BytesSent: 100, BytesReceived: 200})
			write(ResultsFile,
				ResultEntry{Time: utc("2026-12-03T10:00:00Z"), Runner: "ndt7", BytesSent: 10, BytesReceived: 20, ErrorClass: "timeout"},
				ResultEntry{Stamp: wallclock.Stamp{Synced: false, BootID: clockBoot(a)}, Runner: "ookla", BytesReceived: 3},
				ResultEntry{Stamp: wallclock.Stamp{Synced: false, BootID: "an-earlier-boot"}, Runner: "ookla", BytesReceived: 5000})
			st := a.DataBudget()
			if st.Used != 300+30+3 || !st.PeriodStart.Equal(utc("2026-12-01T00:00:00Z")) {
				t.Fatalf("recounted %d in %s, want 333 in December\n%s", st.Used, st.PeriodStart, logs)
			}
			if !strings.Contains(logs.String(), "data budget file unreadable") {
				t.Errorf("the garbage file was not logged:\n%s", logs)
			}
			if strings.Contains(logs.String(), `"level":"ERROR"`) {
				t.Errorf("a garbage budget file is no error for a person:\n%s", logs)
			}
			// The estimate learned the runners' recent tests too, of any
			// date: the upper median of 3, 300, 2000, 5000.
			if est := a.budget.status(now, true, []string{"ookla"}).NextRunEstimate; est != 2000 {
				t.Errorf("ookla estimate from the results: %d, want 2000", est)
			}
			if tc.dir {
				return
			}
			// And the recount is persisted, valid.
			if got, err := readBudget(path); err != nil || got.UsedBytes != 333 {
				t.Fatalf("file after the recount: %+v, %v", got, err)
			}
		})
	}
}

// TestBudgetMetricsAndDecisions: the metrics follow the count, a scheduled
// run is skipped (one INFO line with budget, used, estimate and reset
// date, a metric, the period's skip count) exactly when it would exceed
// the budget, and a requested run over budget is logged and counted.
func TestBudgetMetricsAndDecisions(t *testing.T) {
	now := utc("2026-12-04T07:00:00Z")
	a, logs := trustedAgent(t, t.TempDir(), now, map[string]string{"RADAR_DATA_BUDGET": "1GB"})
	a.runners = []Runner{namedRunner("ookla")}
	m := a.metrics
	if got := m.DataBudgetLimit.Value(); got != 1e9 {
		t.Fatalf("radar_data_budget_bytes = %v", got)
	}
	started := a.clock.Read()
	a.countTestBytes("ookla", "", 44_203_740, 529_086_852, started)
	if got := m.TestBytes.WithLabelValues("ookla", "default", "received").Value(); got != 529_086_852 {
		t.Errorf("radar_test_bytes_total received = %v", got)
	}
	if got := m.TestBytes.WithLabelValues("ookla", "default", "sent").Value(); got != 44_203_740 {
		t.Errorf("radar_test_bytes_total sent = %v", got)
	}
	if got := m.DataBudgetUsed.Value(); got != 573_290_592 {
		t.Errorf("radar_data_budget_used_bytes = %v", got)
	}
	if got := m.DataBudgetPeriodEnd.Value(); got != float64(utc("2027-01-01T00:00:00Z").Unix()) {
		t.Errorf("radar_data_budget_period_end_timestamp_seconds = %v", got)
	}
	// 573 MB used, 573 MB expected: 1.15 GB > 1 GB.
	if a.scheduledRunFits() {
		t.Fatal("a run that would exceed the budget fits")
	}
	skipped := m.TestsSkipped.WithLabelValues("data_budget").Value()
	if skipped != 1 || a.DataBudget().SkippedThisPeriod != 1 {
		t.Fatalf("skips counted: metric %v, status %d", skipped, a.DataBudget().SkippedThisPeriod)
	}
	var line map[string]any
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "scheduled test run skipped") {
			if line != nil {
				t.Fatal("more than one line for one skip")
			}
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line == nil || line["level"] != "INFO" || line["budget_bytes"] != 1e9 || line["used_bytes"] != 573_290_592.0 ||
		line["estimate_bytes"] != 573_290_592.0 || line["resets"] != "2027-01-01" || line["used"] != "573.3 MB" {
		t.Fatalf("skip line %v\n%s", line, logs)
	}
	// The service's request runs anyway, logged as over budget.
	a.requestRun(requestFor(nil), "channel")
	if got := m.TestsOverBudget.WithLabelValues("channel").Value(); got != 1 {
		t.Errorf("radar_tests_over_budget_total = %v", got)
	}
	if !strings.Contains(logs.String(), `"over_budget":true`) || a.queue.depth() != 1 {
		t.Errorf("requested run over budget: queued %d\n%s", a.queue.depth(), logs)
	}

	// Below the budget a scheduled run fits, and nothing is said.
	b, logs := trustedAgent(t, t.TempDir(), now, map[string]string{"RADAR_DATA_BUDGET": "2GB"})
	b.runners = []Runner{namedRunner("ookla")}
	b.countTestBytes("ookla", "eth1", 44_203_740, 529_086_852, b.clock.Read())
	if !b.scheduledRunFits() || strings.Contains(logs.String(), "skipped") {
		t.Fatalf("a run within the budget was skipped:\n%s", logs)
	}
	b.requestRun(requestFor(nil), "channel")
	if strings.Contains(logs.String(), "over_budget") || b.metrics.TestsOverBudget.WithLabelValues("channel").Value() != 0 {
		t.Fatalf("a run within the budget was logged over it:\n%s", logs)
	}
	// Without a budget nothing is ever skipped, and usage is still counted.
	c, _ := trustedAgent(t, t.TempDir(), now, nil)
	c.runners = []Runner{namedRunner("ookla")}
	c.countTestBytes("ookla", "", 1<<40, 1<<40, c.clock.Read())
	if !c.scheduledRunFits() || c.DataBudget().Used != 2<<40 || c.DataBudget().Exceeded() {
		t.Fatalf("no budget: %+v", c.DataBudget())
	}
}
