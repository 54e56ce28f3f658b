package ndt7

import (
	"bytes"
	"encoding/json"
	"fmt"

	mlab "github.com/m-lab/ndt7-client-go"
	"github.com/m-lab/ndt7-client-go/spec"
)

// maxRecord bounds the result file of one test. A production result
// (testdata/ndt7-result.ndjson, docs/benchmarks.md) is about 125 KB: some
// 160 lines, however fast the link, because measurements come at intervals
// of time, not of bytes. Whatever a server sends, it cannot make the pod
// hold more than this: a hostile server, or anyone on the path of a ws://
// test (auto mode picks ws on a Pi 4), could otherwise stream measurement
// messages until the Pi runs out of memory. 4 MiB is 32 times a real
// result and keeps a results.jsonl line (maxResultLine, 8 MiB) readable.
const maxRecord = 4 << 20

// errRecordFull: the server sent more than maxRecord of measurements.
var errRecordFull = fmt.Errorf("the server sent more than %d MiB of measurements", maxRecord>>20)

// recorder writes the NDJSON file the pods service parses: one
// {"Key":"measurement","Value":...} line per measurement as it arrives, in
// exactly the form M-Lab's CLI emits with -format=json, then the summary
// line. Lines go straight into one buffer; nothing is kept decoded.
type recorder struct {
	buf   cappedBuffer
	enc   *json.Encoder
	lines int
}

// cappedBuffer refuses any write that would take it past max, whole: a
// line is either recorded complete or not at all.
type cappedBuffer struct {
	bytes.Buffer
	max  int
	full bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if b.full || b.Len()+len(p) > b.max {
		b.full = true
		return 0, errRecordFull
	}
	return b.Buffer.Write(p)
}

// batchEvent is the CLI's JSON event (internal/emitter.batchEvent).
type batchEvent struct {
	Key   string
	Value any
}

func newRecorder() *recorder {
	return newRecorderMax(maxRecord)
}

func newRecorderMax(max int) *recorder {
	r := &recorder{buf: cappedBuffer{max: max}}
	// A full test yields ~160 lines of ~1.5 KiB; start big enough to avoid
	// most regrowth without holding more than a test needs.
	r.buf.Grow(min(64<<10, max))
	r.enc = json.NewEncoder(&r.buf)
	return r
}

// measurement records one line; errRecordFull once the file would exceed
// its bound (the line is not recorded).
func (r *recorder) measurement(m *spec.Measurement) error {
	if err := r.enc.Encode(batchEvent{Key: "measurement", Value: m}); err != nil {
		return err
	}
	r.lines++
	return nil
}

// full reports whether a line was refused for want of room.
func (r *recorder) full() bool { return r.buf.full }

// value is {"Value": x}: the summary line's shape as the service reads it.
type value struct {
	Value float64
}

// summaryLine is the last line of the result file.
type summaryLine struct {
	Download value
	Upload   value
	MinRTT   value
}

// summary appends the summary line. It has room of its own beyond the
// measurements' bound, so a file that fits is always completed.
func (r *recorder) summary(s summaryLine) error {
	if !r.buf.full {
		r.buf.max += summaryRoom
	}
	return r.enc.Encode(s)
}

// summaryRoom is more than a summary line takes: three numbers.
const summaryRoom = 512

// summarize computes the summary the way ndt7-client v0.10.1 does
// (internal/runner.makeSummary), from the same per-test "latest"
// bookkeeping the library keeps (Client.Results): download throughput at the
// receiver (the client's last AppInfo), upload throughput at the receiver
// (the server's last TCPInfo), latency as the server's TCPInfo.MinRTT. The
// CLI reports a latency per direction; MinRTT is the download one, as in the
// pods already in the field, falling back to the upload one only when the
// download produced no server measurement.
func summarize(results map[spec.TestKind]*mlab.LatestMeasurements) (s summaryLine, haveDown, haveUp bool) {
	var downRTT, upRTT float64
	var haveDownRTT, haveUpRTT bool
	if dl, ok := results[spec.TestDownload]; ok {
		if dl.Client.AppInfo != nil && dl.Client.AppInfo.ElapsedTime > 0 {
			appInfo := dl.Client.AppInfo
			elapsed := float64(appInfo.ElapsedTime) / 1e06
			s.Download.Value = (8.0 * float64(appInfo.NumBytes)) / elapsed / (1000.0 * 1000.0)
			haveDown = true
		}
		if dl.Server.TCPInfo != nil {
			downRTT = float64(dl.Server.TCPInfo.MinRTT) / 1000
			haveDownRTT = true
		}
	}
	if ul, ok := results[spec.TestUpload]; ok {
		if ul.Server.TCPInfo != nil {
			tcpInfo := ul.Server.TCPInfo
			if tcpInfo.ElapsedTime > 0 {
				elapsed := float64(tcpInfo.ElapsedTime) / 1e06
				s.Upload.Value = (8.0 * float64(tcpInfo.BytesReceived)) / elapsed / (1000.0 * 1000.0)
				haveUp = true
			}
			upRTT = float64(tcpInfo.MinRTT) / 1000
			haveUpRTT = true
		}
	}
	switch {
	case haveDownRTT:
		s.MinRTT.Value = downRTT
	case haveUpRTT:
		s.MinRTT.Value = upRTT
	}
	return s, haveDown, haveUp
}

// transferred is what a test moved, read from the same latest
// measurements the summary uses. The bulk of each direction is the
// client's own count (its last AppInfo: bytes it received in the download,
// wrote in the upload), not the server's: a hostile server (or anyone on
// the path of a ws:// test) could report any TCPInfo and spend the pod's
// data budget on paper, stopping its scheduled tests. Only when the client
// measured nothing does the server's count stand in (TCPInfo.BytesAcked in
// the download, BytesReceived in the upload). The measurement messages
// going the other way (a few tens of KB, from the server's TCPInfo) are
// added, bounded by maxRecord: the most a test may receive of them. The
// client samples every 250 ms, so a few percent of the last moment's
// traffic may be missing; a subtest that never measured counts nothing.
func transferred(results map[spec.TestKind]*mlab.LatestMeasurements) (sent, received int64) {
	bulk := func(app *spec.AppInfo, server int64) int64 {
		if app != nil {
			return max(app.NumBytes, 0)
		}
		return max(server, 0)
	}
	reverse := func(n int64) int64 { return min(max(n, 0), maxRecord) }
	if dl, ok := results[spec.TestDownload]; ok {
		var acked, back int64
		if ti := dl.Server.TCPInfo; ti != nil {
			acked, back = ti.BytesAcked, ti.BytesReceived
		}
		received += bulk(dl.Client.AppInfo, acked)
		sent += reverse(back)
	}
	if ul, ok := results[spec.TestUpload]; ok {
		var got, back int64
		if ti := ul.Server.TCPInfo; ti != nil {
			got, back = ti.BytesReceived, ti.BytesAcked
		}
		sent += bulk(ul.Client.AppInfo, got)
		received += reverse(back)
	}
	return sent, received
}
