package radar

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/radarpod/radarpod/internal/backoff"
)

// fuzzIdent is the subscription identifier the fuzzed sessions own; seeds
// embed it so that confirmations and broadcasts can be "ours".
const fuzzIdent = `{"channel":"PodAgentChannel","id":"00000000-0000-4000-8000-000000000000"}`

// quoted is s as a JSON string literal (how frames carry an identifier).
func quoted(s string) string { b, _ := json.Marshal(s); return string(b) }

// cableSeeds are the frames of docs/radar-protocol.md, and near misses.
func cableSeeds() []string {
	id := quoted(fuzzIdent)
	return []string{
		`{"type":"welcome"}`,
		`{"type":"ping","message":1700000000}`,
		`{"type":"confirm_subscription","identifier":` + id + `}`,
		`{"type":"reject_subscription","identifier":` + id + `}`,
		`{"type":"disconnect","reason":"unauthorized","reconnect":false}`,
		`{"type":"disconnect","reason":"server_restart","reconnect":true}`,
		`{"type":"run_test","message":{"interfaces":["eth0","wlan0"]}}`,
		`{"type":"run_test","message":{"interfaces":null}}`,
		`{"type":"run_test"}`,
		`{"type":"update","message":{"version":"1.5.0","binary_url":"/client_versions/1.5.0/distributions/linux-arm64/download?signed=true"}}`,
		`{"type":"update_watchdog","message":{"version":"2.0.0","binary_url":"/x"}}`,
		`{"identifier":` + id + `,"message":{"event":"test_requested","payload":{"interfaces":null}}}`,
		`{"identifier":` + id + `,"message":{"event":"test_requested","payload":{"interfaces":["eth0"]}}}`,
		`{"identifier":` + id + `,"message":{"event":"version_changed","payload":{"version":"1.5.0","binary_url":"/b"}}}`,
		`{"identifier":` + id + `,"message":{"event":"watchdog_version_changed","payload":{"version":"1"}}}`,
		`{"identifier":` + quoted(`{"channel":"Other"}`) + `,"message":{"event":"test_requested"}}`,
		`{"type":"run_test","message":{"interfaces":"eth0"}}`,
		`{"type":"run_test","message":{"interfaces":["eth0","../../etc","eth0:1","","eth0","a b","0123456789abcdef"]}}`,
		`{"type":"run_test","message":{"interfaces":["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q","r"]}}`,
		`{"type":42}`, `{"type":"update","message":{"version":7}}`, `{"type":"disconnect","reason":{}}`,
		`null`, `[]`, `{}`, `"text"`, `{"type":"welcome"`, "\xff\xfe", strings.Repeat("[", 1000),
	}
}

// recorder is a Handler that keeps what it was told.
type recorder struct {
	connected, heartbeats int
	events                []Event
}

func (r *recorder) Connected()         { r.connected++ }
func (r *recorder) Disconnected(error) {}
func (r *recorder) Heartbeat()         { r.heartbeats++ }
func (r *recorder) Event(ev Event)     { r.events = append(r.events, ev) }

// drainingPeer is the service's end of one real WebSocket: it reads and
// drops whatever the session sends (subscribe, pong, sync).
func drainingPeer(tb testing.TB) *websocket.Conn {
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}))
	tb.Cleanup(srv.Close)
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	return conn
}

// FuzzCableFrame feeds one server frame to a live channel session, in each
// of the states a frame can meet it (fresh, welcomed, subscribed), over a
// real WebSocket. Nothing may panic; a frame may end the session only as
// the protocol says (a rejection or a disconnect); every event handed to
// the agent is well formed.
func FuzzCableFrame(f *testing.F) {
	for _, s := range cableSeeds() {
		for state := range uint8(4) {
			f.Add([]byte(s), state)
		}
	}
	conn := drainingPeer(f)
	client := &CableClient{
		Identity: Identity{UnixUser: "rfuzz0000000", Secret: "s3cr3tS3cr3"},
		Sync: func() SyncPayload {
			return SyncPayload{Version: "1.0.0", Distribution: "linux-amd64", OSVersion: "linux", HardwarePlatform: "amd64"}
		},
	}
	log := slog.New(slog.DiscardHandler)
	f.Fuzz(func(t *testing.T, frame []byte, state uint8) {
		rec := &recorder{}
		s := &cableSession{c: client, conn: conn, h: rec, log: log, bo: &backoff.Backoff{Initial: time.Second},
			identifier: fuzzIdent, timeout: time.Minute,
			subscribeSent: state&1 != 0, subscribed: state&2 != 0}
		err := s.handle(frame)
		var de *DisconnectError
		if err != nil && !errors.Is(err, ErrUnauthorized) && !errors.As(err, &de) {
			t.Fatalf("frame %q ended the session with %v", frame, err)
		}
		for _, ev := range rec.events {
			if !bytes.Equal(ev.Raw, frame) {
				t.Fatalf("event %+v does not carry its frame %q", ev, frame)
			}
			switch ev.Kind {
			case RunTest:
				// nil is the default route; an empty list would be neither.
				if ev.Interfaces != nil && len(ev.Interfaces) == 0 {
					t.Fatalf("run_test with an empty, non-nil interface list from %q", frame)
				}
				if len(ev.Interfaces) > MaxTestInterfaces {
					t.Fatalf("run_test with %d interfaces from %q", len(ev.Interfaces), frame)
				}
				seen := map[string]bool{}
				for _, name := range ev.Interfaces {
					if (name != "" && !ValidInterfaceName(name)) || seen[name] {
						t.Fatalf("run_test keeps %q (invalid or repeated) from %q", name, frame)
					}
					seen[name] = true
				}
			case Update, WatchdogUpdate:
				if ev.Version == "" {
					t.Fatalf("%s event without a version from %q", ev.Kind, frame)
				}
			case Unknown:
				if ev.Err == nil {
					t.Fatalf("unknown event without a reason from %q", frame)
				}
			default:
				t.Fatalf("event of kind %q from %q", ev.Kind, frame)
			}
		}
		if rec.connected > 0 && !s.subscribed {
			t.Fatalf("Connected without a subscription after %q", frame)
		}
	})
}

// answerTransport answers every request with one fixed response, as a
// service (or whatever sits in front of it) that answers garbage would.
type answerTransport struct {
	status int
	body   []byte
}

func (a answerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{
		StatusCode: a.status, Status: fmt.Sprintf("%d %s", a.status, http.StatusText(a.status)),
		Header: http.Header{"Content-Type": {"application/json; charset=utf-8"}},
		Body:   io.NopCloser(bytes.NewReader(a.body)), ContentLength: int64(len(a.body)),
		Request: r, ProtoMajor: 1, ProtoMinor: 1,
	}, nil
}

// FuzzServiceAnswer gives the pod's HTTP calls (register, status, upload)
// any status and body. Nothing may panic; only the expected status with a
// usable body is a success; every failure is classified; the pod secret
// never appears in an error (a confused service may echo it).
func FuzzServiceAnswer(f *testing.F) {
	const secret = "s3cr3tS3cr3"
	for _, s := range []struct {
		status uint16
		body   string
	}{
		{201, `{"id":1001,"unix_user":"rabc12345678","secret":"Xy9Xy9Xy9Xy","account_id":null,"location_id":null}`},
		{200, `{"id":1001,"unix_user":"rabc12345678","test_requested":true,"update":{"version":"1.5.0","url":"https://radar.example/x"}}`},
		{201, `{"id":1,"style":"OOKLA","client_id":1001}`},
		{201, `{"id":"1001","unix_user":42}`}, {201, `null`}, {201, `{"id":1001,"unix_u`}, {200, `{"test_requested":"yes"}`},
		{500, `<html>` + secret + `</html>`}, {404, `{"status":404,"error":"Not Found"}`}, {302, ``}, {403, secret},
	} {
		for op := range uint8(3) {
			f.Add(s.status, []byte(s.body), op)
		}
	}
	id := Identity{UnixUser: "rabc12345678", Secret: secret}
	f.Fuzz(func(t *testing.T, status uint16, body []byte, op uint8) {
		code := 200 + int(status)%400 // what an HTTP server can send as a final answer
		c := NewClient("https://radar.example", &http.Client{Transport: answerTransport{code, body}, Timeout: time.Minute})
		ctx := context.Background()
		var err error
		var want int
		switch op % 3 {
		case 0:
			want = http.StatusCreated
			var got Identity
			got, err = c.Register(ctx, RegisterRequest{RegistrationToken: secret})
			if err == nil && !got.Valid() {
				t.Fatalf("registration accepted an invalid identity from %d %q", code, body)
			}
		case 1:
			want = http.StatusOK
			_, err = c.Status(ctx, id, StatusRequest{Version: "1.0.0"})
		default:
			want = http.StatusCreated
			err = c.UploadMeasurement(ctx, id, Measurement{Style: StyleOokla, Result: []byte(`{"type":"result"}`)})
		}
		if err == nil && code != want {
			t.Fatalf("op %d succeeded on HTTP %d", op%3, code)
		}
		if err != nil {
			if Classify(err) == ClassNone {
				t.Fatalf("unclassified error %v", err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error carries the pod secret: %v", err)
			}
		}
	})
}

// FuzzIdentityFile: whatever identity.json holds (a torn write, a
// hand-edited file), loading it never panics and never yields an identity
// without credentials.
func FuzzIdentityFile(f *testing.F) {
	f.Add([]byte(`{"id":1001,"unix_user":"rabc12345678","secret":"Xy9Xy9Xy9Xy","account_id":1,"location_id":null}`))
	f.Add([]byte(`{"id":1001,"unix_user":"rabc12345678"}`))
	f.Add([]byte(`{"id":1001,"unix_user":"rabc1234`))
	f.Add([]byte(`{"unix_user":["x"],"secret":{}}`))
	f.Add([]byte(``))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, content []byte) {
		if err := os.WriteFile(filepath.Join(dir, IdentityFile), content, 0o600); err != nil {
			t.Fatal(err)
		}
		id, ok, err := LoadIdentity(dir)
		if ok && (err != nil || !id.Valid()) {
			t.Fatalf("loaded %+v, %v from %q", id, err, content)
		}
		if !ok && err == nil {
			t.Fatalf("an existing file %q read as no identity at all", content)
		}
	})
}
