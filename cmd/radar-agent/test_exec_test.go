package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/localapi"
	"github.com/radarpod/radarpod/internal/ooklatest"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/radartest"
)

// TestTestCommandWhileTheAgentIsMidTest is `docker compose exec agent
// radar-agent test` as a pod sees it: the agent binary runs (connected to
// the service double), a first `test` starts a measurement, and a second
// one arrives while it runs. Both get the same result; the measurement ran
// once and the service received one upload, not two.
func TestTestCommandWhileTheAgentIsMidTest(t *testing.T) {
	bin := proctest.Build(t, "./cmd/radar-agent")
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	ooklaDir := t.TempDir()
	env := map[string]string{
		"RADAR_SERVER_URL": srv.URL, "RADAR_DATA_DIR": t.TempDir(), "RADAR_TESTS": "ookla", "RADAR_LOG_FORMAT": "json",
		"RADAR_OOKLA_BIN": ooklatest.Install(t, ooklaDir, ooklatest.ModeResult), "RADAR_LISTEN_ADDR": proctest.FreeAddr(t),
	}
	agentProc := proctest.Start(t, bin, env)
	testRuns := func() int {
		n := 0
		for _, args := range ooklatest.Calls(t, ooklaDir) {
			if !slices.Contains(args, "--servers") {
				n++
			}
		}
		return n
	}
	// The start-up network check asks the CLI for its servers; after it,
	// every call of the fake takes long enough to arrive mid-test.
	proctest.WaitFor(t, wait, "the start-up network check", func() bool { return len(ooklatest.Calls(t, ooklaDir)) > 0 })
	proctest.WaitFor(t, wait, "healthy", func() bool {
		code, _ := proctest.Run(t, bin, env, 15*time.Second, "healthcheck")
		return code == 0
	})
	ooklatest.SetDelay(t, ooklaDir, 10*time.Second)

	first := proctest.Start(t, bin, env, "test", "--format", "json")
	proctest.WaitFor(t, wait, "the first test to start", func() bool { return testRuns() == 1 })
	second := proctest.Start(t, bin, env, "test", "--format", "json")

	var outboxIDs []string
	for i, p := range []*proctest.Process{first, second} {
		code, err := p.Wait(wait)
		out := p.Output()
		if err != nil || code != 0 {
			t.Fatalf("test %d: exit %d, %v\n%s\nagent:\n%s", i+1, code, err, out, agentProc.Output())
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var res localapi.Result
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || !res.OK || res.Source != localapi.SourceAgent || len(res.Tests) != 1 {
			t.Fatalf("test %d: last line is no agent's result: %v\n%s", i+1, err, out)
		}
		if !strings.Contains(out, `"phase":"running"`) {
			t.Errorf("test %d: no progress event:\n%s", i+1, out)
		}
		outboxIDs = append(outboxIDs, res.Tests[0].OutboxID)
	}
	if outboxIDs[0] == "" || outboxIDs[0] != outboxIDs[1] {
		t.Errorf("outbox ids %q: want the one result for both", outboxIDs)
	}
	if n := testRuns(); n != 1 {
		t.Fatalf("the measurement ran %d times, want once", n)
	}
	ctx := t.Context()
	if _, err := srv.WaitMeasurements(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(agentProc.Output(), "joined the run in progress") {
		t.Errorf("the agent did not log the second request joining:\n%s", agentProc.Output())
	}
	// Every result the agent made (one) is delivered: nothing else can be.
	proctest.WaitFor(t, wait, "the result recorded", func() bool { return len(readResults(t, env["RADAR_DATA_DIR"])) == 1 })
	if n := len(srv.Measurements()); n != 1 {
		t.Errorf("%d uploads, want 1", n)
	}
}

// TestTestCommandBadUsage: exit status 2, naming what is allowed.
func TestTestCommandBadUsage(t *testing.T) {
	env := map[string]string{"RADAR_DATA_DIR": t.TempDir(), "RADAR_LISTEN_ADDR": proctest.FreeAddr(t)}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "usage: radar-agent test [--runner ndt7|ookla]"},
		{[]string{"--runner", "speedof.me"}, "allowed: ndt7, ookla"},
		{[]string{"--format", "xml"}, "allowed: human, json"},
		{[]string{"now"}, "unexpected argument"},
		{[]string{"--interface", "eth0/../x"}, "not an interface name"},
	}
	for _, tt := range tests {
		code, stdout, stderr := runTest(env, tt.args...)
		if code != 2 || !strings.Contains(stdout+stderr, tt.want) {
			t.Errorf("%v: exit %d, want 2 with %q\n%s%s", tt.args, code, tt.want, stdout, stderr)
		}
	}
	// Bad configuration is exit 2 as for every command.
	if code, _, stderr := runTest(map[string]string{"RADAR_LISTEN_ADDR": "nonsense"}); code != 2 || !strings.Contains(stderr, "RADAR_LISTEN_ADDR") {
		t.Errorf("bad RADAR_LISTEN_ADDR: exit %d\n%s", code, stderr)
	}
}

// runTest runs `radar-agent test args` in this process.
func runTest(env map[string]string, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(append([]string{"test"}, args...), env, &out, &errb)
	return code, out.String(), errb.String()
}
