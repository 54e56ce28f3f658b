package agent_test

import (
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/ooklatest"
	"github.com/radarpod/radarpod/internal/radartest"
	"github.com/radarpod/radarpod/internal/speedtest/ookla"
)

// TestRequestedTestsRunOverTheDataBudget: the pods service decides, so
// the tests it asks for run whatever the budget says. With a 1 GB budget
// and the fake Ookla CLI (573 MB a test), the first request fits; the
// second and third would take the month past the budget: both still run
// and are uploaded, each logged at WARN with over_budget=true and
// counted, and the usage keeps being counted.
func TestRequestedTestsRunOverTheDataBudget(t *testing.T) {
	const perTest = 529086852 + 44203740
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	fake := ooklatest.Install(t, t.TempDir(), ooklatest.ModeResult)
	srv.SetPendingTest(true)
	p := startPod(t, podOptions{
		env:     map[string]string{"RADAR_SERVER_URL": srv.URL, "RADAR_TESTS": "ookla", "RADAR_DATA_BUDGET": "1GB"},
		runners: func(config.Agent) []agent.Runner { return []agent.Runner{ookla.New(ookla.Options{Bin: fake})} },
		server:  srv,
	})
	overBudget := func() float64 {
		return p.metrics.TestsOverBudget.WithLabelValues("channel").Value() +
			p.metrics.TestsOverBudget.WithLabelValues("status").Value()
	}
	waitMeasurements(t, srv, 1)
	waitFor(t, "the first test's bytes counted", func() bool { return p.metrics.DataBudgetUsed.Value() == perTest })
	if n := overBudget(); n != 0 || strings.Contains(p.logs.String(), "over_budget") {
		t.Fatalf("the first request, within the budget, was logged over it (%v)", n)
	}
	for i := 2; i <= 3; i++ {
		srv.SendRunTest(nil)
		waitMeasurements(t, srv, i)
		waitFor(t, "the bytes counted", func() bool { return p.metrics.DataBudgetUsed.Value() == float64(i*perTest) })
	}
	if n := overBudget(); n != 2 {
		t.Errorf("radar_tests_over_budget_total = %v, want 2", n)
	}
	if !strings.Contains(p.logs.String(), `"msg":"test run requested over the data budget; running it (only scheduled runs are skipped)"`) ||
		!strings.Contains(p.logs.String(), `"over_budget":true`) || !strings.Contains(p.logs.String(), `"level":"WARN"`) {
		t.Errorf("no over-budget line")
	}
	if n := p.metrics.TestsSkipped.WithLabelValues("data_budget").Value(); n != 0 {
		t.Errorf("requested runs counted as skipped: %v", n)
	}
	if n := p.metrics.TestBytes.WithLabelValues("ookla", "default", "received").Value(); n != 3*529086852 {
		t.Errorf("radar_test_bytes_total{received} = %v", n)
	}
	// Each result carries its bytes in the local record.
	for _, e := range p.results() {
		if e.BytesReceived != 529086852 || e.BytesSent != 44203740 {
			t.Errorf("result %+v", e)
		}
	}
}
