package netcheck

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	locatev2 "github.com/m-lab/locate/api/v2"

	"github.com/radarpod/radarpod/internal/httpclient"
)

// recorder collects the steps of one probe and keeps the first failure.
type recorder struct {
	host string
	port int

	mu        sync.Mutex
	steps     []StepResult
	failStep  string
	hint      string
	connected time.Time
}

// markConnected notes when the connection steps ended, so the request
// step's time is the exchange alone.
func (r *recorder) markConnected() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.connected = time.Now()
}

// since is the time since the connection was ready, or since start when it
// never was.
func (r *recorder) since(start time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.connected.After(start) {
		start = r.connected
	}
	return time.Since(start)
}

// do runs one step under its own timeout and records it. ctx is the
// probe's context: when it, not the step's timeout, is what ran out, the
// hint says so.
func (r *recorder) do(ctx context.Context, timeout time.Duration, name string, f func(context.Context) (string, error)) error {
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	detail, err := f(sctx)
	r.record(ctx, StepResult{Name: name, OK: err == nil, Duration: time.Since(start), Detail: detail}, err)
	return err
}

func (r *recorder) record(ctx context.Context, s StepResult, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		s.Error = err.Error()
	}
	r.steps = append(r.steps, s)
	if err == nil || r.failStep != "" {
		return
	}
	r.failStep = s.Name
	if expired(ctx) {
		r.hint = "not finished before the overall deadline of the check (" + s.Name + " step)"
		return
	}
	r.hint = hintFor(s.Name, r.host, r.port, err)
}

// expired reports whether ctx's deadline has come, even if its timer has
// not fired yet: an I/O deadline taken from ctx can expire first.
func expired(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

func (r *recorder) failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failStep != ""
}

func (r *recorder) result(res *ProbeResult, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil && r.failStep == "" {
		// A failure outside any step (it should not happen): never let it
		// pass as a success.
		r.failStep, r.hint = "check", err.Error()
	}
	res.Steps = slices.Clone(r.steps)
	res.OK = r.failStep == ""
	res.Step, res.Hint = r.failStep, r.hint
}

// run executes one probe that is not a discovery.
func (c *checker) run(ctx context.Context, p Probe) ProbeResult {
	if p.Kind == ProbeHTTP {
		res, _ := c.runHTTP(ctx, p)
		return res
	}
	res := ProbeResult{Kind: p.Kind, Target: target(p), group: p.group}
	if !c.acquire(ctx) {
		res.Step, res.Hint = StepDeadline, "not checked: the overall deadline of the check ran out"
		return res
	}
	defer c.release()
	start := time.Now()
	rec := &recorder{host: p.Host, port: p.Port}
	var err error
	switch p.Kind {
	case ProbeTCP:
		var conn net.Conn
		if conn, err = c.connect(ctx, rec, "https", p.Host, p.Port, p.Direct); err == nil {
			conn.Close()
		}
	case ProbeTLS:
		var conn net.Conn
		if conn, err = c.connect(ctx, rec, "https", p.Host, p.Port, p.Direct); err == nil {
			if conn, err = c.handshake(ctx, rec, conn, p.Host, p.CAFile); err == nil {
				conn.Close()
			}
		}
	default:
		err = fmt.Errorf("unknown probe kind %q", p.Kind)
	}
	rec.result(&res, err)
	res.Duration = time.Since(start)
	c.logProbe(res)
	return res
}

func (c *checker) logProbe(res ProbeResult) {
	c.log.Debug("network check probe", "target", res.Target, "ok", res.OK, "step", res.Step, "hint", res.Hint, "duration", res.Duration)
}

// connect opens a TCP connection to host:port: through the proxy the
// scheme's client would use, or resolved and dialed directly.
func (c *checker) connect(ctx context.Context, rec *recorder, scheme, host string, port int, direct bool) (net.Conn, error) {
	if !direct {
		req := &http.Request{URL: &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))}}
		pu, err := c.proxy(req)
		if err != nil {
			// Not the parser's message: it quotes the value, password and all.
			err = &hinted{hint: "HTTPS_PROXY / HTTP_PROXY is not a valid proxy URL (want http://[user:password@]host:port)", err: errors.New("invalid proxy URL")}
			rec.record(ctx, StepResult{Name: StepProxy}, err)
			return nil, err
		}
		if pu != nil {
			return c.viaProxy(ctx, rec, pu, host, port)
		}
	}
	addrs := []string{host}
	if net.ParseIP(host) == nil {
		err := rec.do(ctx, c.step, StepDNS, func(ctx context.Context) (string, error) {
			a, err := c.resolver.LookupHost(ctx, host)
			if err == nil && len(a) == 0 {
				err = &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
			}
			addrs = a
			return strings.Join(a, " "), err
		})
		if err != nil {
			return nil, err
		}
	}
	var conn net.Conn
	err := rec.do(ctx, c.step*time.Duration(min(len(addrs), 4)), StepTCP, func(ctx context.Context) (string, error) {
		var err error
		conn, err = c.dialAny(ctx, addrs, port)
		if err != nil {
			return "", err
		}
		return "connected to " + conn.RemoteAddr().String(), nil
	})
	return conn, err
}

// dialAny tries up to four addresses, each within one step timeout. When
// all fail, the IPv4 error speaks for them: an IPv6 address is often merely
// unroutable on a pod's network.
func (c *checker) dialAny(ctx context.Context, addrs []string, port int) (net.Conn, error) {
	var first, v4 error
	for _, a := range addrs[:min(len(addrs), 4)] {
		dctx, cancel := context.WithTimeout(ctx, c.step)
		conn, err := c.dialer.DialContext(dctx, "tcp", net.JoinHostPort(a, strconv.Itoa(port)))
		cancel()
		if err == nil {
			return conn, nil
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = &timeoutError{err: err}
		}
		if first == nil {
			first = err
		}
		if ip := net.ParseIP(a); v4 == nil && ip != nil && ip.To4() != nil {
			v4 = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if v4 != nil {
		return nil, v4
	}
	return nil, first
}

// viaProxy opens a tunnel to host:port with CONNECT, as Go's clients do
// for HTTPS through HTTPS_PROXY. DNS is then the proxy's business.
func (c *checker) viaProxy(ctx context.Context, rec *recorder, pu *url.URL, host string, port int) (net.Conn, error) {
	var conn net.Conn
	target := net.JoinHostPort(host, strconv.Itoa(port))
	proxyName := pu.Host // never the userinfo: it may hold a password
	err := rec.do(ctx, 2*c.step, StepProxy, func(ctx context.Context) (string, error) {
		pport := 80
		if pu.Scheme == "https" {
			pport = 443
		}
		if p, err := strconv.Atoi(pu.Port()); err == nil {
			pport = p
		}
		if pu.Scheme != "http" && pu.Scheme != "https" {
			return "", &hinted{hint: "unsupported proxy scheme " + strconv.Quote(pu.Scheme) + " (use http:// or https://)", err: errors.New("unsupported proxy scheme")}
		}
		addrs := []string{pu.Hostname()}
		if net.ParseIP(pu.Hostname()) == nil {
			a, err := c.resolver.LookupHost(ctx, pu.Hostname())
			if err != nil {
				return "", &hinted{hint: "proxy " + proxyName + ": " + hintFor(StepDNS, pu.Hostname(), pport, err), err: err}
			}
			addrs = a
		}
		raw, err := c.dialAny(ctx, addrs, pport)
		if err != nil {
			return "", &hinted{hint: "proxy " + proxyName + " unreachable: " + hintFor(StepTCP, pu.Hostname(), pport, err), err: err}
		}
		conn = raw
		if deadline, ok := ctx.Deadline(); ok {
			conn.SetDeadline(deadline)
		}
		if pu.Scheme == "https" {
			tc := tls.Client(raw, &tls.Config{ServerName: pu.Hostname(), RootCAs: c.roots, MinVersion: tls.VersionTLS12})
			if err := tc.HandshakeContext(ctx); err != nil {
				raw.Close()
				return "", &hinted{hint: "proxy " + proxyName + ": " + hintFor(StepTLS, pu.Hostname(), pport, err), err: err}
			}
			conn = tc
		}
		req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: target}, Host: target, Header: http.Header{}}
		if pu.User != nil {
			pw, _ := pu.User.Password()
			req.Header.Set("Proxy-Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(pu.User.Username()+":"+pw)))
		}
		if err := req.Write(conn); err != nil {
			conn.Close()
			return "", &hinted{hint: "proxy " + proxyName + " closed the connection: " + err.Error(), err: err}
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, req)
		if err != nil {
			conn.Close()
			if isTimeout(err) {
				return "", &hinted{hint: "proxy " + proxyName + " did not answer CONNECT (timeout)", err: err}
			}
			return "", &hinted{hint: "proxy " + proxyName + " did not answer CONNECT: " + err.Error(), err: err}
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			conn.Close()
			if resp.StatusCode == http.StatusProxyAuthRequired {
				return "", &hinted{hint: "proxy " + proxyName + " requires authentication (HTTP 407): put the credentials in HTTPS_PROXY", err: errors.New(resp.Status)}
			}
			return "", &hinted{hint: fmt.Sprintf("proxy %s refused CONNECT to %s: HTTP %s", proxyName, target, resp.Status), err: errors.New(resp.Status)}
		}
		conn.SetDeadline(time.Time{})
		if br.Buffered() > 0 {
			conn = &bufferedConn{Conn: conn, r: br}
		}
		return "CONNECT " + target + " via " + proxyName, nil
	})
	return conn, err
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// handshake runs TLS over conn and verifies the certificate for host.
func (c *checker) handshake(ctx context.Context, rec *recorder, conn net.Conn, host, caFile string) (*tls.Conn, error) {
	var tc *tls.Conn
	err := rec.do(ctx, c.step, StepTLS, func(ctx context.Context) (string, error) {
		roots, err := c.rootsFor(caFile)
		if err != nil {
			return "", &hinted{hint: "cannot use RADAR_NDT7_CA_FILE: " + err.Error(), err: err}
		}
		tc = tls.Client(conn, &tls.Config{ServerName: host, RootCAs: roots, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}})
		if err := tc.HandshakeContext(ctx); err != nil {
			return "", err
		}
		st := tc.ConnectionState()
		return fmt.Sprintf("%s, certificate for %s issued by %s", tls.VersionName(st.Version), host, issuerName(st.PeerCertificates[0].Issuer)), nil
	})
	if err != nil {
		conn.Close()
		return nil, err
	}
	return tc, nil
}

// exchangeTimeout bounds a request once connected.
func (c *checker) exchangeTimeout() time.Duration { return 3 * c.step }

// dialers returns the plain and TLS dial functions of an HTTP probe: each runs the recorded steps, then bounds the exchange that
// follows with a deadline on the connection.
func (c *checker) dialers(ctx context.Context, rec *recorder, p Probe) (plain, secure func(context.Context, string, string) (net.Conn, error)) {
	plain = func(context.Context, string, string) (net.Conn, error) {
		conn, err := c.connect(ctx, rec, "http", p.Host, p.Port, p.Direct)
		if err != nil {
			return nil, err
		}
		conn.SetDeadline(time.Now().Add(c.exchangeTimeout()))
		rec.markConnected()
		return conn, nil
	}
	secure = func(context.Context, string, string) (net.Conn, error) {
		conn, err := c.connect(ctx, rec, "https", p.Host, p.Port, p.Direct)
		if err != nil {
			return nil, err
		}
		tc, err := c.handshake(ctx, rec, conn, p.Host, p.CAFile)
		if err != nil {
			return nil, err
		}
		tc.SetDeadline(time.Now().Add(c.exchangeTimeout()))
		rec.markConnected()
		return tc, nil
	}
	return plain, secure
}

// runHTTP GETs p.URL and checks the status and, when asked, the body; it
// returns the body for the discovery probes.
func (c *checker) runHTTP(ctx context.Context, p Probe) (ProbeResult, []byte) {
	res := ProbeResult{Kind: p.Kind, Target: target(p), group: p.group}
	if !c.acquire(ctx) {
		res.Step, res.Hint = StepDeadline, "not checked: the overall deadline of the check ran out"
		return res, nil
	}
	defer c.release()
	start := time.Now()
	rec := &recorder{host: p.Host, port: p.Port}
	body, err := c.httpGet(ctx, rec, p)
	rec.result(&res, err)
	res.Duration = time.Since(start)
	c.logProbe(res)
	return res, body
}

func (c *checker) httpGet(ctx context.Context, rec *recorder, p Probe) ([]byte, error) {
	plain, secure := c.dialers(ctx, rec, p)
	tr := httpclient.Transport(httpclient.Options{})
	// The dialers above own proxying, DNS, TCP and TLS, so each is a step
	// of its own; the transport only speaks HTTP over what they return.
	tr.Proxy = nil
	tr.DialContext = plain
	tr.DialTLSContext = secure
	tr.ForceAttemptHTTP2 = false
	tr.DisableKeepAlives = true
	tr.ResponseHeaderTimeout = c.exchangeTimeout()
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport: tr,
		// A redirect is an answer worth reporting (a portal sends one),
		// not something to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", p.UserAgent)
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		if rec.failed() {
			return nil, err // a connection step already said what failed
		}
		rec.record(ctx, StepResult{Name: StepHTTP, Duration: rec.since(start)}, err)
		return nil, err
	}
	defer resp.Body.Close()
	maxBytes := p.MaxBytes
	if maxBytes <= 0 {
		maxBytes = 1 << 20
	}
	var body []byte
	switch p.Body {
	case BodyAnyContent, BodyAptRelease:
		// A prefix is enough: read what the cap allows and stop.
		body, err = io.ReadAll(io.LimitReader(resp.Body, maxBytes))
	default:
		body, err = httpclient.ReadLimited(resp.Body, maxBytes)
	}
	detail := "HTTP " + resp.Status
	location := resp.Header.Get("Location")
	if location != "" && isRedirect(resp.StatusCode) {
		detail += " to " + location
	}
	switch {
	case !statusOK(p.Expect, resp.StatusCode), p.Redirect != "" && isRedirect(resp.StatusCode) && !redirectsTo(resp, p):
		se := &statusError{code: resp.StatusCode, status: resp.Status, host: p.Host, location: location}
		if p.Redirect != "" {
			se.expected = "the redirect to " + p.Redirect + " that proves the service"
		}
		err = se
	case err != nil && errors.Is(err, httpclient.ErrTooLarge):
		err = &hinted{hint: fmt.Sprintf("HTTP %s from %s, but the body is larger than %d bytes (not the expected document)", resp.Status, p.Host, maxBytes), err: err}
	case err == nil:
		err = validateBody(p.Body, p.Host, body)
	}
	rec.record(ctx, StepResult{Name: StepHTTP, OK: err == nil, Duration: rec.since(start), Detail: detail}, err)
	return body, err
}

func isRedirect(code int) bool { return code >= 300 && code < 400 }

// redirectsTo reports whether resp's Location is p.Redirect on the host
// asked (the service builds it from the request's own host); the scheme
// and port are the service's business.
func redirectsTo(resp *http.Response, p Probe) bool {
	loc, err := resp.Location()
	return err == nil && strings.EqualFold(loc.Hostname(), p.Host) && loc.Path == p.Redirect
}

func statusOK(expect []int, code int) bool {
	if len(expect) == 0 {
		return code < 500
	}
	return slices.Contains(expect, code)
}

// validateBody tells the expected document from whatever a portal serves.
func validateBody(kind, host string, body []byte) error {
	bad := func(what string, err error) error {
		return &hinted{hint: "HTTP 200 from " + host + ", but the body is not " + what + " (a captive portal, a proxy, or the wrong URL?)", err: err}
	}
	switch kind {
	case BodyCRL:
		der := body
		if block, _ := pem.Decode(body); block != nil {
			if block.Type != "X509 CRL" {
				return bad("a CRL", fmt.Errorf("PEM block %q", block.Type))
			}
			der = block.Bytes
		}
		if _, err := x509.ParseRevocationList(der); err != nil {
			return bad("a CRL", err)
		}
	case BodyLocate:
		if _, err := parseLocate(body); err != nil {
			return bad("a locate answer", err)
		}
	case BodyAptRelease:
		if !bytes.HasPrefix(body, []byte("Origin:")) || !bytes.Contains(body, []byte("\nSuite:")) {
			return bad("an APT Release file", errors.New("no Origin and Suite fields"))
		}
	case BodyOoklaList:
		if hosts, err := parseOoklaList(body); err != nil || len(hosts) == 0 {
			if err == nil {
				err = errors.New("no server in the list")
			}
			return bad("an Ookla server list", err)
		}
	}
	return nil
}

func parseLocate(body []byte) (*locatev2.NearestResult, error) {
	var nr locatev2.NearestResult
	if err := json.Unmarshal(body, &nr); err != nil {
		return nil, fmt.Errorf("decode locate answer: %w", err)
	}
	if nr.Error != nil {
		return nil, fmt.Errorf("locate error: %s", nr.Error.Title)
	}
	if len(nr.Results) == 0 {
		return nil, errors.New("locate named no server")
	}
	return &nr, nil
}

// parseOoklaList reads the hosts of speedtest-servers-static.php:
// <settings><servers><server host="name:8080" url="http://..."/>...
func parseOoklaList(body []byte) ([]string, error) {
	var doc struct {
		Servers []struct {
			Host string `xml:"host,attr"`
			URL  string `xml:"url,attr"`
		} `xml:"servers>server"`
	}
	if err := xml.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("decode server list: %w", err)
	}
	var hosts []string
	for _, s := range doc.Servers {
		h := s.Host
		if hh, _, err := net.SplitHostPort(h); err == nil {
			h = hh
		}
		if h == "" {
			if u, err := url.Parse(s.URL); err == nil {
				h = u.Hostname()
			}
		}
		if h != "" {
			hosts = appendUnique(hosts, h)
		}
	}
	return hosts, nil
}

// hinted carries the hint for an error that the generic classification
// cannot phrase (a proxy's answer, a wrong body).
type hinted struct {
	hint string
	err  error
}

func (h *hinted) Error() string { return h.hint }
func (h *hinted) Unwrap() error { return h.err }

type statusError struct {
	code     int
	status   string
	host     string
	location string
	// expected names the answer that would have proved the service, when
	// a status alone does not say what went wrong.
	expected string
}

func (e *statusError) Error() string {
	s := "HTTP " + e.status + " from " + e.host
	switch {
	case isRedirect(e.code):
		s += " redirecting to " + e.location + " (a captive portal or a proxy?)"
	case e.code == http.StatusProxyAuthRequired:
		s += " (a proxy requires authentication)"
	case e.expected != "" && e.code < 500:
		s += ", not " + e.expected + " (a captive portal, a proxy, or not the service?)"
	}
	return s
}

type timeoutError struct{ err error }

func (e *timeoutError) Error() string   { return "i/o timeout: " + e.err.Error() }
func (e *timeoutError) Unwrap() error   { return e.err }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// hintFor turns a step's error into the sentence an installer acts on.
func hintFor(step, host string, port int, err error) string {
	var h *hinted
	if errors.As(err, &h) {
		return h.hint
	}
	switch step {
	case StepDNS:
		var de *net.DNSError
		switch {
		case errors.As(err, &de) && de.IsNotFound:
			return "DNS failed: no such host " + host
		case isTimeout(err):
			return "DNS failed: timed out resolving " + host + " (is a DNS server reachable on port 53?)"
		case errors.As(err, &de):
			return "DNS failed: " + de.Err + " resolving " + host
		}
		return "DNS failed: " + err.Error()
	case StepTCP:
		return tcpHint(port, err)
	case StepTLS:
		return tlsHint(host, port, err)
	case StepHTTP:
		var se *statusError
		switch {
		case errors.As(err, &se):
			return se.Error()
		case isTimeout(err):
			return fmt.Sprintf("no HTTP answer from %s in time after connecting (a middlebox holding the connection?)", host)
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
			return "connection to " + host + " closed before an HTTP answer (a firewall or proxy cut it)"
		}
		return "HTTP request to " + host + " failed: " + err.Error()
	}
	return err.Error()
}

func tcpHint(port int, err error) string {
	switch {
	case isTimeout(err):
		return fmt.Sprintf("port %d blocked or filtered (timeout)", port)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Sprintf("connection refused on port %d (nothing listening, or a firewall rejects it)", port)
	case errors.Is(err, syscall.EHOSTUNREACH):
		return fmt.Sprintf("no route to host on port %d (a firewall rejects it, or a route is missing)", port)
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable (no route: check the default gateway)"
	case errors.Is(err, syscall.ECONNRESET):
		return fmt.Sprintf("connection reset on port %d (a firewall rejects it)", port)
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return fmt.Sprintf("port %d blocked by a local firewall rule (operation not permitted)", port)
	}
	return fmt.Sprintf("TCP connect to port %d failed: %v", port, err)
}

func tlsHint(host string, port int, err error) string {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var rh tls.RecordHeaderError
	var alert tls.AlertError
	switch {
	case errors.As(err, &ua) && ua.Cert != nil:
		return "TLS intercepted: certificate issued by " + issuerName(ua.Cert.Issuer) + ", not a trusted CA (a TLS-inspecting proxy or a captive portal?)"
	case errors.As(err, &he) && he.Certificate != nil:
		return fmt.Sprintf("TLS intercepted or misrouted: the certificate is for %s (issued by %s), not %s",
			certNames(he.Certificate), issuerName(he.Certificate.Issuer), host)
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		return fmt.Sprintf("certificate of %s not valid now (valid %s to %s; this pod's clock says %s): check the clock, or a proxy serves a stale certificate",
			host, ci.Cert.NotBefore.UTC().Format(time.DateOnly), ci.Cert.NotAfter.UTC().Format(time.DateOnly), time.Now().UTC().Format(time.DateTime))
	case errors.As(err, &ci):
		return "certificate of " + host + " rejected: " + ci.Error()
	case errors.As(err, &rh):
		return fmt.Sprintf("port %d of %s did not answer with TLS (plain HTTP?): a captive portal or a transparent proxy", port, host)
	case errors.As(err, &alert):
		return "TLS refused by " + host + ": " + alert.Error()
	case isTimeout(err):
		return "TLS handshake with " + host + " timed out: the connection was accepted but no certificate came back (a middlebox holding it?)"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return "connection closed during the TLS handshake with " + host + " (a firewall or proxy filtering TLS by server name?)"
	}
	return "TLS handshake with " + host + " failed: " + err.Error()
}

// issuerName prefers the CN: it is what an administrator recognises
// ("Fortinet SSL Inspection CA").
func issuerName(n pkix.Name) string {
	if n.CommonName != "" {
		return strconv.Quote(n.CommonName)
	}
	return strconv.Quote(n.String())
}

func certNames(c *x509.Certificate) string {
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		names = []string{c.Subject.CommonName}
	}
	return strings.Join(names, ", ")
}
