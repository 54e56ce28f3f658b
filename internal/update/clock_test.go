package update

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/backoff"
	"github.com/radarpod/radarpod/internal/container"
	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/registrytest"
	"github.com/radarpod/radarpod/internal/release/releasetest"
	"github.com/radarpod/radarpod/internal/update/verify"
	"github.com/radarpod/radarpod/internal/wallclock"
)

// podClock is a Pi's clock under the test's control: what the system clock
// reads and what the kernel says, until NTP syncs it.
type podClock struct {
	mu     sync.Mutex
	wall   func() time.Time
	kernel wallclock.KernelState
}

func (c *podClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wall()
}

func (c *podClock) readKernel() (wallclock.KernelState, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kernel, nil
}

// sync is NTP setting the clock.
func (c *podClock) sync() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.wall, c.kernel = time.Now, wallclock.KernelSynced
}

// The updater on each clock a Pi without RTC boots with, deciding with the
// real verifier against an in-process registry and the release PKI's
// HTTPS CRL server: no decision is made (waiting_for_clock, reason
// clock_untrusted saying what the clock read and against what, logged as
// such), never a refusal such as crl_expired; once the clock syncs, the
// same request installs without a new announcement.
func TestDecisionsWaitForATrustedClock(t *testing.T) {
	built := time.Now().Add(-30 * 24 * time.Hour)
	cases := []struct {
		name   string
		wall   func() time.Time
		kernel wallclock.KernelState
		// crlDown takes the CRL host away after a first verification
		// cached the CRL.
		crlDown bool
		says    string // in the status reason; "" means installed at once
	}{
		{name: "1970", wall: func() time.Time { return time.Unix(20, 0) }, kernel: wallclock.KernelUnsynced,
			says: "it reads 1970-01-01T00:00:20Z, before this build (" + built.UTC().Format(time.RFC3339) + ")"},
		{name: "build time - 1 day", wall: func() time.Time { return built.Add(-24 * time.Hour) }, kernel: wallclock.KernelUnsynced,
			says: "before this build"},
		{name: "3 years ahead, CRL host down, cached CRL", wall: func() time.Time { return time.Now().AddDate(3, 0, 0) },
			kernel: wallclock.KernelUnsynced, crlDown: true, says: "ahead of the Date of 127.0.0.1"},
		{name: "synced", wall: time.Now, kernel: wallclock.KernelSynced},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			host := registrytest.StartInProcess(t)
			repo := host + "/radar-agent"
			pki := releasetest.NewPKI(t)
			spec := func(v string) registrytest.ImageSpec {
				return registrytest.ImageSpec{Platforms: []string{"linux/" + verify.DefaultPlatform().Architecture},
					Files: map[string][]byte{"/radar-agent": []byte(v)}, Entrypoint: []string{"/radar-agent"},
					Labels: map[string]string{verify.LabelTitle: container.AgentComponent, verify.LabelVersion: v}}
			}
			digest, err := registrytest.PushImage(ctx, repo+":1.2.0", spec("1.2.0"))
			if err != nil {
				t.Fatal(err)
			}
			pki.Sign(ctx, nil, repo+":1.2.0")

			clock := &podClock{wall: tc.wall, kernel: tc.kernel}
			stateDir := t.TempDir()
			newVerifier := func(c *wallclock.Clock) *verify.Verifier {
				v, err := verify.New(verify.Config{
					Repository: repo, Component: container.AgentComponent, RootCAPEM: pki.RootPEM,
					CRLURL: pki.CRL.URL(), HTTPClient: pki.CRL.Client(), StateDir: stateDir, Clock: c,
					Logger: testLogger(t),
				})
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			if tc.crlDown {
				// An earlier verification on a synced clock cached the CRL.
				if _, err := newVerifier(nil).Verify(ctx, "1.2.0", "1.1.0"); err != nil {
					t.Fatal(err)
				}
				pki.CRL.Server().Close()
			}
			v := newVerifier(wallclock.New(wallclock.Options{Now: clock.now, Kernel: clock.readKernel,
				BuildTime: built, AuthenticatedDatesOnly: true}))

			docker := newFakeDocker()
			docker.addImage(repo+"@"+digestOf("1.1.0"), "1.1.0")
			docker.run(agentName, repo+"@"+digestOf("1.1.0"), true)
			docker.publish(repo+"@"+digest, "1.2.0")
			logs := &proctest.LogBuffer{}
			slow := backoff.Backoff{Initial: time.Hour, Max: 2 * time.Hour}
			h := &runner{t: t, dir: t.TempDir(), stateDir: t.TempDir(), engine: docker, verifier: v, opts: Options{
				AgentName: agentName, Repository: repo, HealthTimeout: time.Second, TestTimeout: 200 * time.Millisecond,
				Poll: 10 * time.Millisecond, Retry: slow, TransientRetry: slow,
				ClockRetry: backoff.Backoff{Initial: 50 * time.Millisecond, Max: 100 * time.Millisecond},
				Logger:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			}}
			h.opts.DataDir, h.opts.StateDir = h.dir, h.stateDir
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("updater log:\n%s", logs.String())
				}
			})
			h.start(nil)
			h.request("1.2.0")

			if tc.says != "" {
				st := h.waitState(handoff.StateWaitingClock)
				if !strings.HasPrefix(st.Reason, verify.CodeClockUntrusted+": ") || !strings.Contains(st.Reason, tc.says) ||
					!strings.Contains(st.Reason, "until the clock is synchronized") {
					t.Errorf("reason = %q, want %s: … %q … and the retry", st.Reason, verify.CodeClockUntrusted, tc.says)
				}
				if st.Attempt != 0 || st.NextRetryAt == nil {
					t.Errorf("status = %+v: a wait for the clock is no attempt at the image, and has a retry", st)
				}
				waitFor(t, "the clock's log line", func() bool {
					return strings.Contains(logs.String(), "clock not trusted: no certificate or CRL is judged by it") &&
						strings.Contains(logs.String(), "code="+verify.CodeClockUntrusted) &&
						strings.Contains(logs.String(), "clock_reads=") && strings.Contains(logs.String(), "compared_with=")
				})
				// Still waiting a few retries later, and nothing was refused.
				waitFor(t, "more clock retries", func() bool {
					n := 0
					for _, s := range h.recorded() {
						if s.State == handoff.StateWaitingClock {
							n++
						}
					}
					return n >= 3
				})
				for _, s := range h.recorded() {
					if s.State.Failure() {
						t.Fatalf("a decision was made on an untrusted clock: %+v", s)
					}
				}
				clock.sync()
			}
			st := h.waitState(handoff.StateSucceeded)
			if st.Digest != digest || st.Attempt != 1 {
				t.Errorf("installed %+v, want %s at the first attempt", st, digest)
			}
			if a := docker.agents(); len(a) != 1 || a[0].ImageRef != repo+"@"+digest {
				t.Errorf("agents after the update: %v", docker.state())
			}
		})
	}
}
