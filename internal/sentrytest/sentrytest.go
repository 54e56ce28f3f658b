// Package sentrytest starts a loopback Sentry ingestion endpoint that
// collects the events a process sends, so tests can assert on what would
// reach Sentry (tags present, secrets absent) without the real service.
package sentrytest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Event is one received event: its decoded JSON and the raw item bytes.
type Event struct {
	Raw  []byte
	JSON map[string]any
}

// Tags returns the event's tags.
func (e Event) Tags() map[string]string {
	out := map[string]string{}
	if m, ok := e.JSON["tags"].(map[string]any); ok {
		for k, v := range m {
			out[k], _ = v.(string)
		}
	}
	return out
}

// Server collects events posted to /api/<project>/envelope/ (and the legacy
// /store/ endpoint).
type Server struct {
	*httptest.Server
	// DSN points a client at this server with the given public key.
	DSN string

	mu     sync.Mutex
	events []Event
	bodies [][]byte
}

// Start runs a server until the test ends. publicKey becomes the DSN's key,
// so tests can check it never appears inside an event.
func Start(t testing.TB, publicKey string) *Server {
	s := &Server{}
	s.Server = httptest.NewServer(http.HandlerFunc(s.handle))
	t.Cleanup(s.Close)
	s.DSN = strings.Replace(s.URL, "http://", "http://"+publicKey+"@", 1) + "/1"
	return s
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, body)
	s.mu.Unlock()
	switch {
	case strings.HasSuffix(r.URL.Path, "/envelope/"):
		for _, item := range parseEnvelope(body) {
			s.add(item)
		}
	case strings.HasSuffix(r.URL.Path, "/store/"):
		s.add(body)
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprint(w, `{"id":"00000000000000000000000000000000"}`)
}

func (s *Server) add(raw []byte) {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return
	}
	s.mu.Lock()
	s.events = append(s.events, Event{Raw: raw, JSON: m})
	s.mu.Unlock()
}

// parseEnvelope returns the payloads of the "event" items: an envelope is a
// header line, then for each item a header line and a payload.
func parseEnvelope(body []byte) [][]byte {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var out [][]byte
	if !sc.Scan() { // envelope header
		return nil
	}
	for sc.Scan() {
		var hdr struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(sc.Bytes(), &hdr) != nil || !sc.Scan() {
			return out
		}
		if hdr.Type == "event" {
			out = append(out, append([]byte(nil), sc.Bytes()...))
		}
	}
	return out
}

// Events returns what has arrived so far.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.events...)
}

// Bodies returns every raw request body received (for secret scans).
func (s *Server) Bodies() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.bodies...)
}

// WaitEvents waits until at least n events arrived or the timeout passed.
func (s *Server) WaitEvents(n int, timeout time.Duration) []Event {
	deadline := time.Now().Add(timeout)
	for {
		ev := s.Events()
		if len(ev) >= n || time.Now().After(deadline) {
			return ev
		}
		time.Sleep(20 * time.Millisecond)
	}
}
