package benchreport

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEvaluate(t *testing.T) {
	tests := []struct {
		f    Figure
		pass bool
	}{
		{Figure{Value: 10, Op: "<=", Target: 10}, true},
		{Figure{Value: 10.1, Op: "<=", Target: 10}, false},
		{Figure{Value: 0.93, Op: ">=", Target: 0.92}, true},
		{Figure{Value: -1.2, Op: "within", Target: 1}, false},
		{Figure{Value: 0.4, Op: "within", Target: 1}, true},
		{Figure{Value: 123}, true},
	}
	for _, tt := range tests {
		tt.f.Evaluate()
		if tt.f.Pass != tt.pass {
			t.Errorf("%+v: pass = %v", tt.f, tt.f.Pass)
		}
	}
}

func TestWriteMergePrint(t *testing.T) {
	root := t.TempDir()
	if err := Write(root, "b", []Figure{{Name: "outbox/deliver_10k", Value: 12, Unit: "s", Op: "<=", Target: 10, Command: "make bench"}}); err != nil {
		t.Fatal(err)
	}
	if err := Write(root, "a", []Figure{{Name: "agent/idle_rss", Value: 14.2, Unit: "MiB", Op: "<=", Target: 20}}); err != nil {
		t.Fatal(err)
	}
	figs, err := Merge(root)
	if err != nil || len(figs) != 2 || figs[0].Name != "agent/idle_rss" || !figs[0].Pass || figs[1].Pass {
		t.Fatalf("Merge = %+v, %v", figs, err)
	}
	var buf bytes.Buffer
	PrintTable(&buf, figs)
	if !strings.Contains(buf.String(), "MISSED") || !strings.Contains(buf.String(), "<= 10 s") {
		t.Fatalf("table:\n%s", buf.String())
	}
	if len(Failed(figs)) != 1 {
		t.Fatal("Failed")
	}
}

// TestZeroTargetIsWritten: "0 results lost" is a target; results.json must
// say so rather than drop it as an empty value.
func TestZeroTargetIsWritten(t *testing.T) {
	tests := []struct {
		name string
		f    Figure
		want string // substring of the JSON, or "" for none
		not  string
	}{
		{"zero target", Figure{Name: "faults/kill9/lost_results", Op: "<=", Target: 0}, `"target":0`, ""},
		{"non-zero target", Figure{Name: "x", Op: ">=", Target: 92}, `"target":92`, ""},
		{"informational", Figure{Name: "y", Value: 5}, "", `"target"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want != "" && !strings.Contains(string(b), tt.want) {
				t.Errorf("%s lacks %s", b, tt.want)
			}
			if tt.not != "" && strings.Contains(string(b), tt.not) {
				t.Errorf("%s has %s", b, tt.not)
			}
			var back Figure
			if err := json.Unmarshal(b, &back); err != nil || back != tt.f {
				t.Errorf("round trip: %+v, %v; want %+v", back, err, tt.f)
			}
		})
	}
}

// TestMergeKeepsFiguresNotMeasuredNow: a partial run (one scenario) updates
// its own figures and leaves the recorded figures of the others alone.
func TestMergeKeepsFiguresNotMeasuredNow(t *testing.T) {
	root := t.TempDir()
	if err := Write(root, "footprint", []Figure{{Name: "agent/idle_rss", Value: 15.8, Unit: "MiB", Op: "<=", Target: 12}}); err != nil {
		t.Fatal(err)
	}
	if err := Write(root, "outbox", []Figure{{Name: "outbox/deliver_10k", Value: 9, Unit: "s", Op: "<=", Target: 10}}); err != nil {
		t.Fatal(err)
	}
	if _, err := Merge(root); err != nil {
		t.Fatal(err)
	}
	// A later checkout ran only the footprint scenario, and got better.
	if err := os.RemoveAll(filepath.Join(root, "bench", "out")); err != nil {
		t.Fatal(err)
	}
	if err := Write(root, "footprint", []Figure{{Name: "agent/idle_rss", Value: 11.5, Unit: "MiB", Op: "<=", Target: 12}}); err != nil {
		t.Fatal(err)
	}
	figs, err := Merge(root)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range figs {
		got[f.Name] = f.Value
	}
	want := map[string]float64{"agent/idle_rss": 11.5, "outbox/deliver_10k": 9}
	if len(got) != len(want) || got["agent/idle_rss"] != 11.5 || got["outbox/deliver_10k"] != 9 {
		t.Fatalf("merged %v, want %v", got, want)
	}
	if !figs[0].Pass {
		t.Errorf("%+v: the new figure must be evaluated", figs[0])
	}
}
