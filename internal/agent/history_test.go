package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRecentResultsBounds: the in-memory history keeps the last
// RecentWindow (undated entries too) and at most recentMax entries, the
// newest, in the order written.
func TestRecentResultsBounds(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	mk := func(n int, first time.Time, every time.Duration) []ResultEntry {
		out := make([]ResultEntry, n)
		for i := range out {
			out[i] = ResultEntry{Time: first.Add(time.Duration(i) * every), Runner: "ndt7"}
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		entries    []ResultEntry
		want       int
		firstAfter time.Time
	}{
		{"40 days, 4 a day: the last 35 days", mk(160, now.Add(-40*24*time.Hour), 6*time.Hour), 140, now.Add(-RecentWindow)},
		{"every 5 minutes for 35 days: the newest recentMax", mk(35*24*12, now.Add(-RecentWindow+time.Minute), 5*time.Minute), recentMax, now.Add(-RecentWindow)},
		{"undated entries stay", append([]ResultEntry{{Runner: "ookla"}}, mk(3, now.Add(-50*24*time.Hour), 24*time.Hour)...), 1, time.Time{}},
	} {
		got := trimRecent(append([]ResultEntry(nil), tc.entries...), now)
		if len(got) != tc.want {
			t.Errorf("%s: kept %d, want %d", tc.name, len(got), tc.want)
			continue
		}
		for i, e := range got {
			if !e.Time.IsZero() && e.Time.Before(tc.firstAfter) {
				t.Errorf("%s: kept %v, older than the window", tc.name, e.Time)
			}
			if i > 0 && !got[i-1].Time.IsZero() && e.Time.Before(got[i-1].Time) {
				t.Errorf("%s: out of order", tc.name)
			}
		}
	}
}

// TestRecentResultsFromTheLog: what the agent appends is in its memory
// without the raw result, and a reload reads both generations of the file
// back the same.
func TestRecentResultsFromTheLog(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC()
	old := ResultEntry{Time: now.Add(-2 * time.Hour), Runner: "ndt7", DurationSeconds: 10}
	line, _ := json.Marshal(old)
	if err := os.WriteFile(filepath.Join(dir, ResultsFile+rotatedSuffix), append(line, []byte("\n{\"torn")...), 0o644); err != nil {
		t.Fatal(err)
	}
	log, err := openResultLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	recent, err := loadRecent(dir, now)
	if err != nil {
		t.Fatal(err)
	}
	down := 93.5
	e := ResultEntry{Time: now.Add(-time.Minute), Runner: "ookla", DownloadMbps: &down, Raw: json.RawMessage(`{"type":"result"}`)}
	if err := log.append(e); err != nil {
		t.Fatal(err)
	}
	recent.add(e, now)
	got := recent.list(now)
	if len(got) != 2 || got[0].Runner != "ndt7" || got[1].Runner != "ookla" || got[1].Raw != nil || *got[1].DownloadMbps != 93.5 {
		t.Fatalf("in memory: %+v", got)
	}
	if err := recent.reload(now); err != nil {
		t.Fatal(err)
	}
	again := recent.list(now)
	if len(again) != 2 || again[1].Raw != nil || !again[1].Time.Equal(e.Time) {
		t.Fatalf("reloaded: %+v", again)
	}
}
