package ndt7

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/m-lab/ndt7-client-go/spec"

	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/speedtest"
)

// floodServer is a hostile ndt7 server on loopback: it accepts the ndt7
// subprotocol and answers the download with measurement messages as fast as
// the client takes them, each one msg. It stops when the client hangs up,
// or — so that a client without a bound cannot exhaust the test machine —
// once it has sent limit bytes, closing normally as a server ending a
// download would.
type floodServer struct {
	addr  string
	msg   []byte
	limit int

	mu        sync.Mutex
	sent      int
	hungUp    bool // the client stopped the flood before limit
	downloads int
	uploads   int
}

func startFloodServer(t *testing.T, msg []byte, limit int) *floodServer {
	t.Helper()
	f := &floodServer{msg: msg, limit: limit}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.addr = strings.TrimPrefix(srv.URL, "http://")
	return f
}

func (f *floodServer) serve(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{Subprotocols: []string{"net.measurementlab.ndt.v7"}}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	if r.URL.Path != "/ndt/v7/download" {
		f.mu.Lock()
		f.uploads++
		f.mu.Unlock()
		return
	}
	f.mu.Lock()
	f.downloads++
	f.mu.Unlock()
	for sent := 0; ; sent += len(f.msg) {
		if sent >= f.limit {
			conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			f.record(sent, false)
			return
		}
		conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if err := conn.WriteMessage(websocket.TextMessage, f.msg); err != nil {
			f.record(sent, true)
			return
		}
	}
}

func (f *floodServer) record(sent int, hungUp bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent, f.hungUp = sent, hungUp
}

func (f *floodServer) stats() (sent int, hungUp bool, downloads, uploads int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sent, f.hungUp, f.downloads, f.uploads
}

// serverMeasurement is one real server measurement, as ndt-server sends it:
// the Value of the fixture's first line.
func serverMeasurement(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/ndt7-result.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := bytes.Cut(raw, []byte("\n"))
	var ev struct{ Value json.RawMessage }
	if err := json.Unmarshal(first, &ev); err != nil || len(ev.Value) < 1000 {
		t.Fatalf("fixture's first line: %v (%d bytes)", err, len(ev.Value))
	}
	return ev.Value
}

// TestRunRefusesAMeasurementFlood points the runner at a server that never
// stops sending measurements: with realistic ones (~1.5 KiB, what a real
// server sends a few of per second) and with giant ones (a ~1 MiB UUID,
// just under the client library's message limit). The test fails as the
// server's fault once the record reaches its bound, the runner hangs up at
// once instead of reading on, keeps nothing of the flood and runs no
// upload against that server.
func TestRunRefusesAMeasurementFlood(t *testing.T) {
	t.Parallel()
	real := serverMeasurement(t)
	giant, err := json.Marshal(map[string]any{
		"ConnectionInfo": map[string]string{"UUID": strings.Repeat("x", 1000<<10)},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Far beyond the bound: a runner that keeps reading past it would
	// record all of this.
	const limit = 16 * maxRecord
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"realistic measurements", real},
		{"giant measurements", giant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startFloodServer(t, tc.msg, limit)
			logs := &proctest.LogBuffer{Max: 1 << 20}
			log := slog.New(slog.NewJSONHandler(logs, nil))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()

			res, err := New(Options{Server: srv.addr, Scheme: "ws", Logger: log}).Run(ctx, speedtest.Target{})

			if got := speedtest.ClassOf(err); got != speedtest.ClassServer {
				t.Fatalf("class %q, want server (err: %v)", got, err)
			}
			if !errors.Is(err, errRecordFull) || !strings.Contains(err.Error(), "download: the server sent more than 4 MiB of measurements") {
				t.Errorf("error does not say what the server did: %v", err)
			}
			// Nothing of the figures is kept; what the test moved is
			// counted all the same (the data budget pays for it).
			figures := res.Summary
			figures.BytesSent, figures.BytesReceived = 0, 0
			if res.Raw != nil || figures != (speedtest.Summary{}) {
				t.Errorf("kept %d bytes and summary %+v of a flood", len(res.Raw), res.Summary)
			}
			if res.FinishedAt.IsZero() || res.Runner != Name {
				t.Errorf("result identity %+v", res)
			}
			// The server's view: the client hung up, long before the
			// limit (socket buffers hold a few MiB in flight), and never
			// came back for an upload.
			var sent, downloads, uploads int
			var hungUp bool
			proctest.WaitFor(t, 10*time.Second, "the flood server saw the hang-up", func() bool {
				sent, hungUp, downloads, uploads = srv.stats()
				return hungUp || sent >= limit
			})
			if !hungUp || sent >= limit/2 {
				t.Errorf("the server sent %d bytes (hung up by the client: %v); the runner kept reading past its bound", sent, hungUp)
			}
			if downloads != 1 || uploads != 0 {
				t.Errorf("%d downloads and %d uploads against a flooding server, want 1 and 0", downloads, uploads)
			}
			if out := logs.String(); !strings.Contains(out, `"msg":"ndt7 test failed"`) || !strings.Contains(out, `"class":"server"`) {
				t.Errorf("failure not logged with its class:\n%s", out)
			}
		})
	}
}

// TestRecorderBound: a real result fits with room to spare, every line
// is recorded whole or not at all, and the summary always has room.
func TestRecorderBound(t *testing.T) {
	_, ms, _ := fixture(t)
	for _, tc := range []struct {
		name    string
		max     int
		full    bool
		minKept int // lines recorded at least
	}{
		{"production bound", maxRecord, false, len(ms)},
		{"exactly the fixture's measurements", fixtureMeasurementBytes(t, ms), false, len(ms)},
		{"one byte short", fixtureMeasurementBytes(t, ms) - 1, true, len(ms) - 1},
		{"tiny", 10, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorderMax(tc.max)
			var err error
			for i := range ms {
				if err = rec.measurement(&ms[i]); err != nil {
					break
				}
			}
			if (err != nil) != tc.full || rec.full() != tc.full {
				t.Fatalf("err %v full %v, want full %v", err, rec.full(), tc.full)
			}
			if tc.full && !errors.Is(err, errRecordFull) {
				t.Fatalf("err %v, want errRecordFull", err)
			}
			if rec.lines < tc.minKept || rec.buf.Len() > tc.max {
				t.Fatalf("%d lines, %d bytes (bound %d)", rec.lines, rec.buf.Len(), tc.max)
			}
			if n := bytes.Count(rec.buf.Bytes(), []byte("\n")); n != rec.lines {
				t.Fatalf("%d complete lines in the buffer, %d counted: a line was cut", n, rec.lines)
			}
			serr := rec.summary(summaryLine{Download: value{123.456789}, Upload: value{1e300}, MinRTT: value{-1.5e-300}})
			if (serr != nil) != tc.full {
				t.Fatalf("summary: %v (full %v)", serr, tc.full)
			}
		})
	}
}

// fixtureMeasurementBytes is what the fixture's measurements take as the
// recorder writes them.
func fixtureMeasurementBytes(t *testing.T, ms []spec.Measurement) int {
	t.Helper()
	rec := newRecorderMax(1 << 30)
	for i := range ms {
		if err := rec.measurement(&ms[i]); err != nil {
			t.Fatal(err)
		}
	}
	return rec.buf.Len()
}
