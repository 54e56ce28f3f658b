package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/radarpod/radarpod/internal/benchreport"
)

func TestDispatch(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		stdout   string // a line the output must hold
		stderr   string
		noStdout bool
	}{
		{name: "no command", args: nil, code: 0, stdout: "  report           merge bench/out/*.json"},
		{name: "help", args: []string{"help"}, code: 0, stdout: "  footprint        idle RSS of agent and updater"},
		{name: "unknown", args: []string{"nope"}, code: 2, stderr: `radar-bench: unknown command "nope"`, noStdout: true},
		{name: "bad flag", args: []string{"outbox", "-no-such-flag"}, code: 2, stderr: "flag provided but not defined", noStdout: true},
		{name: "unknown healthcheck", args: []string{"update", "-healthchecks", "compose,slow"}, code: 2,
			stderr: `radar-bench update: unknown healthcheck "slow" (compose, fast)`, noStdout: true},
		{name: "fleet bad pods", args: []string{"fleet", "-pods", "0"}, code: 2,
			stderr: "radar-bench fleet: -pods must be positive", noStdout: true},
		{name: "report", args: []string{"report", "-root", reportRoot(t)}, code: 0,
			stdout: "outbox/deliver_10k/delivery  5.12 s  <= 10 s  ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != tc.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, tc.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("stdout %q, stderr %q; want %q, %q", stdout.String(), stderr.String(), tc.stdout, tc.stderr)
			}
			if tc.noStdout && stdout.Len() > 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}

// reportRoot is a repository root holding one scenario's figures.
func reportRoot(t *testing.T) string {
	root := t.TempDir()
	err := benchreport.Write(root, "outbox", []benchreport.Figure{
		{Name: "outbox/deliver_10k/delivery", Value: 5.12, Unit: "s", Op: "<=", Target: 10, Command: "radar-bench outbox"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// Every registered command is listed in the usage.
func TestUsageListsEveryCommand(t *testing.T) {
	var out bytes.Buffer
	usage(&out)
	for name, c := range commands {
		if !strings.Contains(out.String(), "  "+name+" ") || !strings.Contains(out.String(), c.summary) {
			t.Errorf("usage does not list %s:\n%s", name, out.String())
		}
	}
}
