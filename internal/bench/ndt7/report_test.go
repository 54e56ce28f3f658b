//go:build linux && cgo

package ndt7

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/benchreport"
)

func TestFiguresFromRuns(t *testing.T) {
	o := Options{Runs: 3, Delay: 10 * time.Millisecond, Scheme: "ws"}
	run := func(tool string, down, up, cpu float64, rss int64, err error) toolRun {
		return toolRun{tool: tool, downFrac: down, upFrac: up, cpu: time.Duration(cpu * float64(time.Second)), maxRSS: rss << 20, err: err}
	}
	r := &rateResult{rate: 100, burst: 32768, limit: 250000,
		agent: []toolRun{run(toolAgent, 93, 94, 0.7, 20, nil), run(toolAgent, 92, 95, 0.8, 22, nil), run(toolAgent, 0, 0, 0.1, 5, errors.New("boom"))},
		cli:   []toolRun{run(toolCLI, 93.5, 94, 0.7, 18, nil), run(toolCLI, 93, 94.5, 0.6, 19, nil), run(toolCLI, 94, 95, 0.65, 18, nil)},
		rtt:   []time.Duration{20 * time.Millisecond, 21 * time.Millisecond, 22 * time.Millisecond},
	}
	figs := figures(o, []*rateResult{r}, nil)
	got := map[string]benchreport.Figure{}
	for _, f := range figs {
		got[f.Name] = f
	}
	for name, want := range map[string]float64{
		"download_fraction":            92.5, // the failed run does not count
		"upload_fraction":              94.5,
		"download_diff":                -0.75, // pairs: 93−93.5, 92−93 (the third has no agent result)
		"upload_diff":                  0.25,  // 94−94, 95−94.5
		"cpu_ratio":                    1.15,  // 0.75 / 0.65
		"peak_rss":                     22,    // the worst test
		"ndt7client_download_fraction": 93.5,
		"rtt":                          21,
	} {
		if f := got["ndt7/100mbit/"+name]; f.Value != want {
			t.Errorf("%s = %v, want %v", name, f.Value, want)
		}
	}
	if n := got["ndt7/100mbit/download_fraction"].Notes; !strings.Contains(n, "FAILED tests: agent 1, ndt7-client 0") {
		t.Errorf("notes do not report the failed test: %s", n)
	}
	if _, ok := got["ndt7/100mbit/tcp_download_fraction"]; ok {
		t.Error("a ceiling figure without a ceiling measurement")
	}
}
