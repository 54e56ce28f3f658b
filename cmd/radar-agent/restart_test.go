package main

import (
	"context"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/ooklatest"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/radartest"
)

// TestEveryStartOpensTheChannelAuthenticatedFirst runs the real binary
// against the service double, with its real start-up network check racing
// the channel as on a pod, and restarts it on the same data dir (stopped
// with SIGTERM, then killed). For each start the first upgrade the service
// sees is the pod's authenticated channel (raw Basic credentials) saying
// Sec-Radar-Service-Started: true; a reconnect within the process says
// false; the check's own request is a GET of the service's root that is no
// pod's. No upgrade without credentials is ever made: the double fails the
// test on one.
func TestEveryStartOpensTheChannelAuthenticatedFirst(t *testing.T) {
	bin := proctest.Build(t, "./cmd/radar-agent")
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	env := map[string]string{
		"RADAR_SERVER_URL": srv.URL, "RADAR_DATA_DIR": t.TempDir(), "RADAR_TESTS": "ookla",
		"RADAR_OOKLA_BIN": ooklatest.Install(t, t.TempDir(), ooklatest.ModeResult), "RADAR_LISTEN_ADDR": "",
		"RADAR_RECONNECT_MAX": "2s", // the test drops the channel and waits for the reconnect
	}
	const starts = 3
	ctx, cancel := context.WithTimeout(context.Background(), starts*wait)
	defer cancel()
	for start := 1; start <= starts; start++ {
		before, visits := len(srv.Connections()), len(srv.Visits())
		p := proctest.Start(t, bin, env)
		waitSrv := func(what string, cond func() bool) {
			t.Helper()
			if err := srv.Wait(ctx, cond); err != nil {
				t.Fatalf("start %d: %s: %v\n%s", start, what, err, p.Output())
			}
		}

		waitSrv("the channel of this start", func() bool { return len(srv.Connections()) > before })
		regs := srv.Registrations()
		if len(regs) != 1 {
			t.Fatalf("start %d: %d registrations, want the first start's only", start, len(regs))
		}
		// The protocol's upgrade credentials: raw, not base64.
		auth := "Basic " + regs[0].UnixUser + ":" + regs[0].Secret
		first := srv.Connections()[before]
		if first.Status != http.StatusSwitchingProtocols || first.UnixUser != regs[0].UnixUser ||
			first.Header.Get("Authorization") != auth || first.ServiceStarted != "true" {
			t.Fatalf("start %d: first upgrade %d as %q, raw Basic credentials %v, Sec-Radar-Service-Started %q; want 101 as %s with them and true",
				start, first.Status, first.UnixUser, first.Header.Get("Authorization") == auth, first.ServiceStarted, regs[0].UnixUser)
		}
		waitSrv("a sync on the first connection", func() bool {
			for _, s := range srv.Syncs() {
				if s.Conn == first.ID {
					return true
				}
			}
			return false
		})

		// The service drops the channel: the same process reconnects,
		// authenticated, and says it is no fresh start.
		srv.DropConnections()
		waitSrv("a reconnection", func() bool {
			cs := srv.Connections()
			return len(cs) > before+1 && cs[len(cs)-1].Status == http.StatusSwitchingProtocols
		})
		for _, c := range srv.Connections()[before+1:] {
			if c.ServiceStarted != "false" || c.Header.Get("Authorization") != auth {
				t.Fatalf("start %d: reconnect sent Sec-Radar-Service-Started %q, raw Basic credentials %v; want false with them",
					start, c.ServiceStarted, c.Header.Get("Authorization") == auth)
			}
		}

		// The start-up check proved the service by its root, as no pod.
		waitSrv("the start-up network check's request", func() bool { return len(srv.Visits()) > visits })
		for _, v := range srv.Visits()[visits:] {
			if ua := v.Header.Get("User-Agent"); v.Method != http.MethodGet || v.Path != "/" || ua == "" ||
				strings.HasPrefix(ua, "RadarPods") || v.Header.Get("Authorization") != "" {
				t.Errorf("start %d: the check asked %s %s as %q: want a GET / that is no pod's", start, v.Method, v.Path, ua)
			}
		}

		if start%2 == 1 {
			p.Signal(syscall.SIGTERM)
			if code, err := p.Wait(wait); err != nil || code != 0 {
				t.Fatalf("start %d: exit %d (%v) after SIGTERM\n%s", start, code, err, p.Output())
			}
		} else {
			p.Kill()
		}
		waitSrv("the stopped agent's channel to close", func() bool { return srv.Subscribed() == 0 })
	}
	if n := len(srv.Visits()); n != starts {
		t.Errorf("%d requests for the service's root, want one per start (%d)", n, starts)
	}
}
