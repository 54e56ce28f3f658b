package statuspage

import (
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
)

func TestNiceAxis(t *testing.T) {
	for _, tc := range []struct{ in, top, step float64 }{
		{0, 1, 0.2}, {-5, 1, 0.2}, {0.3, 0.3, 0.1}, {1, 1, 0.2}, {4.9, 5, 1}, {7, 8, 2},
		{12.47, 12.5, 2.5}, {20, 20, 5}, {23.1, 25, 5}, {48, 50, 10}, {94.1, 100, 20}, {100, 100, 20},
		{101, 125, 25}, {402.86, 500, 100}, {436, 500, 100}, {940, 1000, 200}, {10017, 12500, 2500},
	} {
		top, step := niceAxis(tc.in)
		if !near(top, tc.top) || !near(step, tc.step) {
			t.Errorf("niceAxis(%v) = %v step %v, want %v step %v", tc.in, top, step, tc.top, tc.step)
		}
		if n := top / step; n > 5+1e-9 || top < tc.in {
			t.Errorf("niceAxis(%v): %v gridlines, top %v", tc.in, n, top)
		}
		sc := scale{yMax: top, yStep: step}
		ticks := sc.yTicks()
		if ticks[0] != 0 || !near(ticks[len(ticks)-1], top) {
			t.Errorf("niceAxis(%v): ticks %v", tc.in, ticks)
		}
	}
	for v, want := range map[float64]string{0: "0", 0.2: "0.2", 12.5: "12.5", 2500: "2500", 0.1 + 0.2: "0.3"} {
		if got := tickLabel(v); got != want {
			t.Errorf("tickLabel(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestScale(t *testing.T) {
	from := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	to := from.Add(7 * 24 * time.Hour)
	sc := scale{from: from, to: to, yMax: 100, yStep: 25}
	left, right := float64(padLeft), float64(chartW-padRight)
	top, bottom := float64(padTop), float64(chartH-padBottom)
	for _, tc := range []struct {
		t    time.Time
		v    float64
		x, y float64
	}{
		{from, 0, left, bottom},
		{to, 100, right, top},
		{from.Add(84 * time.Hour), 50, (left + right) / 2, (top + bottom) / 2},
		{from.Add(42 * time.Hour), 25, left + (right-left)/4, bottom - (bottom-top)/4},
	} {
		if x, y := sc.x(tc.t), sc.y(tc.v); !near(x, tc.x) || !near(y, tc.y) {
			t.Errorf("(%v, %v) -> (%v, %v), want (%v, %v)", tc.t, tc.v, x, y, tc.x, tc.y)
		}
	}
	if got := sc.yTicks(); len(got) != 5 || got[0] != 0 || got[2] != 50 || got[4] != 100 {
		t.Errorf("ticks %v", got)
	}
}

func near(a, b float64) bool { return a-b < 1e-9*(1+b) && b-a < 1e-9*(1+b) }

func TestDownsample(t *testing.T) {
	from := time.Date(2026, 11, 4, 0, 0, 0, 0, time.UTC)
	to := from.Add(30 * 24 * time.Hour)
	mk := func(n int, every time.Duration) []point {
		var pts []point
		for i := range n {
			pts = append(pts, point{from.Add(time.Duration(i) * every), float64(i % 10)})
		}
		return pts
	}
	for _, tc := range []struct {
		name string
		pts  []point
		max  int
		want int
	}{
		{"under the bound: unchanged", mk(120, 6*time.Hour), 180, 120},
		{"every 15 minutes for 30 days", mk(2880, 15*time.Minute), 180, 180},
		{"all in one bucket", mk(300, time.Second), 180, 1},
	} {
		got := downsample(tc.pts, from, to, tc.max)
		if len(got) != tc.want {
			t.Errorf("%s: %d points, want %d", tc.name, len(got), tc.want)
		}
		for i := 1; i < len(got); i++ {
			if got[i].T.Before(got[i-1].T) {
				t.Fatalf("%s: points out of order", tc.name)
			}
		}
	}
	// A bucket's point is the mean of its values and times.
	got := downsample([]point{{from, 10}, {from.Add(time.Minute), 20}, {to.Add(-time.Minute), 5}}, from, to, 2)
	if len(got) != 2 || got[0].V != 15 || !got[0].T.Equal(from.Add(30*time.Second)) || got[1].V != 5 {
		t.Errorf("means: %+v", got)
	}
}

// TestChartPoints: one polyline per series, with one point per dated
// successful result in the range; failures and undated results are left
// out; an empty range says so.
func TestChartPoints(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	e := func(runner, iface string, ago time.Duration, down float64) agent.ResultEntry {
		return agent.ResultEntry{Time: now.Add(-ago), Runner: runner, Interface: iface, DownloadMbps: f64(down), UploadMbps: f64(down / 10), LatencyMs: f64(12)}
	}
	entries := []agent.ResultEntry{
		e("ndt7", "", 20*24*time.Hour, 90), e("ndt7", "", 2*time.Hour, 95), e("ndt7", "", time.Hour, 80),
		e("ookla", "", time.Hour, 400), e("ookla", "wlan0", 3*24*time.Hour, 40),
		{Time: now.Add(-time.Hour), Runner: "ndt7", ErrorClass: "timeout"},
		{Runner: "ookla", DownloadMbps: f64(1)},
	}
	colors := assignColors(entries)
	for _, tc := range []struct {
		rangeD time.Duration
		want   map[string]int
	}{
		{7 * 24 * time.Hour, map[string]int{"NDT7 (M-Lab)": 2, "Ookla": 1, "Ookla on wlan0": 1}},
		{30 * 24 * time.Hour, map[string]int{"NDT7 (M-Lab)": 3, "Ookla": 1, "Ookla on wlan0": 1}},
		{30 * time.Minute, map[string]int{}},
	} {
		from := now.Add(-tc.rangeD)
		ss := buildSeries(entries, metrics[0], from, now, colors)
		got := map[string]int{}
		for _, s := range ss {
			got[s.Label] = len(s.Points)
		}
		if len(got) != len(tc.want) {
			t.Errorf("%v: series %v, want %v", tc.rangeD, got, tc.want)
		}
		for k, n := range tc.want {
			if got[k] != n {
				t.Errorf("%v: %s has %d points, want %d", tc.rangeD, k, got[k], n)
			}
		}
		cv := renderChart(metrics[0], ss, from, now, "x")
		svg := string(cv.SVG)
		if strings.Count(svg, "<polyline") != len(tc.want) || cv.Empty != (len(tc.want) == 0) {
			t.Errorf("%v: %d polylines for %d series (empty %v)", tc.rangeD, strings.Count(svg, "<polyline"), len(tc.want), cv.Empty)
		}
		if cv.Empty && !strings.Contains(svg, "No results in this period") {
			t.Errorf("%v: an empty chart does not say so", tc.rangeD)
		}
	}
	// The same series keeps its colour in every chart.
	if colors["ndt7|"] == colors["ookla|"] || colors["ookla|wlan0"] == "" {
		t.Errorf("colours %v", colors)
	}
}
