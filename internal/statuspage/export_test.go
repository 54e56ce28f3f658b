package statuspage

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
)

func f64(v float64) *float64 { return &v }

func TestExportFormats(t *testing.T) {
	at := time.Date(2026, 11, 30, 8, 15, 0, 0, time.FixedZone("CET", 3600))
	ok := agent.ResultEntry{Time: at, Runner: "ndt7", DownloadMbps: f64(94.123456), UploadMbps: f64(11.5), LatencyMs: f64(12.4749), DurationSeconds: 21.41234, BytesSent: 44203740, BytesReceived: 529086852}
	failed := agent.ResultEntry{Time: at, Runner: "ookla", Interface: "wlan0", DurationSeconds: 3, ErrorClass: "network", Error: "=HYPERLINK(\"x\") dial: refused"}
	undated := agent.ResultEntry{Runner: "ookla", DownloadMbps: f64(1), UploadMbps: f64(2), LatencyMs: f64(3), DurationSeconds: 4, Raw: json.RawMessage(`{"big":1}`)}
	for _, tc := range []struct {
		name    string
		format  string
		entries []agent.ResultEntry
		want    string
	}{
		{"csv empty", "csv", nil, "time,runner,interface,download_mbps,upload_mbps,latency_ms,duration_seconds,bytes_sent,bytes_received,error_class,error\n"},
		{"csv", "csv", []agent.ResultEntry{ok, failed, undated},
			"time,runner,interface,download_mbps,upload_mbps,latency_ms,duration_seconds,bytes_sent,bytes_received,error_class,error\n" +
				"2026-11-30T07:15:00Z,ndt7,,94.123,11.5,12.475,21.412,44203740,529086852,,\n" +
				"2026-11-30T07:15:00Z,ookla,wlan0,,,,3,0,0,network,\"'=HYPERLINK(\"\"x\"\") dial: refused\"\n" +
				",ookla,,1,2,3,4,0,0,,\n"},
		{"json empty", "json", nil, "[]\n"},
		{"json", "json", []agent.ResultEntry{ok, undated},
			"[\n" +
				`{"time":"2026-11-30T07:15:00Z","runner":"ndt7","interface":"","download_mbps":94.123456,"upload_mbps":11.5,"latency_ms":12.4749,"duration_seconds":21.412,"bytes_sent":44203740,"bytes_received":529086852,"error_class":"","error":""}` + ",\n" +
				`{"time":null,"runner":"ookla","interface":"","download_mbps":1,"upload_mbps":2,"latency_ms":3,"duration_seconds":4,"bytes_sent":0,"bytes_received":0,"error_class":"","error":""}` +
				"\n]\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			ex, err := NewExporter(&b, tc.format)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range tc.entries {
				if err := ex.Write(RowOf(e)); err != nil {
					t.Fatal(err)
				}
			}
			if err := ex.Close(); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got\n%s\nwant\n%s", b.String(), tc.want)
			}
			if tc.format == "json" {
				var rows []Row
				if err := json.Unmarshal(b.Bytes(), &rows); err != nil || len(rows) != len(tc.entries) {
					t.Errorf("not a JSON array of %d rows: %v", len(tc.entries), err)
				}
			}
		})
	}
	if _, err := NewExporter(&bytes.Buffer{}, "xml"); err == nil {
		t.Error("format xml accepted")
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"", time.Time{}, false},
		{"7d", now.Add(-7 * 24 * time.Hour), false},
		{"1.5d", now.Add(-36 * time.Hour), false},
		{"2w", now.Add(-14 * 24 * time.Hour), false},
		{"36h", now.Add(-36 * time.Hour), false},
		{"90m", now.Add(-90 * time.Minute), false},
		{"2026-11-01", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), false},
		{"2026-11-01T10:00:00+01:00", time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC), false},
		{"-3d", time.Time{}, true},
		{"-1h", time.Time{}, true},
		{"yesterday", time.Time{}, true},
		{"1e9d", time.Time{}, true},
	} {
		got, err := ParseSince(tc.in, now)
		if (err != nil) != tc.err || !got.Equal(tc.want) {
			t.Errorf("ParseSince(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

// TestExportReadsBothGenerations: the export of a fixture history gives
// every entry of both files in order, the torn line skipped, no raw
// result, and --since cuts by time but keeps undated entries.
func TestExportReadsBothGenerations(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC()
	f := writeFixture(t, dir, now)
	var b bytes.Buffer
	if err := Export(&b, dir, time.Time{}, "csv"); err != nil {
		t.Fatal(err)
	}
	records, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != len(f.entries)+1 {
		t.Fatalf("%d CSV rows, want %d entries and the header", len(records)-1, len(f.entries))
	}
	for i, e := range f.entries {
		if rec := records[i+1]; rec[1] != e.Runner || rec[2] != e.Interface || rec[9] != e.ErrorClass {
			t.Fatalf("row %d = %v, want entry %+v", i, rec, e)
		}
	}
	b.Reset()
	since := now.Add(-7 * 24 * time.Hour)
	if err := Export(&b, dir, since, "json"); err != nil {
		t.Fatal(err)
	}
	var rows []Row
	if err := json.Unmarshal(b.Bytes(), &rows); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, e := range f.entries {
		if e.Time.IsZero() || !e.Time.Before(since) {
			want++
		}
	}
	if len(rows) != want || want == 0 {
		t.Fatalf("since 7d: %d rows, want %d", len(rows), want)
	}
	if strings.Contains(b.String(), "BBRInfo") || strings.Contains(b.String(), "speedtest.net") {
		t.Error("the export carries raw results")
	}
}
