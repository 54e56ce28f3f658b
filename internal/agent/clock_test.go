package agent_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/ooklatest"
	"github.com/radarpod/radarpod/internal/radartest"
	"github.com/radarpod/radarpod/internal/speedtest/ookla"
	"github.com/radarpod/radarpod/internal/wallclock"
)

// piClock is a Raspberry Pi's clock under the test's control: what the
// system clock reads and what the kernel says, until NTP syncs it. The boot
// clock is the real one.
type piClock struct {
	mu     sync.Mutex
	wall   func() time.Time
	kernel wallclock.KernelState
}

func (c *piClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wall()
}

func (c *piClock) readKernel() (wallclock.KernelState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kernel, nil
}

// ntpSync sets the clock right and the kernel synchronized.
func (c *piClock) ntpSync() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wall, c.kernel = time.Now, wallclock.KernelSynced
}

// built is the build time of the agent in these tests: a month ago.
var built = time.Now().Add(-30 * 24 * time.Hour)

func (c *piClock) clock() *wallclock.Clock {
	return wallclock.New(wallclock.Options{Now: c.now, Kernel: c.readKernel, BuildTime: built})
}

// The clocks a Pi without RTC boots with. The pods service's Date (from
// registration on) tells the time: every result is dated by it, never by
// the wrong system clock, and says so; a synced clock dates by itself.
func TestResultsAreDatedByTheBestKnownTime(t *testing.T) {
	cases := []struct {
		name   string
		wall   func() time.Time
		kernel wallclock.KernelState
		source wallclock.Source
		log    string
	}{
		{"1970", func() time.Time { return time.Unix(20, 0) }, wallclock.KernelUnsynced,
			wallclock.SourceServiceDate, "system clock wrong: results are dated by the pods service's time"},
		{"build time - 1 day", func() time.Time { return built.Add(-24 * time.Hour) }, wallclock.KernelUnsynced,
			wallclock.SourceServiceDate, "system clock wrong: results are dated by the pods service's time"},
		{"3 years ahead", func() time.Time { return time.Now().AddDate(3, 0, 0) }, wallclock.KernelUnsynced,
			wallclock.SourceServiceDate, "system clock wrong: results are dated by the pods service's time"},
		{"synced", time.Now, wallclock.KernelSynced, wallclock.SourceKernel, "clock trusted: results are dated"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
			fake := ooklatest.Install(t, t.TempDir(), ooklatest.ModeResult)
			pi := &piClock{wall: tc.wall, kernel: tc.kernel}
			srv.SetPendingTest(true)
			before := time.Now()
			p := startPod(t, podOptions{
				env:     map[string]string{"RADAR_SERVER_URL": srv.URL, "RADAR_TESTS": "ookla"},
				runners: func(config.Agent) []agent.Runner { return []agent.Runner{ookla.New(ookla.Options{Bin: fake})} },
				server:  srv, clock: pi.clock(),
			})
			waitMeasurements(t, srv, 1)
			after := time.Now()
			waitFor(t, "the result in "+agent.ResultsFile, func() bool { return len(p.results()) == 1 })
			e := p.results()[0]
			if !e.Synced || e.Source != tc.source || e.Time.Before(before.Add(-time.Second)) || e.Time.After(after) {
				t.Fatalf("entry dated %s, synced %v, source %q; want between %s and %s from %q",
					e.Time, e.Synced, e.Source, before, after, tc.source)
			}
			if e.BootID != "" {
				t.Errorf("a dated entry carries boot data: %+v", e.Stamp)
			}
			waitFor(t, "the clock's log line", func() bool { return strings.Contains(p.logs.String(), tc.log) })
		})
	}
}

// dropDate is a path on which the service's answers lose their Date (a
// proxy that strips it): the pod learns no time from them.
type dropDate struct{ next http.RoundTripper }

func (d dropDate) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := d.next.RoundTrip(r)
	if resp != nil {
		resp.Header.Del("Date")
	}
	return resp, err
}

// A Pi at 1970 that learns no time: its result is uploaded at once (the
// service dates it on arrival; holding it would help nothing), recorded
// without a date (never 1970), and dated in place from the boot clock once
// NTP syncs, in the same boot.
func TestUndatedResultsAreUploadedAndDatedOnceTheClockSyncs(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	fake := ooklatest.Install(t, t.TempDir(), ooklatest.ModeResult)
	pi := &piClock{wall: func() time.Time { return time.Unix(20, 0) }, kernel: wallclock.KernelUnsynced}
	clock := pi.clock()
	srv.SetPendingTest(true)
	before := time.Now()
	p := startPod(t, podOptions{
		env:     map[string]string{"RADAR_SERVER_URL": srv.URL, "RADAR_TESTS": "ookla", "RADAR_PING_INTERVAL": "1s"},
		runners: func(config.Agent) []agent.Runner { return []agent.Runner{ookla.New(ookla.Options{Bin: fake})} },
		server:  srv, clock: clock,
		httpClient: func(c *http.Client) *http.Client {
			cc := *c
			cc.Transport = dropDate{next: c.Transport}
			return &cc
		},
		// The channel is blocked on this network: the status fallback
		// carries the test request (and, answered, no Date).
		dialer: &websocket.Dialer{NetDialContext: func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("websockets blocked on this network")
		}},
	})
	waitMeasurements(t, srv, 1)
	after := time.Now()
	waitFor(t, "the result in "+agent.ResultsFile, func() bool { return len(p.results()) == 1 })
	e := p.results()[0]
	if e.Synced || !e.Time.IsZero() || e.Source != wallclock.SourceUnsynced || e.BootID != clock.BootID() || e.Boot <= 0 {
		t.Fatalf("entry before sync: %s %+v; want no date, unsynced, on this boot's clock", e.Time, e.Stamp)
	}
	raw, err := os.ReadFile(filepath.Join(p.cfg.DataDir, agent.ResultsFile))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("1970")) || !bytes.Contains(raw, []byte(`"clock_synced":false`)) {
		t.Fatalf("%s before sync: %s", agent.ResultsFile, raw)
	}
	waitFor(t, "the untrusted clock's log line", func() bool {
		return strings.Contains(p.logs.String(), "clock not trusted: results are recorded without a date")
	})

	pi.ntpSync()
	waitFor(t, "the entry to be dated", func() bool {
		es := p.results()
		return len(es) == 1 && es[0].Synced
	})
	e = p.results()[0]
	// Dated from the boot clock: within the span the test ran in.
	if e.Source != wallclock.SourceBootClock || e.Time.Before(before.Add(-time.Second)) || e.Time.After(after) {
		t.Fatalf("dated entry: %s from %q, want between %s and %s from the boot clock", e.Time, e.Source, before, after)
	}
	if e.Runner != "ookla" || e.DownloadMbps == nil {
		t.Errorf("dating lost the entry's content: %+v", e)
	}
	waitFor(t, "the dating log line", func() bool {
		return strings.Contains(p.logs.String(), "results recorded before the clock was synchronized are dated now")
	})
}
