// Package httpclient owns the one way the pod makes HTTP clients: bounded
// timeouts at every stage, the proxy from the environment (HTTPS_PROXY), a
// fixed User-Agent, optional extra roots and a bound local address, the
// Date of every answer reported to the process's wallclock, and a reader
// that refuses oversized bodies.
package httpclient

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/radarpod/radarpod/internal/wallclock"
)

// Options tune a client. The zero value is a sensible client.
type Options struct {
	// UserAgent is set on every request that has none.
	UserAgent string
	// Timeout bounds a whole request including reading the body; 0 means
	// 60 s. Streaming callers pass a negative value for no overall limit and
	// rely on their context.
	Timeout time.Duration
	// RootCAs replaces the system roots when set.
	RootCAs *x509.CertPool
	// LocalAddr binds outgoing connections (testing one interface of several).
	LocalAddr net.IP
	// Clock, when set, learns the time from the Date header of every
	// response (see ObserveDates), and certificates are checked at its best
	// estimate of the time, never before the build time
	// (wallclock.Clock.TLSTime), instead of at the system clock: a pod that
	// booted at 1970 still reaches the pods service and learns the time
	// from its answers. Only the agent's client for the pods service sets
	// it; the updater judges certificates by the system clock it has
	// checked, and only observes Dates.
	Clock *wallclock.Clock
}

// Dialer is the dialer behind every client: a connect timeout, keep-alives,
// and the optional bound source address.
func Dialer(localAddr net.IP) *net.Dialer {
	d := &net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}
	if localAddr != nil {
		d.LocalAddr = &net.TCPAddr{IP: localAddr}
	}
	return d
}

// Transport builds the transport behind New, for callers that need to wrap it.
func Transport(o Options) *http.Transport {
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           Dialer(o.LocalAddr).DialContext,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          4,
		ForceAttemptHTTP2:     true,
	}
	if o.RootCAs != nil || o.Clock != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12}
	}
	if o.Clock != nil {
		t.TLSClientConfig.Time = o.Clock.TLSTime
	}
	return t
}

// New returns a client configured by o.
func New(o Options) *http.Client {
	timeout := o.Timeout
	switch {
	case timeout == 0:
		timeout = 60 * time.Second
	case timeout < 0:
		timeout = 0
	}
	var rt http.RoundTripper = Transport(o)
	if o.UserAgent != "" {
		rt = userAgent{ua: o.UserAgent, next: rt}
	}
	c := &http.Client{Transport: rt, Timeout: timeout}
	if o.Clock != nil {
		c = ObserveDates(c, o.Clock)
	}
	return c
}

// ObserveDates returns a copy of c that reports the Date header of every
// response (any status) to clock: a pod without RTC learns the time from
// the servers it talks to (wallclock.Clock.ObserveResponse).
func ObserveDates(c *http.Client, clock *wallclock.Clock) *http.Client {
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	cc := *c
	cc.Transport = dateObserver{clock: clock, next: next}
	return &cc
}

type dateObserver struct {
	clock *wallclock.Clock
	next  http.RoundTripper
}

func (d dateObserver) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := d.next.RoundTrip(r)
	if err == nil {
		d.clock.ObserveResponse(resp)
	}
	return resp, err
}

type userAgent struct {
	ua   string
	next http.RoundTripper
}

func (u userAgent) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("User-Agent") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("User-Agent", u.ua)
	}
	return u.next.RoundTrip(r)
}

// ErrTooLarge is returned by ReadLimited when a body exceeds its cap.
var ErrTooLarge = errors.New("body exceeds size limit")

// ReadLimited reads at most max bytes from r and fails with ErrTooLarge if
// there is more, so a hostile or broken peer cannot exhaust a Pi's memory.
func ReadLimited(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w (%d bytes)", ErrTooLarge, max)
	}
	return b, nil
}

// LoadCertPool reads a PEM bundle and returns the system roots plus its
// certificates, for private servers with their own CA.
func LoadCertPool(pemBytes []byte) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, errors.New("no PEM certificate found")
	}
	return pool, nil
}
