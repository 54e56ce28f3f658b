// Package httpclient owns the one way the pod makes HTTP clients: bounded
// timeouts at every stage, the proxy from the environment (HTTPS_PROXY), a
// fixed User-Agent, optional extra roots and a bound local address, and a
// reader that refuses oversized bodies.
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
	if o.RootCAs != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: o.RootCAs, MinVersion: tls.VersionTLS12}
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
	return &http.Client{Transport: rt, Timeout: timeout}
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
