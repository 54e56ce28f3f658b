package verify

import (
	"crypto/x509"
	"errors"
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

// clockFromTLS classifies err, a failure to reach the registry, as a clock
// problem when it is a certificate validity-period error ("expired or not
// yet valid") and the clock check was inconclusive (no response, so no
// Date header to compare with). A Pi that booted without RTC at its last
// saved time fails TLS this way before any HTTP exchange; calling it a
// transient network failure would hide the cause. With a Date seen and the
// clock plausible, the certificate really is out of its validity and err
// stays what it is. It returns nil when err is not such a case.
func clockFromTLS(err error, rec *dateRecorder, now time.Time) error {
	var inv x509.CertificateInvalidError
	if !errors.As(err, &inv) || inv.Reason != x509.Expired {
		return nil
	}
	rec.mu.Lock()
	conclusive := rec.skew != nil
	rec.mu.Unlock()
	if conclusive {
		return nil
	}
	detail := "the registry's certificate is not valid at this clock's time"
	if c := inv.Cert; c != nil {
		detail = fmt.Sprintf("the registry's certificate is valid from %s to %s, the clock reads %s",
			c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return fmt.Errorf("%w: %s (%w)", ErrClockUnsynced, detail, err)
}
