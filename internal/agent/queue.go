package agent

import (
	"sort"
	"sync"

	"github.com/radarpod/radarpod/internal/radar"
)

// runRequest is what to test: the default route and/or named interfaces.
type runRequest struct {
	defaultRoute bool
	interfaces   []string
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
	return r
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
type runQueue struct {
	mu      sync.Mutex
	pending *runRequest
	running bool
	wake    chan struct{}
}

func newRunQueue() *runQueue { return &runQueue{wake: make(chan struct{}, 1)} }

// add queues r and reports whether it merged into an already pending run,
// and how many of its interfaces did not fit (see merge).
func (q *runQueue) add(r runRequest) (merged bool, dropped int) {
	q.mu.Lock()
	if q.pending != nil {
		m, n := q.pending.merge(r)
		q.pending, merged, dropped = &m, true, n
	} else {
		q.pending = &r
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return merged, dropped
}

// take removes the pending request and marks a run as started.
func (q *runQueue) take() (runRequest, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending == nil {
		return runRequest{}, false
	}
	r := *q.pending
	q.pending = nil
	q.running = true
	return r, true
}

func (q *runQueue) done() {
	q.mu.Lock()
	q.running = false
	q.mu.Unlock()
}

// busy reports whether a run is in progress or waiting.
func (q *runQueue) busy() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.running || q.pending != nil
}

func (q *runQueue) depth() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.pending != nil {
		return 1
	}
	return 0
}
