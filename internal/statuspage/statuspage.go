// Package statuspage owns the pod's status page and its results export:
// the server-rendered page a person at the pod opens on the agent's local
// endpoint (identity, connection, outbox, results with charts, updates,
// the last network check, the data budget, a "run a test now" button),
// GET /results.csv and /results.json, and the export behind
// `radar-agent results`. The page needs nothing from the internet: inline
// CSS, inline SVG charts and one small inline script (progress of a
// running test; the page works without it).
package statuspage

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/speedtest"
)

// Pod is what the page reads of the running agent (agent.Agent).
type Pod interface {
	Snapshot() agent.Snapshot
	RecentResults() []agent.ResultEntry
}

// Budget is the data budget as the page shows it.
type Budget struct {
	// Limit is the budget of the period in bytes; Used what tests moved in
	// it so far.
	Limit, Used int64
	// PeriodStart and PeriodEnd bound the current period.
	PeriodStart, PeriodEnd time.Time
	// Exhausted: scheduled tests are being skipped.
	Exhausted bool
}

// Options configure a Server. Pod is required.
type Options struct {
	Pod Pod
	// DataDir holds the updater's status file (handoff.StatusFile).
	DataDir string
	// RunTest runs one test now through the agent's queue (the agent's
	// RunNow), reporting progress; nil hides the button.
	RunTest func(ctx context.Context, progress func(speedtest.Progress)) error
	// Budget reports the data budget; nil, or ok false, hides it.
	Budget func() (b Budget, ok bool)
	// Token is RADAR_STATUS_TOKEN: when set, the button needs it.
	Token string
	// LocalPeer vouches for a remote address other than loopback as the
	// pod's own machine (ForAgent: the container's default gateway, where
	// the engine's proxy for a host-published port connects from; outside
	// a container that is the LAN's router, which does not browse); nil
	// trusts loopback only.
	LocalPeer func(netip.Addr) bool
	// Context bounds the tests the button starts (the agent's lifetime).
	Context context.Context
	// Redact hides secrets in error texts shown on the page.
	Redact func(string) string
	Log    *slog.Logger
	// Now replaces time.Now (tests).
	Now func() time.Time
}

// Server serves the page, the exports and the button.
type Server struct {
	o    Options
	csrf string
	run  runState
}

// New builds the server. Its CSRF token is random per process: a form
// served before a restart is refused after it (the page says to reload).
func New(o Options) *Server {
	if o.Context == nil {
		o.Context = context.Background()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Redact == nil {
		o.Redact = func(s string) string { return s }
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Server{o: o, csrf: randomToken()}
}

func randomToken() string {
	b := make([]byte, 24)
	rand.Read(b) // never fails (crypto/rand.Read panics rather)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Handler serves GET / (the page), GET /results.csv, GET /results.json,
// POST /test (the button) and GET /test/progress (its progress, JSON).
// Anything else under / is 404, so it can be mounted at "/" beside
// /healthz and /metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.page)
	mux.HandleFunc("GET /results.csv", func(w http.ResponseWriter, r *http.Request) { s.export(w, r, "csv") })
	mux.HandleFunc("GET /results.json", func(w http.ResponseWriter, r *http.Request) { s.export(w, r, "json") })
	mux.HandleFunc("POST /test", s.startTest)
	mux.HandleFunc("GET /test/progress", s.progress)
	return mux
}

// commonHeaders: nothing is cached, framed or sniffed, and no referrer
// leaves the pod.
func commonHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
}

func (s *Server) export(w http.ResponseWriter, r *http.Request, format string) {
	commonHeaders(w)
	since, err := ParseSince(r.URL.Query().Get("since"), s.o.Now())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/json")
	}
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="radar-results.%s"`, format))
	// Headers are sent with the first row: a read error after it can only
	// cut the download short, which the log says.
	if err := Export(w, s.o.DataDir, since, format); err != nil {
		s.o.Log.Warn("results export failed", "format", format, "err", err)
	}
}

// actionCheck decides whether r may run an action (the button). It
// returns 0 when allowed, else the status and what to tell the person.
//
//   - CSRF: the form's token must be this process's (constant-time), and
//     a browser's Origin / Sec-Fetch-Site must say the request comes from
//     the page itself.
//   - With RADAR_STATUS_TOKEN set, the form's token must match it
//     (constant-time).
//   - Without it, only a request from the pod itself may act (onThePod):
//     the page is then meant for the person at the pod (compose publishes
//     it on the host's loopback), and a page opened over the LAN, or a
//     DNS-rebinding site, stays read-only.
func (s *Server) actionCheck(r *http.Request) (int, string) {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return http.StatusForbidden, "refused: the request did not come from this page (Sec-Fetch-Site " + site + ")"
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Host != r.Host {
			return http.StatusForbidden, "refused: the request did not come from this page (Origin " + origin + ")"
		}
	}
	if err := r.ParseForm(); err != nil {
		return http.StatusBadRequest, "bad form: " + err.Error()
	}
	if !equal(r.PostForm.Get("csrf"), s.csrf) {
		return http.StatusForbidden, "the page is out of date (the agent restarted since it was loaded): reload it and try again"
	}
	if s.o.Token != "" {
		if !equal(r.PostForm.Get("token"), s.o.Token) {
			return http.StatusForbidden, "wrong access token (RADAR_STATUS_TOKEN)"
		}
		return 0, ""
	}
	if !s.onThePod(r) {
		return http.StatusForbidden, "this page was opened from another machine: set RADAR_STATUS_TOKEN on the pod to allow tests from here"
	}
	return 0, ""
}

// onThePod reports whether r comes from the pod's own machine: addressed
// to a loopback name (localhost, 127.0.0.1, [::1]; a DNS-rebinding site's
// requests carry its own name) and sent from loopback or from an address
// LocalPeer vouches for. The Host header alone is the sender's to write: a
// machine on the LAN could name localhost in it when the page is published
// beyond loopback; its address, which a published port's NAT keeps, is not.
func (s *Server) onThePod(r *http.Request) bool {
	if !loopbackHost(r.Host) {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap().WithZone("")
	return a.IsLoopback() || (s.o.LocalPeer != nil && s.o.LocalPeer(a))
}

// equal compares secrets in constant time.
func equal(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// loopbackHost reports whether a Host header names the local machine.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// actionsAllowed says whether the page should offer the button to this
// request, and if not, why.
func (s *Server) actionsAllowed(r *http.Request) (bool, string) {
	if s.o.RunTest == nil {
		return false, ""
	}
	if s.o.Token == "" && !s.onThePod(r) {
		return false, "This page is open from another machine, so it is read-only. To run tests from here, set RADAR_STATUS_TOKEN on the pod."
	}
	return true, ""
}

func (s *Server) startTest(w http.ResponseWriter, r *http.Request) {
	commonHeaders(w)
	wantJSON := strings.Contains(r.Header.Get("Accept"), "application/json")
	if s.o.RunTest == nil {
		http.Error(w, "tests cannot be started from this page", http.StatusNotFound)
		return
	}
	if code, msg := s.actionCheck(r); code != 0 {
		s.o.Log.Warn("status page: test button refused", "reason", msg, "remote", r.RemoteAddr)
		if wantJSON {
			writeJSON(w, code, map[string]string{"error": msg})
			return
		}
		http.Error(w, msg, code)
		return
	}
	started := s.run.start(s.o.Now())
	if started {
		s.o.Log.Info("status page: test requested", "remote", r.RemoteAddr)
		go s.runTest()
	}
	if wantJSON {
		writeJSON(w, http.StatusAccepted, s.run.view())
		return
	}
	http.Redirect(w, r, "/#test", http.StatusSeeOther)
}

// runTest runs one test for the button and records how it went.
func (s *Server) runTest() {
	err := s.o.RunTest(s.o.Context, s.run.observe)
	msg := ""
	if err != nil {
		msg = s.o.Redact(err.Error())
		s.o.Log.Warn("status page: test failed", "err", msg)
	}
	s.run.finish(s.o.Now(), msg)
}

func (s *Server) progress(w http.ResponseWriter, r *http.Request) {
	commonHeaders(w)
	writeJSON(w, http.StatusOK, s.run.view())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// runState is the button's test: at most one at a time (the agent's queue
// coalesces anyway; this keeps a double click from queueing a second).
type runState struct {
	mu       sync.Mutex
	running  bool
	last     speedtest.Progress
	started  time.Time
	finished time.Time
	err      string
}

// RunView is GET /test/progress.
type RunView struct {
	// State: idle (never run since start), running, done or failed.
	State     string  `json:"state"`
	Runner    string  `json:"runner,omitempty"`
	Interface string  `json:"interface,omitempty"`
	Phase     string  `json:"phase,omitempty"`
	Mbps      float64 `json:"mbps,omitempty"`
	// Message says the same for a person.
	Message  string    `json:"message"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
}

func (r *runState) start(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		return false
	}
	r.running, r.started, r.finished, r.err = true, now, time.Time{}, ""
	r.last = speedtest.Progress{Phase: speedtest.PhaseQueued}
	return true
}

func (r *runState) observe(p speedtest.Progress) {
	r.mu.Lock()
	r.last = p
	r.mu.Unlock()
}

func (r *runState) finish(now time.Time, err string) {
	r.mu.Lock()
	r.running, r.finished, r.err = false, now, err
	r.mu.Unlock()
}

func (r *runState) view() RunView {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := RunView{Started: r.started, Finished: r.finished}
	switch {
	case r.running:
		v.State = "running"
		v.Runner, v.Interface, v.Phase, v.Mbps = r.last.Runner, r.last.Interface, string(r.last.Phase), r.last.Mbps
		v.Message = progressText(r.last)
	case r.started.IsZero():
		v.State, v.Message = "idle", ""
	case r.err != "":
		v.State, v.Message = "failed", "The test failed: "+r.err
	default:
		v.State, v.Message = "done", "Test finished. The new results are in the table below."
	}
	return v
}

// progressText says what a running test is doing, in words.
func progressText(p speedtest.Progress) string {
	who := seriesLabel(p.Runner, p.Interface)
	switch p.Phase {
	case speedtest.PhaseQueued, "":
		return "Waiting to start (one test runs at a time)…"
	case speedtest.PhaseLocate:
		return who + ": finding a test server…"
	case speedtest.PhaseDownload, speedtest.PhaseUpload:
		dir := "download"
		if p.Phase == speedtest.PhaseUpload {
			dir = "upload"
		}
		if p.Mbps > 0 {
			return fmt.Sprintf("%s: measuring %s… %.1f Mbit/s", who, dir, p.Mbps)
		}
		return fmt.Sprintf("%s: measuring %s…", who, dir)
	default:
		return who + ": measuring…"
	}
}
