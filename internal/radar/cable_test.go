package radar_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/backoff"
	"github.com/radarpod/radarpod/internal/buildinfo"
	"github.com/radarpod/radarpod/internal/netif"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/radar"
	"github.com/radarpod/radarpod/internal/radartest"
)

// recorder is a Handler that keeps everything it is told.
type recorder struct {
	mu          sync.Mutex
	connected   int
	heartbeats  int
	disconnects []error
	events      []radar.Event
}

func (r *recorder) Connected() { r.mu.Lock(); r.connected++; r.mu.Unlock() }
func (r *recorder) Heartbeat() { r.mu.Lock(); r.heartbeats++; r.mu.Unlock() }
func (r *recorder) Event(e radar.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}
func (r *recorder) Disconnected(err error) {
	r.mu.Lock()
	r.disconnects = append(r.disconnects, err)
	r.mu.Unlock()
}

func (r *recorder) snapshot() (connected, heartbeats int, disc []error, events []radar.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.connected, r.heartbeats, append([]error(nil), r.disconnects...), append([]radar.Event(nil), r.events...)
}

// eventually polls cond with a generous deadline (the machine is shared).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type cableRig struct {
	srv    *radartest.Server
	id     radar.Identity
	cable  *radar.CableClient
	rec    *recorder
	cancel context.CancelFunc
	done   chan error

	mu     sync.Mutex
	delays []time.Duration
}

func (r *cableRig) waits() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.delays...)
}

func syncPayload(t *testing.T) func() radar.SyncPayload {
	return func() radar.SyncPayload {
		ifs, err := netif.List()
		if err != nil {
			t.Error(err)
		}
		return radar.SyncPayload{
			Version: buildinfo.Version, Distribution: buildinfo.Distribution(), WatchdogVersion: "",
			OSVersion: buildinfo.OS(), HardwarePlatform: buildinfo.Arch(), RegistrationToken: "tok",
			NetInterfaces: radar.FromNetif(ifs),
		}
	}
}

// newRig registers a pod on a fresh double and prepares (not runs) a cable
// client with quick pacing. The double pings only when a test asks it to,
// unless opts sets an interval.
func newRig(t *testing.T, opts radartest.Options, tune func(*radar.CableClient)) *cableRig {
	t.Helper()
	if opts.PingInterval == 0 {
		opts.PingInterval = time.Hour
	}
	srv := radartest.Start(t, opts)
	_, id := register(t, srv)
	r := &cableRig{srv: srv, id: id, rec: &recorder{}}
	r.cable = &radar.CableClient{
		URL:               srv.CableURL(),
		Identity:          id,
		UserAgent:         buildinfo.AgentUserAgent(),
		Sync:              syncPayload(t),
		Dialer:            srv.Dialer(),
		Backoff:           &backoff.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond, Jitter: 0.1},
		UnauthorizedDelay: 400 * time.Millisecond,
	}
	radar.SetWait(r.cable, func(ctx context.Context, d time.Duration) error {
		r.mu.Lock()
		r.delays = append(r.delays, d)
		r.mu.Unlock()
		return backoff.Wait(ctx, d)
	})
	if tune != nil {
		tune(r.cable)
	}
	return r
}

func (r *cableRig) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.done = make(chan error, 1)
	go func() { r.done <- r.cable.Run(ctx, r.rec) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(20 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

func (r *cableRig) waitConnected(t *testing.T, n int) {
	t.Helper()
	// The sync being recorded matters: the double decides what to transmit
	// during sync, so a request sent before it could arrive twice.
	eventually(t, "subscription and sync", func() bool {
		c, _, _, _ := r.rec.snapshot()
		return c >= n && r.srv.Subscribed() == 1 && len(r.srv.Syncs()) >= n
	})
}

func (r *cableRig) waitEvents(t *testing.T, n int) []radar.Event {
	t.Helper()
	var evs []radar.Event
	eventually(t, "events", func() bool {
		_, _, _, evs = r.rec.snapshot()
		return len(evs) >= n
	})
	return evs
}

func TestCableHandshakeSyncAndPong(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(map[bool]string{false: "ws", true: "wss"}[tls], func(t *testing.T) {
			r := newRig(t, radartest.Options{TLS: tls}, nil)
			r.run(t)
			r.waitConnected(t, 1)

			conns := r.srv.Connections()
			if len(conns) != 1 {
				t.Fatalf("%d connections", len(conns))
			}
			h := conns[0].Header
			want := map[string]string{
				"User-Agent":                buildinfo.AgentUserAgent(),
				"Authorization":             "Basic " + r.id.UnixUser + ":" + r.id.Secret,
				"Sec-Radar-Tool":            "true",
				"Sec-Radar-Service-Started": "true",
			}
			for k, v := range want {
				if got := h.Values(k); len(got) != 1 || got[0] != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if conns[0].UnixUser != r.id.UnixUser || conns[0].Status != 101 {
				t.Errorf("connection %+v", conns[0])
			}

			eventually(t, "sync", func() bool { return len(r.srv.Syncs()) >= 1 })
			syncs := r.srv.Syncs()
			if len(syncs) != 1 {
				t.Fatalf("%d syncs", len(syncs))
			}
			want2 := syncPayload(t)()
			if !reflect.DeepEqual(mustJSON(t, syncs[0].Payload), mustJSON(t, want2)) {
				t.Errorf("sync payload\n got %s\nwant %s", syncs[0].Raw, mustJSON(t, want2))
			}

			// Every ping gets exactly one pong.
			const pings = 5
			for i := 0; i < pings; i++ {
				r.srv.SendRaw(`{"type":"ping","message":1700000000}`)
			}
			eventually(t, "pongs", func() bool { return len(r.srv.Pongs()) >= pings })
			if p := r.srv.Pongs(); len(p) != pings || p[0].Data != `{"action":"pong"}` {
				t.Errorf("pongs %+v", p)
			}
			if _, hb, _, _ := r.rec.snapshot(); hb != pings {
				t.Errorf("%d heartbeats for %d pings", hb, pings)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCableEvents(t *testing.T) {
	logs := &proctest.LogBuffer{}
	r := newRig(t, radartest.Options{}, func(c *radar.CableClient) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	r.run(t)
	r.waitConnected(t, 1)

	steps := []struct {
		name string
		send func() int
		want radar.Event
	}{
		{"test_requested with interfaces", func() int { return r.srv.SendRunTest([]string{"eth0", "wlan0"}) },
			radar.Event{Kind: radar.RunTest, Interfaces: []string{"eth0", "wlan0"}}},
		{"test_requested null", func() int { return r.srv.SendRunTest(nil) }, radar.Event{Kind: radar.RunTest}},
		{"test_requested empty payload (the service's real form)", func() int { return r.srv.SendBroadcast("test_requested", map[string]any{}) },
			radar.Event{Kind: radar.RunTest}},
		{"run_test transmit", func() int { return r.srv.SendTransmit("run_test", map[string]any{"interfaces": []string{"wlan0"}}) },
			radar.Event{Kind: radar.RunTest, Interfaces: []string{"wlan0"}}},
		{"bare run_test", func() int { return r.srv.SendRaw(`{"type":"run_test"}`) }, radar.Event{Kind: radar.RunTest}},
		{"version_changed", func() int {
			return r.srv.SendVersionChanged("1.5.0", "/client_versions/1.5.0/distributions/linux-arm64/download?signed=true")
		},
			radar.Event{Kind: radar.Update, Version: "1.5.0", BinaryURL: "/client_versions/1.5.0/distributions/linux-arm64/download?signed=true"}},
		{"update transmit", func() int {
			return r.srv.SendTransmit("update", map[string]string{"version": "1.6.0", "binary_url": "/b"})
		}, radar.Event{Kind: radar.Update, Version: "1.6.0", BinaryURL: "/b"}},
		{"update_watchdog", func() int {
			return r.srv.SendTransmit("update_watchdog", map[string]string{"version": "0.9.0", "binary_url": "/w"})
		}, radar.Event{Kind: radar.WatchdogUpdate, Version: "0.9.0", BinaryURL: "/w"}},
		{"watchdog_version_changed", func() int {
			return r.srv.SendBroadcast("watchdog_version_changed", map[string]string{"version": "0.9.1", "binary_url": "/w2"})
		}, radar.Event{Kind: radar.WatchdogUpdate, Version: "0.9.1", BinaryURL: "/w2"}},
		// Unknown and malformed messages: reported, never fatal.
		{"not JSON", func() int { return r.srv.SendRaw(`{"type":`) }, radar.Event{Kind: radar.Unknown}},
		{"unknown type", func() int { return r.srv.SendRaw(`{"type":"surprise","message":{}}`) }, radar.Event{Kind: radar.Unknown}},
		{"unknown broadcast", func() int { return r.srv.SendBroadcast("mystery", map[string]any{}) }, radar.Event{Kind: radar.Unknown}},
		{"update without version", func() int { return r.srv.SendTransmit("update", map[string]string{"binary_url": "/x"}) }, radar.Event{Kind: radar.Unknown}},
		{"interfaces not strings", func() int { return r.srv.SendTransmit("run_test", map[string]any{"interfaces": []int{1}}) },
			radar.Event{Kind: radar.Unknown}},
		{"broadcast for another subscription", func() int {
			return r.srv.SendRaw(`{"identifier":"{\"channel\":\"Other\",\"id\":\"x\"}","message":{"event":"test_requested","payload":{}}}`)
		}, radar.Event{Kind: radar.Unknown}},
		{"frame without type", func() int { return r.srv.SendRaw(`{"foo":1}`) }, radar.Event{Kind: radar.Unknown}},
		{"JSON array", func() int { return r.srv.SendRaw(`[1,2]`) }, radar.Event{Kind: radar.Unknown}},
	}
	seen := 0
	for _, st := range steps {
		if n := st.send(); n != 1 {
			t.Fatalf("%s: reached %d connections", st.name, n)
		}
		seen++
		evs := r.waitEvents(t, seen)
		if len(evs) != seen {
			t.Fatalf("%s: %d events, want %d", st.name, len(evs), seen)
		}
		got := evs[seen-1]
		if got.Kind != st.want.Kind || !reflect.DeepEqual(got.Interfaces, st.want.Interfaces) ||
			got.Version != st.want.Version || got.BinaryURL != st.want.BinaryURL {
			t.Errorf("%s: got %+v, want %+v", st.name, got, st.want)
		}
		if (got.Kind == radar.Unknown) != (got.Err != nil) {
			t.Errorf("%s: Err %v for kind %s", st.name, got.Err, got.Kind)
		}
		if len(got.Raw) == 0 {
			t.Errorf("%s: Raw not kept", st.name)
		}
	}
	// Nothing above broke the channel: still the first connection, and it
	// still answers.
	r.srv.SendRaw(`{"type":"ping","message":1}`)
	eventually(t, "pong after the junk", func() bool { return len(r.srv.Pongs()) >= 1 })
	if n := len(r.srv.Connections()); n != 1 {
		t.Fatalf("%d connections: a bad message killed the channel", n)
	}
	if _, _, d, _ := r.rec.snapshot(); len(d) != 0 {
		t.Fatalf("disconnected: %v", d)
	}
	// Junk is logged at Warn; the secret is never logged.
	out := logs.String()
	if strings.Count(out, `"level":"WARN","msg":"ignoring unexpected channel message"`) != 8 {
		t.Errorf("want 8 warnings for the 8 bad messages in:\n%s", out)
	}
	if strings.Contains(out, r.id.Secret) {
		t.Errorf("log contains the pod secret:\n%s", out)
	}
	if !strings.Contains(out, r.id.UnixUser) {
		t.Errorf("log never names the pod:\n%s", out)
	}
}

// Pending work is transmitted during sync, update first, as the service does.
func TestCablePendingWorkArrivesOnSync(t *testing.T) {
	r := newRig(t, radartest.Options{}, nil)
	r.srv.SetPendingUpdate("2.0.0", "/v/2.0.0")
	r.srv.SetPendingTest(true)
	r.run(t)
	evs := r.waitEvents(t, 2)
	if evs[0].Kind != radar.Update || evs[0].Version != "2.0.0" || evs[1].Kind != radar.RunTest || evs[1].Interfaces != nil {
		t.Fatalf("events %+v", evs)
	}
}

func TestCableDeadChannelReconnects(t *testing.T) {
	r := newRig(t, radartest.Options{PingInterval: 50 * time.Millisecond}, func(c *radar.CableClient) {
		c.PingTimeout = 600 * time.Millisecond
	})
	r.run(t)
	r.waitConnected(t, 1)
	eventually(t, "pongs to timer pings", func() bool { return len(r.srv.Pongs()) >= 3 })

	r.srv.SetStopPinging(true)
	eventually(t, "dead channel noticed", func() bool {
		_, _, d, _ := r.rec.snapshot()
		return len(d) >= 1
	})
	_, _, d, _ := r.rec.snapshot()
	if !errors.Is(d[0], radar.ErrChannelDead) {
		t.Fatalf("disconnect reason %v, want ErrChannelDead", d[0])
	}
	r.srv.SetStopPinging(false)
	r.waitConnected(t, 2)
	conns := r.srv.Connections()
	if len(conns) < 2 || conns[1].ServiceStarted != "false" {
		t.Fatalf("reconnect sent Sec-Radar-Service-Started %q", conns[len(conns)-1].ServiceStarted)
	}
	// The rig's backoff is 20 ms doubling to 100 ms, ±10%; after a channel
	// that was up, the reconnect waits the capped step (radar.Connected).
	if w := r.waits(); len(w) == 0 || w[0] < 90*time.Millisecond || w[0] > 110*time.Millisecond {
		t.Fatalf("reconnect delays %v, want the capped channel backoff (100ms ±10%%)", w)
	}
	eventually(t, "sync after reconnecting", func() bool { return len(r.srv.Syncs()) >= 2 })
}

func TestCableReconnects(t *testing.T) {
	tests := []struct {
		name         string
		act          func(srv *radartest.Server)
		unauthorized bool
	}{
		{"dropped", func(srv *radartest.Server) { srv.DropConnections() }, false},
		{"server_restart", func(srv *radartest.Server) { srv.Disconnect("server_restart", true) }, false},
		{"unauthorized", func(srv *radartest.Server) { srv.Disconnect("unauthorized", false) }, true},
		{"reconnect false", func(srv *radartest.Server) { srv.Disconnect("invalid_request", false) }, true},
		// Frames are bounded; an oversized one ends the connection, not the pod.
		{"oversized frame", func(srv *radartest.Server) { srv.SendRaw(`{"type":"` + strings.Repeat("x", 2<<20) + `"}`) }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, radartest.Options{}, nil)
			r.run(t)
			r.waitConnected(t, 1)
			tc.act(r.srv)
			r.waitConnected(t, 2)

			_, _, d, _ := r.rec.snapshot()
			if len(d) != 1 {
				t.Fatalf("disconnects %v", d)
			}
			if got := errors.Is(d[0], radar.ErrUnauthorized); got != tc.unauthorized {
				t.Errorf("Disconnected(%v): unauthorized=%v, want %v", d[0], got, tc.unauthorized)
			}
			w := r.waits()
			if len(w) != 1 {
				t.Fatalf("delays %v", w)
			}
			if tc.unauthorized {
				// UnauthorizedDelay ±10%, not the 20 ms channel backoff.
				if w[0] < 360*time.Millisecond || w[0] > 440*time.Millisecond {
					t.Errorf("delay %v, want the slow unauthorized pace (400ms ±10%%)", w[0])
				}
			} else if w[0] < 90*time.Millisecond || w[0] > 110*time.Millisecond {
				// A channel that was up drops: the fleet it belongs to lost
				// it together, so the return is spread over the whole
				// window (radar.Connected), not the first step (20ms).
				t.Errorf("delay %v, want the capped channel backoff step (100ms ±10%%)", w[0])
			}
			conns := r.srv.Connections()
			if conns[0].ServiceStarted != "true" || conns[1].ServiceStarted != "false" {
				t.Errorf("Sec-Radar-Service-Started %q then %q", conns[0].ServiceStarted, conns[1].ServiceStarted)
			}
		})
	}
}

func TestCableRefusedConnections(t *testing.T) {
	tests := []struct {
		name         string
		setup        func(r *cableRig)
		unauthorized bool
		wantErr      string
	}{
		{"wrong secret", func(r *cableRig) {
			r.cable.Identity.Secret = "wrongsecret"
		}, true, "unauthorized"},
		{"subscription rejected", func(r *cableRig) { r.srv.SetRejectSubscriptions(true) }, true, "rejected"},
		{"channel down", func(r *cableRig) { r.srv.SetChannelDown(true) }, false, "503"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, radartest.Options{}, nil)
			tc.setup(r)
			r.run(t)
			eventually(t, "two refused attempts", func() bool {
				_, _, d, _ := r.rec.snapshot()
				return len(d) >= 2
			})
			c, _, d, _ := r.rec.snapshot()
			if c != 0 {
				t.Fatalf("Connected called %d times", c)
			}
			for _, err := range d[:2] {
				if errors.Is(err, radar.ErrUnauthorized) != tc.unauthorized || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Disconnected(%v), want unauthorized=%v containing %q", err, tc.unauthorized, tc.wantErr)
				}
			}
			w := r.waits()
			slow := w[0] >= 360*time.Millisecond
			if slow != tc.unauthorized {
				t.Errorf("delays %v: slow=%v, want %v", w, slow, tc.unauthorized)
			}
		})
	}
}

func TestCableStopsOnCancel(t *testing.T) {
	r := newRig(t, radartest.Options{}, nil)
	r.run(t)
	r.waitConnected(t, 1)
	r.cancel()
	select {
	case err := <-r.done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v", err)
		}
		r.done <- err // for the cleanup
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop")
	}
	eventually(t, "server sees the socket closed", func() bool { return r.srv.Subscribed() == 0 })
	_, _, d, _ := r.rec.snapshot()
	if len(d) != 1 || !errors.Is(d[0], context.Canceled) {
		t.Fatalf("disconnects %v", d)
	}
}

// Cancelling while Run waits to reconnect (slow unauthorized pace) returns
// at once too.
func TestCableStopsOnCancelWhileWaiting(t *testing.T) {
	r := newRig(t, radartest.Options{}, func(c *radar.CableClient) { c.UnauthorizedDelay = time.Hour })
	r.cable.Identity.Secret = "wrongsecret"
	r.run(t)
	eventually(t, "refusal", func() bool { return len(r.waits()) == 1 })
	r.cancel()
	select {
	case err := <-r.done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v", err)
		}
		r.done <- err
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop while waiting")
	}
}

// One ServiceStart is shared: once a status call said "true" and got a 200,
// the first channel connection already says "false".
func TestServiceStartSharedWithStatus(t *testing.T) {
	start := new(radar.ServiceStart)
	r := newRig(t, radartest.Options{}, func(c *radar.CableClient) { c.Start = start })
	c := newClient(r.srv)
	c.Start = start
	if _, err := c.Status(ctxT(t), r.id, statusRequest(t)); err != nil {
		t.Fatal(err)
	}
	r.run(t)
	r.waitConnected(t, 1)
	if got := r.srv.Connections()[0].ServiceStarted; got != "false" {
		t.Fatalf("first upgrade after an acknowledged status call sent %q", got)
	}
	if _, err := c.Status(ctxT(t), r.id, statusRequest(t)); err != nil {
		t.Fatal(err)
	}
	if calls := r.srv.StatusCalls(); calls[0].ServiceFirstPing != `"true"` || calls[1].ServiceFirstPing != `"false"` {
		t.Fatalf("service_first_ping %s, %s", calls[0].ServiceFirstPing, calls[1].ServiceFirstPing)
	}
}

func TestCableConfigErrors(t *testing.T) {
	good := radar.CableClient{URL: "ws://127.0.0.1:1/api/v1/clients/ws", Identity: radar.Identity{UnixUser: "r1", Secret: "s"}, Sync: func() radar.SyncPayload { return radar.SyncPayload{} }}
	tests := []struct {
		name string
		mod  func(c *radar.CableClient)
	}{
		{"http URL", func(c *radar.CableClient) { c.URL = "http://127.0.0.1:1" }},
		{"no Sync", func(c *radar.CableClient) { c.Sync = nil }},
		{"no identity", func(c *radar.CableClient) { c.Identity = radar.Identity{} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mod(&c)
			if err := c.Run(context.Background(), &recorder{}); err == nil || errors.Is(err, context.Canceled) {
				t.Fatalf("Run = %v, want a configuration error", err)
			}
		})
	}
}

func TestCableURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://radar.exactlylabs.com", "wss://radar.exactlylabs.com/api/v1/clients/ws"},
		{"http://127.0.0.1:3000/", "ws://127.0.0.1:3000/api/v1/clients/ws"},
		{"https://example.com/prefix", "wss://example.com/prefix/api/v1/clients/ws"},
	}
	for _, tc := range tests {
		got, err := radar.CableURL(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("CableURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := radar.CableURL("ftp://x"); err == nil {
		t.Error("ftp accepted")
	}
}
