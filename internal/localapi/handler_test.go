package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/speedtest"
)

// slowTester stands in for the agent: it reports progress for longer than
// the server's timeouts allow one answer, then a result, and counts calls.
type slowTester struct {
	calls  atomic.Int32
	events int
	every  time.Duration
	err    error
}

func (s *slowTester) RunNow(ctx context.Context, req agent.LocalTestRequest, progress func(speedtest.Progress)) ([]agent.LocalResult, error) {
	s.calls.Add(1)
	if s.err != nil {
		return nil, s.err
	}
	for i := 0; i < s.events; i++ {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(s.every):
		}
		progress(speedtest.Progress{Type: speedtest.ProgressType, Runner: "ndt7", Interface: req.Interface, Phase: speedtest.PhaseDownload, Mbps: float64(i + 1)})
	}
	down := 93.5
	return []agent.LocalResult{{Entry: agent.ResultEntry{Runner: "ndt7", Interface: req.Interface, DownloadMbps: &down, OutboxID: "rec-1"}, Server: "ndt.example"}}, nil
}

// serve runs h on loopback behind a server whose write and read timeouts
// are far shorter than the stream, as the agent's health server's are.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func TestStreamOutlivesTheServerTimeouts(t *testing.T) {
	tester := &slowTester{events: 6, every: 200 * time.Millisecond}
	addr := serve(t, Handler(tester, "", nil))
	var seen []float64
	res, err := Run(context.Background(), addr, "", Request{Interface: "eth0"}, func(p speedtest.Progress) { seen = append(seen, p.Mbps) })
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 6 || seen[5] != 6 {
		t.Errorf("progress %v, want 6 events in order", seen)
	}
	if !res.OK || res.Source != SourceAgent || len(res.Tests) != 1 || res.Tests[0].Server != "ndt.example" || res.Tests[0].Interface != "eth0" || res.Tests[0].OutboxID != "rec-1" {
		t.Errorf("result %+v", res)
	}
}

func TestRefusals(t *testing.T) {
	const token = "s3cret-token"
	tester := &slowTester{}
	addr := serve(t, Handler(tester, token, nil))
	tests := []struct {
		name      string
		method    string
		header    map[string]string
		body      string
		wantCode  int
		wantClass string
	}{
		{"no token", "POST", nil, "", 401, ClassUnauthorized},
		{"wrong token", "POST", map[string]string{"Authorization": "Bearer nope"}, "", 401, ClassUnauthorized},
		{"basic auth", "POST", map[string]string{"Authorization": "Basic " + token}, "", 401, ClassUnauthorized},
		{"cross-site origin", "POST", map[string]string{"Authorization": "Bearer " + token, "Origin": "https://evil.example"}, "", 403, ClassForbidden},
		{"same-host origin too", "POST", map[string]string{"Authorization": "Bearer " + token, "Origin": "http://127.0.0.1:9100"}, "", 403, ClassForbidden},
		{"sec-fetch-site cross-site", "POST", map[string]string{"Authorization": "Bearer " + token, "Sec-Fetch-Site": "cross-site"}, "", 403, ClassForbidden},
		{"sec-fetch-site same-site", "POST", map[string]string{"Authorization": "Bearer " + token, "Sec-Fetch-Site": "same-site"}, "", 403, ClassForbidden},
		{"GET", "GET", map[string]string{"Authorization": "Bearer " + token}, "", 405, ClassBadRequest},
		{"form body", "POST", map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/x-www-form-urlencoded"}, "runner=ndt7", 400, ClassBadRequest},
		{"unknown field", "POST", map[string]string{"Authorization": "Bearer " + token, "Content-Type": "application/json"}, `{"runnr":"ndt7"}`, 400, ClassBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, "http://"+addr+Path, strings.NewReader(tt.body))
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var ev ErrorEvent
			json.NewDecoder(resp.Body).Decode(&ev)
			if resp.StatusCode != tt.wantCode || ev.Type != TypeError || ev.Class != tt.wantClass {
				t.Errorf("HTTP %d %+v, want %d and class %s", resp.StatusCode, ev, tt.wantCode, tt.wantClass)
			}
			if strings.Contains(ev.Error+ev.Hint, token) {
				t.Errorf("the answer shows the token: %+v", ev)
			}
		})
	}
	if n := tester.calls.Load(); n != 0 {
		t.Fatalf("refused requests ran %d tests", n)
	}
	// The token is let through.
	if _, err := Run(context.Background(), addr, token, Request{}, nil); err != nil {
		t.Fatal(err)
	}
	var ae *Error
	if _, err := Run(context.Background(), addr, "", Request{}, nil); !errors.As(err, &ae) || ae.Event.Class != ClassUnauthorized {
		t.Fatalf("without the token: %v", err)
	}
}

// TestWithoutTokenOnlyLoopback: with no RADAR_STATUS_TOKEN, a client that
// is not on loopback (a LAN machine, through a published port) is refused.
func TestWithoutTokenOnlyLoopback(t *testing.T) {
	tester := &slowTester{}
	h := Handler(tester, "", nil)
	for _, remote := range []string{"192.0.2.7:40000", "[2001:db8::7]:40000", "172.17.0.1:40000"} {
		req := httptest.NewRequest(http.MethodPost, Path, strings.NewReader("{}"))
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "RADAR_STATUS_TOKEN") {
			t.Errorf("from %s: HTTP %d %s", remote, rec.Code, rec.Body.String())
		}
	}
	if n := tester.calls.Load(); n != 0 {
		t.Fatalf("ran %d tests for other machines", n)
	}
	for _, remote := range []string{"127.0.0.1:40000", "[::1]:40000"} {
		req := httptest.NewRequest(http.MethodPost, Path, strings.NewReader("{}"))
		req.RemoteAddr = remote
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"type":"result"`) {
			t.Errorf("from %s: HTTP %d %s", remote, rec.Code, rec.Body.String())
		}
	}
}

func TestErrorEvents(t *testing.T) {
	tests := []struct {
		err       error
		wantClass string
		hintHas   string
	}{
		{agent.ErrStopped, ClassStopping, "try again"},
		{errors.Join(agent.ErrBadRequest, errors.New("runner x")), ClassBadRequest, "--help"},
		{&speedtest.Error{Runner: "ookla", Class: speedtest.ClassUnavailable, Err: errors.New("no CLI")}, "unavailable", "RADAR_OOKLA_BIN"},
		{&speedtest.Error{Runner: "ndt7", Class: speedtest.ClassLocate, Err: &net.DNSError{Err: "no such host", Name: "locate.measurementlab.net"}}, "locate", "DNS failed for locate.measurementlab.net: `radar-agent check-network`"},
		{errors.New("boom"), "internal", "log"},
	}
	for _, tt := range tests {
		addr := serve(t, Handler(&slowTester{err: tt.err}, "", nil))
		_, err := Run(context.Background(), addr, "", Request{}, nil)
		var ae *Error
		if !errors.As(err, &ae) || ae.Event.Class != tt.wantClass || !strings.Contains(ae.Event.Hint, tt.hintHas) {
			t.Errorf("%v: got %v (%+v), want class %s, hint with %q", tt.err, err, ae, tt.wantClass, tt.hintHas)
		}
	}
}

func TestNoAgent(t *testing.T) {
	addr := proctest.FreeAddr(t)
	if _, err := Run(context.Background(), addr, "", Request{}, nil); !errors.Is(err, ErrNoAgent) {
		t.Fatalf("nothing listening: %v, want ErrNoAgent", err)
	}
	// Something else answering 404 is not mistaken for "no agent".
	other := serve(t, http.NotFoundHandler())
	if _, err := Run(context.Background(), other, "", Request{}, nil); err == nil || errors.Is(err, ErrNoAgent) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("a 404: %v", err)
	}
}

// TestEventLinesAreStable pins the wire names README documents.
func TestEventLinesAreStable(t *testing.T) {
	down, up, rtt := 93.5, 40.25, 12.5
	at := time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)
	res := NewResult(SourceAgent, []agent.LocalResult{
		{Entry: agent.ResultEntry{Time: at, Runner: "ndt7", DownloadMbps: &down, UploadMbps: &up, LatencyMs: &rtt, DurationSeconds: 20, OutboxID: "r1"}, Server: "ndt.example", BytesSent: 10, BytesReceived: 20},
		{Entry: agent.ResultEntry{Runner: "ookla", Interface: "wlan0", ErrorClass: "timeout", Error: "ookla: timeout"}, Err: &speedtest.Error{Runner: "ookla", Class: speedtest.ClassTimeout, Err: context.DeadlineExceeded}},
	})
	b, _ := json.Marshal(res)
	want := `{"type":"result","ok":false,"source":"agent","tests":[` +
		`{"runner":"ndt7","interface":"","time":"2026-12-04T08:00:00Z","server":"ndt.example","download_mbps":93.5,"upload_mbps":40.25,"latency_ms":12.5,"bytes_sent":10,"bytes_received":20,"duration_s":20,"outbox_id":"r1"},` +
		`{"runner":"ookla","interface":"wlan0","bytes_sent":0,"bytes_received":0,"duration_s":0,"error_class":"timeout","error":"ookla: timeout","hint":"` + Hint(nil, speedtest.ClassTimeout) + `"}]}`
	if string(b) != want {
		t.Errorf("result event\n got %s\nwant %s", b, want)
	}
	p, _ := json.Marshal(speedtest.Progress{Type: "progress", Runner: "ndt7", Phase: speedtest.PhaseDownload, Mbps: 50, ElapsedS: 1.5, Bytes: 9375000, Server: "ndt.example"})
	if want := `{"type":"progress","runner":"ndt7","interface":"","phase":"download","mbps":50,"elapsed_s":1.5,"bytes":9375000,"server":"ndt.example"}`; string(p) != want {
		t.Errorf("progress event\n got %s\nwant %s", p, want)
	}
}
