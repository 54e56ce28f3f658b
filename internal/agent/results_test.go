package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/wallclock"
)

func TestResultLogAppendsRepairsAndRotates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ResultsFile)
	// A torn line left by a crash.
	os.WriteFile(path, []byte(`{"time":"2026-01-01T00:00:00Z","runner":"ndt7"}`+"\n"+`{"time":"2026-01-0`), 0o644)
	l, err := openResultLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	dl := 93.5
	if err := l.append(ResultEntry{Time: time.Now(), Runner: "ookla", DownloadMbps: &dl}); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(path)
	entries, err := ReadResults(f)
	f.Close()
	if err != nil || len(entries) != 2 || entries[1].Runner != "ookla" || *entries[1].DownloadMbps != 93.5 {
		t.Fatalf("entries = %+v, %v", entries, err)
	}
	// The line of an agent before the clock was tracked keeps its time and
	// says nothing about the clock.
	if e := entries[0]; !e.Time.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) || e.Stamp != (wallclock.Stamp{}) {
		t.Errorf("old line read as %+v", e)
	}
	l.max = 300
	for i := 0; i < 5; i++ {
		if err := l.append(ResultEntry{Time: time.Now(), Runner: "ndt7", Error: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(path + ".1"); err != nil {
		t.Fatalf("no rotated generation: %v", err)
	}
	if st, _ := os.Stat(path); st.Size() > 300 {
		t.Fatalf("results.jsonl grew to %d beyond its bound", st.Size())
	}
}

// TestRotationCountsWhatItDeletes: however many rotations happen, every
// entry ever appended is either still in one of the two files or counted
// as dropped, with the times of the oldest and newest dropped.
func TestRotationCountsWhatItDeletes(t *testing.T) {
	for _, n := range []int{1, 4, 5, 13, 40} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			dir := t.TempDir()
			l, err := openResultLog(dir)
			if err != nil {
				t.Fatal(err)
			}
			var drops []droppedResults
			l.onDrop = func(d droppedResults) { drops = append(drops, d) }
			l.max = 400 // about four entries per file
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for i := range n {
				if err := l.append(ResultEntry{Time: start.Add(time.Duration(i) * time.Hour), Runner: "ookla", Error: "x"}); err != nil {
					t.Fatal(err)
				}
			}
			kept := len(readResultFile(t, filepath.Join(dir, ResultsFile))) + len(readResultFile(t, filepath.Join(dir, ResultsFile+rotatedSuffix)))
			dropped, next := 0, 0
			for _, d := range drops {
				if d.Err != nil || d.Entries == 0 {
					t.Errorf("drop %+v", d)
				}
				// Generations are dropped oldest first and back to back.
				if want := start.Add(time.Duration(next) * time.Hour); !d.First.Equal(want) {
					t.Errorf("dropped generation starts at %v, want %v", d.First, want)
				}
				if want := start.Add(time.Duration(next+d.Entries-1) * time.Hour); !d.Last.Equal(want) {
					t.Errorf("dropped generation ends at %v, want %v", d.Last, want)
				}
				next += d.Entries
				dropped += d.Entries
			}
			if kept+dropped != n {
				t.Fatalf("%d entries kept + %d counted as dropped, want the %d appended", kept, dropped, n)
			}
			if n <= 8 && dropped != 0 {
				t.Errorf("%d dropped from %d entries: two generations hold them", dropped, n)
			}
			if n > 10 && dropped == 0 {
				t.Errorf("nothing dropped from %d entries over two generations of ~4", n)
			}
		})
	}
}

func readResultFile(t *testing.T, path string) []ResultEntry {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	entries, err := ReadResults(f)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

func TestRawAsJSON(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"type":"result"}`, `{"type":"result"}`},
		{"{\"a\":1}\n{\"b\":2}\n", `[{"a":1},{"b":2}]`},
		{"", ""},
		{"{\"a\":1}\n{\"b\"", `[{"a":1}]`},
	}
	for _, tt := range tests {
		got := string(rawAsJSON([]byte(tt.in)))
		if got != tt.want {
			t.Errorf("rawAsJSON(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got != "" && !json.Valid([]byte(got)) {
			t.Errorf("rawAsJSON(%q) is not valid JSON", tt.in)
		}
	}
}
