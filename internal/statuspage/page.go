package statuspage

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/buildinfo"
	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/netcheck"
)

// tableRows is how many results the page lists.
const tableRows = 50

// kv is one labelled fact.
type kv struct {
	K, V  string
	Class string // "ok", "warn", "bad" or ""
}

type resultRow struct {
	When, Ago, Test                   string
	Down, Up, Latency, Error, ErrKind string
	OK                                bool
}

type rangeView struct {
	ID, Label string
	Checked   bool
	Charts    []chartView
}

type netView struct {
	When   string
	Header []string
	Rows   []netRow
	Footer string
	Class  string
}

type netRow struct {
	Cells []string
	Class string
}

type latestView struct {
	Down, Up, Latency, When, Test string
}

type pageView struct {
	Nonce, CSRF  string
	Title        string
	StatusClass  string
	StatusText   string
	StatusDetail []string
	Latest       *latestView
	CanRun       bool
	ActionsNote  string
	TokenNeeded  bool
	Run          RunView
	Running      bool
	// OtherTest: a test the page did not start (the schedule's, the
	// service's) is running or queued.
	OtherTest        bool
	Ranges           []rangeView
	Legend           []series
	Results          []resultRow
	ResultsTotal     int
	Connection       []kv
	Update           []kv
	NetCheck         *netView
	Budget           []kv
	About            []kv
	Generated        string
	UnsyncedResults  int
	ConnectionHeader string
}

func (s *Server) page(w http.ResponseWriter, r *http.Request) {
	commonHeaders(w)
	nonce := randomToken()
	// Nothing but this origin and the page's own inline code: the page
	// works offline and cannot be made to load anything else.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'nonce-"+nonce+
		"'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	v := s.view(r)
	v.Nonce = nonce
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(renderPage(v))
}

// view gathers everything the page shows.
func (s *Server) view(r *http.Request) pageView {
	now := s.o.Now().UTC()
	snap := s.o.Pod.Snapshot()
	entries := s.o.Pod.RecentResults()
	v := pageView{CSRF: s.csrf, TokenNeeded: s.o.Token != "", Run: s.run.view(), Generated: stamp(now)}
	v.Running = v.Run.State == "running"
	v.OtherTest = snap.TestBusy && !v.Running
	v.CanRun, v.ActionsNote = s.actionsAllowed(r)
	v.Title = "Radar pod"
	if snap.PodName != "" {
		v.Title = "Radar pod “" + snap.PodName + "”"
	}

	// Results, newest first.
	for i := len(entries) - 1; i >= 0 && len(v.Results) < tableRows; i-- {
		v.Results = append(v.Results, rowView(entries[i], now))
	}
	v.ResultsTotal = len(entries)
	// The latest result of the pod's main connection (the default route),
	// else of any.
	for _, mainOnly := range []bool{true, false} {
		for i := len(entries) - 1; i >= 0 && v.Latest == nil; i-- {
			if e := entries[i]; e.ErrorClass == "" && e.DownloadMbps != nil && (!mainOnly || e.Interface == "") {
				v.Latest = &latestView{
					Down: mbps(e.DownloadMbps), Up: mbps(e.UploadMbps), Latency: ms(e.LatencyMs),
					When: when(e.Time, now), Test: seriesLabel(e.Runner, e.Interface),
				}
			}
		}
	}
	for _, e := range entries {
		if e.Time.IsZero() {
			v.UnsyncedResults++
		}
	}

	// Charts: the same series (and colours) in every chart.
	colors := assignColors(entries)
	for i, rg := range []struct {
		id, label string
		d         time.Duration
	}{{"7d", "Last 7 days", 7 * 24 * time.Hour}, {"30d", "Last 30 days", 30 * 24 * time.Hour}} {
		rv := rangeView{ID: rg.id, Label: rg.label, Checked: i == 0}
		from := now.Add(-rg.d)
		for _, m := range metrics {
			rv.Charts = append(rv.Charts, renderChart(m, buildSeries(entries, m, from, now, colors), from, now, rg.id))
		}
		v.Ranges = append(v.Ranges, rv)
	}
	keys := make([]string, 0, len(colors))
	for k := range colors {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		runner, iface, _ := strings.Cut(k, "|")
		v.Legend = append(v.Legend, series{Key: k, Label: seriesLabel(runner, iface), Color: colors[k]})
	}

	v.Connection, v.ConnectionHeader = connectionView(snap, now)
	v.Update = s.updateView(now)
	v.NetCheck = netCheckView(snap, now)
	if s.o.Budget != nil {
		if b, ok := s.o.Budget(); ok {
			v.Budget = budgetView(b, now)
		}
	}
	v.About = aboutView(snap)
	v.StatusClass, v.StatusText, v.StatusDetail = overall(snap, entries, v.NetCheck, now)
	return v
}

// overall is the one-line verdict at the top of the page, for a person
// who reads nothing else.
func overall(snap agent.Snapshot, entries []agent.ResultEntry, nc *netView, now time.Time) (class, text string, detail []string) {
	class, text = "ok", "Everything looks fine"
	warn := func(msg string) {
		if class == "ok" {
			class, text = "warn", "Needs attention"
		}
		detail = append(detail, msg)
	}
	if !snap.Standalone && !connected(snap, now) {
		warn("The pod cannot reach the Radar service right now; results are kept and sent later.")
	}
	if nc != nil && nc.Class == "bad" {
		warn("The last network check found connections that are blocked (see “Network check”).")
	}
	if n := len(entries); n > 0 && entries[n-1].ErrorClass != "" {
		warn("The last test failed: " + entries[n-1].ErrorClass + ".")
	}
	if class != "ok" {
		return class, text, detail
	}
	// All is well: say what "well" means.
	if snap.Standalone {
		detail = append(detail, "Measuring on its own schedule (standalone, no Radar service).")
	} else {
		detail = append(detail, "Connected to the Radar service; results are sent as soon as they are measured.")
	}
	if n := len(entries); n == 0 {
		detail = append(detail, "No test has run yet.")
	} else if last := entries[n-1]; !last.Time.IsZero() {
		detail = append(detail, "Last test "+ago(now.Sub(last.Time))+".")
	}
	return class, text, detail
}

// connected: the live channel is up, or the service answered a heartbeat
// recently (the fallback).
func connected(snap agent.Snapshot, now time.Time) bool {
	return snap.ChannelUp || (!snap.LastHeartbeat.IsZero() && now.Sub(snap.LastHeartbeat) < 2*time.Minute)
}

func connectionView(snap agent.Snapshot, now time.Time) ([]kv, string) {
	if snap.Standalone {
		return []kv{
			{K: "Mode", V: "Standalone: the pod measures on its own schedule and keeps the results here (no Radar service)."},
		}, "Mode"
	}
	out := []kv{{K: "Radar service", V: snap.ServerURL}}
	switch {
	case snap.ChannelUp:
		out = append(out, kv{K: "Live connection", V: "Connected", Class: "ok"})
	case connected(snap, now):
		out = append(out, kv{K: "Live connection", V: "Down; the pod checks in every few seconds instead", Class: "warn"})
	default:
		out = append(out, kv{K: "Live connection", V: "Not connected", Class: "bad"})
	}
	hb := kv{K: "Last contact", V: "none since the agent started", Class: "warn"}
	if !snap.LastHeartbeat.IsZero() {
		hb = kv{K: "Last contact", V: when(snap.LastHeartbeat, now)}
	}
	out = append(out, hb)
	box := kv{K: "Results waiting to be sent", V: "none", Class: "ok"}
	if snap.OutboxRecords > 0 {
		box = kv{K: "Results waiting to be sent", V: fmt.Sprintf("%d", snap.OutboxRecords), Class: "warn"}
		if !snap.OldestUndelivered.IsZero() {
			box.V += ", the oldest measured " + when(snap.OldestUndelivered, now)
		}
	}
	out = append(out, box)
	return out, "Connection to Radar"
}

// updateView reads the updater's status file the way the agent reads
// everything the updater writes (handoff: no link followed, size bound).
func (s *Server) updateView(now time.Time) []kv {
	out := []kv{{K: "Running version", V: buildinfo.Version}}
	st, ok, err := handoff.ReadStatus(s.o.DataDir)
	switch {
	case err != nil:
		return append(out, kv{K: "Updater", V: "its status file cannot be read: " + s.o.Redact(err.Error()), Class: "bad"})
	case !ok:
		return append(out, kv{K: "Updater", V: "no update has been handled yet"})
	}
	class := ""
	switch {
	case st.State.Failure():
		class = "bad"
	case st.State == handoff.StateSucceeded || st.State == handoff.StateIdle:
		class = "ok"
	}
	decision := stateText(st.State)
	if st.ToVersion != "" {
		decision += " (version " + st.ToVersion + ")"
	}
	out = append(out, kv{K: "Last decision", V: decision + ", " + when(st.UpdatedAt, now), Class: class})
	if st.Reason != "" {
		out = append(out, kv{K: "Reason", V: s.o.Redact(st.Reason)})
	}
	if st.NextRetryAt != nil {
		out = append(out, kv{K: "Next attempt", V: when(*st.NextRetryAt, now)})
	}
	return out
}

// stateText says an updater state in words.
func stateText(s handoff.State) string {
	switch s {
	case handoff.StateIdle:
		return "Up to date, nothing to install"
	case handoff.StateVerifying:
		return "Checking the signature of a new version"
	case handoff.StateWaitingClock:
		return "Waiting for the clock to be set before checking a new version"
	case handoff.StatePulling:
		return "Downloading a new version"
	case handoff.StateWaitingTest:
		return "Waiting for the running test to finish before updating"
	case handoff.StateReplacing:
		return "Installing a new version"
	case handoff.StateHealthCheck:
		return "Checking the new version works"
	case handoff.StateSucceeded:
		return "Updated"
	case handoff.StateRefused:
		return "Refused a new version"
	case handoff.StateRolledBack:
		return "A new version did not work; went back to the previous one"
	case handoff.StateRollbackFailed:
		return "A new version did not work and going back failed: needs a person"
	case handoff.StateFailed:
		return "Update failed"
	}
	return string(s)
}

func netCheckView(snap agent.Snapshot, now time.Time) *netView {
	if snap.NetCheck == nil {
		return nil
	}
	r := *snap.NetCheck
	nv := &netView{Header: netcheck.TableHeader, Footer: strings.TrimSpace(netcheck.TableFooter(r)), Class: "ok"}
	nv.When = when(r.Started, now)
	if snap.NetCheckWhy != "" {
		nv.When += " (" + snap.NetCheckWhy + ")"
	}
	if !r.OK() {
		nv.Class = "bad"
	}
	for i, cells := range netcheck.TableRows(r) {
		row := netRow{Cells: cells, Class: "ok"}
		if r.Rows[i].Verdict != netcheck.Pass {
			row.Class = "bad"
			if !r.Rows[i].Required {
				row.Class = "warn"
			}
		}
		nv.Rows = append(nv.Rows, row)
	}
	return nv
}

func budgetView(b Budget, now time.Time) []kv {
	if b.Limit <= 0 {
		out := []kv{{K: "Budget", V: "none set (RADAR_DATA_BUDGET): tests may use as much data as they need"}}
		if b.Used > 0 {
			out = append(out, kv{K: "Used this month", V: bytesText(b.Used)})
		}
		return out
	}
	pct := 0.0
	if b.Limit > 0 {
		pct = 100 * float64(b.Used) / float64(b.Limit)
	}
	used := kv{K: "Used this period", V: fmt.Sprintf("%s of %s (%.0f%%)", bytesText(b.Used), bytesText(b.Limit), pct), Class: "ok"}
	switch {
	case b.Exhausted:
		used.Class = "bad"
		used.V += ": scheduled tests are skipped until the period ends"
	case pct >= 80:
		used.Class = "warn"
	}
	out := []kv{used}
	if !b.PeriodEnd.IsZero() {
		out = append(out, kv{K: "Period", V: b.PeriodStart.UTC().Format("Jan 2") + " to " + b.PeriodEnd.UTC().Format("Jan 2 2006") + " (UTC)"})
	}
	return out
}

func aboutView(snap agent.Snapshot) []kv {
	out := []kv{}
	if snap.PodName != "" {
		out = append(out, kv{K: "Name", V: snap.PodName})
	}
	if snap.PodID != 0 {
		out = append(out, kv{K: "Pod ID", V: fmt.Sprintf("%d", snap.PodID)})
	}
	if !snap.Standalone && snap.PodID == 0 {
		out = append(out, kv{K: "Registration", V: "not registered yet", Class: "warn"})
	}
	return append(out,
		kv{K: "Agent version", V: buildinfo.Version + " (" + shortCommit(buildinfo.Commit) + ")"},
		kv{K: "System", V: buildinfo.Distribution() + ", " + buildinfo.Arch()},
	)
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

func rowView(e agent.ResultEntry, now time.Time) resultRow {
	r := resultRow{When: "time unknown", Test: seriesLabel(e.Runner, e.Interface), OK: e.ErrorClass == ""}
	if !e.Time.IsZero() {
		r.When, r.Ago = stamp(e.Time), ago(now.Sub(e.Time))
	}
	if r.OK {
		r.Down, r.Up, r.Latency = mbps(e.DownloadMbps), mbps(e.UploadMbps), ms(e.LatencyMs)
	} else {
		r.ErrKind, r.Error = e.ErrorClass, e.Error
	}
	if e.ErrorClass == "" && e.Error != "" {
		// Measured, but not stored for upload (see agent.record).
		r.Error = e.Error
	}
	return r
}

func mbps(f *float64) string {
	if f == nil {
		return "–"
	}
	if *f >= 100 {
		return fmt.Sprintf("%.0f", *f)
	}
	return fmt.Sprintf("%.1f", *f)
}

func ms(f *float64) string {
	if f == nil {
		return "–"
	}
	if *f >= 10 {
		return fmt.Sprintf("%.0f", *f)
	}
	return fmt.Sprintf("%.1f", *f)
}

// stamp writes a time for the page: UTC, to the minute.
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") + " UTC" }

// when writes a time and how long ago it was.
func when(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "unknown"
	}
	return ago(now.Sub(t)) + " (" + stamp(t) + ")"
}

// ago says a duration the way people do.
func ago(d time.Duration) string {
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		s = plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		s = plural(int(d/time.Hour), "hour")
	default:
		s = plural(int(d/(24*time.Hour)), "day")
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}

func bytesText(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
