package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
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
