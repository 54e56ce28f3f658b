package localapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/speedtest"
)

// Tester runs a test now; *agent.Agent implements it.
type Tester interface {
	RunNow(ctx context.Context, req agent.LocalTestRequest, progress func(speedtest.Progress)) ([]agent.LocalResult, error)
}

// Stream limits. The endpoint's server gives every answer 30 s to be
// written (telemetry's healthLimits); a test streams for minutes, so this
// route sets its own deadlines: each event must be taken by the client
// within writeGrace, and the request (a small JSON body) is read before the
// stream starts, after which the read deadline is lifted — a deadline
// expiring under the server's background read would cancel the request.
const (
	writeGrace = 30 * time.Second
	maxBody    = 4 << 10
	maxStreams = 8
	ndjson     = "application/x-ndjson"
)

// Handler serves POST Path. token, when not empty, is RADAR_STATUS_TOKEN:
// the request must carry it as `Authorization: Bearer <token>`. Without a
// token only a client on this machine's (this container's) loopback may
// run a test: `docker compose exec agent radar-agent test` is one, a
// machine on the LAN reaching an endpoint opened wider is not. A request
// a browser makes from a web page (it carries Origin, or a Sec-Fetch-Site
// other than same-origin or none) is refused: this API is for programs on
// the pod, and no page anywhere may start a test on it.
func Handler(t Tester, token string, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	h := &handler{t: t, log: log, slots: make(chan struct{}, maxStreams)}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		h.tokenSum = sum[:]
	}
	return h
}

type handler struct {
	t        Tester
	log      *slog.Logger
	tokenSum []byte
	slots    chan struct{}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuse(w, http.StatusMethodNotAllowed, ClassBadRequest, "use POST", "")
		return
	}
	if crossSite(r) {
		refuse(w, http.StatusForbidden, ClassForbidden, "cross-site requests are refused",
			"the test API is for programs on the pod; the status page has its own button")
		return
	}
	if h.tokenSum == nil && !fromLoopback(r) {
		refuse(w, http.StatusForbidden, ClassForbidden, "tests from another machine need RADAR_STATUS_TOKEN",
			"set RADAR_STATUS_TOKEN on the pod and send it as Authorization: Bearer, or run `radar-agent test` on the pod")
		return
	}
	if !h.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="radar-agent"`)
		refuse(w, http.StatusUnauthorized, ClassUnauthorized, "missing or wrong token",
			"the agent requires RADAR_STATUS_TOKEN: run the command where that variable is set to the agent's value")
		return
	}
	req, err := readRequest(r)
	if err != nil {
		refuse(w, http.StatusBadRequest, ClassBadRequest, err.Error(), "")
		return
	}
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		refuse(w, http.StatusTooManyRequests, ClassBusy, "too many tests are being watched already", "try again when the running test has finished")
		return
	}
	h.stream(w, r, req)
}

// crossSite reports whether a browser sent r on behalf of a web page.
func crossSite(r *http.Request) bool {
	if r.Header.Get("Origin") != "" {
		return true
	}
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
		return false
	}
	return true
}

// fromLoopback reports whether r came over the loopback interface.
func fromLoopback(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (h *handler) authorized(r *http.Request) bool {
	if h.tokenSum == nil {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	// Hashes of equal length: the comparison leaks neither content nor length.
	sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
	return subtle.ConstantTimeCompare(sum[:], h.tokenSum) == 1
}

func readRequest(r *http.Request) (Request, error) {
	var req Request
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return req, errors.New("the body must be JSON (Content-Type: application/json)")
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return req, errors.New("cannot read the request body")
	}
	if len(body) > maxBody {
		return req, errors.New("request body too large")
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return req, nil
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, errors.New("bad JSON body: want {\"runner\": \"ndt7|ookla\", \"interface\": \"eth0\"}, both optional")
	}
	return req, nil
}

func refuse(w http.ResponseWriter, status int, class, msg, hint string) {
	w.Header().Set("Content-Type", ndjson)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(ErrorEvent{Type: TypeError, Class: class, Error: msg, Hint: hint})
}

// stream runs the test and writes its events as they come.
func (h *handler) stream(w http.ResponseWriter, r *http.Request, req Request) {
	rc := http.NewResponseController(w)
	if err := rc.SetReadDeadline(time.Time{}); err != nil {
		h.log.Warn("test API: cannot lift the read deadline; a long test may be cut off", "err", err)
	}
	w.Header().Set("Content-Type", ndjson)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	failed := false
	write := func(v any) {
		if failed {
			return
		}
		rc.SetWriteDeadline(time.Now().Add(writeGrace))
		if err := enc.Encode(v); err != nil {
			failed = true
			return
		}
		if err := rc.Flush(); err != nil {
			failed = true
		}
	}
	// The header goes at once: the client knows the agent took the request.
	rc.SetWriteDeadline(time.Now().Add(writeGrace))
	if err := rc.Flush(); err != nil {
		return
	}
	results, err := h.t.RunNow(r.Context(), agent.LocalTestRequest{Runner: req.Runner, Interface: req.Interface}, func(p speedtest.Progress) {
		write(p)
	})
	if err != nil {
		if r.Context().Err() == nil {
			write(errorEvent(err))
		}
		return
	}
	write(NewResult(SourceAgent, results))
}
