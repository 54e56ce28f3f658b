package agent

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/radarpod/radarpod/internal/backoff"
	"github.com/radarpod/radarpod/internal/outbox"
	"github.com/radarpod/radarpod/internal/radar"
)

// Upload pacing. A 429 or 503 with Retry-After is waited out in full
// (backoff.Backoff.After), never less than the pace below.
//
// Network errors and 5xx are usually short outages: retry
// fast, backing off to one attempt a minute — the rate of the status poll,
// and the longest a pod keeps its backlog once the service has recovered.
// A sign that the service is back (the live channel connecting, a status
// call answered) cuts this pace short: the backlog goes at once.
//
// Rejected credentials (403, or 404 for a wrong client_secret) and rejected
// requests will not fix themselves soon, but an operator may fix them on the
// service side: keep the results and keep trying, slowly. A wake-up does
// not cut that pace short: the service answering a heartbeat says nothing
// about whether it now accepts this upload, and while the channel is down
// the heartbeat answers every RADAR_PING_INTERVAL — which would otherwise
// become the retry rate of a refused upload.
var (
	retryPacing = backoff.Backoff{Initial: time.Second, Max: time.Minute, Jitter: 0.2}
	authPacing  = backoff.Backoff{Initial: time.Minute, Max: 30 * time.Minute, Jitter: 0.2}
)

// uploadsInFlight bounds concurrent uploads. One at a time, a backlog
// drains at one round trip plus one durable removal per result: 10,000
// results buffered during an outage took 15 s on loopback and would take
// many minutes over a 100 ms RTT. A few in flight hide both latencies
// (measured: docs/benchmarks/outbox.md); more would only crowd a service
// that is just coming back. Over HTTP/2 they share one connection; over
// HTTP/1.1 they use up to this many.
const uploadsInFlight = 4

// batchOutbox is what pipelined delivery needs beyond Outbox: walking the
// store past records already in flight, and removing delivered records
// with one directory fsync per batch. *outbox.Store implements it; an
// Outbox without it is delivered one record at a time.
type batchOutbox interface {
	Next(after string) (outbox.Record, bool, error)
	RemoveBatch(ids []string) error
}

// uploaded is the outcome of one upload.
type uploaded struct {
	rec outbox.Record
	err error
}

// uploadLoop delivers the outbox oldest first: uploads start in the order
// the results were stored, at most uploadsInFlight at a time. Results
// therefore reach the service in roughly that order — one that takes
// longer than its neighbours is overtaken, rather than holding them back.
// Only the service's 201 removes a record; everything else leaves it for
// the next round. After any failure no new upload starts: those in flight
// finish, the backoff passes, and the next round starts again from the
// oldest record left, so a failed upload is retried before anything newer
// is sent.
//
// Delivered records are removed by a goroutine of their own, in batches
// (one directory fsync per batch), so uploads keep flowing while the disk
// syncs. A round starts again from the oldest record only once every
// removal before it has finished, so nothing delivered is sent twice.
func (a *Agent) uploadLoop(ctx context.Context, id radar.Identity) {
	d := &delivery{a: a, id: id, retry: retryPacing, auth: authPacing,
		done: make(chan uploaded, uploadsInFlight)}
	d.next = func(after string) (outbox.Record, bool, error) {
		if after != "" {
			return outbox.Record{}, false, nil // one in flight at a time
		}
		return a.outbox.Oldest()
	}
	remove := func(ids []string) error {
		var errs []error
		for _, id := range ids {
			errs = append(errs, a.outbox.Remove(id))
		}
		return errors.Join(errs...)
	}
	d.window = 1
	if b, ok := a.outbox.(batchOutbox); ok {
		d.next, remove, d.window = b.Next, b.RemoveBatch, uploadsInFlight
	}
	d.rm = &remover{a: a, remove: remove, in: make(chan outbox.Record, removeQueue), done: make(chan struct{})}
	go func() {
		defer a.sentry.RepanicAfterReport()
		d.rm.loop()
	}()
	d.run(ctx)
	close(d.rm.in)
	<-d.rm.done
}

// removeQueue bounds delivered records waiting for removal; a full queue
// holds back new uploads until the disk catches up.
const removeQueue = 256

// delivery is the state of one uploadLoop.
type delivery struct {
	a      *Agent
	id     radar.Identity
	next   func(after string) (outbox.Record, bool, error)
	window int
	rm     *remover

	retry, auth backoff.Backoff
	done        chan uploaded
	inFlight    int
	// cursor is the newest record started in this round; the next round
	// starts again from the oldest record left.
	cursor string
	// failed is the first failure of the round (nil while all succeed);
	// once set, nothing new starts.
	failed    error
	failedRec outbox.Record
	// removeFailed says failed is the outbox refusing removals.
	removeFailed bool
}

func (d *delivery) run(ctx context.Context) {
	for ctx.Err() == nil {
		if d.failed == nil && !d.fill(ctx) {
			d.drain()
			d.a.waitForWork(ctx, time.Minute)
			continue
		}
		switch {
		case d.inFlight > 0:
			d.collect(ctx)
		case d.failed != nil:
			d.flush()
			d.backOff(ctx)
		case d.cursor != "":
			// Everything after the cursor is delivered: look again from the
			// oldest before sleeping.
			d.flush()
			d.cursor = ""
		default:
			d.a.waitForWork(ctx, time.Minute)
		}
	}
	d.drain()
}

// fill starts uploads, oldest first, until the window is full or nothing
// is left. It returns false (after reporting) when the outbox is unreadable.
func (d *delivery) fill(ctx context.Context) bool {
	for d.inFlight < d.window {
		rec, ok, err := d.next(d.cursor)
		if err != nil {
			d.a.report("outbox_read", "cannot read the outbox", err)
			return false
		}
		if !ok {
			return true
		}
		d.cursor = rec.ID
		d.inFlight++
		go func() {
			defer d.a.sentry.RepanicAfterReport()
			d.done <- uploaded{rec: rec, err: d.a.send(ctx, d.id, rec)}
		}()
	}
	return true
}

// collect waits for one upload to finish, takes whatever else has finished
// meanwhile, and hands the delivered records to the remover.
func (d *delivery) collect(ctx context.Context) {
	take := func(u uploaded) {
		d.inFlight--
		if u.err == nil {
			d.delivered(u.rec)
			return
		}
		if ctx.Err() != nil {
			return
		}
		class := radar.Classify(u.err)
		d.a.metrics.Uploads.WithLabelValues(string(class)).Inc()
		if d.failed == nil {
			d.failed, d.failedRec = u.err, u.rec
		}
	}
	take(<-d.done)
	for more := true; more; {
		select {
		case u := <-d.done:
			take(u)
		default:
			more = false
		}
	}
	if rec, err := d.rm.failure(); err != nil && d.failed == nil {
		d.failed, d.failedRec, d.removeFailed = err, rec, true
	}
}

func (d *delivery) delivered(rec outbox.Record) {
	d.a.metrics.Uploads.WithLabelValues("ok").Inc()
	d.retry.Reset()
	d.auth.Reset()
	d.rm.pending.Add(1)
	d.rm.in <- rec
}

// drain waits for the uploads in flight (cancelled or not) and for the
// removal of what the service stored, so a 201 that arrived during
// shutdown is not sent again after the restart.
func (d *delivery) drain() {
	for ; d.inFlight > 0; d.inFlight-- {
		if u := <-d.done; u.err == nil {
			d.delivered(u.rec)
		}
	}
	d.flush()
	d.cursor = ""
}

// flush waits until every delivered record has been removed (or failed to be).
func (d *delivery) flush() {
	d.rm.pending.Wait()
	if rec, err := d.rm.failure(); err != nil && d.failed == nil {
		d.failed, d.failedRec, d.removeFailed = err, rec, true
	}
}

// backOff waits out the round's failure, then lets the next round start
// from the oldest record left.
func (d *delivery) backOff(ctx context.Context) {
	a, err, rec := d.a, d.failed, d.failedRec
	removeFailed := d.removeFailed
	d.failed, d.removeFailed, d.cursor = nil, false, ""
	delay, wakeable := UploadDelay(&d.retry, &d.auth, err, removeFailed)
	// wake is what may cut the pause short: a sign the service is back,
	// which helps only when the service being away was the problem.
	var wake <-chan struct{}
	if wakeable {
		wake = a.kickUp
	}
	switch class := radar.Classify(err); {
	case removeFailed:
		a.log.Warn("outbox removals failing; uploads paused", "err", err,
			"pending", a.outbox.Stats().Records, "retry_in", delay.Round(time.Millisecond).String())
	case class == radar.ClassAuth:
		a.report("upload_auth", "upload refused: the service rejects this pod's credentials; results are kept", err,
			"pending", a.outbox.Stats().Records, "retry_in", delay.Round(time.Second).String())
	case class == radar.ClassRejected:
		a.report("upload_rejected", "upload rejected by the service; results are kept", err,
			"record", rec.ID, "retry_in", delay.Round(time.Second).String())
	case class == radar.ClassThrottled:
		// Not a fault: never reported.
		a.log.Warn("upload throttled by the service; will retry", "err", err, "record", rec.ID,
			"pending", a.outbox.Stats().Records, "retry_in", delay.Round(time.Millisecond).String())
	default:
		a.log.Warn("upload failed; will retry", "err", err, "record", rec.ID,
			"pending", a.outbox.Stats().Records, "retry_in", delay.Round(time.Millisecond).String())
	}
	a.pauseUploads(ctx, delay, wake)
}

// UploadDelay is the uploader's pause after a round that failed with err
// (removeFailed: the outbox refused to remove delivered records), and
// whether a sign that the service is back may cut it short (wakeable).
// retry paces outages, auth refusals; both advance here and are reset by
// a delivery. It is the decision of uploadLoop's backOff, exported so
// that the fleet simulation (internal/bench/fleet) paces its pods' uploads
// with this very code.
func UploadDelay(retry, auth *backoff.Backoff, err error, removeFailed bool) (delay time.Duration, wakeable bool) {
	switch class := radar.Classify(err); {
	case removeFailed:
		// Every upload now would be a duplicate later: pause as for an
		// outage. The disk, not the service, is what has to recover.
		return retry.Next(), false
	case class == radar.ClassAuth, class == radar.ClassRejected:
		return auth.Next(), false
	case class == radar.ClassThrottled:
		// The service (or a proxy before it) paces its fleet: wait what it
		// asked for, and never less than the outage pace, which keeps
		// growing — a 429 is no reason to come back sooner. No wake-up
		// ends the wait (the service answering a heartbeat does not lift
		// its limit).
		return retry.After(radar.RetryAfterOf(err)), false
	default:
		// A 503 may say when the service is back (Retry-After): then only
		// that time ends the wait, not a wake-up.
		hint := radar.RetryAfterOf(err)
		return retry.After(hint), hint == 0
	}
}

// UploadPacing returns the uploader's production pacing: retry for
// outages and throttling, auth for refused credentials and requests.
func UploadPacing() (retry, auth backoff.Backoff) { return retryPacing, authPacing }

// UploadsInFlight is how many uploads a pod has in flight at most.
const UploadsInFlight = uploadsInFlight

// remover removes delivered records in batches: whatever has arrived while
// the previous batch synced goes into the next (group commit).
type remover struct {
	a       *Agent
	remove  func(ids []string) error
	in      chan outbox.Record
	done    chan struct{}
	pending sync.WaitGroup

	mu     sync.Mutex
	err    error
	errRec outbox.Record
}

// maxRemoveBatch bounds one batch (and the records a power cut during its
// fsync can bring back as duplicates).
const maxRemoveBatch = 128

func (r *remover) loop() {
	defer close(r.done)
	for rec := range r.in {
		batch := []outbox.Record{rec}
	more:
		for len(batch) < maxRemoveBatch {
			select {
			case rec, ok := <-r.in:
				if !ok {
					break more
				}
				batch = append(batch, rec)
			default:
				break more
			}
		}
		r.apply(batch)
		r.pending.Add(-len(batch))
	}
}

func (r *remover) apply(batch []outbox.Record) {
	a := r.a
	ids := make([]string, len(batch))
	for i, rec := range batch {
		ids[i] = rec.ID
	}
	if err := r.remove(ids); err != nil {
		// Stored by the service but still here: they will be sent again. A
		// duplicate is better than a loss; say so, and let the uploader
		// pause rather than spin on a disk that refuses removals.
		a.report("outbox_remove", "uploaded results could not be removed from the outbox; they may be sent twice", err,
			"records", len(ids), "oldest", ids[0])
		r.mu.Lock()
		if r.err == nil {
			r.err, r.errRec = err, batch[0]
		}
		r.mu.Unlock()
	}
	for _, rec := range batch {
		a.log.Info("result uploaded", "record", rec.ID, "runner", rec.Runner, "interface", rec.Interface)
	}
	a.updateOutboxMetrics()
}

// failure returns and clears the first removal error since the last call.
func (r *remover) failure() (outbox.Record, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec, err := r.errRec, r.err
	r.err = nil
	return rec, err
}

// defaultUploadTimeout bounds one upload: a result is at most a few
// hundred KiB, which even a slow uplink sends well within it, and a hung
// upload must not hold a slot of the window forever.
const defaultUploadTimeout = 2 * time.Minute

// send uploads one record; it does not touch the outbox.
//
// An undated record (taken before the clock was trusted) is sent at once,
// like any other: the upload carries no time of the pod's — the form has
// no timestamp field and the raw result goes unmodified — and the service
// dates a measurement with its own arrival time. Holding uploads until
// the clock syncs would make that time later, not truer, and on a captive
// network that never syncs, hold them for good. The pod's own record is
// dated separately (clockLoop).
func (a *Agent) send(ctx context.Context, id radar.Identity, rec outbox.Record) error {
	uctx, cancel := context.WithTimeout(ctx, a.uploadTimeout)
	defer cancel()
	return a.service.UploadMeasurement(uctx, id, radar.Measurement{
		Style: rec.Style, Interface: rec.Interface, Wireless: rec.Wireless,
		ConnectionInfo: rec.ConnectionInfo, Result: rec.Result,
	})
}

// waitForWork sleeps until a result is stored, the service comes back, or max passes.
func (a *Agent) waitForWork(ctx context.Context, max time.Duration) {
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-a.outbox.Notify():
	case <-a.kickUp:
	case <-t.C:
	}
}

// pauseUploads waits out a backoff: d passes, ctx is done, or — when wake
// is not nil — a wake-up arrives (see wakeUploader). Tests replace it
// through Agent.pause to watch the uploader's pacing decisions.
func (a *Agent) pauseUploads(ctx context.Context, d time.Duration, wake <-chan struct{}) {
	if a.pause != nil {
		a.pause(ctx, d, wake)
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-wake: // a nil wake never fires
	case <-t.C:
	}
}

func (a *Agent) evicted(e outbox.Eviction) {
	if a.evictionsCounted.Load() {
		a.metrics.OutboxEvictions.Inc()
	}
	// Per record at Warn: the outbox itself logs each batch of evictions at
	// Error (one Sentry event per batch and reason), so reporting here too
	// would make two events of one eviction.
	a.log.Warn("outbox evicted a result",
		"record", e.ID, "runner", e.Runner, "bytes", e.Bytes, "reason", e.Reason, "created_at", outbox.CreatedAttr(e.CreatedAt))
}

// unreadable counts a failed read of a kept outbox record. The outbox
// itself logs it (at Error the first time, so it reaches Sentry once per
// record and process) and tries again on its next walk.
func (a *Agent) unreadable(string, error) {
	a.metrics.OutboxUnreadable.Inc()
}

func (a *Agent) updateOutboxMetrics() {
	if a.outbox == nil {
		return
	}
	st := a.outbox.Stats()
	a.metrics.OutboxDepth.Set(float64(st.Records))
	a.metrics.OutboxBytes.Set(float64(st.Bytes))
}
