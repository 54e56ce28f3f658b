package netcheck

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/radarpod/radarpod/internal/telemetry"
)

// RenderTable writes the report for a human: one line per row with its
// verdict, time, and for a failure the step and the hint, then notes and a
// closing verdict.
func RenderTable(w io.Writer, r Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(TableHeader, "\t"))
	for _, cells := range TableRows(r) {
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := io.WriteString(w, TableFooter(r))
	return err
}

// TableHeader names the columns of RenderTable (and of the status page's
// copy of the table).
var TableHeader = []string{"ROW", "SERVICE", "VERDICT", "TIME", "STEP", "DETAIL"}

// TableRows are the cells of RenderTable, one slice per row, in
// TableHeader's order.
func TableRows(r Report) [][]string {
	out := make([][]string, 0, len(r.Rows))
	for _, row := range r.Rows {
		detail := row.Hint
		if row.Verdict == Pass {
			detail = passDetail(row)
		}
		out = append(out, []string{row.ID, row.Service, verdictText(row), humanDuration(row.Duration), row.Step, detail})
	}
	return out
}

// TableFooter is what RenderTable writes below the table: the notes and
// the closing verdict.
func TableFooter(r Report) string {
	var b strings.Builder
	for _, row := range r.Rows {
		for _, n := range row.Notes {
			fmt.Fprintf(&b, "note (%s): %s\n", row.ID, n)
		}
	}
	var failed, informational []string
	for _, row := range r.Failed() {
		if row.Required {
			failed = append(failed, row.ID)
		} else {
			informational = append(informational, row.ID)
		}
	}
	switch {
	case len(failed) > 0:
		fmt.Fprintf(&b, "\nFAIL: %d of %d required rows cannot be reached: %s.\n", len(failed), countRequired(r), strings.Join(failed, ", "))
	default:
		fmt.Fprintf(&b, "\nPASS: every required row is reachable (%s).\n", humanDuration(r.Duration))
	}
	if len(informational) > 0 {
		fmt.Fprintf(&b, "Informational rows that failed (they do not fail the check): %s.\n", strings.Join(informational, ", "))
	}
	return b.String()
}

// passDetail names what answered, so a pass is evidence rather than a word.
func passDetail(row RowResult) string {
	var targets []string
	for _, p := range row.Probes {
		if p.OK && p.Kind != ProbeNDT7Locate && p.Kind != ProbeOoklaServers {
			targets = append(targets, p.Target)
		}
	}
	if len(targets) > 3 {
		targets = append(targets[:3], fmt.Sprintf("and %d more", len(targets)-3))
	}
	return strings.Join(targets, ", ")
}

func verdictText(row RowResult) string {
	switch {
	case row.Verdict == Fail && !row.Required:
		return "WARN"
	default:
		return strings.ToUpper(string(row.Verdict))
	}
}

func countRequired(r Report) int {
	n := 0
	for _, row := range r.Rows {
		if row.Required {
			n++
		}
	}
	return n
}

func humanDuration(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

// RenderReportJSON writes the report as indented JSON, durations in
// milliseconds.
func RenderReportJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// MarshalJSON adds the verdict and the duration in milliseconds.
func (r Report) MarshalJSON() ([]byte, error) {
	type plain Report
	rows := r.Rows
	if rows == nil {
		rows = []RowResult{}
	}
	r.Rows = rows
	return json.Marshal(struct {
		plain
		OK         bool    `json:"ok"`
		DurationMS float64 `json:"duration_ms"`
	}{plain(r), r.OK(), ms(r.Duration)})
}

// MarshalJSON adds the duration in milliseconds.
func (r RowResult) MarshalJSON() ([]byte, error) {
	type plain RowResult
	if r.Probes == nil {
		r.Probes = []ProbeResult{}
	}
	return json.Marshal(struct {
		plain
		DurationMS float64 `json:"duration_ms"`
	}{plain(r), ms(r.Duration)})
}

// MarshalJSON adds the duration in milliseconds.
func (r ProbeResult) MarshalJSON() ([]byte, error) {
	type plain ProbeResult
	if r.Steps == nil {
		r.Steps = []StepResult{}
	}
	return json.Marshal(struct {
		plain
		DurationMS float64 `json:"duration_ms"`
	}{plain(r), ms(r.Duration)})
}

// MarshalJSON adds the duration in milliseconds.
func (s StepResult) MarshalJSON() ([]byte, error) {
	type plain StepResult
	return json.Marshal(struct {
		plain
		DurationMS float64 `json:"duration_ms"`
	}{plain(s), ms(s.Duration)})
}

// RecordMetrics exposes a report: radar_network_check_pass{row} is 1 for a
// passing row and 0 for a failing one (skipped rows are left out), and the
// timestamp is when the check finished.
func RecordMetrics(m *telemetry.Metrics, r Report) {
	if m == nil {
		return
	}
	for _, row := range r.Rows {
		switch row.Verdict {
		case Pass:
			m.NetCheckPass.WithLabelValues(row.ID).Set(1)
		case Fail:
			m.NetCheckPass.WithLabelValues(row.ID).Set(0)
		}
	}
	m.NetCheckTime.Set(float64(r.Started.Add(r.Duration).UnixMilli()) / 1000)
}
