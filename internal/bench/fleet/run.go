package fleet

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/bench"
	"github.com/radarpod/radarpod/internal/benchreport"
)

// window is the span after a restart over which the attempt rate is averaged.
const rateWindow = 10 * time.Minute

// RestartResult is what a service restart did.
type RestartResult struct {
	Peak       int     // cable attempts in the busiest second
	Mean       float64 // cable attempts per second over the first 10 minutes
	P99        time.Duration
	Reconnects int
	Dropped    int
}

// Restart drops every channel at 0 while the service refuses connections
// for opts.RestartDown (capacity: opts.Capacity when capped, else
// unlimited), and runs until every pod is back (or 2 h pass).
func Restart(opts Options, capped bool) (RestartResult, error) {
	f := NewFleet(opts)
	if capped {
		f.svc.Capacity, f.svc.RetryAfter, f.svc.Throttle429 = opts.Capacity, opts.RetryAfter, opts.Throttle429
	}
	f.svc.Down(0, opts.RestartDown)
	f.DropAll()
	f.RunUntil(2*time.Hour, func() bool { return f.sim.Now() >= rateWindow && f.Connected() == len(f.pods) })
	var r RestartResult
	r.Peak, r.Mean = PeakMean(f.svc.Attempts(Cable), 0, int(rateWindow/time.Second))
	p99, ok := f.ReconnectQuantile(0.99, 0)
	if !ok {
		return r, fmt.Errorf("restart: only %d of %d pods reconnected in 2h", len(f.reconnects), f.dropped)
	}
	r.P99, r.Reconnects, r.Dropped = p99, len(f.reconnects), f.dropped
	return r, nil
}

// OutageResult is what a long outage with a backlog did.
type OutageResult struct {
	PeakUploads  int // upload attempts in the busiest second after the return
	PeakAccepted int // uploads stored in the busiest second
	Drain        time.Duration
	Delivered    int
	Duplicates   int
	Lost         int // still in outboxes when the run ended
	CablePeak    int
	CableMean    float64 // over the 10 minutes after the return
	// CableBefore is the mean over the last 10 minutes of the outage: the
	// fleet's steady retry rate, which a wave set off by the return (or by
	// pods told the same Retry-After) would stand far above.
	CableBefore float64
	// UploadMean is the mean upload attempts per second over the drain.
	UploadMean    float64
	P99           time.Duration
	StatusPeakOut int // status calls in the busiest second
}

// Outage takes the service away for opts.Outage (every channel drops at
// 0), queues opts.Results per pod during it, and runs until every result
// is delivered (or 6 h after the return).
func Outage(opts Options, capped bool) (OutageResult, error) {
	f := NewFleet(opts)
	if capped {
		f.svc.Capacity, f.svc.RetryAfter, f.svc.Throttle429 = opts.Capacity, opts.RetryAfter, opts.Throttle429
	}
	f.svc.Down(0, opts.Outage)
	f.DropAll()
	f.Queue(opts.Results, 0, opts.Outage)
	back := opts.Outage
	want := opts.Pods * opts.Results
	f.RunUntil(back+6*time.Hour, func() bool {
		d, _ := f.svc.Deliveries()
		return f.sim.Now() >= back+rateWindow && d >= want && f.Connected() == len(f.pods)
	})
	var r OutageResult
	from := int(back / time.Second)
	up := f.svc.Attempts(Upload)
	r.PeakUploads, _ = PeakMean(up, from, len(up))
	acc := f.svc.Accepted(Upload)
	r.PeakAccepted, _ = PeakMean(acc, from, len(acc))
	r.Drain = time.Duration(LastNonZero(acc)+1)*time.Second - back
	r.Delivered, r.Duplicates = f.svc.Deliveries()
	r.Lost = f.Pending()
	r.CablePeak, r.CableMean = PeakMean(f.svc.Attempts(Cable), from, from+int(rateWindow/time.Second))
	_, r.CableBefore = PeakMean(f.svc.Attempts(Cable), from-int(rateWindow/time.Second), from)
	_, r.UploadMean = PeakMean(up, from, from+max(1, int(r.Drain/time.Second)))
	st := f.svc.Attempts(Status)
	r.StatusPeakOut, _ = PeakMean(st, 0, len(st))
	p99, ok := f.ReconnectQuantile(0.99, back)
	if !ok {
		return r, fmt.Errorf("outage: only %d of %d pods reconnected", len(f.reconnects), f.dropped)
	}
	r.P99 = p99
	return r, nil
}

// Run runs every scenario and returns the figures.
func Run(ctx context.Context, opts Options) ([]benchreport.Figure, error) {
	opts.Defaults()
	capSec := opts.ReconnectMax.Seconds()
	pods := float64(opts.Pods)
	// The per-pod bound on uploads: UploadsInFlight at a time, each
	// taking at least the service time.
	perPod := float64(agent.UploadsInFlight) / opts.Latency.Seconds()
	model := fmt.Sprintf("%d pods, ping interval %s, service time %s", opts.Pods, opts.PingInterval, opts.Latency)
	var figs []benchreport.Figure
	add := func(name string, v float64, unit, op string, target float64, notes string) {
		figs = append(figs, benchreport.Figure{Name: name, Value: bench.Round(v, 3), Unit: unit, Op: op, Target: target,
			Command: opts.Command, Notes: notes})
	}
	start := time.Now()

	rs, err := Restart(opts, false)
	if err != nil {
		return nil, err
	}
	logf(opts.Log, "restart: peak %d/s mean %.1f/s p99 %s", rs.Peak, rs.Mean, rs.P99)
	restartNotes := fmt.Sprintf("%s; the service refuses connections for %s and every channel drops at once; unlimited capacity; "+
		"channel backoff 0.5s doubling to a cap of %s (RADAR_RECONNECT_MAX), full jitter, the whole window after a drop", model, opts.RestartDown, opts.ReconnectMax)
	add("fleet/restart/peak_to_mean", float64(rs.Peak)/rs.Mean, "x", "<=", 3,
		fmt.Sprintf("peak %d cable attempts/s over a mean of %.1f/s in the first 10 min; %s", rs.Peak, rs.Mean, restartNotes))
	add("fleet/restart/p99_reconnect_s", rs.P99.Seconds(), "s", "<=", 2*capSec,
		fmt.Sprintf("99%% of %d pods back on the channel; backoff cap %s, target 2x the cap; %s", rs.Dropped, opts.ReconnectMax, restartNotes))
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	ob, err := Outage(opts, false)
	if err != nil {
		return nil, err
	}
	logf(opts.Log, "outage: peak uploads %d/s drain %s delivered %d dup %d", ob.PeakUploads, ob.Drain, ob.Delivered, ob.Duplicates)
	outNotes := fmt.Sprintf("%s; service down %s, %d results queued per pod at random times during it, unlimited capacity after; "+
		"uploads: agent.UploadsInFlight=%d, agent.UploadDelay pacing, woken by the status heartbeat or the channel", model, opts.Outage, opts.Results, agent.UploadsInFlight)
	add("fleet/outage_1h/peak_uploads_per_s", float64(ob.PeakUploads), "1/s", "<=", pods*perPod,
		fmt.Sprintf("upload attempts in the busiest second after the return; target pods x per-pod pacing (%d in flight / %s service time = %.0f/s); %s",
			agent.UploadsInFlight, opts.Latency, perPod, outNotes))
	add("fleet/outage_1h/drain_s", ob.Drain.Seconds(), "s", "", 0,
		fmt.Sprintf("from the service's return to the last result stored; %s", outNotes))
	add("fleet/outage_1h/delivered", float64(ob.Delivered), "results", ">=", pods*float64(opts.Results),
		fmt.Sprintf("distinct results the service stored (counted per result id); %d still queued at the end; %s", ob.Lost, outNotes))
	add("fleet/outage_1h/duplicates", float64(ob.Duplicates), "results", "<=", 0,
		fmt.Sprintf("results stored more than once; %s", outNotes))
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	cs, err := Outage(opts, true)
	if err != nil {
		return nil, err
	}
	answer := "503"
	if opts.Throttle429 {
		answer = "429"
	}
	logf(opts.Log, "outage, %s above capacity: peak uploads %d/s accepted %d/s drain %s cable peak %d/s, mean %.1f/s before the return",
		answer, cs.PeakUploads, cs.PeakAccepted, cs.Drain, cs.CablePeak, cs.CableBefore)
	capNotes := fmt.Sprintf("%s; service down %s, %d results queued per pod; then %d requests/s of any kind, %s + Retry-After %s beyond",
		model, opts.Outage, opts.Results, opts.Capacity, answer, opts.RetryAfter)
	add("fleet/outage_1h_503/peak_accepted_uploads_per_s", float64(cs.PeakAccepted), "1/s", "<=", float64(opts.Capacity),
		fmt.Sprintf("uploads stored in the busiest second after the return; upload attempts peaked at %d/s, %.0f/s on average over the drain; %s",
			cs.PeakUploads, cs.UploadMean, capNotes))
	add("fleet/outage_1h_503/cable_peak_to_mean", float64(cs.CablePeak)/cs.CableBefore, "x", "<=", 3,
		fmt.Sprintf("no synchronized waves: cable attempts peaked at %d/s in the 10 min after the return, over the fleet's mean retry rate of %.1f/s in the last 10 min of the outage (%.1f/s in the 10 min after it); %s",
			cs.CablePeak, cs.CableBefore, cs.CableMean, capNotes))
	add("fleet/outage_1h_503/p99_reconnect_s", cs.P99.Seconds(), "s", "<=", 2*capSec,
		fmt.Sprintf("99%% of pods back on the channel after the return; backoff cap %s, target 2x the cap; %s", opts.ReconnectMax, capNotes))
	add("fleet/outage_1h_503/drain_s", cs.Drain.Seconds(), "s", "", 0, "from the return to the last result stored; "+capNotes)
	add("fleet/outage_1h_503/delivered", float64(cs.Delivered), "results", ">=", pods*float64(opts.Results),
		fmt.Sprintf("distinct results stored (counted per result id); %d still queued at the end; %s", cs.Lost, capNotes))
	add("fleet/outage_1h_503/duplicates", float64(cs.Duplicates), "results", "<=", 0, "results stored more than once; "+capNotes)
	logf(opts.Log, "done in %s of real time", time.Since(start).Round(time.Millisecond))
	return figs, nil
}

func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "fleet: "+format+"\n", args...)
}
