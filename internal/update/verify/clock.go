package verify

import (
	"fmt"
	"net/http"
	"sync"
	"time"
)

// MaxClockSkew is how far the wall clock may be from a server's Date header
// before the verifier stops deciding anything. A Pi without RTC boots in
// 1970 or at its last saved time; NTP brings it within seconds, so minutes
// of difference mean it has not synced yet.
const MaxClockSkew = 5 * time.Minute

// dateRecorder wraps a transport and remembers how far the local clock was
// from the Date header of the latest response, measured when it arrived.
type dateRecorder struct {
	next http.RoundTripper
	now  func() time.Time

	mu   sync.Mutex
	skew *time.Duration
}

func (d *dateRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := d.next.RoundTrip(r)
	if err != nil {
		return resp, err
	}
	if date, perr := http.ParseTime(resp.Header.Get("Date")); perr == nil {
		s := d.now().Sub(date)
		d.mu.Lock()
		d.skew = &s
		d.mu.Unlock()
	}
	return resp, nil
}

// check returns ErrClockUnsynced when the last response's Date was too far
// from the local clock; no Date at all decides nothing.
func (d *dateRecorder) check(server string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.skew == nil {
		return nil
	}
	if s := *d.skew; s > MaxClockSkew || s < -MaxClockSkew {
		return fmt.Errorf("%w: clock is %v off the Date of %s", ErrClockUnsynced, s.Round(time.Second), server)
	}
	return nil
}

// withDateRecorder returns a copy of c whose transport records Date headers.
func withDateRecorder(c *http.Client, now func() time.Time) (*http.Client, *dateRecorder) {
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	rec := &dateRecorder{next: next, now: now}
	cc := *c
	cc.Transport = rec
	return &cc, rec
}
