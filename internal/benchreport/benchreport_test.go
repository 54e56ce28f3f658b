package benchreport

import (
	"bytes"
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
