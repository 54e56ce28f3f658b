package agent

import (
	"sort"
	"sync"

	"github.com/radarpod/radarpod/internal/radar"
)

// runRequest is what to test: the default route and/or named interfaces,
// with every configured runner or, for a local request (RunNow), the ones
// it names.
type runRequest struct {
	defaultRoute bool
	interfaces   []string
	// runners limits the run to these runners; nil means every runner of
	// RADAR_TESTS (what the service and the schedule ask for).
	runners []string
}

// requestFor turns the protocol's interface list into a request: null (nil)
// means "the default route".
func requestFor(interfaces []string) runRequest {
	if interfaces == nil {
		return runRequest{defaultRoute: true}
	}
	r := runRequest{}
	for _, name := range interfaces {
		if name == "" {
			r.defaultRoute = true
			continue
		}
		r.interfaces = append(r.interfaces, name)
	}
	if len(r.interfaces) == 0 {
		r.defaultRoute = true
	}
	return r.normalised()
}

// merge adds o's targets to r's. Each request names at most
// radar.MaxTestInterfaces interfaces; so does their union, or requests
// arriving during a long run could pile up names without end: those
// already pending stay, later ones beyond the bound are dropped (counted).
func (r runRequest) merge(o runRequest) (runRequest, int) {
	m := runRequest{defaultRoute: r.defaultRoute || o.defaultRoute, interfaces: append([]string{}, r.interfaces...)}
	// A runner limit survives only when both sides have one: the merged run
	// serves each request, so a request for every runner lifts the limit.
	// Every target of the merged run gets every runner either side named.
	if r.runners != nil && o.runners != nil {
		m.runners = append(append([]string{}, r.runners...), o.runners...)
	}
	dropped := 0
	for _, name := range o.interfaces {
		switch {
		case contains(m.interfaces, name):
		case len(m.interfaces) < radar.MaxTestInterfaces:
			m.interfaces = append(m.interfaces, name)
		default:
			dropped++
		}
	}
	return m.normalised(), dropped
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (r runRequest) normalised() runRequest {
	seen := map[string]bool{}
	out := r.interfaces[:0:0]
	for _, n := range r.interfaces {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	r.interfaces = out
	if r.runners != nil {
		runners := r.runners[:0:0]
		for _, n := range r.runners {
			if !contains(runners, n) {
				runners = append(runners, n)
			}
		}
		sort.Strings(runners)
		r.runners = runners
	}
	return r
}

// wantsRunner reports whether the run includes the runner named.
func (r runRequest) wantsRunner(name string) bool {
	return r.runners == nil || contains(r.runners, name)
}

// covers reports whether a run of r includes the test o asks for: each of
// o's targets, with each of o's runners.
func (r runRequest) covers(o runRequest) bool {
	if o.defaultRoute && !r.defaultRoute {
		return false
	}
	for _, name := range o.interfaces {
		if !contains(r.interfaces, name) {
			return false
		}
	}
	if r.runners == nil {
		return true
	}
	if o.runners == nil {
		return false
	}
	for _, name := range o.runners {
		if !contains(r.runners, name) {
			return false
		}
	}
	return true
}

// targets lists what a run tests, the default route ("") first.
func (r runRequest) targets() []string {
	var t []string
	if r.defaultRoute {
		t = append(t, "")
	}
	return append(t, r.interfaces...)
}

// runQueue holds at most one pending run: a request that arrives while a run
// is in progress is merged into the pending one, never dropped. The service
// re-sends unanswered requests, so coalescing loses nothing it cares about.
// A local request (join) also coalesces with the run in progress when that
// run covers it: a person asking twice gets one test, not two.
type runQueue struct {
	mu      sync.Mutex
	pending *testRun
	current *testRun
	wake    chan struct{}
}

func newRunQueue() *runQueue { return &runQueue{wake: make(chan struct{}, 1)} }

// add queues r and reports whether it merged into an already pending run,
// and how many of its interfaces did not fit (see merge).
func (q *runQueue) add(r runRequest) (merged bool, dropped int) {
	_, merged, dropped = q.enqueue(r)
	return merged, dropped
}

// enqueue queues r like add and returns the run that will carry it out.
func (q *runQueue) enqueue(r runRequest) (run *testRun, merged bool, dropped int) {
	q.mu.Lock()
	run, merged, dropped = q.enqueueLocked(r)
	q.mu.Unlock()
	q.kick()
	return run, merged, dropped
}

func (q *runQueue) enqueueLocked(r runRequest) (run *testRun, merged bool, dropped int) {
	if q.pending != nil {
		m, n := q.pending.runRequest.merge(r)
		q.pending.runRequest = m
		return q.pending, true, n
	}
	q.pending = newTestRun(r)
	return q.pending, false, 0
}

// join returns the run that will carry out a local request: the run in
// progress when it covers r (waiting is false: the caller gets what is
// left of it and the results it has already), else the pending run, r
// merged into it (waiting is true when a run is in progress before it).
func (q *runQueue) join(r runRequest) (run *testRun, waiting bool, dropped int) {
	q.mu.Lock()
	if q.current != nil && q.current.runRequest.covers(r) {
		run = q.current
		q.mu.Unlock()
		return run, false, 0
	}
	run, _, dropped = q.enqueueLocked(r)
	waiting = q.current != nil
	q.mu.Unlock()
	q.kick()
	return run, waiting, dropped
}

func (q *runQueue) kick() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take removes the pending run and marks it as the one in progress.
func (q *runQueue) take() (*testRun, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending == nil {
		return nil, false
	}
	r := q.pending
	q.pending = nil
	q.current = r
	r.start()
	return r, true
}

// done ends the run in progress: whoever waits on it gets its results.
func (q *runQueue) done() {
	q.mu.Lock()
	r := q.current
	q.current = nil
	q.mu.Unlock()
	if r != nil {
		r.finish()
	}
}

// busy reports whether a run is in progress or waiting.
func (q *runQueue) busy() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.current != nil || q.pending != nil
}

func (q *runQueue) depth() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending != nil {
		return 1
	}
	return 0
}
