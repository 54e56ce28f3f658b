package statuspage

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
)

// Row is one result as the exports give it (GET /results.csv and
// /results.json, `radar-agent results`). The names are the CSV header and
// the JSON keys; they are documented in README.md ("Status page"), so keep
// them stable. A failed test has error_class and error and no figures; a
// result measured before the pod's clock was known has no time.
type Row struct {
	Time            *time.Time `json:"time"`
	Runner          string     `json:"runner"`
	Interface       string     `json:"interface"`
	DownloadMbps    *float64   `json:"download_mbps"`
	UploadMbps      *float64   `json:"upload_mbps"`
	LatencyMs       *float64   `json:"latency_ms"`
	DurationSeconds float64    `json:"duration_seconds"`
	// BytesSent and BytesReceived are what the test moved (0 when the
	// runner did not count it).
	BytesSent     int64  `json:"bytes_sent"`
	BytesReceived int64  `json:"bytes_received"`
	ErrorClass    string `json:"error_class"`
	Error         string `json:"error"`
}

// csvHeader is the CSV export's first line.
var csvHeader = []string{"time", "runner", "interface", "download_mbps", "upload_mbps", "latency_ms", "duration_seconds",
	"bytes_sent", "bytes_received", "error_class", "error"}

// RowOf is the export form of a history entry.
func RowOf(e agent.ResultEntry) Row {
	r := Row{
		Runner: e.Runner, Interface: e.Interface,
		DownloadMbps: e.DownloadMbps, UploadMbps: e.UploadMbps, LatencyMs: e.LatencyMs,
		DurationSeconds: round(e.DurationSeconds, 3), BytesSent: e.BytesSent, BytesReceived: e.BytesReceived,
		ErrorClass: e.ErrorClass, Error: e.Error,
	}
	if !e.Time.IsZero() {
		t := e.Time.UTC()
		r.Time = &t
	}
	return r
}

// Exporter writes rows in one format, one at a time, so a long history is
// streamed rather than held.
type Exporter interface {
	Write(Row) error
	// Close ends the document (the JSON array) and flushes.
	Close() error
}

// Formats are the export formats, as --format and the URL suffix name them.
var Formats = []string{"csv", "json"}

// NewExporter starts an export in format to w.
func NewExporter(w io.Writer, format string) (Exporter, error) {
	switch format {
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.Write(csvHeader); err != nil {
			return nil, err
		}
		return &csvExporter{w: cw}, nil
	case "json":
		return &jsonExporter{w: w}, nil
	}
	return nil, fmt.Errorf("format %q: want one of %s", format, strings.Join(Formats, ", "))
}

type csvExporter struct{ w *csv.Writer }

func (c *csvExporter) Write(r Row) error {
	t := ""
	if r.Time != nil {
		t = r.Time.Format(time.RFC3339)
	}
	return c.w.Write([]string{t, r.Runner, r.Interface, fnum(r.DownloadMbps), fnum(r.UploadMbps), fnum(r.LatencyMs),
		strconv.FormatFloat(r.DurationSeconds, 'f', -1, 64), strconv.FormatInt(r.BytesSent, 10), strconv.FormatInt(r.BytesReceived, 10),
		r.ErrorClass, csvSafe(r.Error)})
}

func (c *csvExporter) Close() error {
	c.w.Flush()
	return c.w.Error()
}

// csvSafe keeps a spreadsheet from reading a cell as a formula: an error
// text comes from the network (a server's answer) and is opened by people
// in Excel or LibreOffice.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// jsonExporter writes one JSON array, one row per line.
type jsonExporter struct {
	w io.Writer
	n int
}

func (j *jsonExporter) Write(r Row) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	sep := ",\n"
	if j.n == 0 {
		sep = "[\n"
	}
	j.n++
	_, err = io.WriteString(j.w, sep+string(b))
	return err
}

func (j *jsonExporter) Close() error {
	end := "\n]\n"
	if j.n == 0 {
		end = "[]\n"
	}
	_, err := io.WriteString(j.w, end)
	return err
}

func fnum(f *float64) string {
	if f == nil {
		return ""
	}
	return strconv.FormatFloat(round(*f, 3), 'f', -1, 64)
}

func round(f float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if f >= 0 {
		return float64(int64(f*p+0.5)) / p
	}
	return -float64(int64(-f*p+0.5)) / p
}

// ParseSince reads --since and ?since=: a duration back from now ("36h",
// "7d", "2w") or a date or time ("2026-11-01", RFC 3339). Empty means
// everything.
func ParseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	for _, unit := range []struct {
		suffix string
		d      time.Duration
	}{{"d", 24 * time.Hour}, {"w", 7 * 24 * time.Hour}} {
		if n, ok := strings.CutSuffix(s, unit.suffix); ok {
			if v, err := strconv.ParseFloat(n, 64); err == nil && v >= 0 && v < 1e5 {
				return now.Add(-time.Duration(v * float64(unit.d))), nil
			}
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("since %q: want a duration back from now (36h, 7d, 2w) or a date (2026-11-01 or RFC 3339)", s)
}

// Export writes every entry of the history in dataDir since since, in the
// order recorded (agent.ReadHistory), in format.
func Export(w io.Writer, dataDir string, since time.Time, format string) error {
	ex, err := NewExporter(w, format)
	if err != nil {
		return err
	}
	if err := agent.ReadHistory(dataDir, since, func(e agent.ResultEntry) error { return ex.Write(RowOf(e)) }); err != nil {
		return err
	}
	return ex.Close()
}
