package ndt7

import (
	"context"
	"time"

	"github.com/m-lab/ndt7-client-go/spec"

	"github.com/radarpod/radarpod/internal/speedtest"
)

// progress turns the measurements one subtest already receives into live
// Progress events, at most one per speedtest.ProgressInterval (with some
// slack: measurements arrive about that often, never exactly). The rate is
// the one the receiver saw, as M-Lab's CLI shows it live: the client's
// AppInfo for the download, the server's TCPInfo for the upload (the
// client's own count includes what is still queued in its socket, and
// mixing the two would make the byte count jump back).
type progress struct {
	ctx  context.Context
	base speedtest.Progress
	last time.Time
}

// minReportGap throttles events to about speedtest.ProgressInterval.
const minReportGap = speedtest.ProgressInterval * 4 / 5

func newProgress(ctx context.Context, target speedtest.Target, test spec.TestKind, server string) *progress {
	if !speedtest.HasProgress(ctx) {
		return nil
	}
	phase := speedtest.PhaseDownload
	if test == spec.TestUpload {
		phase = speedtest.PhaseUpload
	}
	p := &progress{ctx: ctx, base: speedtest.Progress{Runner: Name, Interface: target.Interface, Phase: phase, Server: server}}
	speedtest.ReportProgress(ctx, p.base)
	return p
}

func (p *progress) measurement(m *spec.Measurement) {
	if p == nil {
		return
	}
	var bytes, elapsedUS int64
	switch {
	case p.base.Phase == speedtest.PhaseDownload && m.Origin == spec.OriginClient && m.AppInfo != nil:
		bytes, elapsedUS = m.AppInfo.NumBytes, m.AppInfo.ElapsedTime
	case p.base.Phase == speedtest.PhaseUpload && m.Origin == spec.OriginServer && m.TCPInfo != nil:
		bytes, elapsedUS = m.TCPInfo.BytesReceived, m.TCPInfo.ElapsedTime
	default:
		return
	}
	now := time.Now()
	if elapsedUS <= 0 || now.Sub(p.last) < minReportGap {
		return
	}
	p.last = now
	ev := p.base
	// bits per microsecond = Mbit/s
	ev.Mbps = 8 * float64(bytes) / float64(elapsedUS)
	ev.ElapsedS = float64(elapsedUS) / 1e6
	ev.Bytes = bytes
	speedtest.ReportProgress(p.ctx, ev)
}
