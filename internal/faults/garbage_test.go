package faults

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/benchreport"
	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/ooklatest"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/radartest"
)

// maxRSS bounds the agent's peak resident memory while it is fed garbage:
// the footprint a Pi can afford (and the agent's budget during a test).
const maxRSS = 40 << 20

// garbage is one bad answer of the service.
type garbage struct {
	name  string
	reply radartest.Reply
	// full: sent only at full size (each refused registration doubles the
	// agent's backoff, so the short drill sends a representative few).
	full bool
}

const htmlError = "<html><body><h1>We're sorry, but something went wrong.</h1></body></html>"

// endless is a body that never ends: a client that does not bound what it
// reads, or how long, never finishes.
const endless = 1 << 40

func (sz drillSize) pick(all []garbage) []garbage {
	var out []garbage
	for _, g := range all {
		if sz.allGarbage || !g.full {
			out = append(out, g)
		}
	}
	return out
}

// fromList answers the n-th request with list[n-1] and normally after the
// list is used up.
// The list is served from the first call after it is set, whatever the
// endpoint's count of calls so far: with the channel down a while earlier
// in a drill, the agent may already have made status calls, and counting
// those would skip the garbage.
func fromList(list []garbage, sent *replyTally) func(int) radartest.Reply {
	var mu sync.Mutex
	served := 0
	return func(int) radartest.Reply {
		mu.Lock()
		defer mu.Unlock()
		if served >= len(list) {
			return radartest.Reply{}
		}
		g := list[served]
		served++
		sent.add(g.name)
		return g.reply
	}
}

// guard watches an agent fed garbage: its resident memory every 100 ms
// and /healthz every second.
type guard struct {
	p          *pod
	stop, done chan struct{}

	mu        sync.Mutex
	samples   int
	unhealthy []string
	rss       int64
}

func watch(t *testing.T, p *pod) *guard {
	t.Helper()
	waitUntil(t, "the health endpoint", func() bool { code, _ := p.healthz(); return code == 200 })
	g := &guard{p: p, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(g.done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			if rss, _, err := memory(p.pid()); err == nil {
				g.mu.Lock()
				g.rss = max(g.rss, rss)
				g.mu.Unlock()
			}
			if i%10 == 0 {
				code, body := p.healthz()
				g.mu.Lock()
				g.samples++
				if code != 200 {
					g.unhealthy = append(g.unhealthy, fmt.Sprintf("%d %s", code, body))
				}
				g.mu.Unlock()
			}
			select {
			case <-g.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return g
}

// finish stops watching and holds the agent to its promises: running,
// healthy at every look, and within maxRSS at its peak (VmHWM, which also
// catches a spike between two samples). It returns the peak.
func (g *guard) finish(t *testing.T) int64 {
	t.Helper()
	close(g.stop)
	<-g.done
	if !g.p.alive() {
		t.Fatalf("the agent exited:\n%s", g.p.output())
	}
	_, peak, err := memory(g.p.pid())
	if err != nil {
		t.Fatal(err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	peak = max(peak, g.rss)
	if peak > maxRSS {
		t.Errorf("peak RSS %.1f MiB, bound %d MiB", float64(peak)/(1<<20), maxRSS>>20)
	}
	if len(g.unhealthy) > 0 {
		t.Errorf("/healthz failed %d of %d looks: %v", len(g.unhealthy), g.samples, g.unhealthy)
	}
	return peak
}

// TestGarbageFromTheService answers the agent with garbage — truncated
// JSON, wrong types, huge bodies, bodies dripped a byte at a time, cut
// connections — on registration, on the live channel, on the status
// fallback and on uploads. Each endpoint gets its own agent (in parallel,
// so one slow drip does not wait for another). The agent must stay up,
// healthy and within maxRSS, report what it got (log lines, metrics), and
// still do its job once the service makes sense again.
func TestGarbageFromTheService(t *testing.T) {
	t.Parallel()
	var peaks struct {
		sync.Mutex
		max int64
	}
	record := func(peak int64) {
		peaks.Lock()
		defer peaks.Unlock()
		peaks.max = max(peaks.max, peak)
	}
	t.Run("register", func(t *testing.T) { t.Parallel(); record(garbageOnRegister(t)) })
	t.Run("channel-and-status", func(t *testing.T) { t.Parallel(); record(garbageOnChannelAndStatus(t)) })
	t.Run("upload", func(t *testing.T) { t.Parallel(); record(garbageOnUpload(t)) })
	t.Cleanup(func() {
		t.Logf("peak RSS of the agents fed garbage: %.1f MiB (bound %d MiB)", float64(peaks.max)/(1<<20), maxRSS>>20)
		addFigure(benchreport.Figure{Name: "faults/garbage/peak_rss", Value: float64(peaks.max) / (1 << 20), Unit: "MiB", Op: "<=", Target: maxRSS >> 20,
			Notes: "VmHWM of the agent while registration, channel, status and uploads answer garbage"})
	})
}

func garbageOnRegister(t *testing.T) int64 {
	sz := size()
	srv := startService(t, false)
	list := sz.pick([]garbage{
		{name: "truncated JSON", reply: radartest.Reply{Status: 201, Body: []byte(`{"id":1001,"unix_user":"rab`)}},
		{name: "wrong types", reply: radartest.Reply{Status: 201, Body: []byte(`{"id":"1001","unix_user":42,"secret":["x"],"account_id":"one"}`)}},
		{name: "huge body", reply: radartest.Reply{Status: 201, Filler: endless}},
		{name: "slow drip", reply: radartest.Reply{Status: 201, Filler: endless, Drip: 10 * time.Millisecond}},
		{name: "null", reply: radartest.Reply{Status: 201, Body: []byte(`null`)}, full: true},
		{name: "html error page", reply: radartest.Reply{Status: 200, Body: []byte(htmlError)}, full: true},
		{name: "hang-up", reply: radartest.Reply{Hangup: true}, full: true},
	})
	sent := &replyTally{}
	srv.SetResponder(radartest.EndpointRegister, fromList(list, sent))
	p := newPod(t, srv, ooklatest.Install(t, t.TempDir(), ooklatest.ModeUnique), podOptions{metrics: true})
	p.start()
	g := watch(t, p)
	// Registration backs off from 1 s, doubling (±20%): after n garbage
	// answers the next attempt comes up to 1.2 × (2^n − 1) s after the
	// first, plus a minute for the slow drip to hit the client timeout.
	backoffs := time.Duration(float64((int64(1)<<len(list))-1)*1.2) * time.Second
	proctest.WaitFor(t, wait+backoffs+time.Minute, "registration after the garbage", func() bool { return p.identityStored() && srv.Subscribed() > 0 })
	srv.SendRunTest(nil)
	waitUntil(t, "a delivery from the registered pod", func() bool { return len(srv.Measurements()) > 0 })
	peak := g.finish(t)

	if n := len(srv.Registrations()); n != 1 {
		t.Errorf("%d registrations stored by the service, want 1", n)
	}
	if n := p.countLogs("", "registration failed"); n < len(list) {
		t.Errorf("%d registration failures logged for %d garbage answers", n, len(list))
	}
	if p.countLogs("ERROR", "registration failed") == 0 {
		t.Error("no registration failure reported at error level")
	}
	t.Logf("register: %d garbage answers (%s), then registered once; peak RSS %.1f MiB", len(list), sent, float64(peak)/(1<<20))
	return peak
}

func garbageOnChannelAndStatus(t *testing.T) int64 {
	sz := size()
	srv := startService(t, false)
	p := newPod(t, srv, ooklatest.Install(t, t.TempDir(), ooklatest.ModeUnique), podOptions{metrics: true})
	p.start()
	g := watch(t, p)
	waitUntil(t, "the pod to subscribe", func() bool { return srv.Subscribed() > 0 })

	// The channel. Frames that reach the agent whole but make no sense;
	// the agent must log each, drop it, and keep the socket.
	frames := []string{
		`{"type":"welcome"`,
		`{"type":42,"message":{}}`,
		`{"type":"run_test","message":{"interfaces":"eth0"}}`,
		`{"type":"run_test","message":[1,2,3]}`,
		`{"type":"update","message":{"version":7,"binary_url":false}}`,
		`{"type":"update","message":{"version":"1.2.3/../../etc","binary_url":"/x"}}`,
		`{"type":"disconnect","reason":{"why":"?"}}`,
		`{"identifier":"{\"channel\":\"PodAgentChannel\",\"id\":\"someone-else\"}","message":{"event":"test_requested","payload":null}}`,
		`null`, `[]`, `"text"`, `{}`, "\xff\xfe\xfd",
		strings.Repeat("[", 100000),
		`{"type":"ping","message":"not a number"}`,
	}
	for _, f := range frames {
		if srv.SendRaw(f) == 0 {
			t.Fatalf("frame %.40q reached no connection", f)
		}
	}
	srv.SendBroadcast("test_requested", map[string]any{"interfaces": 5})
	srv.SendBroadcast("version_changed", "1.2.3")
	srv.SendBroadcast("no_such_event", nil)
	conns := len(srv.Connections())
	// A frame beyond the agent's 1 MiB bound ends the connection (reading
	// it would cost the memory the bound protects); the agent reconnects.
	srv.SendRaw(`{"type":"run_test","message":{"interfaces":["` + strings.Repeat("x", 2<<20) + `"]}}`)
	waitUntil(t, "a reconnection after the oversized frame", func() bool {
		return len(srv.Connections()) > conns && srv.Subscribed() > 0
	})
	// The channel still carries requests.
	srv.SendRunTest(nil)
	waitUntil(t, "a test requested over the channel after the garbage", func() bool { return len(srv.Measurements()) >= 1 })
	if n := p.countLogs("WARN", "ignoring unexpected channel message"); n < len(frames)-2 {
		t.Errorf("%d channel frames logged as ignored, of %d garbage frames", n, len(frames))
	}
	if p.countLogs("ERROR", "unrecognised message from the pods service") == 0 {
		t.Error("garbage on the channel not reported at error level")
	}
	if _, ok, _ := handoff.ReadRequest(p.dataDir); ok {
		t.Error("a garbage version reached the updater as an update request")
	}
	if p.countLogs("", "cannot hand the update announcement to the updater") == 0 {
		t.Error("an update to an impossible version was not reported")
	}

	// The status fallback: the channel goes down, and the status calls
	// answer garbage.
	list := sz.pick([]garbage{
		{name: "truncated JSON", reply: radartest.Reply{Status: 200, Body: []byte(`{"id":1001,"test_requested":tr`)}},
		{name: "wrong types", reply: radartest.Reply{Status: 200, Body: []byte(`{"id":"x","test_requested":"yes","update":"1.2.3"}`)}},
		{name: "huge body", reply: radartest.Reply{Status: 200, Filler: endless}},
		{name: "slow drip", reply: radartest.Reply{Status: 200, Filler: endless, Drip: 10 * time.Millisecond}},
		{name: "impossible update", reply: radartest.Reply{Status: 200, Body: []byte(`{"test_requested":false,"update":{"version":"9.9.9 && reboot","url":"javascript:alert(1)"}}`)}},
		{name: "html error page", reply: radartest.Reply{Status: 500, Body: []byte(htmlError)}},
		{name: "hang-up", reply: radartest.Reply{Hangup: true}},
	})
	sent := &replyTally{}
	srv.SetResponder(radartest.EndpointStatus, fromList(list, sent))
	srv.SetChannelDown(true)
	srv.DropConnections()
	before := len(srv.StatusCalls())
	waitUntil(t, "a good status call after the garbage", func() bool { return len(srv.StatusCalls()) > before })
	srv.SetPendingTest(true)
	waitUntil(t, "a test requested through the status fallback", func() bool { return len(srv.Measurements()) >= 2 })
	srv.SetChannelDown(false)
	waitUntil(t, "the channel back", func() bool { return srv.Subscribed() > 0 })
	peak := g.finish(t)

	failed := 0.0
	for _, class := range []string{"server", "network", "rejected", "auth"} {
		v, _ := p.metric(`radar_status_calls_total{result="` + class + `"}`)
		failed += v
	}
	if bad := len(list) - 1; failed < float64(bad) { // the impossible update parses
		t.Errorf("radar_status_calls_total counts %.0f failed calls for %d garbage answers", failed, bad)
	}
	if n := p.countLogs("WARN", "status heartbeat failed"); n < len(list)-1 {
		t.Errorf("%d status failures logged for %d garbage answers", n, len(list)-1)
	}
	if _, ok, _ := handoff.ReadRequest(p.dataDir); ok {
		t.Error("a garbage version from the status answer reached the updater")
	}
	t.Logf("channel: %d garbage frames and an oversized one, then a test over it; status: %d garbage answers (%s), then a test through it; peak RSS %.1f MiB",
		len(frames)+3, len(list), sent, float64(peak)/(1<<20))
	return peak
}

func garbageOnUpload(t *testing.T) int64 {
	sz := size()
	srv := startService(t, false)
	// An upload needs nothing from the body of a 201; what a refusal
	// carries is read (bounded) for the log. A 200 is no 201: the agent
	// classes it as a rejected request and waits a minute or more before
	// trying again, so those are sent only at full size.
	list := sz.pick([]garbage{
		{name: "500 with a huge body", reply: radartest.Reply{Status: 500, Filler: endless}},
		{name: "stored, 201 with truncated JSON", reply: radartest.Reply{AfterHandling: true, Status: 201, Body: []byte(`{"id":`)}},
		{name: "stored, 201 with wrong types", reply: radartest.Reply{AfterHandling: true, Status: 201, Body: []byte(`{"id":"x","style":5,"client_id":[]}`)}},
		{name: "500 dripped", reply: radartest.Reply{Status: 500, Filler: endless, Drip: 10 * time.Millisecond}},
		{name: "hang-up", reply: radartest.Reply{Hangup: true}},
		{name: "stored, 201 with a huge body", reply: radartest.Reply{AfterHandling: true, Status: 201, Filler: endless}, full: true},
		{name: "200 with truncated JSON", reply: radartest.Reply{Status: 200, Body: []byte(`{"id":12,"sty`)}, full: true},
		{name: "503 html", reply: radartest.Reply{Status: 503, Body: []byte(htmlError)}, full: true},
	})
	// Garbage and good answers alternate, so the agent's backoff (which
	// a success resets) stays short.
	sent := &replyTally{}
	var mu sync.Mutex
	next := 0
	srv.SetResponder(radartest.EndpointUpload, func(n int) radartest.Reply {
		mu.Lock()
		defer mu.Unlock()
		if n%2 == 0 || next >= len(list) {
			return radartest.Reply{}
		}
		next++
		sent.add(list[next-1].name)
		return list[next-1].reply
	})
	used := func() bool { mu.Lock(); defer mu.Unlock(); return next >= len(list) }
	ooklaDir := t.TempDir()
	p := newPod(t, srv, ooklatest.Install(t, ooklaDir, ooklatest.ModeUnique), podOptions{metrics: true})
	p.start()
	g := watch(t, p)
	req := requestTests(srv, time.Second)
	defer req.halt()
	waitUntil(t, "every garbage answer sent", used)
	req.halt()
	waitIdle(t, srv, p)
	produced := p.produced()
	waitUntil(t, "every result delivered", func() bool { return len(deliveries(t, srv).missing(produced)) == 0 })
	peak := g.finish(t)

	d := deliveries(t, srv)
	failed := 0.0
	for _, class := range []string{"server", "network", "rejected", "auth"} {
		v, _ := p.metric(`radar_uploads_total{result="` + class + `"}`)
		failed += v
	}
	bad := 0
	for _, g := range list {
		if !g.reply.AfterHandling {
			bad++
		}
	}
	if failed < float64(bad) {
		t.Errorf("radar_uploads_total counts %.0f failed uploads for %d refusing garbage answers", failed, bad)
	}
	if n := p.countLogs("WARN", "upload failed; will retry"); n == 0 {
		t.Error("no failed upload logged")
	}
	t.Logf("upload: %d garbage answers (%s) between good ones: %d results produced, all delivered, %d stored twice; peak RSS %.1f MiB",
		len(list), sent, len(produced), d.duplicates(), float64(peak)/(1<<20))
	return peak
}
