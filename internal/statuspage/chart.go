package statuspage

import (
	"fmt"
	"html"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
)

// Chart geometry, in SVG user units (the SVG scales to the page's width).
const (
	chartW, chartH = 900, 200
	padLeft        = 44 // y labels
	padRight       = 8
	padTop         = 10
	padBottom      = 22 // x labels
	// maxPoints bounds the points of one series: beyond it, results are
	// averaged per time bucket, so a pod testing every 15 minutes still
	// gets a page of a few dozen KiB (and a line a person can read).
	maxPoints = 180
)

// seriesColors are told apart by most people with a colour vision
// deficiency (Okabe-Ito).
var seriesColors = []string{"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442"}

// metric is what one chart plots.
type metric struct {
	ID, Title, Unit string
	value           func(agent.ResultEntry) *float64
}

var metrics = []metric{
	{"download", "Download speed", "Mbit/s", func(e agent.ResultEntry) *float64 { return e.DownloadMbps }},
	{"upload", "Upload speed", "Mbit/s", func(e agent.ResultEntry) *float64 { return e.UploadMbps }},
	{"latency", "Latency (lower is better)", "ms", func(e agent.ResultEntry) *float64 { return e.LatencyMs }},
}

// point is one value at one time.
type point struct {
	T time.Time
	V float64
}

// series is one line: one runner on one interface.
type series struct {
	Key    string // "ndt7|eth1"
	Label  string
	Color  string
	Points []point
}

// seriesKey names a result's series.
func seriesKey(e agent.ResultEntry) string { return e.Runner + "|" + e.Interface }

// seriesLabel is what the legend says of a series.
func seriesLabel(runner, iface string) string {
	name := map[string]string{"ndt7": "NDT7 (M-Lab)", "ookla": "Ookla"}[runner]
	if name == "" {
		name = runner
	}
	if iface == "" {
		return name
	}
	return name + " on " + iface
}

// buildSeries groups the dated, successful results of [from, to] into one
// series per runner and interface, oldest first, colours assigned in a
// stable order (by key) so a series keeps its colour in every chart.
func buildSeries(entries []agent.ResultEntry, m metric, from, to time.Time, colors map[string]string) []series {
	byKey := map[string]*series{}
	for _, e := range entries {
		v := m.value(e)
		if v == nil || e.Time.IsZero() || e.Time.Before(from) || e.Time.After(to) || math.IsNaN(*v) || math.IsInf(*v, 0) {
			continue
		}
		k := seriesKey(e)
		s := byKey[k]
		if s == nil {
			s = &series{Key: k, Label: seriesLabel(e.Runner, e.Interface), Color: colors[k]}
			byKey[k] = s
		}
		s.Points = append(s.Points, point{e.Time, *v})
	}
	out := make([]series, 0, len(byKey))
	for _, s := range byKey {
		sort.SliceStable(s.Points, func(i, j int) bool { return s.Points[i].T.Before(s.Points[j].T) })
		s.Points = downsample(s.Points, from, to, maxPoints)
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// assignColors gives every series of entries its colour, by key order.
func assignColors(entries []agent.ResultEntry) map[string]string {
	keys := map[string]bool{}
	for _, e := range entries {
		keys[seriesKey(e)] = true
	}
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	colors := map[string]string{}
	for i, k := range sorted {
		colors[k] = seriesColors[i%len(seriesColors)]
	}
	return colors
}

// downsample averages points per equal time bucket of [from, to] when
// there are more than max of them; otherwise it returns them as they are.
func downsample(pts []point, from, to time.Time, max int) []point {
	if len(pts) <= max || !to.After(from) {
		return pts
	}
	width := to.Sub(from) / time.Duration(max)
	var out []point
	var sumV, sumT float64 // sumT: seconds since from
	n, bucket := 0, -1
	flush := func() {
		if n > 0 {
			at := from.Add(time.Duration(sumT / float64(n) * float64(time.Second)))
			out = append(out, point{at, sumV / float64(n)})
		}
		sumV, sumT, n = 0, 0, 0
	}
	for _, p := range pts {
		b := min(int(p.T.Sub(from)/width), max-1)
		if b != bucket {
			flush()
			bucket = b
		}
		sumV += p.V
		sumT += p.T.Sub(from).Seconds()
		n++
	}
	flush()
	return out
}

// scale maps times and values onto the plot area.
type scale struct {
	from, to time.Time
	// yMax is the top of the axis, a whole number of yStep.
	yMax, yStep float64
}

// niceAxis chooses the value axis for data up to v: gridlines at a
// "round" step (1, 2, 2.5 or 5 times a power of ten), at most five of them
// above zero, the top the first gridline at or above v — so the axis
// reads 0, 100, 200 … 500 rather than 0, 109, 218…. Nothing to show gives
// 0 to 1.
func niceAxis(v float64) (top, step float64) {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1, 0.2
	}
	exp := math.Pow(10, math.Floor(math.Log10(v/5)))
	step = 10 * exp
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*exp*5 >= v*(1-1e-12) {
			step = m * exp
			break
		}
	}
	n := math.Max(1, math.Ceil(v/step-1e-9))
	return n * step, step
}

// x is the horizontal position of t.
func (s scale) x(t time.Time) float64 {
	span := s.to.Sub(s.from).Seconds()
	if span <= 0 {
		return padLeft
	}
	f := t.Sub(s.from).Seconds() / span
	return padLeft + f*(chartW-padLeft-padRight)
}

// y is the vertical position of v (0 at the bottom of the plot).
func (s scale) y(v float64) float64 {
	f := v / s.yMax
	return chartH - padBottom - f*(chartH-padTop-padBottom)
}

// yTicks are the gridlines: 0, every step, the top.
func (s scale) yTicks() []float64 {
	var out []float64
	for i := 0.0; i*s.yStep <= s.yMax*(1+1e-9); i++ {
		out = append(out, i*s.yStep)
	}
	return out
}

// chartView is one rendered chart.
type chartView struct {
	ID, Title, Unit string
	Series          []series
	SVG             markup
	Empty           bool
}

// renderChart draws the series of one metric over [from, to] as an inline
// SVG: gridlines with labels, one polyline per series with a dot at every
// point (a marker, so a single result still shows), no script, no font
// beyond the page's own. Each polyline carries data-series and
// data-points, which the browser tests read.
func renderChart(m metric, ss []series, from, to time.Time, rangeID string) chartView {
	maxV := 0.0
	for _, s := range ss {
		for _, p := range s.Points {
			maxV = math.Max(maxV, p.V)
		}
	}
	top, step := niceAxis(maxV)
	sc := scale{from: from, to: to, yMax: top, yStep: step}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s, last %s" preserveAspectRatio="xMidYMid meet">`,
		chartW, chartH, html.EscapeString(m.Title), rangeID)
	b.WriteString(`<defs>`)
	for i, s := range ss {
		fmt.Fprintf(&b, `<marker id="m-%s-%s-%d" viewBox="0 0 6 6" refX="3" refY="3" markerWidth="5" markerHeight="5"><circle cx="3" cy="3" r="2.6" fill="%s"/></marker>`,
			m.ID, rangeID, i, s.Color)
	}
	b.WriteString(`</defs>`)
	for _, v := range sc.yTicks() {
		y := sc.y(v)
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%s" y2="%s"/>`, padLeft, chartW-padRight, num(y), num(y))
		fmt.Fprintf(&b, `<text class="yl" x="%d" y="%s">%s</text>`, padLeft-4, num(y+3.5), tickLabel(v))
	}
	for _, t := range xTicks(from, to) {
		x := sc.x(t.at)
		fmt.Fprintf(&b, `<line class="grid v" x1="%s" x2="%s" y1="%d" y2="%d"/>`, num(x), num(x), padTop, chartH-padBottom)
		fmt.Fprintf(&b, `<text class="xl" x="%s" y="%d">%s</text>`, num(x), chartH-6, t.label)
	}
	empty := true
	for i, s := range ss {
		if len(s.Points) == 0 {
			continue
		}
		empty = false
		pts := make([]string, len(s.Points))
		for j, p := range s.Points {
			pts[j] = num(sc.x(p.T)) + "," + num(sc.y(p.V))
		}
		marker := fmt.Sprintf("url(#m-%s-%s-%d)", m.ID, rangeID, i)
		fmt.Fprintf(&b, `<polyline data-series="%s" data-points="%d" points="%s" stroke="%s" marker-start="%s" marker-mid="%s" marker-end="%s"/>`,
			html.EscapeString(s.Label), len(s.Points), strings.Join(pts, " "), s.Color, marker, marker, marker)
	}
	if empty {
		fmt.Fprintf(&b, `<text class="none" x="%d" y="%d">No results in this period yet</text>`, (chartW+padLeft)/2, chartH/2)
	}
	b.WriteString(`</svg>`)
	// Markup: numbers, this package's constants (ids, colours) and the
	// series labels, which come from results and are escaped above.
	return chartView{ID: m.ID, Title: m.Title, Unit: m.Unit, Series: ss, SVG: markup(b.String()), Empty: empty}
}

// num writes a coordinate with one decimal at most: enough on a 900-unit
// canvas, and it keeps the page small.
func num(f float64) string {
	return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64)
}

// tickLabel writes an axis value without needless decimals (steps are
// round, so a few significant digits are exact).
func tickLabel(v float64) string {
	return strconv.FormatFloat(math.Round(v*1e6)/1e6, 'f', -1, 64)
}

// xTick is one labelled day on the time axis.
type xTick struct {
	at    time.Time
	label string
}

// xTicks labels the time axis at midnights (UTC): every day over a week,
// every fifth day over a month.
func xTicks(from, to time.Time) []xTick {
	step := 1
	if to.Sub(from) > 8*24*time.Hour {
		step = 5
	}
	day := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, 1)
	var out []xTick
	for i := 0; !day.After(to); i, day = i+1, day.AddDate(0, 0, 1) {
		if i%step != 0 {
			continue
		}
		label := day.Format("Jan 2")
		if step == 1 {
			label = day.Format("Mon 2")
		}
		out = append(out, xTick{day, label})
	}
	return out
}
