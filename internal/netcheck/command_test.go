package netcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestRequirementsCommand(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		env        map[string]string
		code       int
		stdout     []string
		stderr     []string
		jsonOutput bool
	}{
		{name: "markdown by default", code: 0, stdout: []string{"# Network access requirements", "| `pods` |", "radar.exactlylabs.com"}},
		{name: "json", args: []string{"--format", "json"}, code: 0, jsonOutput: true, stdout: []string{`"id": "pods"`}},
		{name: "standalone", env: map[string]string{"RADAR_SERVER_URL": ""}, code: 0, stdout: []string{"| `crl` |"}},
		{name: "help", args: []string{"-h"}, code: 0, stderr: []string{"usage: radar-agent network-requirements"}},
		{name: "unknown format", args: []string{"--format", "yaml"}, code: 2, stderr: []string{`unknown --format "yaml"`, "markdown, json"}},
		{name: "unknown flag", args: []string{"--verbose"}, code: 2, stderr: []string{"flag provided but not defined"}},
		{name: "stray argument", args: []string{"now"}, code: 2, stderr: []string{`unexpected argument "now"`}},
		{name: "bad config", env: map[string]string{"RADAR_NDT7_SCHEME": "quic"}, code: 2, stderr: []string{"RADAR_NDT7_SCHEME", "auto, wss, ws"}},
		{name: "bad updater config", env: map[string]string{"RADAR_CRL_URL": "http://crl.example.org/x"}, code: 2, stderr: []string{"RADAR_CRL_URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env
			if env == nil {
				env = map[string]string{}
			}
			var stdout, stderr bytes.Buffer
			code := RequirementsCommand(tt.args, env, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstderr: %s", code, tt.code, stderr.String())
			}
			for _, s := range tt.stdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout.String())
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
				}
			}
			if tt.name == "standalone" && strings.Contains(stdout.String(), "| `pods` |") {
				t.Errorf("standalone mode lists the pods service")
			}
			if tt.jsonOutput {
				var reqs []Requirement
				if err := json.Unmarshal(stdout.Bytes(), &reqs); err != nil || len(reqs) == 0 {
					t.Errorf("not a JSON list of requirements: %v", err)
				}
			}
		})
	}
}

// Usage and configuration errors exit 2 before anything touches the
// network.
func TestCheckCommandUsage(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		code   int
		stderr string
	}{
		{"help", []string{"--help"}, nil, 0, "usage: radar-agent check-network"},
		{"unknown format", []string{"--format", "markdown"}, nil, 2, "table, json"},
		{"bad timeout", []string{"--timeout", "0s"}, nil, 2, "must be positive"},
		{"bad config", nil, map[string]string{"RADAR_TESTS": "iperf"}, 2, `unknown runner "iperf"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env
			if env == nil {
				env = map[string]string{}
			}
			var stdout, stderr bytes.Buffer
			code := CheckCommand(context.Background(), tt.args, env, &stdout, &stderr)
			if code != tt.code || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", code, tt.code, stderr.String(), tt.stderr)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout should be empty: %s", stdout.String())
			}
		})
	}
}
