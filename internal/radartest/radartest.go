// Package radartest is a strict double of the Radar pods service: the
// registration, status, measurement and ActionCable endpoints of
// docs/radar-protocol.md on a real loopback listener (HTTP or HTTPS,
// WebSocket), plus the one page of the service's web site a network check
// asks for (GET /, a 301 to the sign-in page). It answers the way the
// service does — including its odd answers to wrong requests (500 for a
// status call without the JSON Accept header, 302 for such an upload, 404
// for a wrong client_secret) — records every departure from the protocol
// as a Violation (any channel upgrade without the pod's credentials is
// one: the service logs it as a pod failing to log in), parses uploads the way
// the service parses them, and lets a test drive the service side (request
// tests, announce versions, drop the channel, inject faults).
//
// It needs no *testing.T: agent end-to-end tests use Start, and a
// development server can use New and Close.
package radartest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/radarpod/radarpod/internal/buildinfo"
	"github.com/radarpod/radarpod/internal/httpclient"
	"github.com/radarpod/radarpod/internal/radar"
	"github.com/radarpod/radarpod/internal/tlstest"
)

// Options configure a Server.
type Options struct {
	// TLS serves HTTPS and wss with a fresh self-signed certificate (see
	// CertPool, CACertPEM).
	TLS bool
	// Addr is the listen address; default "127.0.0.1:0".
	Addr string
	// PingInterval is the ActionCable ping period; default 3s as the
	// service's.
	PingInterval time.Duration
	// PongTimeout is how long a ping to a subscribed pod may stay without
	// a pong before it is a violation; default the larger of 10s and five
	// ping intervals.
	PongTimeout time.Duration
	// Logger receives the double's own log; default discards.
	Logger *slog.Logger
	// AllowViolations stops Start's cleanup from failing the test on
	// recorded violations (fault tests that send wrong requests on purpose).
	AllowViolations bool
}

// Violation is one departure from the protocol by the pod.
type Violation struct {
	Time time.Time
	// Endpoint is "register", "status", "upload", "cable" or "http".
	Endpoint string
	Detail   string
}

func (v Violation) String() string { return v.Endpoint + ": " + v.Detail }

// Registration is one POST /api/v1/clients.
type Registration struct {
	Time     time.Time
	ID       int64
	UnixUser string
	Secret   string
	// Token is the registration_token the service kept: empty when null,
	// or when TokenDropped (a non-JSON Content-Type hides the body).
	Token         string
	TokenDropped  bool
	Name          *string
	RegisterLabel *string
	Header        http.Header
	Raw           []byte
}

// StatusCall is one POST /clients/<unix_user>/status that passed the
// Accept and credential checks.
type StatusCall struct {
	Time     time.Time
	UnixUser string
	// ServiceFirstPing is the raw JSON value sent (`"true"`, `"false"`, or
	// something wrong like `true`).
	ServiceFirstPing  string
	Version           string
	NetworkInterfaces []radar.NetInterface
	Header            http.Header
	Raw               []byte
}

// FirstPing reports what the service understood: only the string "true"
// counts.
func (c StatusCall) FirstPing() bool { return c.ServiceFirstPing == `"true"` }

// Measurement is a stored upload, parsed the way the service parses it.
type Measurement struct {
	Time           time.Time
	Seq            int
	UnixUser       string
	Style          string
	Interface      string
	Wireless       bool
	ConnectionInfo json.RawMessage
	Filename       string
	Raw            []byte
	// NDT7 or Ookla is set by Style; ParseErr says why neither is (the
	// service stores the upload and fails later in its job).
	NDT7     *NDT7Result
	Ookla    *OoklaResult
	ParseErr error
}

// UploadAttempt is every POST to the measurements endpoint, stored or not.
type UploadAttempt struct {
	Time     time.Time
	N        int
	UnixUser string
	// RemoteAddr is the client's end of the connection: attempts from the
	// same address reused one connection.
	RemoteAddr string
	Status     int
	// Fault is true when a responder decided the answer.
	Fault bool
	// Stored is true when the measurement was recorded.
	Stored bool
}

// Connection is one WebSocket upgrade attempt.
type Connection struct {
	ID     int
	Time   time.Time
	Header http.Header
	// ServiceStarted is Sec-Radar-Service-Started as sent.
	ServiceStarted string
	// UnixUser is the authenticated pod ("" when refused).
	UnixUser string
	// Status is 101 for an upgrade, else the HTTP status answered.
	Status int
	// Refused is "unauthorized" when the service closed the socket for
	// credentials, else empty.
	Refused string
}

// Visit is one request for the service's web site rather than its pods
// API: GET / (answered, as the service does, with a 301 to the sign-in
// page). A network check asks it to prove the service answers; a pod's
// own traffic never does.
type Visit struct {
	Time   time.Time
	Method string
	Path   string
	Header http.Header
}

// Sync is one sync action.
type Sync struct {
	Time     time.Time
	Conn     int
	UnixUser string
	Payload  radar.SyncPayload
	Raw      json.RawMessage
}

// Action is any channel action other than sync and pong.
type Action struct {
	Time   time.Time
	Conn   int
	Action string
	Data   string
}

// Endpoint names an HTTP endpoint for fault injection.
type Endpoint string

// Endpoints that take a responder.
const (
	EndpointRegister Endpoint = "register"
	EndpointStatus   Endpoint = "status"
	EndpointUpload   Endpoint = "upload"
	// EndpointCable is the channel's upgrade: a responder answers it with
	// Status, Header and Body instead of upgrading (a proxy in front of
	// the service throttling, or the service unavailable); Delay, Drip,
	// Filler and AfterHandling do not apply to it.
	EndpointCable Endpoint = "cable"
)

// Reply overrides how the server answers one request (fault injection).
// The zero Reply answers normally.
type Reply struct {
	// Delay waits before handling; a client that gives up ends it early
	// and nothing is recorded as handled.
	Delay time.Duration
	// Status answers with this code instead of handling the request.
	Status int
	// Body is sent with Status (default: a short text).
	Body []byte
	// Header is added to the answer sent with Status, e.g. Retry-After
	// with a 429 or 503 (as the service, or a proxy in front of it, sends).
	Header http.Header
	// Filler sends this many bytes of filler as the body instead (huge
	// bodies: clients must bound what they read).
	Filler int64
	// Drip sends the body one byte per Drip (slow-drip: clients must time
	// out).
	Drip time.Duration
	// Hangup closes the connection without an answer.
	Hangup bool
	// AfterHandling handles the request normally (the upload is stored, the
	// pod registered) and only then answers with Status/Body: a lost 201.
	AfterHandling bool
}

func (r Reply) active() bool {
	return r.Status != 0 || r.Filler > 0 || r.Hangup || r.Drip > 0 || len(r.Body) > 0
}

type pod struct {
	id          int64
	unixUser    string
	secret      string
	token       string
	name, label *string
	accountID   *int64
	pingedAt    *string
	createdAt   string
}

type update struct{ version, url string }

// Server is a running pods service double.
type Server struct {
	// URL is the base URL of the service (http:// or https://).
	URL string

	opts     Options
	log      *slog.Logger
	ln       net.Listener
	srv      *http.Server
	certPEM  []byte
	pool     *x509.CertPool
	upgrader websocket.Upgrader
	wg       sync.WaitGroup
	closing  chan struct{}
	once     sync.Once

	mu            sync.Mutex
	changed       chan struct{}
	nextPodID     int64
	pods          map[string]*pod
	conns         map[int]*wsConn
	nextConn      int
	violations    []Violation
	registrations []Registration
	statusCalls   []StatusCall
	measurements  []Measurement
	attempts      []UploadAttempt
	connections   []Connection
	visits        []Visit
	syncs         []Sync
	pongs         []Action
	actions       []Action
	counts        map[Endpoint]int
	responders    map[Endpoint]func(int) Reply
	pendingTest   bool
	pendingIfaces []string
	pendingUpdate *update
	channelDown   bool
	stopPinging   bool
	rejectSubs    bool
}

// New starts a server.
func New(o Options) (*Server, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:0"
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 3 * time.Second
	}
	if o.PongTimeout <= 0 {
		o.PongTimeout = max(10*time.Second, 5*o.PingInterval)
	}
	s := &Server{
		opts:       o,
		log:        o.Logger,
		closing:    make(chan struct{}),
		changed:    make(chan struct{}),
		nextPodID:  1000,
		pods:       map[string]*pod{},
		conns:      map[int]*wsConn{},
		counts:     map[Endpoint]int{},
		responders: map[Endpoint]func(int) Reply{},
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "radartest")
	// The service checks the origin itself (Sec-Radar-Tool), as does this
	// double; gorilla's same-origin check would get in the way.
	s.upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("radartest: listen: %w", err)
	}
	s.ln = ln
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "http"
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/clients", s.handleRegister)
	mux.HandleFunc("POST /clients/{unix_user}/status", s.handleStatus)
	mux.HandleFunc("POST /clients/{unix_user}/measurements", s.handleUpload)
	mux.HandleFunc("/api/v1/clients/ws", s.handleCable)
	mux.HandleFunc("GET /{$}", s.handleRoot)
	mux.HandleFunc("/", s.handleUnknown)
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          nil,
		// HTTP/1.1 only: hijacking (WebSocket, hang-up faults) needs it.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
	}
	if o.TLS {
		ca, err := tlstest.NewCA("radartest pods service CA")
		var cert tls.Certificate
		if err == nil {
			cert, err = ca.Issue(append([]string{host}, tlstest.LoopbackHosts...)...)
		}
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("radartest: certificate: %w", err)
		}
		s.certPEM, s.pool = ca.PEM, ca.Pool
		s.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		scheme = "https"
	}
	s.URL = scheme + "://" + net.JoinHostPort(host, port)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var err error
		if o.TLS {
			err = s.srv.ServeTLS(ln, "", "")
		} else {
			err = s.srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serve", "err", err)
		}
	}()
	s.log.Info("pods service double listening", "url", s.URL)
	return s, nil
}

// Start runs a server for the duration of a test. Cleanup closes it and,
// unless o.AllowViolations, fails the test for every protocol violation
// recorded.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		if o.AllowViolations {
			return
		}
		for _, v := range s.Violations() {
			t.Errorf("pods service protocol violation: %s", v)
		}
	})
	return s
}

// Close stops the listener and every channel connection and waits for the
// server's goroutines.
func (s *Server) Close() {
	s.once.Do(func() {
		close(s.closing)
		s.srv.Close()
		s.mu.Lock()
		conns := make([]*wsConn, 0, len(s.conns))
		for _, c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		for _, c := range conns {
			c.conn.Close()
		}
		s.wg.Wait()
	})
}

// CableURL is the ActionCable endpoint (ws:// or wss://).
func (s *Server) CableURL() string {
	u, _ := radar.CableURL(s.URL)
	return u
}

// CertPool trusts the server's certificate (nil without TLS).
func (s *Server) CertPool() *x509.CertPool { return s.pool }

// CACertPEM is the server's certificate in PEM (nil without TLS), for
// processes that take a CA file (e.g. SSL_CERT_FILE).
func (s *Server) CACertPEM() []byte { return s.certPEM }

// HTTPClient is the client an agent would build (httpclient.New, agent
// User-Agent), trusting this server.
func (s *Server) HTTPClient() *http.Client {
	return httpclient.New(httpclient.Options{UserAgent: buildinfo.AgentUserAgent(), Timeout: 30 * time.Second, RootCAs: s.pool})
}

// Dialer is a WebSocket dialer trusting this server.
func (s *Server) Dialer() *websocket.Dialer {
	d := &websocket.Dialer{HandshakeTimeout: 30 * time.Second, NetDialContext: httpclient.Dialer(nil).DialContext}
	if s.pool != nil {
		d.TLSClientConfig = &tls.Config{RootCAs: s.pool, MinVersion: tls.VersionTLS12}
	}
	return d
}

// AddPod makes the service know a pod registered earlier (a test that
// starts the agent with an existing identity file).
func (s *Server) AddPod(unixUser, secret string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.newPodLocked(unixUser, secret)
	return p.id
}

func (s *Server) newPodLocked(unixUser, secret string) *pod {
	s.nextPodID++
	p := &pod{id: s.nextPodID, unixUser: unixUser, secret: secret, createdAt: time.Now().UTC().Format(time.RFC3339)}
	s.pods[unixUser] = p
	return p
}

// --- recording -----------------------------------------------------------

// notifyLocked wakes Wait callers; s.mu must be held.
func (s *Server) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) violation(endpoint, format string, args ...any) {
	s.violationsOf(endpoint, []string{fmt.Sprintf(format, args...)})
}

// violationsOf records the problems of one message at once, so a Wait for
// the first of them sees them all.
func (s *Server) violationsOf(endpoint string, details []string) {
	if len(details) == 0 {
		return
	}
	now := time.Now()
	for _, d := range details {
		s.log.Warn("protocol violation", "endpoint", endpoint, "detail", d)
	}
	s.mu.Lock()
	for _, d := range details {
		s.violations = append(s.violations, Violation{Time: now, Endpoint: endpoint, Detail: d})
	}
	s.notifyLocked()
	s.mu.Unlock()
}

// Wait blocks until cond returns true, re-checking it whenever the server
// records something, or until ctx is done. cond may call the query methods.
func (s *Server) Wait(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ch := s.changed
		s.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("radartest: condition not met: %w", ctx.Err())
		case <-s.closing:
			if cond() {
				return nil
			}
			return errors.New("radartest: server closed while waiting")
		}
	}
}

// WaitMeasurements waits until at least n measurements are stored and
// returns them all.
func (s *Server) WaitMeasurements(ctx context.Context, n int) ([]Measurement, error) {
	err := s.Wait(ctx, func() bool { return len(s.Measurements()) >= n })
	return s.Measurements(), err
}

// Violations returns the protocol violations recorded so far.
func (s *Server) Violations() []Violation { return snapshot(s, &s.violations) }

// Registrations returns every registration.
func (s *Server) Registrations() []Registration { return snapshot(s, &s.registrations) }

// StatusCalls returns every status call that passed the header checks.
func (s *Server) StatusCalls() []StatusCall { return snapshot(s, &s.statusCalls) }

// Measurements returns the stored uploads, oldest first.
func (s *Server) Measurements() []Measurement { return snapshot(s, &s.measurements) }

// UploadAttempts returns every upload request with its answer.
func (s *Server) UploadAttempts() []UploadAttempt { return snapshot(s, &s.attempts) }

// Connections returns every WebSocket upgrade attempt, oldest first.
func (s *Server) Connections() []Connection {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Connection, len(s.connections))
	for i, c := range s.connections {
		c.Header = c.Header.Clone()
		out[i] = c
	}
	return out
}

// Visits returns every request for the service's web site (GET /).
func (s *Server) Visits() []Visit {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Visit, len(s.visits))
	for i, v := range s.visits {
		v.Header = v.Header.Clone()
		out[i] = v
	}
	return out
}

// Syncs returns every sync action.
func (s *Server) Syncs() []Sync { return snapshot(s, &s.syncs) }

// Pongs returns every pong action.
func (s *Server) Pongs() []Action { return snapshot(s, &s.pongs) }

// Actions returns channel actions other than sync and pong.
func (s *Server) Actions() []Action { return snapshot(s, &s.actions) }

// Subscribed is the number of open connections with a confirmed
// subscription.
func (s *Server) Subscribed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.conns {
		if c.identifier != "" {
			n++
		}
	}
	return n
}

// PendingTest reports whether a test is pending (requested and not yet
// answered by an upload).
func (s *Server) PendingTest() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pendingTest
}

func snapshot[T any](s *Server, p *[]T) []T {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]T(nil), (*p)...)
}

// --- controls --------------------------------------------------------------

// SetResponder injects faults into an endpoint: f is called with the
// 1-based count of requests to it and decides the answer. nil restores
// normal answers.
func (s *Server) SetResponder(ep Endpoint, f func(n int) Reply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == nil {
		delete(s.responders, ep)
		return
	}
	s.responders[ep] = f
}

// SetUploadResponder is SetResponder for uploads with the common knobs:
// status 0 answers normally (after delay).
func (s *Server) SetUploadResponder(f func(n int) (status int, delay time.Duration)) {
	if f == nil {
		s.SetResponder(EndpointUpload, nil)
		return
	}
	s.SetResponder(EndpointUpload, func(n int) Reply {
		st, d := f(n)
		return Reply{Status: st, Delay: d}
	})
}

// SetPendingTest sets whether a test is pending (for the default route):
// status answers test_requested and sync transmits run_test.
func (s *Server) SetPendingTest(pending bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pendingTest, s.pendingIfaces = pending, nil
}

// SetPendingUpdate makes status answer update and sync transmit update;
// an empty version clears it. binaryURL is a path on the service.
func (s *Server) SetPendingUpdate(version, binaryURL string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if version == "" {
		s.pendingUpdate = nil
		return
	}
	s.pendingUpdate = &update{version: version, url: binaryURL}
}

// SetChannelDown refuses WebSocket upgrades (503) while true, which forces
// a pod onto the status fallback. Open connections stay; see
// DropConnections.
func (s *Server) SetChannelDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.channelDown = down
}

// SetStopPinging stops (or resumes) the ActionCable pings, to make a pod
// declare the channel dead.
func (s *Server) SetStopPinging(stop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopPinging = stop
}

// SetRejectSubscriptions answers subscribe with reject_subscription.
func (s *Server) SetRejectSubscriptions(reject bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejectSubs = reject
}

// UpdateURL is the absolute URL the status endpoint gives for binaryURL.
func (s *Server) UpdateURL(binaryURL string) string {
	if strings.HasPrefix(binaryURL, "/") {
		return s.URL + binaryURL
	}
	return binaryURL
}
