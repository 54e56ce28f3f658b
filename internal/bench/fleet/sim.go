package fleet

import (
	"container/heap"
	"time"
)

// Sim is a discrete-event simulator: a virtual clock and a queue of
// events ordered by time, then by scheduling order (two events at the
// same instant run in the order they were scheduled). Nothing sleeps:
// Run jumps the clock from one event to the next, so a fleet's hour runs
// in seconds. A Sim is not safe for concurrent use; events run one at a
// time on the caller's goroutine and may schedule more.
type Sim struct {
	now time.Duration
	seq uint64
	q   eventQueue
}

type event struct {
	at  time.Duration
	seq uint64
	run func()
}

type eventQueue []event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = event{}
	*q = old[:len(old)-1]
	return e
}

// Now is the virtual time: the time of the event running, or of the last
// one run.
func (s *Sim) Now() time.Duration { return s.now }

// At schedules f at virtual time t; a t in the past runs at Now (the
// clock never goes back).
func (s *Sim) At(t time.Duration, f func()) {
	if t < s.now {
		t = s.now
	}
	s.seq++
	heap.Push(&s.q, event{at: t, seq: s.seq, run: f})
}

// After schedules f d after Now.
func (s *Sim) After(d time.Duration, f func()) { s.At(s.now+d, f) }

// Pending is the number of events scheduled and not yet run.
func (s *Sim) Pending() int { return len(s.q) }

// Run runs, in order, every event due at or before until; the clock then
// stands at until. It returns the number of events run.
func (s *Sim) Run(until time.Duration) int {
	n := 0
	for len(s.q) > 0 && s.q[0].at <= until {
		e := heap.Pop(&s.q).(event)
		s.now = e.at
		e.run()
		n++
	}
	if until > s.now {
		s.now = until
	}
	return n
}
