package agent

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/netcheck"
	"github.com/radarpod/radarpod/internal/netif"
	"github.com/radarpod/radarpod/internal/outbox"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/radartest"
	"github.com/radarpod/radarpod/internal/speedtest"
	"github.com/radarpod/radarpod/internal/telemetry"
	"github.com/radarpod/radarpod/internal/wallclock"
)

// namedRunner is all record needs of a runner.
type namedRunner string

func (n namedRunner) Name() string { return string(n) }
func (n namedRunner) Run(context.Context, speedtest.Target) (speedtest.Result, error) {
	return speedtest.Result{}, nil
}

// A result stored in the outbox before the time was known carries no date,
// only its place on the boot clock; once the clock is trusted it is dated
// in the outbox and in results.jsonl alike.
func TestUndatedOutboxRecordIsDatedOnceTheTimeIsKnown(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	cfg, err := config.LoadAgent(map[string]string{
		"RADAR_SERVER_URL": srv.URL, "RADAR_DATA_DIR": t.TempDir(), "RADAR_LISTEN_ADDR": "", "RADAR_TESTS": "ookla",
	})
	if err != nil {
		t.Fatal(err)
	}
	var (
		wall   = func() time.Time { return time.Unix(20, 0) }
		kernel = wallclock.KernelUnsynced
	)
	clock := wallclock.New(wallclock.Options{
		Now:       func() time.Time { return wall() },
		Kernel:    func() (wallclock.KernelState, error) { return kernel, nil },
		BuildTime: time.Now().Add(-24 * time.Hour),
	})
	logs := &proctest.LogBuffer{}
	a, err := New(Options{
		Config: cfg, Log: telemetry.NewLogger(logs, telemetry.LogOptions{Level: slog.LevelDebug}),
		Runners: []Runner{}, Interfaces: func() ([]netif.Interface, error) { return nil, nil },
		HTTPClient: srv.HTTPClient(), Dialer: srv.Dialer(), Clock: clock,
		NetCheck: func(context.Context) netcheck.Report { return netcheck.Report{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("agent log:\n%s", logs.String())
		}
	})

	started := clock.Read()
	ranAt := time.Now()
	res := speedtest.Result{Runner: "ookla", Style: "OOKLA", Raw: []byte(`{"type":"result"}`),
		StartedAt: ranAt, FinishedAt: ranAt.Add(2 * time.Second), Summary: speedtest.Summary{DownloadMbps: 90}}
	a.record(namedRunner("ookla"), speedtest.Target{}, netif.Interface{}, started, res, nil)

	rec, ok, err := a.outbox.Oldest()
	if err != nil || !ok {
		t.Fatalf("outbox: %v %v", ok, err)
	}
	if !rec.CreatedAt.IsZero() || rec.Clock.Synced || rec.Clock.BootID != clock.BootID() || rec.Clock.Boot != started.Boot {
		t.Fatalf("undated record: %s %+v", rec.CreatedAt, rec.Clock)
	}
	if n := a.undated.Load(); n != 1 {
		t.Errorf("undated results counted: %d", n)
	}
	// Still nothing trustworthy: nothing is dated.
	if err := a.dateResults(); err != nil {
		t.Fatal(err)
	}
	if rec, _, _ := a.outbox.Oldest(); !rec.CreatedAt.IsZero() {
		t.Fatal("dated on an untrusted clock")
	}

	// NTP syncs.
	wall, kernel = time.Now, wallclock.KernelSynced
	if err := a.dateResults(); err != nil {
		t.Fatal(err)
	}
	// Dated from the boot clock: when the test started, to within the
	// time between the two clock readings here.
	rec, _, _ = a.outbox.Oldest()
	if !rec.Clock.Synced || rec.Clock.Source != wallclock.SourceBootClock {
		t.Fatalf("outbox record after sync: %s %+v, want dated from the boot clock", rec.CreatedAt, rec.Clock)
	}
	if d := rec.CreatedAt.Sub(ranAt); d < -100*time.Millisecond || d > 100*time.Millisecond {
		t.Errorf("dated %s, the test ran at %s", rec.CreatedAt, ranAt)
	}
	es := readResultFile(t, filepath.Join(cfg.DataDir, ResultsFile))
	if len(es) != 1 || es[0].Time.Sub(ranAt).Abs() > 100*time.Millisecond || es[0].Source != wallclock.SourceBootClock || es[0].OutboxID != rec.ID {
		t.Fatalf("results.jsonl after sync: %+v, the test ran at %s", es, ranAt)
	}
	if !strings.Contains(logs.String(), "are dated now") || !strings.Contains(logs.String(), `"outbox_records":1`) {
		t.Errorf("dating not logged:\n%s", logs.String())
	}
	a.outbox.(*outbox.Store).Close()
}

// correct dates only this boot's undated entries, in both generations of
// the file, and keeps everything else byte for byte (entries of an
// earlier boot stay undated for good).
func TestResultLogCorrect(t *testing.T) {
	dir := t.TempDir()
	l, err := openResultLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	l.max = 600
	real := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	entries := []ResultEntry{
		{Stamp: wallclock.Stamp{Source: wallclock.SourceUnsynced, BootID: "this", Boot: 10 * time.Second}, Runner: "ndt7"},
		{Time: real.Add(-time.Hour), Stamp: wallclock.Stamp{Synced: true, Source: wallclock.SourceKernel}, Runner: "ookla"},
		{Stamp: wallclock.Stamp{Source: wallclock.SourceUnsynced, BootID: "earlier", Boot: 20 * time.Second}, Runner: "ookla"},
		{Time: real.Add(-2 * time.Hour), Runner: "ndt7"}, // written before the clock was tracked
		{Stamp: wallclock.Stamp{Source: wallclock.SourceUnsynced, BootID: "this", Boot: 30 * time.Second}, Runner: "ookla", Error: "x"},
		{Stamp: wallclock.Stamp{Source: wallclock.SourceUnsynced, BootID: "this", Boot: 40 * time.Second}, Runner: "ndt7"},
	}
	for _, e := range entries {
		if err := l.append(e); err != nil {
			t.Fatal(err)
		}
	}
	rotated := filepath.Join(dir, ResultsFile+rotatedSuffix)
	if _, err := os.Stat(rotated); err != nil {
		t.Fatalf("want two generations for this test: %v", err)
	}
	// A torn last line (a crash) is kept as it is.
	f, _ := os.OpenFile(filepath.Join(dir, ResultsFile), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"runner":"torn`)
	f.Close()
	before := map[string][]byte{}
	for _, p := range []string{rotated, filepath.Join(dir, ResultsFile)} {
		before[p], _ = os.ReadFile(p)
	}

	// The time became known at boot time 100 s.
	date := func(s wallclock.Stamp) (time.Time, wallclock.Stamp, bool) {
		if s.Synced || s.BootID != "this" {
			return time.Time{}, s, false
		}
		s.Synced, s.Source = true, wallclock.SourceBootClock
		return real.Add(-(100*time.Second - s.Boot)), s, true
	}
	n, err := l.correct("this", date)
	if err != nil || n != 3 {
		t.Fatalf("correct = %d, %v; want this boot's 3 undated entries", n, err)
	}
	var got []ResultEntry
	for _, p := range []string{rotated, filepath.Join(dir, ResultsFile)} {
		got = append(got, readResultFile(t, p)...)
		after, _ := os.ReadFile(p)
		// Lines other than the dated ones are untouched.
		for _, line := range bytes.Split(before[p], []byte("\n")) {
			if len(line) > 0 && !bytes.Contains(line, []byte(`"boot_id":"this"`)) && !bytes.Contains(after, line) {
				t.Errorf("%s: line %s changed", filepath.Base(p), line)
			}
		}
	}
	if !bytes.HasSuffix(mustRead(t, filepath.Join(dir, ResultsFile)), []byte(`{"runner":"torn`+"\n")) {
		t.Error("the torn line was not kept")
	}
	if len(got) != len(entries) {
		t.Fatalf("%d entries after correct, want %d", len(got), len(entries))
	}
	for i, e := range got {
		want := entries[i]
		if want.BootID == "this" {
			if at := real.Add(-(100*time.Second - want.Boot)); !e.Time.Equal(at) || !e.Synced || e.Source != wallclock.SourceBootClock || e.Error != want.Error {
				t.Errorf("entry %d: %s %+v, want %s from the boot clock", i, e.Time, e.Stamp, at)
			}
			continue
		}
		if !e.Time.Equal(want.Time) || e.Stamp != want.Stamp {
			t.Errorf("entry %d changed: %+v, was %+v", i, e, want)
		}
	}
	// Nothing left to date: the files are not rewritten again.
	st, _ := os.Stat(rotated)
	if n, err := l.correct("this", date); n != 0 || err != nil {
		t.Fatalf("second correct = %d, %v", n, err)
	}
	if st2, _ := os.Stat(rotated); !os.SameFile(st, st2) {
		t.Error("a file with nothing to date was rewritten")
	}
	// A later rotation counts the undated entries but spans only dated ones.
	d, _ := countResults(rotated)
	if d.Entries != len(readResultFile(t, rotated)) || d.First.IsZero() {
		t.Errorf("count of the rotated file: %+v", d)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
