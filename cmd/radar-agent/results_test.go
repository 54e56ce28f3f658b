package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
)

// TestResultsCommand: `radar-agent results` prints the history of
// RADAR_DATA_DIR in both formats, filtered by --since, and refuses bad
// usage with exit status 2 naming what is allowed.
func TestResultsCommand(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC().Truncate(time.Second)
	down, up, lat := 94.5, 11.25, 12.5
	var b bytes.Buffer
	for _, e := range []agent.ResultEntry{
		{Time: now.Add(-10 * 24 * time.Hour), Runner: "ndt7", DownloadMbps: &down, UploadMbps: &up, LatencyMs: &lat, DurationSeconds: 20},
		{Time: now.Add(-time.Hour), Runner: "ookla", Interface: "wlan0", ErrorClass: "timeout", Error: "deadline", DurationSeconds: 120},
	} {
		line, _ := json.Marshal(e)
		b.Write(append(line, '\n'))
	}
	if err := os.WriteFile(filepath.Join(dir, agent.ResultsFile), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"RADAR_DATA_DIR": dir}
	for _, tc := range []struct {
		args       []string
		code       int
		wantOut    []string
		wantLines  int
		wantStderr string
	}{
		{[]string{"results"}, 0, []string{"time,runner,interface,download_mbps", "ndt7,,94.5,11.25,12.5,20", "ookla,wlan0,,,,120,0,0,timeout,deadline"}, 3, ""},
		{[]string{"results", "--since", "7d"}, 0, []string{"ookla,wlan0"}, 2, ""},
		{[]string{"results", "--format", "json", "--since", "30d"}, 0, []string{`"runner":"ndt7"`, `"download_mbps":94.5`, `"error_class":"timeout"`}, 4, ""},
		{[]string{"results", "--format", "xml"}, 2, nil, 0, "allowed: csv, json"},
		{[]string{"results", "--since", "last week"}, 2, nil, 0, "want a duration back from now"},
		{[]string{"results", "extra"}, 2, nil, 0, "unexpected argument"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, env, &stdout, &stderr)
		if code != tc.code || !strings.Contains(stderr.String(), tc.wantStderr) {
			t.Errorf("%v: exit %d, stderr %q; want %d, %q", tc.args, code, stderr.String(), tc.code, tc.wantStderr)
			continue
		}
		for _, w := range tc.wantOut {
			if !strings.Contains(stdout.String(), w) {
				t.Errorf("%v: output lacks %q:\n%s", tc.args, w, stdout.String())
			}
		}
		if n := strings.Count(stdout.String(), "\n"); n != tc.wantLines {
			t.Errorf("%v: %d lines, want %d:\n%s", tc.args, n, tc.wantLines, stdout.String())
		}
	}
}
