package ndt7

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"

	mlab "github.com/m-lab/ndt7-client-go"
	"github.com/m-lab/ndt7-client-go/spec"
)

// track mirrors the library's own bookkeeping (Client.collectData), which the
// runner reads through Client.Results: the latest client and server
// measurement per test, and the server's ConnectionInfo. It lets the summary
// be computed from a recorded stream.
func track(results map[spec.TestKind]*mlab.LatestMeasurements, m *spec.Measurement) {
	lm := results[m.Test]
	if lm == nil {
		lm = &mlab.LatestMeasurements{}
		results[m.Test] = lm
	}
	switch m.Origin {
	case spec.OriginClient:
		lm.Client = *m
	case spec.OriginServer:
		if m.ConnectionInfo != nil {
			lm.ConnectionInfo = m.ConnectionInfo
		}
		lm.Server = *m
	}
}

// fixture is a real result uploaded by a pod in the field: its measurement
// lines, decoded, and its summary line as bytes.
func fixture(t testing.TB) (lines [][]byte, ms []spec.Measurement, summary []byte) {
	t.Helper()
	raw, err := os.ReadFile("testdata/ndt7-result.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	lines = bytes.Split(bytes.TrimSuffix(raw, []byte("\n")), []byte("\n"))
	summary = lines[len(lines)-1]
	lines = lines[:len(lines)-1]
	for i, l := range lines {
		var ev struct {
			Key   string
			Value spec.Measurement
		}
		if err := json.Unmarshal(l, &ev); err != nil || ev.Key != "measurement" {
			t.Fatalf("fixture line %d: %v %q", i+1, err, ev.Key)
		}
		ms = append(ms, ev.Value)
	}
	return lines, ms, summary
}

// TestRecorderReproducesFixture feeds the measurements of a real result
// through the recorder and the summary code: every line comes out as the
// same JSON and the summary line byte for byte as the pod in the field wrote
// it (same figures, same float formatting).
func TestRecorderReproducesFixture(t *testing.T) {
	lines, ms, wantSummary := fixture(t)
	rec := newRecorder()
	results := map[spec.TestKind]*mlab.LatestMeasurements{}
	for i := range ms {
		track(results, &ms[i])
		if err := rec.measurement(&ms[i]); err != nil {
			t.Fatal(err)
		}
	}
	sum, haveDown, haveUp := summarize(results)
	if !haveDown || !haveUp {
		t.Fatalf("haveDown %v haveUp %v", haveDown, haveUp)
	}
	if err := rec.summary(sum); err != nil {
		t.Fatal(err)
	}
	got := bytes.Split(bytes.TrimSuffix(rec.buf.Bytes(), []byte("\n")), []byte("\n"))
	if len(got) != len(lines)+1 || rec.lines != len(lines) {
		t.Fatalf("%d lines (%d recorded), want %d", len(got), rec.lines, len(lines)+1)
	}
	for i := range lines {
		if !sameJSON(t, got[i], lines[i]) {
			t.Fatalf("line %d differs:\n got %s\nwant %s", i+1, got[i], lines[i])
		}
	}
	if !bytes.Equal(got[len(got)-1], wantSummary) {
		t.Errorf("summary\n got %s\nwant %s", got[len(got)-1], wantSummary)
	}
}

// sameJSON compares two measurement lines as JSON values. The only
// difference allowed is the zero ConnectionInfo.StartTime that the current
// model always encodes and the fixture's older server did not send.
func sameJSON(t *testing.T, got, want []byte) bool {
	var g, w map[string]any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if ci, ok := g["Value"].(map[string]any)["ConnectionInfo"].(map[string]any); ok {
		if wci, ok := w["Value"].(map[string]any)["ConnectionInfo"].(map[string]any); ok {
			if _, has := wci["StartTime"]; !has && ci["StartTime"] == "0001-01-01T00:00:00Z" {
				delete(ci, "StartTime")
			}
		}
	}
	return reflect.DeepEqual(g, w)
}

// TestSummarizeEdgeCases pins the CLI's semantics where a test went wrong.
func TestSummarizeEdgeCases(t *testing.T) {
	app := func(test spec.TestKind, n, us int64) spec.Measurement {
		return spec.Measurement{Test: test, Origin: spec.OriginClient, AppInfo: &spec.AppInfo{NumBytes: n, ElapsedTime: us}}
	}
	tcp := func(test spec.TestKind, recv, us int64, minRTT uint32) spec.Measurement {
		ti := &spec.TCPInfo{ElapsedTime: us}
		ti.BytesReceived, ti.MinRTT = recv, minRTT
		return spec.Measurement{Test: test, Origin: spec.OriginServer, TCPInfo: ti}
	}
	bare := func(test spec.TestKind) spec.Measurement {
		return spec.Measurement{Test: test, Origin: spec.OriginServer, ConnectionInfo: &spec.ConnectionInfo{UUID: "u"}}
	}
	dl, ul := spec.TestDownload, spec.TestUpload
	for _, tc := range []struct {
		name             string
		stream           []spec.Measurement
		want             summaryLine
		haveDown, haveUp bool
	}{
		{name: "nothing", want: summaryLine{}},
		{name: "download only", stream: []spec.Measurement{app(dl, 1_000_000, 1_000_000), tcp(dl, 0, 900_000, 7000), app(dl, 5_000_000, 2_000_000)},
			want: summaryLine{Download: value{20}, MinRTT: value{7}}, haveDown: true},
		{name: "upload only: latency from the upload", stream: []spec.Measurement{tcp(ul, 2_500_000, 1_000_000, 9000), app(ul, 9e9, 1)},
			want: summaryLine{Upload: value{20}, MinRTT: value{9}}, haveUp: true},
		{name: "download latency wins", stream: []spec.Measurement{tcp(dl, 0, 1, 4000), tcp(ul, 1_000_000, 1_000_000, 9000)},
			want: summaryLine{Upload: value{8}, MinRTT: value{4}}, haveUp: true},
		{name: "zero elapsed counts as no throughput", stream: []spec.Measurement{app(dl, 10, 0), tcp(ul, 10, 0, 3000)},
			want: summaryLine{MinRTT: value{3}}},
		// The CLI keeps the latest server message whole: if it carries no
		// TCPInfo, the earlier ones do not count.
		{name: "last server message without TCPInfo", stream: []spec.Measurement{tcp(ul, 1_000_000, 1_000_000, 9000), bare(ul)},
			want: summaryLine{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			results := map[spec.TestKind]*mlab.LatestMeasurements{}
			for i := range tc.stream {
				track(results, &tc.stream[i])
			}
			got, haveDown, haveUp := summarize(results)
			if got != tc.want || haveDown != tc.haveDown || haveUp != tc.haveUp {
				t.Errorf("summarize = %+v %v %v, want %+v %v %v", got, haveDown, haveUp, tc.want, tc.haveDown, tc.haveUp)
			}
		})
	}
}

// BenchmarkRecordFixture is the runner's own per-test work besides the
// transfer: encode a full test's measurement stream (the fixture, 160 lines)
// and compute the summary.
func BenchmarkRecordFixture(b *testing.B) {
	_, ms, _ := fixture(b)
	b.ReportAllocs()
	var size int
	for b.Loop() {
		rec := newRecorder()
		results := map[spec.TestKind]*mlab.LatestMeasurements{}
		for i := range ms {
			track(results, &ms[i])
			if err := rec.measurement(&ms[i]); err != nil {
				b.Fatal(err)
			}
		}
		sum, _, _ := summarize(results)
		if err := rec.summary(sum); err != nil {
			b.Fatal(err)
		}
		size = rec.buf.Len()
	}
	b.ReportMetric(float64(size), "result-bytes")
}

// TestTransferredFromFixture counts what the field result moved: the
// download is the client's last AppInfo (562 089 204 B; the server's last
// BytesAcked says 556 869 609), the upload the client's last AppInfo
// (61 874 176 B; the server's BytesReceived says 59 855 547), plus the
// measurement messages each way (3 275 B sent during the download,
// 65 222 B received during the upload): ~624 MB for a test at 436/48
// Mbit/s.
func TestTransferredFromFixture(t *testing.T) {
	_, ms, _ := fixture(t)
	results := map[spec.TestKind]*mlab.LatestMeasurements{}
	for i := range ms {
		track(results, &ms[i])
	}
	sent, received := transferred(results)
	if sent != 61_874_176+3_275 || received != 562_089_204+65_222 {
		t.Fatalf("transferred = sent %d, received %d", sent, received)
	}
}

// TestTransferredEdgeCases: the bulk of each direction is the client's
// own count, the server's only when the client measured nothing; what the
// server says came back is bounded; negative counters count nothing.
func TestTransferredEdgeCases(t *testing.T) {
	app := func(test spec.TestKind, n int64) spec.Measurement {
		return spec.Measurement{Test: test, Origin: spec.OriginClient, AppInfo: &spec.AppInfo{NumBytes: n, ElapsedTime: 1}}
	}
	tcp := func(test spec.TestKind, acked, recv int64) spec.Measurement {
		ti := &spec.TCPInfo{ElapsedTime: 1}
		ti.BytesAcked, ti.BytesReceived = acked, recv
		return spec.Measurement{Test: test, Origin: spec.OriginServer, TCPInfo: ti}
	}
	dl, ul := spec.TestDownload, spec.TestUpload
	for _, tc := range []struct {
		name           string
		stream         []spec.Measurement
		sent, received int64
	}{
		{name: "nothing"},
		{name: "the client's count wins", stream: []spec.Measurement{app(dl, 100), tcp(dl, 150, 7)}, sent: 7, received: 100},
		{name: "a hostile server's inflated count is ignored", stream: []spec.Measurement{app(dl, 200), tcp(dl, 1<<50, 7), app(ul, 300), tcp(ul, 9, 1<<50)}, sent: 307, received: 209},
		{name: "download without client measurements", stream: []spec.Measurement{tcp(dl, 150, 7)}, sent: 7, received: 150},
		{name: "upload without client measurements", stream: []spec.Measurement{tcp(ul, 9, 1200)}, sent: 1200, received: 9},
		{name: "both", stream: []spec.Measurement{app(dl, 5000), tcp(dl, 4000, 10), app(ul, 800), tcp(ul, 20, 700)}, sent: 810, received: 5020},
		{name: "measurement messages bounded", stream: []spec.Measurement{app(dl, 1), tcp(dl, 1, 1<<40), app(ul, 1), tcp(ul, 1<<40, 1)}, sent: 1 + maxRecord, received: 1 + maxRecord},
		{name: "negative counters", stream: []spec.Measurement{app(dl, -5), tcp(dl, -5, -5), tcp(ul, -5, -5)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			results := map[spec.TestKind]*mlab.LatestMeasurements{}
			for i := range tc.stream {
				track(results, &tc.stream[i])
			}
			sent, received := transferred(results)
			if sent != tc.sent || received != tc.received {
				t.Errorf("transferred = %d, %d; want %d, %d", sent, received, tc.sent, tc.received)
			}
		})
	}
}
