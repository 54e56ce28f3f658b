package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"

	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/netcheck"
	"github.com/radarpod/radarpod/internal/netif"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/telemetry"
)

// logRecords decodes the JSON log lines of logs.
func logRecords(t *testing.T, logs *proctest.LogBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// TestOfflineStartUpCheckLogsOneWarning runs the real network check of an
// offline box — every required connection refused, on loopback — the way
// the agent runs it at start-up: it logs one WARN that names each
// unreachable endpoint and the step it failed at, and points to
// check-network; no ERROR, at any start. Once the channel has stayed down,
// the same verdict is an error (it needs a person); a check that passes
// is one INFO line.
func TestOfflineStartUpCheckLogsOneWarning(t *testing.T) {
	pods, locate, sentry := proctest.FreePort(t), proctest.FreePort(t), proctest.FreePort(t)
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	reqs := []netcheck.Requirement{
		{ID: netcheck.RowPods, Service: "Radar pods service", Required: true, Checks: []netcheck.Probe{{Kind: netcheck.ProbeTCP, Host: "127.0.0.1", Port: pods}}},
		{ID: netcheck.RowLocate, Service: "M-Lab locate", Required: true, Checks: []netcheck.Probe{
			{Kind: netcheck.ProbeTCP, Host: "127.0.0.1", Port: locate},
			{Kind: netcheck.ProbeTCP, Host: "127.0.0.1", Port: proctest.FreePort(t)},
		}},
		{ID: netcheck.RowSentry, Service: "Sentry", Required: false, Checks: []netcheck.Probe{{Kind: netcheck.ProbeTCP, Host: "127.0.0.1", Port: sentry}}},
		{ID: "reachable", Service: "a loopback listener", Required: true, Checks: []netcheck.Probe{{Kind: netcheck.ProbeTCP, Host: "127.0.0.1", Port: listener.Addr().(*net.TCPAddr).Port}}},
	}
	check := reqs
	newAgent := func() (*Agent, *proctest.LogBuffer) {
		cfg, err := config.LoadAgent(map[string]string{"RADAR_SERVER_URL": "", "RADAR_DATA_DIR": t.TempDir(), "RADAR_LISTEN_ADDR": ""})
		if err != nil {
			t.Fatal(err)
		}
		logs := &proctest.LogBuffer{}
		a, err := New(Options{
			Config: cfg, Log: telemetry.NewLogger(logs, telemetry.LogOptions{Level: slog.LevelDebug}),
			Runners: []Runner{}, Interfaces: func() ([]netif.Interface, error) { return nil, nil },
			NetCheck: func(ctx context.Context) netcheck.Report {
				return netcheck.Check(ctx, check, netcheck.CheckOptions{})
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return a, logs
	}
	verdicts := func(t *testing.T, logs *proctest.LogBuffer) (lines []map[string]any) {
		for _, r := range logRecords(t, logs) {
			if msg, _ := r["msg"].(string); strings.HasPrefix(msg, "network check ") && msg != "network check started" {
				lines = append(lines, r)
			}
			if r["level"] == "ERROR" && r["why"] == netCheckAtStart {
				t.Errorf("an ERROR at start-up: %v", r)
			}
		}
		return lines
	}

	// Two starts of an offline box: one warning each, never an error.
	for start := 1; start <= 2; start++ {
		a, logs := newAgent()
		a.runNetCheck(context.Background(), netCheckAtStart)
		lines := verdicts(t, logs)
		if len(lines) != 1 {
			t.Fatalf("start %d: %d verdict lines, want 1:\n%s", start, len(lines), logs)
		}
		l := lines[0]
		want := fmt.Sprintf("network check failed: 3 of 4 rows failed: pods 127.0.0.1:%d (tcp), locate 127.0.0.1:%d (tcp) and 1 more, sentry 127.0.0.1:%d (tcp); run `radar-agent check-network` for each step",
			pods, locate, sentry)
		if l["level"] != "WARN" || l["msg"] != want || l["why"] != "start-up" {
			t.Fatalf("start %d: %v %q\nwant WARN %q", start, l["level"], l["msg"], want)
		}
		// The hints stay, one attribute per failed row.
		if h, _ := l["pods"].(string); !strings.HasPrefix(h, "tcp: ") || !strings.Contains(h, "refused") {
			t.Errorf("pods hint %q", h)
		}
		for _, r := range logRecords(t, logs) {
			if r["level"] == "ERROR" {
				t.Errorf("start %d: ERROR logged: %v", start, r)
			}
		}

		// The channel then stays down: the same verdict needs a person.
		if start == 1 {
			a, logs := newAgent()
			a.runNetCheck(context.Background(), "channel down for 5m0s")
			lines = verdicts(t, logs)
			if len(lines) != 1 || lines[0]["level"] != "ERROR" || !strings.HasPrefix(lines[0]["msg"].(string), "network check failed: 3 of 4 rows failed") {
				t.Fatalf("channel-down verdict: %v", lines)
			}
		}
	}

	// Only an informational row fails: a warning, whatever the reason.
	check = []netcheck.Requirement{reqs[2], reqs[3]}
	a, logs := newAgent()
	a.runNetCheck(context.Background(), "channel down for 5m0s")
	lines := verdicts(t, logs)
	if len(lines) != 1 || lines[0]["level"] != "WARN" ||
		lines[0]["msg"] != fmt.Sprintf("network check passed, informational rows failed: 1 of 2 rows failed: sentry 127.0.0.1:%d (tcp); run `radar-agent check-network` for each step", sentry) {
		t.Fatalf("informational failure: %v", lines)
	}
	// All reachable: one INFO line.
	check = reqs[3:]
	a, logs = newAgent()
	a.runNetCheck(context.Background(), netCheckAtStart)
	lines = verdicts(t, logs)
	if len(lines) != 1 || lines[0]["level"] != "INFO" || lines[0]["msg"] != "network check passed: 1 rows reachable" {
		t.Fatalf("passing check: %v", lines)
	}
}
