// Package wallclock owns one question for the whole pod: can the system
// clock be trusted, and what is the best estimate of the real time? A
// Raspberry Pi has no RTC: it boots in 1970 or at the time fake-hwclock saved
// at the last shutdown, and stays there until NTP syncs, minutes later or
// never on a captive network. Three sources are weighed: this binary's build
// time (a clock before it is wrong), the kernel's synchronization status
// (adjtimex, read-only), and the Date header of the servers the process
// talks to (ObserveResponse), extrapolated with the boot clock
// (CLOCK_BOOTTIME), which no step of the wall clock moves.
//
// Two consumers ask two different questions. The updater decides on
// certificates and CRLs, which are judged by the system clock itself: it
// asks Check, and waits while the answer is no. The agent stamps results:
// it asks Read for the best estimate, and a result taken before anything
// trustworthy was known carries a boot-relative Stamp instead of a date,
// which Correct turns into a real time once one is learned in the same
// boot.
package wallclock

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/radarpod/radarpod/internal/buildinfo"
)

// MaxSkew is how far the system clock may be from a server's Date before it
// stops counting as synchronized. NTP brings a clock within milliseconds
// and a Date header has a resolution of one second, so minutes of
// difference mean the clock has not synced (or a server's has not).
const MaxSkew = 5 * time.Minute

// ErrUntrusted matches (errors.Is) every *UntrustedError: nothing that
// depends on the time may be decided now; wait for the clock to sync.
var ErrUntrusted = errors.New("system clock is not trusted")

// Source says where a time came from.
type Source string

// Sources of a stamp's time.
const (
	// SourceKernel: the system clock, which the kernel reports synchronized
	// (NTP) and no server's Date contradicts.
	SourceKernel Source = "kernel"
	// SourceServiceDate: a server's Date header, carried forward with the
	// boot clock; the system clock either agreed with it or was wrong.
	SourceServiceDate Source = "service-date"
	// SourceBootClock: taken before the time was known and corrected
	// afterwards, in the same boot, from a trusted time and the boot
	// clock's progress since.
	SourceBootClock Source = "boot-clock"
	// SourceUnsynced: nothing trustworthy was known; the stamp carries no
	// date, only its place on the boot clock.
	SourceUnsynced Source = "unsynced"
)

// KernelState is the kernel's view of time synchronization.
type KernelState int

// Kernel states.
const (
	// KernelUnknown: the status could not be read (a seccomp profile that
	// refuses adjtimex, or not Linux).
	KernelUnknown KernelState = iota
	// KernelSynced: an NTP daemon disciplines the clock.
	KernelSynced
	// KernelUnsynced: adjtimex returns TIME_ERROR or has STA_UNSYNC set, as
	// it does from boot until a daemon syncs (and forever without one).
	KernelUnsynced
)

func (k KernelState) String() string {
	switch k {
	case KernelSynced:
		return "synchronized"
	case KernelUnsynced:
		return "unsynchronized"
	}
	return "unknown"
}

// Options configure a Clock. The zero value reads the real clocks.
type Options struct {
	// Now reads the system clock (time.Now).
	Now func() time.Time
	// Kernel reads the kernel's sync status (ReadKernel).
	Kernel func() (KernelState, error)
	// Boot reads the time since boot and BootID names the boot; set both
	// or neither (CLOCK_BOOTTIME and /proc/sys/kernel/random/boot_id).
	Boot   func() time.Duration
	BootID string
	// BuildTime is the earliest plausible time; zero means
	// buildinfo.BuildTime() (itself zero in an unstamped build: no bound).
	BuildTime time.Time
	// AuthenticatedDatesOnly: only a Date received over TLS may vouch for
	// the clock; one over plain HTTP can still show it wrong. The updater
	// sets it, because it decides on certificates by that clock.
	AuthenticatedDatesOnly bool
}

// Clock judges the system clock. It is safe for concurrent use; one Clock
// per process keeps what every response has taught it.
type Clock struct {
	now      func() time.Time
	kernel   func() (KernelState, error)
	boot     func() time.Duration
	bootID   string
	build    time.Time
	authOnly bool

	mu       sync.Mutex
	last     *observation // the latest Date seen
	lastAuth *observation // the latest Date seen over TLS
}

// observation is one server's Date, pinned to the boot clock.
type observation struct {
	peer          string
	date          time.Time
	boot          time.Duration
	authenticated bool
}

// New returns a Clock.
func New(o Options) *Clock {
	c := &Clock{now: o.Now, kernel: o.Kernel, boot: o.Boot, bootID: o.BootID, build: o.BuildTime, authOnly: o.AuthenticatedDatesOnly}
	if c.now == nil {
		c.now = time.Now
	}
	if c.kernel == nil {
		c.kernel = ReadKernel
	}
	if c.boot == nil || c.bootID == "" {
		c.boot, c.bootID = realBoot()
	}
	if c.build.IsZero() {
		c.build = buildinfo.BuildTime()
	}
	return c
}

// Now reads the system clock as it is. Decide by it only after Check.
func (c *Clock) Now() time.Time { return c.now() }

// BuildTime is the lower bound the clock is held to (zero: none).
func (c *Clock) BuildTime() time.Time { return c.build }

// BootID names the current boot.
func (c *Clock) BootID() string { return c.bootID }

// ObserveResponse learns from a response's Date header (plus its Age, for
// a response a cache kept): the server's time when the response left it.
// A response without Date teaches nothing. One received over https counts
// as authenticated: it exists only after the server's certificate was
// verified.
func (c *Clock) ObserveResponse(resp *http.Response) {
	if resp == nil {
		return
	}
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return
	}
	if age, err := strconv.ParseInt(resp.Header.Get("Age"), 10, 64); err == nil && age > 0 && age < 1<<31 {
		date = date.Add(time.Duration(age) * time.Second)
	}
	peer, auth := "a server", resp.TLS != nil
	if req := resp.Request; req != nil && req.URL != nil {
		peer = req.URL.Host
		auth = auth || req.URL.Scheme == "https" || req.URL.Scheme == "wss"
	}
	c.Observe(peer, date, auth)
}

// Observe records that peer's clock read date just now.
func (c *Clock) Observe(peer string, date time.Time, authenticated bool) {
	o := &observation{peer: peer, date: date, boot: c.boot(), authenticated: authenticated}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last = o
	if authenticated {
		c.lastAuth = o
	}
}

// Instant is one moment on the wall clock and on the boot clock. Compare
// two instants of the same boot by Boot: NTP steps Wall, nothing steps Boot.
type Instant struct {
	// Wall is what the system clock read.
	Wall time.Time
	// BootID names the boot; Boot is the time since it (CLOCK_BOOTTIME).
	BootID string
	Boot   time.Duration
}

// Now reads the real system and boot clocks.
func Now() Instant {
	boot, id := realBoot()
	return Instant{Wall: time.Now(), BootID: id, Boot: boot()}
}

// Add is the instant d later.
func (i Instant) Add(d time.Duration) Instant {
	i.Wall, i.Boot = i.Wall.Add(d), i.Boot+d
	return i
}

var realBoot = sync.OnceValues(bootClock)

// Reading is one look at the clocks.
type Reading struct {
	Instant
	// Estimate is the best estimate of the real time: Wall, unless a
	// server's Date showed Wall wrong.
	Estimate time.Time
	// Synced says Estimate is trustworthy (a real date); Source says why,
	// or SourceUnsynced.
	Synced bool
	Source Source
	// WallErr is nil when the system clock itself may be trusted, else an
	// *UntrustedError saying why not. Estimate can be Synced while Wall is
	// not trusted: the time is then known from a server, not from the
	// system clock, which certificate checks use.
	WallErr error
}

// Read looks at the clocks.
func (c *Clock) Read() Reading {
	wall := c.now()
	boot := c.boot()
	kernel, kerr := c.kernel()
	c.mu.Lock()
	last, lastAuth := c.last, c.lastAuth
	c.mu.Unlock()

	r := Reading{Instant: Instant{Wall: wall, BootID: c.bootID, Boot: boot}, Estimate: wall, Source: SourceUnsynced}
	untrusted := func(against string, ref time.Time, detail string) *UntrustedError {
		return &UntrustedError{Read: wall, Against: against, Reference: ref, Detail: detail}
	}
	// The Date the estimate follows: an authenticated one when there is
	// one; any, unless only authenticated ones count.
	vouch := lastAuth
	if vouch == nil && !c.authOnly {
		vouch = last
	}
	var wallErr *UntrustedError
	switch {
	case !c.build.IsZero() && wall.Before(c.build):
		wallErr = untrusted("this build's time", c.build,
			fmt.Sprintf("before this build (%s)", stamp(c.build)))
	default:
		for _, o := range []*observation{last, lastAuth} {
			if o == nil {
				continue
			}
			server := o.date.Add(boot - o.boot)
			if skew := wall.Sub(server); skew > MaxSkew || skew < -MaxSkew {
				wallErr = untrusted("the Date of "+o.peer, server,
					fmt.Sprintf("%s the Date of %s (%s)", offBy(skew), o.peer, stamp(server)))
				break
			}
		}
	}
	if wallErr == nil && kernel != KernelSynced && vouch == nil {
		why := "the kernel reports it unsynchronized (adjtimex)"
		if kernel == KernelUnknown {
			why = "the kernel's synchronization status is unknown"
			if kerr != nil {
				why += " (" + kerr.Error() + ")"
			}
		}
		what := "no server's Date has confirmed it"
		if c.authOnly && last != nil {
			what = "no server's Date received over TLS has confirmed it"
		}
		wallErr = untrusted("the kernel's synchronization status", time.Time{}, why+" and "+what)
	}

	switch {
	case wallErr == nil:
		r.Synced = true
		r.Source = SourceKernel
		if kernel != KernelSynced {
			r.Source = SourceServiceDate
		}
	case vouch != nil:
		// The system clock is wrong or unconfirmed, but a server told the
		// time: carry its Date forward on the boot clock.
		if est := vouch.date.Add(boot - vouch.boot); c.build.IsZero() || !est.Before(c.build) {
			r.Estimate, r.Synced, r.Source = est, true, SourceServiceDate
		}
	}
	if wallErr != nil {
		r.WallErr = wallErr
	}
	return r
}

// Check returns nil when the system clock may be used to judge
// certificates and CRLs, else an *UntrustedError (errors.Is ErrUntrusted)
// that says what the clock read, what it was compared with, and why it
// failed.
func (c *Clock) Check() error { return c.Read().WallErr }

// TLSTime is the time at which the agent checks the pods service's
// certificate: the best estimate, never before the build time. A pod at
// 1970 then still reaches the service and learns the time from its Date.
// Only the agent uses it: the updater's decisions never relax this way.
func (c *Clock) TLSTime() time.Time {
	t := c.Read().Estimate
	if t.Before(c.build) {
		t = c.build
	}
	return t
}

// CertificateTimeError explains err, a failure to reach a server, as the
// clock's when it is a certificate validity-period failure ("expired or
// not yet valid") while the clock is not trusted: such a failure says
// nothing about the certificate. It returns an *UntrustedError naming the
// certificate's validity period and why the clock is not trusted, or nil
// when err is not such a failure or the clock is trusted (the certificate
// then really is out of its validity).
func (c *Clock) CertificateTimeError(err error, server string) error {
	var inv x509.CertificateInvalidError
	if !errors.As(err, &inv) || inv.Reason != x509.Expired {
		return nil
	}
	werr := c.Check()
	var ue *UntrustedError
	if !errors.As(werr, &ue) {
		return nil
	}
	out := *ue
	if cert := inv.Cert; cert != nil {
		out.Detail += fmt.Sprintf("; the certificate of %s is valid from %s to %s", server, stamp(cert.NotBefore), stamp(cert.NotAfter))
	} else {
		out.Detail += fmt.Sprintf("; the certificate of %s is not valid at this time", server)
	}
	out.Err = err
	return &out
}

// UntrustedError says why the system clock is not trusted.
type UntrustedError struct {
	// Read is what the clock read.
	Read time.Time
	// Against is what it was compared with ("this build's time", "the
	// Date of <host>", "the kernel's synchronization status") and
	// Reference that time (zero for the kernel).
	Against   string
	Reference time.Time
	// Detail completes the sentence "the clock reads <Read>, ...".
	Detail string
	// Err is the failure the clock explains, if any.
	Err error
}

func (e *UntrustedError) Error() string {
	s := fmt.Sprintf("clock not trusted: it reads %s, %s", stamp(e.Read), e.Detail)
	if e.Err != nil {
		s += " (" + e.Err.Error() + ")"
	}
	return s
}

// Is makes every UntrustedError match ErrUntrusted.
func (e *UntrustedError) Is(target error) bool { return target == ErrUntrusted }

func (e *UntrustedError) Unwrap() error { return e.Err }

// processClock is the boot clock's stand-in where the real one cannot be
// read: this process's monotonic clock, and an ID naming this process alone.
func processClock() (func() time.Duration, string) {
	start := time.Now()
	b := make([]byte, 8)
	rand.Read(b)
	return func() time.Duration { return time.Since(start) }, "process-" + hex.EncodeToString(b)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func offBy(skew time.Duration) string {
	where := " ahead of"
	if skew < 0 {
		skew, where = -skew, " behind"
	}
	if skew >= 48*time.Hour {
		return fmt.Sprintf("%d days", skew/(24*time.Hour)) + where
	}
	return skew.Round(time.Second).String() + where
}

// Stamp is what a record keeps about the clock when it was taken, beside
// its time (which is zero unless Synced). JSON names are those of
// results.jsonl.
type Stamp struct {
	// Synced says the record's time is a real date.
	Synced bool `json:"clock_synced"`
	// Source is where the time came from; empty in records written before
	// the clock was tracked.
	Source Source `json:"clock_source,omitempty"`
	// BootID and Boot place an unsynced record on the boot clock, so that
	// Correct can date it once the time is known in the same boot.
	BootID string        `json:"boot_id,omitempty"`
	Boot   time.Duration `json:"boot_time_ns,omitempty"`
}

// Stamp returns the time to record (zero unless Synced) and the stamp.
func (r Reading) Stamp() (time.Time, Stamp) {
	if r.Synced {
		return r.Estimate, Stamp{Synced: true, Source: r.Source}
	}
	return time.Time{}, Stamp{Source: SourceUnsynced, BootID: r.BootID, Boot: r.Boot}
}

// Correct dates s, a stamp taken before the time was known, now that it is:
// the trusted time now minus the boot clock's progress since s. ok is false
// when s needs no correction, or cannot have one now (the time is still
// unknown) or ever (s was taken in another boot: it stays unsynced and
// undated for good).
func (c *Clock) Correct(s Stamp) (time.Time, Stamp, bool) {
	if !c.Correctable(s) {
		return time.Time{}, s, false
	}
	r := c.Read()
	if !r.Synced {
		return time.Time{}, s, false
	}
	s.Synced, s.Source = true, SourceBootClock
	return r.Estimate.Add(-(r.Boot - s.Boot)), s, true
}

// Correctable reports whether s is undated but was taken in this boot, so
// that Correct can date it once the time is known.
func (c *Clock) Correctable(s Stamp) bool {
	return !s.Synced && s.BootID != "" && s.BootID == c.bootID
}
