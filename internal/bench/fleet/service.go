package fleet

import (
	"fmt"
	"net/http"
	"syscall"
	"time"

	"github.com/radarpod/radarpod/internal/radar"
)

// Kind is a kind of request a pod makes to the service.
type Kind int

const (
	// Cable is a live channel connection attempt (the WebSocket upgrade).
	Cable Kind = iota
	// Status is a fallback heartbeat (POST /clients/<unix_user>/status).
	Status
	// Upload is a measurement upload.
	Upload
	kinds
)

func (k Kind) String() string {
	return [...]string{"cable", "status", "upload"}[k]
}

// Service is the model of the pods service: it is down during the
// windows it is told (connections refused), and up otherwise; while up it
// accepts Capacity requests of any kind per second and answers the rest
// 503 (or 429 when Throttle429) with Retry-After. It records every
// attempt per kind and per second, what it accepted, and every delivery
// per result id. The answers it gives are the production error values
// (radar.StatusError, radar.UpgradeError, a refused dial), so the pods'
// production decisions classify them as they would the real service's.
type Service struct {
	sim *Sim
	// Capacity is how many requests a second it accepts; 0 is unlimited.
	Capacity int
	// RetryAfter is the Retry-After of an answer over capacity.
	RetryAfter time.Duration
	// Throttle429 answers over capacity with 429 rather than 503.
	Throttle429 bool

	down []window
	// attempts and accepted per kind, indexed by whole virtual seconds.
	attempts, accepted [kinds][]int
	usedNow            int // accepted in the current second
	second             int
	// delivered counts deliveries per result id.
	delivered map[int]int
}

type window struct{ from, to time.Duration }

// NewService returns an always-up, unlimited service on sim's clock.
func NewService(sim *Sim) *Service {
	return &Service{sim: sim, delivered: map[int]int{}, second: -1}
}

// Down makes the service refuse connections from from to to.
func (s *Service) Down(from, to time.Duration) { s.down = append(s.down, window{from, to}) }

func (s *Service) isDown() bool {
	now := s.sim.Now()
	for _, w := range s.down {
		if now >= w.from && now < w.to {
			return true
		}
	}
	return false
}

var errRefused = fmt.Errorf("dial tcp: %w", syscall.ECONNREFUSED)

// call records an attempt of kind k and returns the service's answer as
// the production client would see it: nil, a refused connection, or a
// 503/429 with Retry-After.
func (s *Service) call(k Kind) error {
	sec := int(s.sim.Now() / time.Second)
	s.attempts[k] = bump(s.attempts[k], sec)
	if s.isDown() {
		if k == Cable {
			return fmt.Errorf("connect channel: %w", errRefused)
		}
		return fmt.Errorf("%s: %w", k, errRefused)
	}
	if sec != s.second {
		s.second, s.usedNow = sec, 0
	}
	if s.Capacity > 0 && s.usedNow >= s.Capacity {
		code := http.StatusServiceUnavailable
		if s.Throttle429 {
			code = http.StatusTooManyRequests
		}
		if k == Cable {
			return &radar.UpgradeError{Code: code, RetryAfter: s.RetryAfter}
		}
		op := radar.OpStatus
		if k == Upload {
			op = radar.OpUpload
		}
		return &radar.StatusError{Op: op, Code: code, RetryAfter: s.RetryAfter}
	}
	s.usedNow++
	s.accepted[k] = bump(s.accepted[k], sec)
	return nil
}

// deliver records that the service stored result id.
func (s *Service) deliver(id int) { s.delivered[id]++ }

func bump(xs []int, i int) []int {
	for len(xs) <= i {
		xs = append(xs, 0)
	}
	xs[i]++
	return xs
}

// Attempts returns the attempts of kind k per second, from second 0.
func (s *Service) Attempts(k Kind) []int { return s.attempts[k] }

// Accepted returns the accepted requests of kind k per second.
func (s *Service) Accepted(k Kind) []int { return s.accepted[k] }

// Deliveries returns how many distinct results were stored and how many
// deliveries were duplicates (a result stored more than once).
func (s *Service) Deliveries() (distinct, duplicates int) {
	for _, n := range s.delivered {
		distinct++
		duplicates += n - 1
	}
	return distinct, duplicates
}
