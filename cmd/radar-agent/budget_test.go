package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/ooklatest"
	"github.com/radarpod/radarpod/internal/proctest"
)

// ooklaFixtureBytes is what the fake Ookla CLI's result says it moved
// (download.bytes + upload.bytes of the field fixture): ~573 MB.
const ooklaFixtureBytes = 529086852 + 44203740

// TestDataBudgetSurvivesRestarts runs the real binary standalone with a
// 1 GB budget against the fake Ookla CLI, restarting it on the same data
// dir. The first scheduled run fits (nothing used; the default estimate);
// after a restart the next one would take the month past the budget (573
// MB used, 573 MB expected) and is skipped, with one INFO line and the
// metric; with the budget raised, it runs again.
func TestDataBudgetSurvivesRestarts(t *testing.T) {
	bin := proctest.Build(t, "./cmd/radar-agent")
	env, _ := standaloneEnv(t, ooklatest.ModeResult)
	env["RADAR_DATA_BUDGET"] = "1GB"
	dir := env["RADAR_DATA_DIR"]

	stop := func(p *proctest.Process) {
		t.Helper()
		p.Signal(syscall.SIGTERM)
		if code, err := p.Wait(30 * time.Second); err != nil || code != 0 {
			t.Fatalf("after SIGTERM: exit %d, %v\n%s", code, err, p.Output())
		}
	}
	usedOnDisk := func() int64 {
		t.Helper()
		var st struct {
			UsedBytes int64 `json:"used_bytes"`
			Skipped   int   `json:"skipped"`
		}
		b, err := os.ReadFile(filepath.Join(dir, agent.BudgetFile))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatalf("%s: %v: %s", agent.BudgetFile, err, b)
		}
		return st.UsedBytes
	}
	// dueNow makes the next scheduled run due right after start (one
	// missed while the pod was off would wait out the catch-up spread).
	dueNow := func() {
		t.Helper()
		b := []byte(`{"next_run_at":"` + time.Now().Add(5*time.Second).UTC().Format(time.RFC3339Nano) + `"}`)
		if err := os.WriteFile(filepath.Join(dir, agent.ScheduleFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Start 1: a fresh pod's first scheduled run, within the budget.
	p := proctest.Start(t, bin, env)
	proctest.WaitFor(t, wait, "the first standalone result", func() bool { return len(readResults(t, dir)) == 1 })
	stop(p)
	if r := readResults(t, dir)[0]; r.BytesReceived != 529086852 || r.BytesSent != 44203740 {
		t.Fatalf("result recorded with %d bytes received, %d sent", r.BytesReceived, r.BytesSent)
	}
	if got := usedOnDisk(); got != ooklaFixtureBytes {
		t.Fatalf("%s holds %d bytes used, want %d", agent.BudgetFile, got, ooklaFixtureBytes)
	}

	// Start 2: the usage survived; the due run would exceed the budget.
	dueNow()
	p = proctest.Start(t, bin, env)
	proctest.WaitFor(t, wait, "the scheduled run to be skipped", func() bool {
		return strings.Contains(p.Output(), "scheduled test run skipped")
	})
	metrics := scrape(t, env["RADAR_LISTEN_ADDR"])
	for _, want := range []string{
		`radar_tests_skipped_total{reason="data_budget"} 1`,
		"radar_data_budget_used_bytes 5.73290592e+08",
		"radar_data_budget_bytes 1e+09",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	stop(p)
	if n := len(readResults(t, dir)); n != 1 {
		t.Fatalf("%d results after the skipped run, want 1", n)
	}
	var skipLines []map[string]any
	for _, l := range strings.Split(p.Output(), "\n") {
		if strings.Contains(l, "scheduled test run skipped") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("log line %q: %v", l, err)
			}
			skipLines = append(skipLines, m)
		}
	}
	if len(skipLines) != 1 || skipLines[0]["level"] != "INFO" || skipLines[0]["used"] != "573.3 MB" ||
		skipLines[0]["budget"] != "1.00 GB" || skipLines[0]["estimate"] != "573.3 MB" || skipLines[0]["resets"] == nil {
		t.Fatalf("skip lines: %v", skipLines)
	}

	// Start 3: with room for it, the due run runs and is counted on top.
	env["RADAR_DATA_BUDGET"] = "2GB"
	dueNow()
	p = proctest.Start(t, bin, env)
	proctest.WaitFor(t, wait, "the second result", func() bool { return len(readResults(t, dir)) == 2 })
	stop(p)
	if strings.Contains(p.Output(), "skipped") {
		t.Fatalf("a run within the budget was skipped:\n%s", p.Output())
	}
	if got := usedOnDisk(); got != 2*ooklaFixtureBytes {
		t.Fatalf("%s holds %d bytes used, want %d", agent.BudgetFile, got, 2*ooklaFixtureBytes)
	}
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
