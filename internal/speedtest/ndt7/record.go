package ndt7

import (
	"bytes"
	"encoding/json"

	mlab "github.com/m-lab/ndt7-client-go"
	"github.com/m-lab/ndt7-client-go/spec"
)

// recorder writes the NDJSON file the pods service parses: one
// {"Key":"measurement","Value":...} line per measurement as it arrives, in
// exactly the form M-Lab's CLI emits with -format=json, then the summary
// line. Lines go straight into one buffer; nothing is kept decoded.
type recorder struct {
	buf   bytes.Buffer
	enc   *json.Encoder
	lines int
}

// batchEvent is the CLI's JSON event (internal/emitter.batchEvent).
type batchEvent struct {
	Key   string
	Value any
}

func newRecorder() *recorder {
	r := &recorder{}
	// A full test yields ~160 lines of ~1.5 KiB; start big enough to avoid
	// most regrowth without holding more than a test needs.
	r.buf.Grow(64 << 10)
	r.enc = json.NewEncoder(&r.buf)
	return r
}

func (r *recorder) measurement(m *spec.Measurement) error {
	r.lines++
	return r.enc.Encode(batchEvent{Key: "measurement", Value: m})
}

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

func (r *recorder) summary(s summaryLine) error {
	return r.enc.Encode(s)
}

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
