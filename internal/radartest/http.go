package radartest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"time"

	"github.com/radarpod/radarpod/internal/httpclient"
	"github.com/radarpod/radarpod/internal/radar"
)

const (
	maxJSONRequest   = 1 << 20
	maxUploadRequest = 16 << 20
)

// response is what an endpoint decided to answer.
type response struct {
	status   int
	header   http.Header
	body     []byte
	unixUser string
	stored   bool
}

func jsonResponse(status int, v any) response {
	b, _ := json.Marshal(v)
	return response{status: status, header: http.Header{"Content-Type": {"application/json; charset=utf-8"}}, body: b}
}

// railsError is the body the service's JSON error pages have.
func railsError(status int) response {
	return jsonResponse(status, map[string]any{"status": status, "error": http.StatusText(status)})
}

// acceptJSON is the service's "is this a JSON request" test: exactly one
// Accept header with exactly this value.
func acceptJSON(r *http.Request) bool {
	v := r.Header.Values("Accept")
	return len(v) == 1 && v[0] == "application/json"
}

func mediaType(r *http.Request) (string, map[string]string) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return "", nil
	}
	return mt, params
}

// serve runs one request to ep through the fault responder and handle.
func (s *Server) serve(ep Endpoint, w http.ResponseWriter, r *http.Request, handle func() response) {
	s.mu.Lock()
	s.counts[ep]++
	n := s.counts[ep]
	f := s.responders[ep]
	s.mu.Unlock()
	var rep Reply
	if f != nil {
		rep = f(n)
	}
	record := func(status int, fault, stored bool) {
		if ep != EndpointUpload {
			return
		}
		s.mu.Lock()
		s.attempts = append(s.attempts, UploadAttempt{Time: time.Now(), N: n, UnixUser: r.PathValue("unix_user"), RemoteAddr: r.RemoteAddr, Status: status, Fault: fault, Stored: stored})
		s.notifyLocked()
		s.mu.Unlock()
	}
	if rep.Delay > 0 {
		t := time.NewTimer(rep.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			record(0, true, false)
			return
		case <-s.closing:
			t.Stop()
			return
		}
	}
	if rep.active() && !rep.AfterHandling {
		record(s.fault(w, r, rep), true, false)
		return
	}
	resp := handle()
	if rep.active() {
		record(s.fault(w, r, rep), true, resp.stored)
		return
	}
	for k, v := range resp.header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.status)
	w.Write(resp.body)
	record(resp.status, false, resp.stored)
}

// fault answers as rep says and returns the status sent (0 for a hang-up).
func (s *Server) fault(w http.ResponseWriter, r *http.Request, rep Reply) int {
	if rep.Hangup {
		// Closes the connection without writing a response.
		panic(http.ErrAbortHandler)
	}
	status := rep.Status
	if status == 0 {
		status = http.StatusOK
	}
	var body io.Reader = bytes.NewReader(rep.Body)
	if rep.Filler > 0 {
		body = io.LimitReader(&filler{}, rep.Filler)
	} else if len(rep.Body) == 0 {
		body = strings.NewReader(http.StatusText(status))
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	for k, v := range rep.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	if rep.Drip <= 0 {
		io.Copy(w, body)
		return status
	}
	fl, _ := w.(http.Flusher)
	one := make([]byte, 1)
	for {
		if _, err := body.Read(one); err != nil {
			return status
		}
		if _, err := w.Write(one); err != nil {
			return status
		}
		if fl != nil {
			fl.Flush()
		}
		select {
		case <-time.After(rep.Drip):
		case <-r.Context().Done():
			return status
		case <-s.closing:
			return status
		}
	}
}

// filler is an endless, never-closing JSON array of zeros: a client that
// decodes without a bound would read it forever.
type filler struct{ n int64 }

func (f *filler) Read(p []byte) (int, error) {
	for i := range p {
		switch {
		case f.n == 0:
			p[i] = '['
		case f.n%2 == 1:
			p[i] = '0'
		default:
			p[i] = ','
		}
		f.n++
	}
	return len(p), nil
}

// handleRoot answers GET / as the service's route `root to:
// redirect('/users/sign_in')` does: a 301 to an absolute URL on the host
// asked, with an empty body. The service treats it as any browser's
// request, whoever sends it.
func (s *Server) handleRoot(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.visits = append(s.visits, Visit{Time: time.Now(), Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone()})
	s.notifyLocked()
	s.mu.Unlock()
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	w.Header().Set("Location", scheme+"://"+r.Host+radar.SignInPath)
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusMovedPermanently)
}

func (s *Server) handleUnknown(w http.ResponseWriter, r *http.Request) {
	s.violation("http", "unexpected request %s %s (not an endpoint of the protocol)", r.Method, r.URL.Path)
	http.NotFound(w, r)
}

func readBody(r *http.Request, max int64) ([]byte, error) {
	defer r.Body.Close()
	return httpclient.ReadLimited(r.Body, max)
}

// --- registration ----------------------------------------------------------

func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	s.serve(EndpointRegister, w, r, func() response {
		body, err := readBody(r, maxJSONRequest)
		if err != nil {
			s.violation("register", "reading body: %v", err)
			return railsError(http.StatusBadRequest)
		}
		if !acceptJSON(r) {
			s.violation("register", "Accept is %q, want exactly application/json", r.Header.Values("Accept"))
		}
		if ce := r.Header.Get("Content-Encoding"); ce != "" {
			s.violation("register", "Content-Encoding %q: requests are sent uncompressed", ce)
		}
		reg := Registration{Time: time.Now(), Header: r.Header.Clone(), Raw: body}
		if mt, _ := mediaType(r); mt != "application/json" {
			s.violation("register", "Content-Type %q, want application/json (the service ignores the body and drops the registration token)", r.Header.Get("Content-Type"))
			reg.TokenDropped = true
		} else {
			s.violationsOf("register", checkObject("registration body", body, registerSpec))
			var req map[string]json.RawMessage
			if err := json.Unmarshal(body, &req); err != nil {
				return railsError(http.StatusBadRequest)
			}
			// Rails keeps what it can use; wrongly typed values were
			// recorded above.
			str := func(k string) *string {
				var v string
				if json.Unmarshal(req[k], &v) != nil {
					return nil
				}
				return &v
			}
			if tok := str("registration_token"); tok != nil {
				reg.Token = *tok
			}
			reg.Name, reg.RegisterLabel = str("name"), str("register_label")
		}
		s.mu.Lock()
		var p *pod
		for {
			u := "r" + randString(11, lowerDigits)
			if _, taken := s.pods[u]; !taken {
				p = s.newPodLocked(u, randString(11, alnum))
				break
			}
		}
		p.token, p.name, p.label = reg.Token, reg.Name, reg.RegisterLabel
		if reg.Token != "" {
			// A token ties the pod to the token's account.
			one := int64(1)
			p.accountID = &one
		}
		reg.ID, reg.UnixUser, reg.Secret = p.id, p.unixUser, p.secret
		s.registrations = append(s.registrations, reg)
		rec := s.recordLocked(p, true)
		s.notifyLocked()
		s.mu.Unlock()
		s.log.Info("pod registered", "unix_user", reg.UnixUser)
		return jsonResponse(http.StatusCreated, rec)
	})
}

const (
	lowerDigits = "abcdefghijklmnopqrstuvwxyz0123456789"
	alnum       = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

func randString(n int, alphabet string) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// recordLocked is the client record the service renders (written out
// here, not borrowed from package radar, so a renamed field on the client
// side cannot go unnoticed).
func (s *Server) recordLocked(p *pod, withSecret bool) map[string]any {
	m := map[string]any{
		"id":             p.id,
		"unix_user":      p.unixUser,
		"name":           p.name,
		"address":        nil,
		"register_label": p.label,
		"account_id":     p.accountID,
		"location_id":    nil,
		"pinged_at":      p.pingedAt,
		"online":         p.pingedAt != nil,
		"created_at":     p.createdAt,
		"updated_at":     p.createdAt,
	}
	if withSecret {
		m["secret"] = p.secret
	}
	return m
}

// --- status ------------------------------------------------------------------

// clientToken checks "Authorization: ClientToken base64(user:secret)". It
// returns the pod, or nil with detail set when the header's form is wrong
// (a violation) and empty when only the credentials are (a plain 403).
func (s *Server) clientToken(r *http.Request, pathUser string) (*pod, string) {
	a := r.Header.Get("Authorization")
	if a == "" {
		return nil, "no Authorization header (want ClientToken base64(unix_user:secret))"
	}
	scheme, tok, _ := strings.Cut(a, " ")
	if scheme != "ClientToken" {
		return nil, fmt.Sprintf("Authorization scheme %q, want ClientToken base64(unix_user:secret)", scheme)
	}
	dec, err := base64.StdEncoding.DecodeString(tok)
	if err != nil {
		return nil, "ClientToken credentials are not base64 (raw unix_user:secret?)"
	}
	user, secret, ok := strings.Cut(string(dec), ":")
	if !ok {
		return nil, "ClientToken credentials do not decode to unix_user:secret"
	}
	if user != pathUser {
		return nil, fmt.Sprintf("ClientToken names %q but the path names %q", user, pathUser)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pods[user]
	if p == nil || p.secret != secret {
		return nil, ""
	}
	return p, ""
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	s.serve(EndpointStatus, w, r, func() response {
		user := r.PathValue("unix_user")
		body, err := readBody(r, maxJSONRequest)
		if err != nil {
			s.violation("status", "reading body: %v", err)
			return railsError(http.StatusBadRequest)
		}
		if !acceptJSON(r) {
			s.violation("status", "Accept is %q, want exactly application/json (the service answers 500)", r.Header.Values("Accept"))
			return response{status: http.StatusInternalServerError, header: http.Header{"Content-Type": {"text/html"}},
				body: []byte("<html><body><h1>We're sorry, but something went wrong.</h1></body></html>")}
		}
		p, detail := s.clientToken(r, user)
		if detail != "" {
			s.violation("status", "%s", detail)
		}
		if p == nil {
			return railsError(http.StatusForbidden)
		}
		if mt, _ := mediaType(r); mt != "application/json" {
			s.violation("status", "Content-Type %q, want application/json", r.Header.Get("Content-Type"))
		}
		if ce := r.Header.Get("Content-Encoding"); ce != "" {
			s.violation("status", "Content-Encoding %q: requests are sent uncompressed", ce)
		}
		s.violationsOf("status", checkObject("status body", body, statusSpec))
		var req struct {
			Version           string               `json:"version"`
			ServiceFirstPing  json.RawMessage      `json:"service_first_ping"`
			NetworkInterfaces []radar.NetInterface `json:"network_interfaces"`
		}
		_ = json.Unmarshal(body, &req)
		now := time.Now().UTC().Format(time.RFC3339)
		s.mu.Lock()
		p.pingedAt = &now
		s.statusCalls = append(s.statusCalls, StatusCall{
			Time: time.Now(), UnixUser: user, ServiceFirstPing: string(req.ServiceFirstPing),
			Version: req.Version, NetworkInterfaces: req.NetworkInterfaces, Header: r.Header.Clone(), Raw: body,
		})
		rec := s.recordLocked(p, false)
		rec["test_requested"] = s.pendingTest
		if s.pendingUpdate != nil {
			rec["update"] = map[string]string{"version": s.pendingUpdate.version, "url": s.UpdateURL(s.pendingUpdate.url)}
		}
		s.notifyLocked()
		s.mu.Unlock()
		return jsonResponse(http.StatusOK, rec)
	})
}

// --- measurement upload ----------------------------------------------------

type formPart struct {
	filename string
	isFile   bool
	data     []byte
}

var uploadFields = map[string]bool{
	"measurement[style]":     true,
	"client_secret":          true,
	"measurement[interface]": true,
	"measurement[wireless]":  true,
	"connection_info":        true,
	"measurement[result]":    true,
}

func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request) {
	s.serve(EndpointUpload, w, r, func() response {
		resp := s.upload(r)
		resp.unixUser = r.PathValue("unix_user")
		return resp
	})
}

func (s *Server) upload(r *http.Request) response {
	user := r.PathValue("unix_user")
	const ep = "upload"
	if ce := r.Header.Get("Content-Encoding"); ce != "" {
		s.violation(ep, "Content-Encoding %q: uploads are sent uncompressed (the service cannot parse the form)", ce)
		return railsError(http.StatusInternalServerError)
	}
	body, err := readBody(r, maxUploadRequest)
	if err != nil {
		if errors.Is(err, httpclient.ErrTooLarge) {
			s.violation(ep, "upload larger than %d bytes", maxUploadRequest)
			return railsError(http.StatusRequestEntityTooLarge)
		}
		return railsError(http.StatusBadRequest)
	}
	parts := map[string]formPart{}
	mt, params := mediaType(r)
	if mt != "multipart/form-data" || params["boundary"] == "" {
		s.violation(ep, "Content-Type %q, want multipart/form-data with a boundary", r.Header.Get("Content-Type"))
	} else {
		mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				s.violation(ep, "malformed multipart body: %v", err)
				break
			}
			data, err := io.ReadAll(p)
			if err != nil {
				s.violation(ep, "malformed multipart part %q: %v", p.FormName(), err)
				break
			}
			name := p.FormName()
			if _, dup := parts[name]; dup {
				s.violation(ep, "field %q sent twice", name)
			}
			parts[name] = formPart{filename: p.FileName(), isFile: p.FileName() != "", data: data}
		}
	}

	s.mu.Lock()
	p := s.pods[user]
	s.mu.Unlock()
	if p == nil {
		// The service dereferences the missing client and fails.
		return railsError(http.StatusInternalServerError)
	}
	secret, ok := parts["client_secret"]
	if !ok {
		s.violation(ep, "client_secret missing (it authenticates the upload)")
		return railsError(http.StatusNotFound)
	}
	if string(secret.data) != p.secret {
		return railsError(http.StatusNotFound)
	}
	if !acceptJSON(r) {
		s.violation(ep, "Accept is %q, want exactly application/json (the service answers 302)", r.Header.Values("Accept"))
		return response{status: http.StatusFound, header: http.Header{"Location": {s.URL + "/clients/" + user + "/measurements"}}}
	}
	for _, name := range sortedKeys(parts) {
		if !uploadFields[name] {
			s.violation(ep, "unexpected form field %q", name)
		} else if name != "measurement[result]" && parts[name].isFile {
			s.violation(ep, "field %q sent as a file part; it is a plain field", name)
		}
	}
	style, ok := parts["measurement[style]"]
	if !ok {
		s.violation(ep, "measurement[style] missing")
		return railsError(http.StatusBadRequest)
	}
	if st := string(style.data); st != radar.StyleNDT7 && st != radar.StyleOokla {
		s.violation(ep, "measurement[style] %q, want NDT7 or OOKLA", st)
		return jsonResponse(http.StatusUnprocessableEntity, map[string]any{"style": []string{"is not included in the list"}})
	}
	result, ok := parts["measurement[result]"]
	if !ok {
		s.violation(ep, "measurement[result] missing")
		return railsError(http.StatusBadRequest)
	}
	if !result.isFile {
		s.violation(ep, "measurement[result] is a plain field; it must be a file part (filename result.json)")
		return railsError(http.StatusInternalServerError)
	}
	if result.filename != "result.json" {
		s.violation(ep, "measurement[result] filename %q, want result.json", result.filename)
	}
	iface, ok := parts["measurement[interface]"]
	if !ok {
		s.violation(ep, "measurement[interface] missing (send it empty for the default route)")
	}
	wireless := false
	if wl, ok := parts["measurement[wireless]"]; !ok {
		s.violation(ep, "measurement[wireless] missing")
	} else if v := string(wl.data); v != "true" && v != "false" {
		s.violation(ep, "measurement[wireless] %q, want true or false", v)
	} else {
		wireless = v == "true"
	}
	var ci json.RawMessage
	if c, ok := parts["connection_info"]; ok {
		ci = json.RawMessage(c.data)
		var obj map[string]json.RawMessage
		if json.Unmarshal(c.data, &obj) != nil || obj == nil {
			s.violation(ep, "connection_info is not a JSON object: %.200s", c.data)
		}
		if !wireless {
			s.violation(ep, "connection_info sent for a wired measurement (it is wireless only)")
		}
	}

	m := Measurement{
		Time: time.Now(), UnixUser: user, Style: string(style.data), Interface: string(iface.data),
		Wireless: wireless, ConnectionInfo: ci, Filename: result.filename, Raw: result.data,
	}
	switch m.Style {
	case radar.StyleNDT7:
		res, err := ParseNDT7(result.data)
		if err != nil {
			m.ParseErr = err
		} else {
			m.NDT7 = &res
		}
	case radar.StyleOokla:
		res, err := ParseOokla(result.data)
		if err != nil {
			m.ParseErr = err
		} else {
			m.Ookla = &res
		}
	}
	if m.ParseErr != nil {
		s.violation(ep, "measurement[result] cannot be parsed the way the service parses %s: %v", m.Style, m.ParseErr)
	}
	s.mu.Lock()
	m.Seq = len(s.measurements) + 1
	s.measurements = append(s.measurements, m)
	s.pendingTest, s.pendingIfaces = false, nil
	s.notifyLocked()
	s.mu.Unlock()
	s.log.Info("measurement stored", "unix_user", user, "style", m.Style, "interface", m.Interface)
	resp := jsonResponse(http.StatusCreated, map[string]any{"id": m.Seq, "style": m.Style, "client_id": p.id})
	resp.stored = true
	return resp
}
