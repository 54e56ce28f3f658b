package speedtest

import (
	"context"
	"time"
)

// Phase is the step of a test a Progress event describes. Its string is
// part of the `radar-agent test --format json` output, so the values are
// stable.
type Phase string

// The phases. A runner reports what it can see: ndt7 reports locate (when
// it asks M-Lab for a server), then download and upload with a live rate;
// the Ookla CLI gives no progress in its JSON output, so that runner only
// reports PhaseRunning once it has started the CLI.
const (
	PhaseQueued   Phase = "queued"   // waiting for the run in progress to finish
	PhaseLocate   Phase = "locate"   // finding a server
	PhaseDownload Phase = "download" // measuring the download
	PhaseUpload   Phase = "upload"   // measuring the upload
	PhaseRunning  Phase = "running"  // measuring, no detail available
)

// ProgressInterval is how often a runner reports a live rate: the ndt7
// protocol's own measurement interval, often enough for a live display and
// rare enough to cost nothing.
const ProgressInterval = 250 * time.Millisecond

// Progress is one live event of a running test. The JSON names are the
// `progress` event of `radar-agent test --format json` and of the local
// test API (README, Commands): keep them stable.
type Progress struct {
	// Type is always "progress" (set by ReportProgress).
	Type      string `json:"type"`
	Runner    string `json:"runner"`
	Interface string `json:"interface"`
	Phase     Phase  `json:"phase"`
	// Mbps is the rate of the phase so far, in Mbit/s; absent when the
	// runner has no live figure.
	Mbps float64 `json:"mbps,omitempty"`
	// ElapsedS is the time since the phase started, in seconds.
	ElapsedS float64 `json:"elapsed_s"`
	// Bytes is what the phase has moved so far; absent when unknown.
	Bytes int64 `json:"bytes,omitempty"`
	// Server is the server measured against, once known.
	Server string `json:"server,omitempty"`
}

// ProgressType is Progress.Type.
const ProgressType = "progress"

type progressKey struct{}

// WithProgress returns a context whose runs report their progress to f.
// f is called on the runner's goroutine and must not block: a slow
// observer would slow the measurement it observes.
func WithProgress(ctx context.Context, f func(Progress)) context.Context {
	return context.WithValue(ctx, progressKey{}, f)
}

// ReportProgress hands p to the observer of ctx, if any.
func ReportProgress(ctx context.Context, p Progress) {
	if f, ok := ctx.Value(progressKey{}).(func(Progress)); ok && f != nil {
		p.Type = ProgressType
		f(p)
	}
}

// HasProgress reports whether ctx has an observer, so a runner can skip
// the work of computing events nobody reads.
func HasProgress(ctx context.Context) bool {
	f, ok := ctx.Value(progressKey{}).(func(Progress))
	return ok && f != nil
}
