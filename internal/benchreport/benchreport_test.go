package benchreport

import (
	"bytes"
	"encoding/json"
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
