package update

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/radarpod/radarpod/internal/bench"
	"github.com/radarpod/radarpod/internal/handoff"
)

// statusLog collects the updater's "update status" log lines: each state
// with the time the updater entered it.
type statusLog struct {
	mu      sync.Mutex
	entries []status
}

type status struct {
	at    time.Time
	state handoff.State
	to    string
}

func (l *statusLog) line(s string) {
	var e struct {
		Time  time.Time `json:"time"`
		Msg   string    `json:"msg"`
		State string    `json:"state"`
		To    string    `json:"to"`
	}
	if json.Unmarshal([]byte(s), &e) != nil || e.Msg != "update status" {
		return
	}
	l.mu.Lock()
	l.entries = append(l.entries, status{at: e.Time, state: handoff.State(e.State), to: e.To})
	l.mu.Unlock()
}

func (l *statusLog) reset() {
	l.mu.Lock()
	l.entries = nil
	l.mu.Unlock()
}

// final returns the terminal state reached for version v, if any.
func (l *statusLog) final(v string) (handoff.State, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.entries {
		if e.to == v && (e.state == handoff.StateSucceeded || e.state.Failure()) {
			return e.state, true
		}
	}
	return "", false
}

// entered returns when the updater entered state for version v.
func (l *statusLog) entered(v string, state handoff.State) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.entries {
		if e.to == v && e.state == state {
			return e.at
		}
	}
	return time.Time{}
}

// phases turns the states of version v into time spent in each: "notice"
// from the request to the first state, then each state until the next.
func (l *statusLog) phases(v string, t0 time.Time) []phase {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []phase
	prev, prevState := t0, handoff.State("noticed")
	for _, e := range l.entries {
		if e.to != v {
			continue
		}
		out = append(out, phase{state: prevState, took: e.at.Sub(prev)})
		prev, prevState = e.at, e.state
		if e.state == handoff.StateSucceeded || e.state.Failure() {
			break
		}
	}
	return out
}

func phaseString(ps []phase) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%s %.2fs", p.state, p.took.Seconds())
	}
	return strings.Join(parts, ", ")
}

// medianPhases gives the median time per state over runs.
func medianPhases(runs [][]phase) string {
	var order []handoff.State
	per := map[handoff.State][]time.Duration{}
	for _, r := range runs {
		for _, p := range r {
			if _, ok := per[p.state]; !ok {
				order = append(order, p.state)
			}
			per[p.state] = append(per[p.state], p.took)
		}
	}
	parts := make([]string, len(order))
	for i, s := range order {
		parts[i] = fmt.Sprintf("%s %.2fs", s, bench.Median(per[s]))
	}
	return strings.Join(parts, ", ")
}
