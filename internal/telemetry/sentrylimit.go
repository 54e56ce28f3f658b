package telemetry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/radarpod/radarpod/internal/atomicfile"
)

// What a pod may send to Sentry. A pod is one of thousands: one that was
// offline for a week must not come back with a week of errors, and a fault
// that persists is worth one event per pod and day (with how often it
// happened), not one per occurrence. The numbers:
//
//   - one event per fingerprint (message and error type; see fingerprint)
//     per FingerprintWindow: a persisting fault shows up twice a day per
//     pod, and Sentry's counts across the fleet show its spread;
//   - network errors are one fingerprint per kind whatever the message
//     (DNS, refused, reset, timeout, ...): every part of the agent fails
//     the same way during an outage, and it is one fact. At most one per
//     NetworkWindow;
//   - at most DailyEventCap events per rolling day in all, whatever
//     their fingerprints: a bug that makes many different messages cannot
//     burst either.
//
// A fingerprint sent again carries, in its details, how many times it
// occurred since it was last sent and when first and last
// (occurrences, first_seen, last_seen): sampled, not lost.
const (
	FingerprintWindow = 12 * time.Hour
	NetworkWindow     = 24 * time.Hour
	DailyEventCap     = 10
)

// SentryLimitsFile keeps the limits across restarts (in the data dir).
//
// The state must survive the process: the agent runs under restart
// unless-stopped, and a pod that crashes at start-up (a corrupt identity
// file, a panic) restarts every few seconds to a minute; counted in
// memory only, every start would be a first occurrence and the pod would
// send one event per restart — over a thousand a day. The file is tiny
// and bounded (maxFingerprints entries of hashes and counters, no text of
// the events), written atomically when an event is sent (at most
// DailyEventCap times a day) and at most every limitsSaveEvery otherwise.
// A missing, oversized or garbled file starts the limits afresh.
const SentryLimitsFile = "sentry-limits.json"

const (
	maxFingerprints = 64
	limitsSaveEvery = 15 * time.Minute
	maxLimitsFile   = 64 << 10
)

// SentryStats counts what the limiter decided since the process started.
type SentryStats struct {
	Offered    int // events the process tried to send
	Sent       int // of those, passed to the Sentry client
	Suppressed int // dropped as repeats or over the daily cap
}

// limitState is the persisted form.
type limitState struct {
	DayStart time.Time              `json:"day_start"`
	DaySent  int                    `json:"day_sent"`
	Prints   map[string]*printState `json:"fingerprints"`
}

type printState struct {
	// FirstSeen and LastSeen bound the occurrences since the last event
	// sent for this fingerprint; Count is how many there were.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Count     int       `json:"count"`
	SentAt    time.Time `json:"sent_at"`
}

// limiter decides which events reach Sentry.
type limiter struct {
	mu       sync.Mutex
	now      func() time.Time
	path     string // "" keeps the state in memory only
	loaded   bool
	st       limitState
	lastSave time.Time
	stats    SentryStats
}

func newLimiter(dir string, now func() time.Time) *limiter {
	if now == nil {
		now = time.Now
	}
	l := &limiter{now: now}
	if dir != "" {
		l.path = filepath.Join(dir, SentryLimitsFile)
	}
	return l
}

// admit records one occurrence of the fingerprint and reports whether to
// send it; details describe the occurrences the event stands for.
func (l *limiter) admit(fp string, network bool) (ok bool, details map[string]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.load()
	now := l.now()
	l.stats.Offered++
	st := &l.st
	// A clock that went backwards (a Pi without RTC before NTP, or a
	// correction) would make "sent in the future" look due — or never due.
	// Count such an entry as sent just now: the safe side is one window of
	// silence, not a burst.
	if st.DayStart.After(now) {
		st.DayStart = now
	}
	if st.DayStart.IsZero() || now.Sub(st.DayStart) >= 24*time.Hour {
		st.DayStart, st.DaySent = now, 0
	}
	key := fpKey(fp)
	p := st.Prints[key]
	if p == nil {
		l.evictOldest()
		p = &printState{}
		st.Prints[key] = p
	}
	if p.SentAt.After(now) {
		p.SentAt = now
	}
	if p.Count == 0 || p.FirstSeen.After(now) {
		p.FirstSeen = now
	}
	p.Count++
	p.LastSeen = now
	window := FingerprintWindow
	if network {
		window = NetworkWindow
	}
	due := p.SentAt.IsZero() || now.Sub(p.SentAt) >= window
	if !due || st.DaySent >= DailyEventCap {
		l.stats.Suppressed++
		if now.Sub(l.lastSave) >= limitsSaveEvery || l.lastSave.After(now) {
			l.save(now)
		}
		return false, nil
	}
	details = map[string]any{
		"occurrences": p.Count,
		"first_seen":  p.FirstSeen.UTC().Format(time.RFC3339),
		"last_seen":   p.LastSeen.UTC().Format(time.RFC3339),
	}
	p.SentAt, p.Count = now, 0
	st.DaySent++
	l.stats.Sent++
	l.save(now)
	return true, details
}

func (l *limiter) evictOldest() {
	if len(l.st.Prints) < maxFingerprints {
		return
	}
	var oldest string
	for k, p := range l.st.Prints {
		if oldest == "" || p.LastSeen.Before(l.st.Prints[oldest].LastSeen) {
			oldest = k
		}
	}
	delete(l.st.Prints, oldest)
}

// load reads the persisted state once; anything unusable starts afresh.
func (l *limiter) load() {
	if l.loaded {
		return
	}
	l.loaded = true
	l.st = limitState{Prints: map[string]*printState{}}
	if l.path == "" {
		return
	}
	if fi, err := os.Stat(l.path); err != nil || !fi.Mode().IsRegular() || fi.Size() > maxLimitsFile {
		return
	}
	var st limitState
	if atomicfile.ReadJSON(l.path, &st) != nil {
		return
	}
	if st.DaySent < 0 || st.DaySent > DailyEventCap {
		st.DaySent = DailyEventCap
	}
	l.st.DayStart, l.st.DaySent = st.DayStart, st.DaySent
	for k, p := range st.Prints {
		if p != nil && len(l.st.Prints) < maxFingerprints && p.Count >= 0 {
			l.st.Prints[k] = p
		}
	}
}

// save writes the state; a failure (read-only or full disk) keeps the
// limits in memory, which still bound this process.
func (l *limiter) save(now time.Time) {
	l.lastSave = now
	if l.path == "" {
		return
	}
	_ = atomicfile.WriteJSON(l.path, l.st, 0o600)
}

func (l *limiter) snapshot() SentryStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// fpKey is what the file stores: a hash, so no event text is kept on disk.
func fpKey(fp string) string {
	h := sha256.Sum256([]byte(fp))
	return hex.EncodeToString(h[:12])
}

// fingerprint groups occurrences of "the same" event: the message (a
// constant template in this code base: details go in attributes) and the
// type of the innermost error, not its text (which holds addresses, ids,
// durations). A network error is grouped by kind alone (see networkKind).
func fingerprint(msg string, err error) (fp string, network bool) {
	if err == nil {
		return "message|" + msg, false
	}
	if kind := networkKind(err); kind != "" {
		return "network|" + kind, true
	}
	inner := err
	for {
		next := errors.Unwrap(inner)
		if next == nil {
			break
		}
		inner = next
	}
	return fmt.Sprintf("error|%s|%T", msg, inner), false
}

// networkKind names the way a network exchange failed, or "" when err is
// not a network failure. Only the kind counts: every request of a pod that
// lost its uplink fails the same way.
func networkKind(err error) string {
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case errors.As(err, &dns):
		return "dns"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return "unreachable"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "eof"
	case errors.As(err, &op):
		return "net"
	}
	if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	return ""
}

// panicFingerprint groups panics by the value's type and the function
// that panicked (the first frame outside the runtime below the recover),
// not by the message, which often carries indexes or addresses.
func panicFingerprint(r any) string {
	pcs := make([]uintptr, 32)
	n := runtime.Callers(3, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	where := ""
	for {
		f, more := frames.Next()
		if !strings.HasPrefix(f.Function, "runtime.") && f.Function != "" {
			where = f.Function
			break
		}
		if !more {
			break
		}
	}
	return fmt.Sprintf("panic|%T|%s", r, where)
}
