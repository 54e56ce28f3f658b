package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/netif"
	"github.com/radarpod/radarpod/internal/speedtest"
	"github.com/radarpod/radarpod/internal/telemetry"
)

// LocalSource labels a test asked for by a person at the pod
// (`radar-agent test`, the status page) in metrics and logs.
const LocalSource = "local"

// LocalTestRequest is a test asked for at the pod.
type LocalTestRequest struct {
	// Runner is "ndt7" or "ookla"; "" runs every runner of RADAR_TESTS.
	Runner string
	// Interface is the interface to test; "" is the default route.
	Interface string
}

// LocalResult is one test (one runner on one target) of the run that
// covered a local request.
type LocalResult struct {
	// Entry is the test as results.jsonl records it, without the raw
	// result; OutboxID is set when it waits for (or went to) upload.
	Entry ResultEntry
	// Server is the server measured against, "" if unknown.
	Server string
	// BytesSent and BytesReceived are what the test moved, when the runner
	// counts it.
	BytesSent, BytesReceived int64
	// Err is the classified error of a failed test (see speedtest.ClassOf);
	// nil when it succeeded.
	Err error
}

// ErrStopped: the agent stopped before the run that would have covered a
// request finished.
var ErrStopped = errors.New("the agent is stopping; no test was run")

// ErrBadRequest marks a request the agent refuses as asked (a runner it
// does not run, an impossible interface name).
var ErrBadRequest = errors.New("bad test request")

// RunNow runs a test for a person at the pod through the normal run queue:
// one run at a time, under the test lock, recorded and (connected) stored
// in the outbox and uploaded exactly like a test the service asked for.
// When the run in progress already covers req, or a run is pending, the
// request joins it instead of running the test again: the caller gets the
// progress and results of the run that covers it. progress, if not nil,
// is called on the caller's goroutine with the run's events for req's
// runner(s) and interface; a caller that reads slowly misses events, never
// slows the test. RunNow is safe for concurrent callers. It returns when
// the covering run has finished, the agent stops (ErrStopped) or ctx is
// done; the run itself goes on without a caller that gave up.
func (a *Agent) RunNow(ctx context.Context, req LocalTestRequest, progress func(speedtest.Progress)) ([]LocalResult, error) {
	r, err := a.localRequest(req)
	if err != nil {
		return nil, err
	}
	a.metrics.TestRequested.WithLabelValues(LocalSource).Inc()
	run, waiting, dropped := a.queue.join(r)
	a.metrics.TestQueue.Set(float64(a.queue.depth()))
	if dropped > 0 {
		return nil, fmt.Errorf("%w: the pending run already names the most interfaces a run may test", ErrBadRequest)
	}
	how := "new run"
	switch {
	case run.started():
		how = "joined the run in progress"
	case waiting:
		how = "queued behind the run in progress"
	}
	a.log.Info("test run requested", "source", LocalSource, "targets", r.targets(), "runner", req.Runner, "coalesced", how)
	a.noteOverBudget(LocalSource) // runs anyway: a person asked for it

	match := func(runner, iface string) bool {
		return iface == req.Interface && (req.Runner == "" || runner == req.Runner)
	}
	sub := run.subscribe(func(p speedtest.Progress) bool { return match(p.Runner, p.Interface) })
	defer run.unsubscribe(sub)
	if waiting && progress != nil {
		progress(speedtest.Progress{Type: speedtest.ProgressType, Runner: req.Runner, Interface: req.Interface, Phase: speedtest.PhaseQueued})
	}
	deliver := func() {
		for {
			select {
			case p := <-sub:
				if progress != nil {
					progress(p)
				}
			default:
				return
			}
		}
	}
	for {
		select {
		case p := <-sub:
			if progress != nil {
				progress(p)
			}
		case <-run.done:
			deliver()
			results := run.resultsFor(func(e ResultEntry) bool { return match(e.Runner, e.Interface) })
			if len(results) == 0 {
				if a.stopping() {
					return nil, ErrStopped
				}
				return nil, fmt.Errorf("the run ended without testing %s (was a runner unavailable?)", describeTarget(req))
			}
			return results, nil
		case <-a.stopped:
			return nil, ErrStopped
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Runners names the runners the agent runs, in RADAR_TESTS order.
func (a *Agent) Runners() []string {
	names := make([]string, 0, len(a.runners))
	for _, r := range a.runners {
		names = append(names, r.Name())
	}
	return names
}

func (a *Agent) stopping() bool {
	select {
	case <-a.stopped:
		return true
	default:
		return false
	}
}

// localRequest checks req against what the agent runs and turns it into a
// queue request.
func (a *Agent) localRequest(req LocalTestRequest) (runRequest, error) {
	if err := checkInterfaceName(req.Interface); err != nil {
		return runRequest{}, err
	}
	r := requestFor(nil)
	if req.Interface != "" {
		r = requestFor([]string{req.Interface})
	}
	var unavailable error
	available := 0
	for _, run := range a.runners {
		if req.Runner != "" && run.Name() != req.Runner {
			continue
		}
		if av, ok := run.(availability); ok {
			if err := av.Available(); err != nil {
				unavailable = err
				continue
			}
		}
		available++
	}
	if req.Runner != "" {
		if !contains(a.Runners(), req.Runner) {
			return runRequest{}, fmt.Errorf("%w: runner %q is not enabled on this pod (RADAR_TESTS: %s)", ErrBadRequest, req.Runner, strings.Join(a.Runners(), ","))
		}
		r.runners = []string{req.Runner}
	}
	if available == 0 && unavailable != nil {
		return runRequest{}, unavailable
	}
	return r, nil
}

// checkInterfaceName refuses what cannot be an interface name (Linux:
// at most 15 bytes, no slash, no white space) before it reaches a log.
func checkInterfaceName(name string) error {
	if len(name) > 15 || strings.ContainsAny(name, "/ \t\n\r\x00:") {
		return fmt.Errorf("%w: %q is not an interface name", ErrBadRequest, name)
	}
	return nil
}

func describeTarget(req LocalTestRequest) string {
	what := "every runner"
	if req.Runner != "" {
		what = req.Runner
	}
	if req.Interface == "" {
		return what + " on the default route"
	}
	return what + " on " + req.Interface
}

// testRun is one run of the queue as the callers waiting on it see it:
// its progress, fanned out to each subscriber without ever blocking the
// runner, and its results once each test is recorded.
type testRun struct {
	// runRequest is what the run tests; guarded by runQueue.mu until the
	// run is taken, fixed afterwards.
	runRequest
	done chan struct{}

	mu      sync.Mutex
	running bool
	subs    map[chan speedtest.Progress]func(speedtest.Progress) bool
	// last is the latest event, handed to a subscriber that joins late so
	// it shows the current phase at once.
	last    *speedtest.Progress
	results []LocalResult
}

// subscriberBuffer holds about 15 s of events of one runner: a subscriber
// that falls further behind loses events, the test never waits for it.
const subscriberBuffer = 64

func newTestRun(r runRequest) *testRun {
	return &testRun{runRequest: r, done: make(chan struct{}), subs: map[chan speedtest.Progress]func(speedtest.Progress) bool{}}
}

func (t *testRun) started() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.running
}

func (t *testRun) start() {
	t.mu.Lock()
	t.running = true
	t.mu.Unlock()
}

func (t *testRun) subscribe(match func(speedtest.Progress) bool) chan speedtest.Progress {
	ch := make(chan speedtest.Progress, subscriberBuffer)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.subs[ch] = match
	if t.last != nil && match(*t.last) {
		ch <- *t.last
	}
	return ch
}

func (t *testRun) unsubscribe(ch chan speedtest.Progress) {
	t.mu.Lock()
	delete(t.subs, ch)
	t.mu.Unlock()
}

// publish is the runners' progress observer: it never blocks.
func (t *testRun) publish(p speedtest.Progress) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.last = &p
	for ch, match := range t.subs {
		if !match(p) {
			continue
		}
		select {
		case ch <- p:
		default:
		}
	}
}

func (t *testRun) add(r LocalResult) {
	t.mu.Lock()
	t.results = append(t.results, r)
	t.mu.Unlock()
}

func (t *testRun) resultsFor(match func(ResultEntry) bool) []LocalResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []LocalResult
	for _, r := range t.results {
		if match(r.Entry) {
			out = append(out, r)
		}
	}
	return out
}

func (t *testRun) finish() { close(t.done) }

// localResult is what a caller of RunNow learns of one recorded test.
func localResult(entry ResultEntry, res speedtest.Result, err error) LocalResult {
	entry.Raw = nil
	return LocalResult{Entry: entry, Server: res.Server, BytesSent: res.Summary.BytesSent, BytesReceived: res.Summary.BytesReceived, Err: err}
}

// RunInProcess runs req once in this process, without an agent: the
// runners built from cfg as the agent builds them (a runner named in req
// is built even when RADAR_TESTS leaves it out), on the target resolved as
// the agent resolves it, each under RADAR_TEST_TIMEOUT. It stores nothing:
// no test lock, no results.jsonl, no outbox (`radar-agent test` on a
// laptop, or beside a pod whose agent is not running).
func RunInProcess(ctx context.Context, cfg config.Agent, log *slog.Logger, req LocalTestRequest, progress func(speedtest.Progress)) ([]LocalResult, error) {
	if err := checkInterfaceName(req.Interface); err != nil {
		return nil, err
	}
	if req.Runner != "" {
		if !contains(config.Runners, req.Runner) {
			return nil, fmt.Errorf("%w: unknown runner %q (allowed: %s)", ErrBadRequest, req.Runner, strings.Join(config.Runners, ", "))
		}
		cfg.Tests = []string{req.Runner}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Only what building the runners and resolving the target read.
	a := &Agent{cfg: cfg, log: log, metrics: telemetry.NewMetrics(), interfaces: netif.List}
	runners, err := a.buildRunners()
	if err != nil {
		return nil, err
	}
	if progress != nil {
		ctx = speedtest.WithProgress(ctx, progress)
	}
	target, _, terr := a.resolveTarget(req.Interface)
	var out []LocalResult
	for _, r := range runners {
		if ctx.Err() != nil {
			break
		}
		var res speedtest.Result
		var rerr error
		switch av, ok := r.(availability); {
		case terr != nil:
			now := time.Now()
			res, rerr = speedtest.Result{Runner: r.Name(), Interface: req.Interface, StartedAt: now, FinishedAt: now},
				&speedtest.Error{Runner: r.Name(), Class: speedtest.ClassNetwork, Err: terr}
		case ok && av.Available() != nil:
			now := time.Now()
			res, rerr = speedtest.Result{Runner: r.Name(), Interface: req.Interface, StartedAt: now, FinishedAt: now}, av.Available()
		default:
			rctx, cancel := context.WithTimeout(ctx, cfg.TestTimeout)
			res, rerr = r.Run(rctx, target)
			cancel()
		}
		out = append(out, localResult(inProcessEntry(r.Name(), req.Interface, res, rerr), res, rerr))
	}
	if len(out) == 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("no runner to run (RADAR_TESTS: %s)", strings.Join(cfg.Tests, ","))
	}
	return out, nil
}

// inProcessEntry describes an in-process test the way record would.
func inProcessEntry(runner, iface string, res speedtest.Result, err error) ResultEntry {
	e := ResultEntry{Time: res.StartedAt, Runner: runner, Interface: iface, DurationSeconds: res.FinishedAt.Sub(res.StartedAt).Seconds()}
	if err != nil {
		e.ErrorClass, e.Error = string(speedtest.ClassOf(err)), err.Error()
		return e
	}
	s := res.Summary
	e.DownloadMbps, e.UploadMbps, e.LatencyMs = &s.DownloadMbps, &s.UploadMbps, &s.LatencyMs
	return e
}
