//go:build linux && cgo

package ndt7

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/radarpod/radarpod/internal/ndt7test"
	"github.com/radarpod/radarpod/internal/speedtest"
)

// The runner as the agent sees it: the agent declares this interface.
var _ interface {
	Name() string
	Run(context.Context, speedtest.Target) (speedtest.Result, error)
} = (*Runner)(nil)

// testLogger collects log lines so a test can check what was logged, and
// mirrors them into the test output.
type testLogger struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func newTestLogger(t *testing.T) (*slog.Logger, *testLogger) {
	tl := &testLogger{}
	h := slog.NewJSONHandler(writerFunc(func(p []byte) (int, error) {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		t.Output().Write(p)
		return tl.buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(h), tl
}

func (tl *testLogger) String() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.buf.String()
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// shortOptions makes a test against ndt7test last a few seconds: the
// server's early exit ends the download, the client bounds the upload.
func shortOptions(t *testing.T, srv *ndt7test.Server) Options {
	log, _ := newTestLogger(t)
	o := Options{
		Server:          srv.Addr,
		Scheme:          srv.Scheme,
		Logger:          log,
		Params:          ndt7test.ShortTestParams(),
		SubtestDuration: ndt7test.ShortUpload,
	}
	if srv.CA != nil {
		o.RootCAs = srv.CA.Pool
	}
	return o
}

func runCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// line is what a parser of the result file (the pods service) sees.
type line struct {
	Key   string
	Value struct {
		AppInfo *struct {
			NumBytes, ElapsedTime int64
		}
		BBRInfo        *struct{ ElapsedTime int64 }
		ConnectionInfo *struct{ Client, Server, UUID string }
		Origin         string
		Test           string
		TCPInfo        *struct {
			BytesReceived, BytesSent, BytesRetrans, ElapsedTime int64
			MinRTT                                              uint32
		}
	}
}

type summaryValues struct {
	Download, Upload, MinRTT *struct{ Value *float64 }
}

// parsed is a result file checked for shape, with the summary recomputed
// from the measurement lines independently of the runner.
type parsed struct {
	lines   []line
	summary summaryValues
	kinds   map[string]int // "download/server/TCPInfo" → count
	uuid    map[string]string
	client  map[string]string // test → ConnectionInfo.Client
	// recomputed from the lines
	down, up, minRTT float64
	// lastDownApp is the client's last download measurement.
	lastDownApp *struct{ NumBytes, ElapsedTime int64 }
}

func parseRaw(t *testing.T, raw []byte) parsed {
	t.Helper()
	if len(raw) == 0 || raw[len(raw)-1] != '\n' {
		t.Fatalf("raw result is empty or does not end with a newline: %q", tail(raw))
	}
	texts := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	if len(texts) < 2 {
		t.Fatalf("raw result has %d lines", len(texts))
	}
	p := parsed{kinds: map[string]int{}, uuid: map[string]string{}, client: map[string]string{}}
	var lastDownApp, lastDownServer, lastUpServer *line
	for i, text := range texts[:len(texts)-1] {
		var l line
		dec := json.NewDecoder(strings.NewReader(text))
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, text)
		}
		if l.Key != "measurement" {
			t.Fatalf("line %d: Key %q, want measurement", i+1, l.Key)
		}
		v := l.Value
		if (v.Test != "download" && v.Test != "upload") || (v.Origin != "client" && v.Origin != "server") {
			t.Fatalf("line %d: Test %q Origin %q", i+1, v.Test, v.Origin)
		}
		count := func(kind string, present bool) {
			if present {
				p.kinds[v.Test+"/"+v.Origin+"/"+kind]++
			}
		}
		count("AppInfo", v.AppInfo != nil)
		count("TCPInfo", v.TCPInfo != nil)
		count("BBRInfo", v.BBRInfo != nil)
		count("ConnectionInfo", v.ConnectionInfo != nil)
		if v.ConnectionInfo != nil {
			p.uuid[v.Test] = v.ConnectionInfo.UUID
			p.client[v.Test] = v.ConnectionInfo.Client
		}
		switch {
		case v.Test == "download" && v.Origin == "client" && v.AppInfo != nil:
			lastDownApp = &l
			p.lastDownApp = v.AppInfo
		case v.Test == "download" && v.Origin == "server":
			lastDownServer = &l
		case v.Test == "upload" && v.Origin == "server":
			lastUpServer = &l
		}
		p.lines = append(p.lines, l)
	}
	last := texts[len(texts)-1]
	dec := json.NewDecoder(strings.NewReader(last))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p.summary); err != nil {
		t.Fatalf("last line is not the summary: %v: %s", err, last)
	}
	if p.summary.Download == nil || p.summary.Upload == nil || p.summary.MinRTT == nil ||
		p.summary.Download.Value == nil || p.summary.Upload.Value == nil || p.summary.MinRTT.Value == nil {
		t.Fatalf("summary misses a value: %s", last)
	}
	// Mbit/s = bits per microsecond.
	if lastDownApp != nil {
		a := lastDownApp.Value.AppInfo
		p.down = 8 * float64(a.NumBytes) / float64(a.ElapsedTime)
	}
	if lastUpServer != nil && lastUpServer.Value.TCPInfo != nil {
		ti := lastUpServer.Value.TCPInfo
		p.up = 8 * float64(ti.BytesReceived) / float64(ti.ElapsedTime)
	}
	if lastDownServer != nil && lastDownServer.Value.TCPInfo != nil {
		p.minRTT = float64(lastDownServer.Value.TCPInfo.MinRTT) / 1000
	}
	return p
}

func tail(b []byte) []byte {
	if len(b) > 200 {
		return b[len(b)-200:]
	}
	return b
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

// checkComplete asserts a full, successful result: every kind of line for
// both directions, the summary last and equal to what the lines give, and
// Result.Summary equal to the summary line.
func checkComplete(t *testing.T, res speedtest.Result) parsed {
	t.Helper()
	if res.Runner != "ndt7" || res.Style != "NDT7" {
		t.Errorf("Runner/Style = %q/%q", res.Runner, res.Style)
	}
	if res.StartedAt.IsZero() || res.FinishedAt.Before(res.StartedAt) {
		t.Errorf("StartedAt %v FinishedAt %v", res.StartedAt, res.FinishedAt)
	}
	p := parseRaw(t, res.Raw)
	for _, k := range []string{
		"download/client/AppInfo", "download/server/TCPInfo", "download/server/BBRInfo", "download/server/ConnectionInfo",
		"upload/client/AppInfo", "upload/server/TCPInfo", "upload/server/BBRInfo", "upload/server/ConnectionInfo",
	} {
		if p.kinds[k] == 0 {
			t.Errorf("no %s line; have %v", k, p.kinds)
		}
	}
	if p.uuid["download"] == "" || p.uuid["upload"] == "" || p.uuid["download"] == p.uuid["upload"] {
		t.Errorf("ConnectionInfo UUIDs: %v", p.uuid)
	}
	s := p.summary
	if !near(*s.Download.Value, p.down) || !near(*s.Upload.Value, p.up) || *s.MinRTT.Value != p.minRTT {
		t.Errorf("summary line %v/%v/%v, recomputed from the lines %v/%v/%v",
			*s.Download.Value, *s.Upload.Value, *s.MinRTT.Value, p.down, p.up, p.minRTT)
	}
	if p.down <= 0 || p.up <= 0 || p.minRTT <= 0 {
		t.Errorf("implausible figures: down %v up %v minRTT %v", p.down, p.up, p.minRTT)
	}
	// The byte counts are not in the summary line: the download's is the
	// client's last AppInfo, the upload at least the client's.
	want := speedtest.Summary{DownloadMbps: *s.Download.Value, UploadMbps: *s.Upload.Value, LatencyMs: *s.MinRTT.Value,
		BytesSent: res.Summary.BytesSent, BytesReceived: res.Summary.BytesReceived}
	if res.Summary != want {
		t.Errorf("Result.Summary %+v, summary line %+v", res.Summary, want)
	}
	if lastDown := p.lastDownApp; lastDown == nil || res.Summary.BytesReceived < lastDown.NumBytes || res.Summary.BytesReceived > lastDown.NumBytes+maxRecord {
		t.Errorf("BytesReceived %d, the client's last download AppInfo %+v", res.Summary.BytesReceived, lastDown)
	}
	return p
}

func TestRunAgainstNDTServer(t *testing.T) {
	for _, tc := range []struct {
		name string
		tls  bool
		bind net.IP
	}{
		{name: "ws", tls: false},
		{name: "wss", tls: true},
		// All of 127/8 is local: binding to 127.0.0.2 proves the source
		// address is the one asked for (the server reports it back).
		{name: "ws bound to 127.0.0.2", tls: false, bind: net.ParseIP("127.0.0.2")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := ndt7test.Start(t, ndt7test.Options{TLS: tc.tls})
			o := shortOptions(t, srv)
			log, logs := newTestLogger(t)
			o.Logger = log
			res, err := New(o).Run(runCtx(t), speedtest.Target{Interface: "lo", LocalAddr: tc.bind})
			if err != nil {
				t.Fatalf("Run: %v (class %s)", err, speedtest.ClassOf(err))
			}
			if res.Interface != "lo" {
				t.Errorf("Interface = %q", res.Interface)
			}
			p := checkComplete(t, res)
			// The download moved the bulk (the server's early exit stops
			// it at 250 MB acknowledged); the upload ran for its short
			// duration and was measured by the server.
			if res.Summary.BytesReceived <= 0 || res.Summary.BytesSent <= 0 {
				t.Errorf("bytes: sent %d, received %d", res.Summary.BytesSent, res.Summary.BytesReceived)
			}

			wantIP := "127.0.0.1"
			if tc.bind != nil {
				wantIP = tc.bind.String()
			}
			for test, client := range p.client {
				if host, _, _ := net.SplitHostPort(client); host != wantIP {
					t.Errorf("%s: server saw the client as %s, want %s", test, client, wantIP)
				}
			}

			// The server's own records agree: same UUIDs, same client, and
			// the pod identified itself.
			if err := srv.Close(); err != nil {
				t.Fatal(err)
			}
			subs, err := srv.Subtests()
			if err != nil {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for _, s := range subs {
				d, kind := s.Download, "download"
				if d == nil {
					d, kind = s.Upload, "upload"
				}
				seen[kind] = true
				if d.UUID != p.uuid[kind] {
					t.Errorf("%s: server UUID %s, result %s", kind, d.UUID, p.uuid[kind])
				}
				if s.ClientIP != wantIP {
					t.Errorf("%s: server recorded client %s", kind, s.ClientIP)
				}
				meta := map[string]string{}
				for _, nv := range d.ClientMetadata {
					meta[nv.Name] = nv.Value
				}
				if meta["client_name"] != "radar-pod" || meta["early_exit"] != "250" {
					t.Errorf("%s: client metadata %v", kind, meta)
				}
			}
			if !seen["download"] || !seen["upload"] || len(subs) != 2 {
				t.Errorf("server recorded %d subtests: %v", len(subs), seen)
			}

			out := logs.String()
			for _, want := range []string{`"msg":"ndt7 test finished"`, `"scheme":"` + srv.Scheme + `"`, `"server":"` + srv.Addr + `"`, `"download_mbps":`} {
				if !strings.Contains(out, want) {
					t.Errorf("log lacks %s:\n%s", want, out)
				}
			}
		})
	}
}

// TestRunViaLocate runs the locate path: the locate request and the test
// both leave from the bound address, and the runner's parameters are merged
// into the target URLs next to locate's access token.
func TestRunViaLocate(t *testing.T) {
	t.Parallel()
	srv := ndt7test.Start(t, ndt7test.Options{})
	bind := net.ParseIP("127.0.0.3")
	var mu sync.Mutex
	var locateFrom, locateUA, locatePath string
	loc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		locateFrom, _, _ = net.SplitHostPort(r.RemoteAddr)
		locateUA, locatePath = r.UserAgent(), r.URL.Path
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		base := "ws://" + srv.Addr
		fmt.Fprintf(w, `{"results":[{"machine":"mlab1-test","location":{"city":"Loopback"},"urls":{
			"ws:///ndt/v7/download":%q,"ws:///ndt/v7/upload":%q,
			"wss:///ndt/v7/download":"wss://unused.invalid/ndt/v7/download","wss:///ndt/v7/upload":"wss://unused.invalid/ndt/v7/upload"}}]}`,
			base+"/ndt/v7/download?access_token=tok1", base+"/ndt/v7/upload?access_token=tok2")
	}))
	t.Cleanup(loc.Close)

	o := shortOptions(t, srv)
	o.Server = ""
	o.LocateURL = loc.URL + "/v2/nearest/"
	res, err := New(o).Run(runCtx(t), speedtest.Target{Interface: "eth9", LocalAddr: bind})
	if err != nil {
		t.Fatalf("Run: %v (class %s)", err, speedtest.ClassOf(err))
	}
	p := checkComplete(t, res)
	for test, client := range p.client {
		if host, _, _ := net.SplitHostPort(client); host != bind.String() {
			t.Errorf("%s: server saw the client as %s, want %s", test, client, bind)
		}
	}
	mu.Lock()
	if locateFrom != bind.String() || locatePath != "/v2/nearest/ndt/ndt7" || !strings.HasPrefix(locateUA, "radar-pod/") {
		t.Errorf("locate request from %s path %s UA %q", locateFrom, locatePath, locateUA)
	}
	mu.Unlock()

	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	subs, err := srv.Subtests()
	if err != nil || len(subs) != 2 {
		t.Fatalf("server subtests: %d, %v", len(subs), err)
	}
	for _, s := range subs {
		d := s.Download
		want := "tok1"
		if d == nil {
			d, want = s.Upload, "tok2"
		}
		meta := map[string]string{}
		for _, nv := range d.ClientMetadata {
			meta[nv.Name] = nv.Value
		}
		if meta["access_token"] != want || meta["early_exit"] != "250" {
			t.Errorf("client metadata %v, want access_token=%s and early_exit=250", meta, want)
		}
	}
}

func TestRunFailures(t *testing.T) {
	t.Parallel()
	srv := ndt7test.Start(t, ndt7test.Options{})
	tlsSrv := ndt7test.Start(t, ndt7test.Options{TLS: true})

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()

	notWS := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notWS.Close)
	locate500 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"error":{"type":"?","title":"no capacity","status":503,"detail":"try later"}}`)
	}))
	t.Cleanup(locate500.Close)
	locateGarbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `<html>captive portal</html>`)
	}))
	t.Cleanup(locateGarbage.Close)
	locateEmpty := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{}`)
	}))
	t.Cleanup(locateEmpty.Close)
	locateDead := httptest.NewServer(http.NotFoundHandler())
	locateDead.Close()
	locateToClosed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"results":[{"machine":"m","urls":{"ws:///ndt/v7/download":"ws://%s/ndt/v7/download"}}]}`, closedAddr)
	}))
	t.Cleanup(locateToClosed.Close)

	// Accepts the ndt7 upgrade, then hangs up without measuring.
	hangUp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		up := websocket.Upgrader{Subprotocols: []string{"net.measurementlab.ndt.v7"}}
		if conn, err := up.Upgrade(w, r, nil); err == nil {
			conn.Close()
		}
	}))
	t.Cleanup(hangUp.Close)

	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	for _, tc := range []struct {
		name   string
		ctx    context.Context
		o      Options
		target speedtest.Target
		class  speedtest.Class
	}{
		{name: "bind to an address not on this host", o: Options{Server: srv.Addr, Scheme: "ws"},
			target: speedtest.Target{Interface: "eth1", LocalAddr: net.ParseIP("192.0.2.1")}, class: speedtest.ClassNetwork},
		{name: "server unreachable", o: Options{Server: closedAddr, Scheme: "ws"}, class: speedtest.ClassNetwork},
		{name: "wss without the server's CA", o: Options{Server: tlsSrv.Addr, Scheme: "wss"}, class: speedtest.ClassNetwork},
		{name: "wss to a ws server", o: Options{Server: srv.Addr, Scheme: "wss"}, class: speedtest.ClassNetwork},
		{name: "not an ndt7 server", o: Options{Server: strings.TrimPrefix(notWS.URL, "http://"), Scheme: "ws"}, class: speedtest.ClassServer},
		{name: "server hangs up after the upgrade", o: Options{Server: strings.TrimPrefix(hangUp.URL, "http://"), Scheme: "ws"}, class: speedtest.ClassNetwork},
		{name: "bad request parameter", o: Options{Server: srv.Addr, Scheme: "ws", Params: url.Values{"early_exit": {"1"}}}, class: speedtest.ClassServer},
		{name: "locate answers 503", o: Options{Scheme: "ws", LocateURL: locate500.URL}, class: speedtest.ClassLocate},
		{name: "locate answers garbage", o: Options{Scheme: "ws", LocateURL: locateGarbage.URL}, class: speedtest.ClassLocate},
		{name: "locate answers no servers", o: Options{Scheme: "ws", LocateURL: locateEmpty.URL}, class: speedtest.ClassLocate},
		{name: "locate unreachable", o: Options{Scheme: "ws", LocateURL: locateDead.URL}, class: speedtest.ClassLocate},
		{name: "located server unreachable", o: Options{Scheme: "ws", LocateURL: locateToClosed.URL}, class: speedtest.ClassNetwork},
		{name: "context already canceled", ctx: canceled, o: Options{Server: srv.Addr, Scheme: "ws"}, class: speedtest.ClassCanceled},
		{name: "unknown scheme", o: Options{Server: srv.Addr, Scheme: "http"}, class: speedtest.ClassInternal},
		{name: "bad locate URL", o: Options{LocateURL: "ftp://x"}, class: speedtest.ClassInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := tc.ctx
			if ctx == nil {
				ctx = runCtx(t)
			}
			log, logs := newTestLogger(t)
			tc.o.Logger = log
			res, err := New(tc.o).Run(ctx, tc.target)
			if got := speedtest.ClassOf(err); got != tc.class {
				t.Fatalf("class %q, want %q (err: %v)", got, tc.class, err)
			}
			var se *speedtest.Error
			if !errors.As(err, &se) || se.Runner != "ndt7" {
				t.Errorf("error %T %v is not a *speedtest.Error of ndt7", err, err)
			}
			if res.Raw != nil || res.Summary != (speedtest.Summary{}) {
				t.Errorf("nothing was measured, yet Raw=%q Summary=%+v", tail(res.Raw), res.Summary)
			}
			if res.Runner != "ndt7" || res.Style != "NDT7" || res.Interface != tc.target.Interface || res.FinishedAt.IsZero() {
				t.Errorf("result identity %+v", res)
			}
			if tc.class != speedtest.ClassInternal && !strings.Contains(logs.String(), `"class":"`+string(tc.class)+`"`) {
				t.Errorf("failure not logged with its class:\n%s", logs)
			}
		})
	}
}

// TestRunDeadlineMidTest lets the run's deadline expire during a standard
// (10 s) download: the class is timeout, and whatever was measured comes
// back as a parseable partial result.
func TestRunDeadlineMidTest(t *testing.T) {
	t.Parallel()
	srv := ndt7test.Start(t, ndt7test.Options{})
	log, _ := newTestLogger(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res, err := New(Options{Server: srv.Addr, Scheme: "ws", Logger: log}).Run(ctx, speedtest.Target{})
	if got := speedtest.ClassOf(err); got != speedtest.ClassTimeout {
		t.Fatalf("class %q, want timeout (err: %v)", got, err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error does not wrap DeadlineExceeded: %v", err)
	}
	if res.Raw == nil {
		t.Fatal("no partial result after 3 s of a 10 s download")
	}
	p := parseRaw(t, res.Raw)
	if p.kinds["download/client/AppInfo"] == 0 || p.kinds["upload/server/TCPInfo"] != 0 {
		t.Errorf("partial result lines: %v", p.kinds)
	}
	if !near(res.Summary.DownloadMbps, p.down) || res.Summary.UploadMbps != 0 || !near(*p.summary.Download.Value, p.down) {
		t.Errorf("partial summary %+v, recomputed download %v", res.Summary, p.down)
	}
}

// TestRunCancelMidTest cancels the run (agent shutdown) during the download.
func TestRunCancelMidTest(t *testing.T) {
	t.Parallel()
	srv := ndt7test.Start(t, ndt7test.Options{TLS: true})
	log, _ := newTestLogger(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	time.AfterFunc(time.Second, cancel)
	_, err := New(Options{Server: srv.Addr, Scheme: "wss", RootCAs: srv.CA.Pool, Logger: log}).Run(ctx, speedtest.Target{})
	if got := speedtest.ClassOf(err); got != speedtest.ClassCanceled {
		t.Fatalf("class %q, want canceled (err: %v)", got, err)
	}
}
