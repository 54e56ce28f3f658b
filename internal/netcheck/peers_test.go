package netcheck

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/radarpod/radarpod/internal/tlstest"
	"golang.org/x/net/dns/dnsmessage"
)

// testCA issues certificates for the loopback servers.
type testCA struct {
	*tlstest.CA
	pemPath string
}

func newCA(t testing.TB, name string) *testCA {
	t.Helper()
	ca, err := tlstest.NewCA(name)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, ca.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return &testCA{CA: ca, pemPath: path}
}

func (ca *testCA) pool() *x509.CertPool { return ca.Pool }

// issue returns a server certificate for names (DNS names or IPs).
func (ca *testCA) issue(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	cert, err := ca.Issue(names...)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// crlPEM is a real CRL signed by the CA, as the updater fetches it.
func (ca *testCA) crlPEM(t testing.TB) []byte {
	t.Helper()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number: big.NewInt(7), ThisUpdate: time.Now().Add(-time.Hour), NextUpdate: time.Now().Add(24 * time.Hour),
	}, ca.Cert, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// dnsServer is a real DNS server over UDP: known names get an A record,
// unknown ones NXDOMAIN, silent ones no answer at all.
type dnsServer struct {
	addr string

	mu     sync.Mutex
	names  map[string]string
	silent map[string]bool
}

func startDNS(t testing.TB, ip string) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	s := &dnsServer{addr: pc.LocalAddr().String(), names: map[string]string{}, silent: map[string]bool{}}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if msg := s.answer(buf[:n]); msg != nil {
				pc.WriteTo(msg, from)
			}
		}
	}()
	return s
}

func (s *dnsServer) set(ip string, names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		s.names[strings.ToLower(n)+"."] = ip
	}
}

func (s *dnsServer) hush(names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		s.silent[strings.ToLower(n)+"."] = true
	}
}

func (s *dnsServer) answer(req []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(req)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	name := strings.ToLower(q.Name.String())
	s.mu.Lock()
	ip, known := s.names[name]
	silent := s.silent[name]
	s.mu.Unlock()
	if silent {
		return nil
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	if !known {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	if known && q.Type == dnsmessage.TypeA {
		var a [4]byte
		copy(a[:], net.ParseIP(ip).To4())
		b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET, TTL: 5}, dnsmessage.AResource{A: a})
	}
	msg, err := b.Finish()
	if err != nil {
		return nil
	}
	return msg
}

// resolverFor is Go's own resolver, talking to the DNS server at addr.
func resolverFor(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
}

// mapDialer sends connections for the fixed ports of the real world (443,
// 80, 8080, 5060) to the dynamic ports of the test servers.
type mapDialer struct {
	routes map[string]string
	d      net.Dialer
}

func (m *mapDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if to, ok := m.routes[addr]; ok {
		addr = to
	}
	return m.d.DialContext(ctx, network, addr)
}

// world is a complete set of real peers for every row, listening on ip.
type world struct {
	t  testing.TB
	ip string
	ca *testCA

	dns    *dnsServer
	routes map[string]string
	env    map[string]string
	reqOpt []Option

	locateURL, ooklaListURL string

	// ports of the servers, by role, to block or break in tests.
	port map[string]int

	mu       sync.Mutex
	requests []string // "host path" seen by the HTTP servers
}

const (
	roleOokla8080 = "ookla-8080"
	roleOokla5060 = "ookla-5060"
)

func newWorld(t testing.TB, ip string) *world {
	t.Helper()
	w := &world{t: t, ip: ip, ca: newCA(t, "Radar Test Root CA"), routes: map[string]string{}, port: map[string]int{}}
	w.dns = startDNS(t, ip)
	w.dns.set(ip, "pods.test", "sentry.test", "locate.test", "ndt1.test", "speedtest-list.test", "www.speedtest.net",
		"ookla1.test", "ookla2.test", "crl.test", "registry.test", "deb.debian.org", "security.debian.org", "archive.raspberrypi.org")

	w.port["pods"] = w.serveTLS("pods.test", podsHandler(t))
	w.port["sentry"] = w.serveTLS("sentry.test", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		// Sentry refuses a GET of the envelope endpoint.
		http.Error(rw, "method not allowed", http.StatusMethodNotAllowed)
	}))
	ndt7wss := w.serveTLS("ndt1.test", http.NotFoundHandler())
	ndt7ws := w.servePlain(http.NotFoundHandler())
	w.port["ndt7-wss"], w.port["ndt7-ws"] = ndt7wss, ndt7ws
	w.port["locate"] = w.serveTLS("locate.test", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/nearest/ndt/ndt7" {
			http.NotFound(rw, r)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		// The first server is gone: the client moves on to the next, and
		// so does the check.
		fmt.Fprintf(rw, `{"results":[
 {"machine":"mlab1-gone01","urls":{"wss:///ndt/v7/download":"wss://ndt-gone.test/ndt/v7/download?access_token=a","ws:///ndt/v7/download":"ws://ndt-gone.test/ndt/v7/download?access_token=a"}},
 {"machine":"mlab1-test01","urls":{"wss:///ndt/v7/download":"wss://ndt1.test:%d/ndt/v7/download?access_token=b","ws:///ndt/v7/download":"ws://ndt1.test:%d/ndt/v7/download?access_token=b","wss:///ndt/v7/upload":"wss://ndt1.test:%d/ndt/v7/upload?access_token=c"}}]}`,
			ndt7wss, ndt7ws, ndt7wss)
	}))
	w.port["ookla-list"] = w.serveTLS("speedtest-list.test", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/xml")
		io.WriteString(rw, `<?xml version="1.0" encoding="UTF-8"?>
<settings><servers>
<server url="http://ookla1.test:8080/speedtest/upload.php" lat="1" lon="2" name="One" country="Testland" cc="TL" sponsor="Test One" id="1" host="ookla1.test:8080" />
<server url="http://ookla2.test:8080/speedtest/upload.php" lat="1" lon="2" name="Two" country="Testland" cc="TL" sponsor="Test Two" id="2" host="ookla2.test:8080" />
</servers></settings>`)
	}))
	w.route(443, w.serveTLS("www.speedtest.net", http.NotFoundHandler()))
	w.port[roleOokla8080] = w.route(8080, w.listenTCP())
	w.port[roleOokla5060] = w.route(5060, w.listenTCP())
	crl := w.ca.crlPEM(t)
	w.port["crl"] = w.serveTLS("crl.test", http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Write(crl)
	}))
	w.port["registry"] = w.serveTLS("registry.test", registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	w.port["apt"] = w.route(80, w.servePlain(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		// An APT cache: Release files only, no directory listings.
		suite, ok := map[string]string{
			"/debian/dists/stable/Release":                   "stable",
			"/debian-security/dists/stable-security/Release": "stable-security",
			"/debian/dists/bookworm/Release":                 "bookworm",
		}[r.URL.Path]
		if !ok {
			http.NotFound(rw, r)
			return
		}
		fmt.Fprintf(rw, "Origin: Debian\nLabel: Debian\nSuite: %s\nCodename: %s\n%s", suite, suite, strings.Repeat("SHA256:\n 0123456789abcdef 1234 main/binary-arm64/Packages\n", 400))
	})))

	w.locateURL = fmt.Sprintf("https://locate.test:%d/v2/nearest/", w.port["locate"])
	w.ooklaListURL = fmt.Sprintf("https://speedtest-list.test:%d/speedtest-servers-static.php", w.port["ookla-list"])
	w.env = map[string]string{
		"RADAR_SERVER_URL":   fmt.Sprintf("https://pods.test:%d", w.port["pods"]),
		"SENTRY_DSN":         fmt.Sprintf("https://sentrykey0123456789@sentry.test:%d/42", w.port["sentry"]),
		"RADAR_TESTS":        "ndt7,ookla",
		"RADAR_NDT7_SCHEME":  "wss",
		"RADAR_OOKLA_BIN":    filepath.Join(t.TempDir(), "no-speedtest-here"),
		"RADAR_CRL_URL":      fmt.Sprintf("https://crl.test:%d/radar/rootCRL.crl.pem", w.port["crl"]),
		"RADAR_AGENT_IMAGE":  fmt.Sprintf("registry.test:%d/radarpod/radar-agent", w.port["registry"]),
		"RADAR_ROOT_CA_FILE": "/nonexistent/root-ca.pem", // not needed by the check
	}
	return w
}

func (w *world) record(r *http.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.requests = append(w.requests, r.Host+" "+r.URL.RequestURI())
}

func (w *world) seen() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.requests...)
}

func (w *world) listen() net.Listener {
	l, err := net.Listen("tcp", net.JoinHostPort(w.ip, "0"))
	if err != nil {
		w.t.Fatal(err)
	}
	return l
}

func (w *world) recording(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.record(r)
		h.ServeHTTP(rw, r)
	})
}

// serveTLS starts an HTTPS server with a certificate for name from the
// world's CA and returns its port.
func (w *world) serveTLS(name string, h http.Handler) int {
	return w.serveTLSCert(w.ca.issue(w.t, name), h)
}

func (w *world) serveTLSCert(cert tls.Certificate, h http.Handler) int {
	s := httptest.NewUnstartedServer(w.recording(h))
	s.Listener.Close()
	s.Listener = w.listen()
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are the point
	s.StartTLS()
	w.t.Cleanup(s.Close)
	return s.Listener.Addr().(*net.TCPAddr).Port
}

func (w *world) servePlain(h http.Handler) int {
	s := httptest.NewUnstartedServer(w.recording(h))
	s.Listener.Close()
	s.Listener = w.listen()
	s.Start()
	w.t.Cleanup(s.Close)
	return s.Listener.Addr().(*net.TCPAddr).Port
}

// listenTCP accepts connections and closes them, as far as a TCP check
// can tell a test server.
func (w *world) listenTCP() int {
	l := w.listen()
	w.t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// hang accepts connections and never says a word (a middlebox holding
// them).
func (w *world) hang() int {
	l := w.listen()
	var mu sync.Mutex
	var conns []net.Conn
	w.t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

// closedPort is a port nothing listens on.
func (w *world) closedPort() int {
	l := w.listen()
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// route makes connections to the world's IP on a fixed port reach port.
func (w *world) route(fixed, port int) int {
	w.routes[net.JoinHostPort(w.ip, fmt.Sprint(fixed))] = net.JoinHostPort(w.ip, fmt.Sprint(port))
	return port
}

func (w *world) options(step time.Duration) CheckOptions {
	return CheckOptions{
		Resolver:    resolverFor(w.dns.addr),
		Dialer:      &mapDialer{routes: w.routes},
		RootCAs:     w.ca.pool(),
		StepTimeout: step,
	}
}

func (w *world) reqOptions() []Option {
	return append([]Option{WithLocateURL(w.locateURL), WithOoklaServerList(w.ooklaListURL)}, w.reqOpt...)
}

// run is check-network against the world, as the command runs it.
func (w *world) run(t testing.TB, args ...string) (int, Report, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	args = append([]string{"--format", "json", "--timeout", "60s"}, args...)
	code := checkCommand(context.Background(), args, w.env, &stdout, &stderr, w.options(3*time.Second), w.reqOptions()...)
	return code, decodeReport(t, stdout.Bytes(), stderr.String()), stderr.String()
}

// decodeReport reads the JSON report back into the Go types.
func decodeReport(t testing.TB, out []byte, stderr string) Report {
	t.Helper()
	var r Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("check-network output is not a JSON report: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr)
	}
	return r
}

// podsHandler is the pods service as the check meets it: its root
// redirects to the sign-in page on the host asked, as the real service's
// route does. The check must never look like a pod to it: a pod's user
// agent, credentials, the pod's headers or a WebSocket upgrade fail the
// test, since the service logs such a request as a pod failing to log in.
func podsHandler(t testing.TB) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.UserAgent(), "RadarPods") || r.Header.Get("Authorization") != "" ||
			r.Header.Get("Sec-Radar-Tool") != "" || r.Header.Get("Sec-Radar-Service-Started") != "" ||
			r.Header.Get("Upgrade") != "" || r.URL.Path == "/api/v1/clients/ws" {
			t.Errorf("the network check spoke to the pods service as a pod: %s %s %v", r.Method, r.URL, r.Header)
		}
		if r.Method != http.MethodGet || r.URL.Path != "/" {
			http.NotFound(rw, r)
			return
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		rw.Header().Set("Location", scheme+"://"+r.Host+"/users/sign_in")
		rw.Header().Set("Content-Type", "text/html")
		rw.WriteHeader(http.StatusMovedPermanently)
	})
}

// rowsByID indexes a report.
func rowsByID(r Report) map[string]RowResult {
	m := map[string]RowResult{}
	for _, row := range r.Rows {
		m[row.ID] = row
	}
	return m
}

func failedIDs(r Report) []string {
	var ids []string
	for _, row := range r.Rows {
		if row.Verdict != Pass {
			ids = append(ids, row.ID)
		}
	}
	return ids
}
