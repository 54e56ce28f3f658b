package agent

import (
	"time"

	"github.com/radarpod/radarpod/internal/netcheck"
	"github.com/radarpod/radarpod/internal/outbox"
)

// Snapshot is what a person at the pod may see of the running agent (the
// status page): never a secret.
type Snapshot struct {
	// PodName is RADAR_POD_NAME; PodID the id the service gave (zero
	// until registered, and standalone).
	PodName string
	PodID   int64
	// Standalone: no pods service (RADAR_SERVER_URL empty).
	Standalone bool
	ServerURL  string

	// ChannelUp: the live channel is connected now. LastHeartbeat is the
	// last sign of life exchanged with the service (channel ping or status
	// answer), zero if none yet.
	ChannelUp     bool
	LastHeartbeat time.Time

	// OutboxRecords results wait for upload; the oldest was measured at
	// OldestUndelivered (zero when none, or undated).
	OutboxRecords     int
	OldestUndelivered time.Time

	// TestBusy: a test run is in progress or queued.
	TestBusy bool

	// NetCheck is the last network check's report, and NetCheckWhy what
	// started it; nil before the first check finished.
	NetCheck    *netcheck.Report
	NetCheckWhy string
}

// outboxLister is the part of outbox.Store that lists records without
// reading them.
type outboxLister interface{ List() []outbox.Meta }

// Snapshot describes the agent now. It is cheap: nothing is read from disk.
func (a *Agent) Snapshot() Snapshot {
	s := Snapshot{
		PodName: a.cfg.PodName, Standalone: a.cfg.Standalone(), ServerURL: a.cfg.ServerURL,
		TestBusy: a.queue.busy(),
	}
	if beat := a.lastBeat.Load(); beat != 0 {
		s.LastHeartbeat = time.Unix(0, beat)
	}
	a.mu.Lock()
	s.PodID, s.ChannelUp = a.identity.ID, a.channelIsUp
	if a.lastCheck != nil {
		r := *a.lastCheck
		s.NetCheck, s.NetCheckWhy = &r, a.lastCheckWhy
	}
	a.mu.Unlock()
	if a.outbox != nil {
		s.OutboxRecords = a.outbox.Stats().Records
		if l, ok := a.outbox.(outboxLister); ok {
			if metas := l.List(); len(metas) > 0 {
				s.OldestUndelivered = metas[0].CreatedAt
			}
		}
	}
	return s
}

// RecentResults returns the results of the last RecentWindow (see
// history.go), in the order they were recorded.
func (a *Agent) RecentResults() []ResultEntry {
	return a.recent.list(time.Now())
}

// rememberNetCheck keeps the last network check's report for the status
// page.
func (a *Agent) rememberNetCheck(r netcheck.Report, why string) {
	a.mu.Lock()
	a.lastCheck, a.lastCheckWhy = &r, why
	a.mu.Unlock()
}
