package radar

import "sync/atomic"

// ServiceStart tells the service whether this is the process's first
// contact: Sec-Radar-Service-Started on the channel upgrade and
// service_first_ping in status calls are true until the service has
// acknowledged one connection of this process (a successful upgrade, or a
// 200 answer to a status call that said "true"). One value is shared by the
// cable client and the status calls; the zero value is a fresh start.
type ServiceStart struct {
	acked atomic.Bool
}

// First reports whether the service has not yet acknowledged this process.
func (s *ServiceStart) First() bool { return s == nil || !s.acked.Load() }

// Acknowledge records that the service has seen this process.
func (s *ServiceStart) Acknowledge() {
	if s != nil {
		s.acked.Store(true)
	}
}
