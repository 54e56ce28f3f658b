// Package update is the benchmark of agent updates on the real Docker
// engine: how long an update takes, from the update-request file the agent
// writes when the service announces a version to the new agent healthy and
// the update done, and how long a broken release keeps the pod without its
// old agent (the rollback). Everything is real: the engine, Debian's
// docker-registry on 127.0.0.1 holding signed releases (images of the real
// agent binary, FROM scratch), the release PKI with its CRL served over
// loopback HTTPS, and the radar-updater binary with its production
// settings. `radar-bench update` runs it (see docs/benchmarks/updates.md).
package update

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/radarpod/radarpod/internal/bench"
	"github.com/radarpod/radarpod/internal/benchreport"
	"github.com/radarpod/radarpod/internal/dockertest"
	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/registrytest"
	"github.com/radarpod/radarpod/internal/release/releasetest"
	"github.com/radarpod/radarpod/internal/update"
)

// Targets from issue 6.
const (
	updateTarget   = 15.0 // s, announcement → new agent healthy
	rollbackMargin = 5.0  // s over the health timeout, failed update → old agent back
)

// healthchecks are the agent healthchecks a run can use: the one
// docker-compose.yml ships, and the one the engine tests use.
var healthchecks = map[string]*ctypes.HealthConfig{
	// docker-compose.yml (and the Dockerfile): interval 10s, timeout 5s,
	// start_period 30s, retries 3.
	"compose": {
		Test: []string{"CMD", "/radar-agent", "healthcheck"}, Interval: 10 * time.Second,
		Timeout: 5 * time.Second, StartPeriod: 30 * time.Second, Retries: 3,
	},
	// dockertest.ComposeHealthcheck: every second, unhealthy after three failures.
	"fast": dockertest.ComposeHealthcheck(),
}

// Options say what to measure.
type Options struct {
	// UpdaterBin is the radar-updater binary; empty builds one, static.
	UpdaterBin string
	// Runs is the number of updates and rollbacks per healthcheck (medians
	// are reported).
	Runs int
	// Healthchecks are the agent healthchecks to measure with: "compose"
	// (as docker-compose.yml ships it), "fast" (1 s, as the engine tests).
	Healthchecks []string
	// HealthTimeout is the updater's RADAR_HEALTH_TIMEOUT (the shipped
	// default is 90s).
	HealthTimeout time.Duration
	// Command reproduces the figures; it is recorded with each.
	Command string
	// Log receives progress.
	Log io.Writer
}

// Validate reports an unknown healthcheck.
func (o Options) Validate() error {
	if len(o.Healthchecks) == 0 {
		return errors.New("no healthcheck to measure with (compose, fast)")
	}
	for _, v := range o.Healthchecks {
		if _, ok := healthchecks[v]; !ok {
			return fmt.Errorf("unknown healthcheck %q (compose, fast)", v)
		}
	}
	return nil
}

// Run measures updates and rollbacks with each healthcheck and returns the
// figures.
func Run(ctx context.Context, o Options) ([]benchreport.Figure, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	t := newTB(ctx, o.Log)
	var figs []benchreport.Figure
	err := t.run(func() {
		w := newWorld(ctx, t, o.UpdaterBin, o.HealthTimeout, o.Log)
		for _, v := range o.Healthchecks {
			figs = append(figs, w.measure(v, o.Runs, o.Command)...)
		}
	})
	if err != nil {
		return nil, err
	}
	return figs, nil
}

// world is what every run shares: engine, registry, PKI, updater.
type world struct {
	ctx           context.Context
	t             *tb
	eng           *dockertest.Engine
	repo          string
	pki           *releasetest.PKI
	updater       string
	healthTimeout time.Duration
	binDir        string
	unhealthy     string
	log           io.Writer
	version       int
}

func newWorld(ctx context.Context, t *tb, updaterBin string, healthTimeout time.Duration, log io.Writer) *world {
	b := &world{ctx: ctx, t: t, healthTimeout: healthTimeout, log: log, version: 1}
	b.eng = dockertest.New(t)
	b.repo = registrytest.StartDistribution(t) + "/" + b.eng.Prefix + "/radar-agent"
	b.pki = releasetest.NewPKI(t)
	b.binDir = t.TempDir()
	var err error
	if updaterBin == "" {
		updaterBin, err = bench.Build(ctx, b.binDir, "./cmd/radar-updater")
		t.check(err, "build the updater")
	}
	b.updater = updaterBin
	b.unhealthy, err = bench.Build(ctx, b.binDir, "./internal/dockertest/testdata/fakeagent", "-X main.mode=unhealthy")
	t.check(err, "build the broken agent")
	fmt.Fprintf(log, "update: engine prefix %s, registry repository %s\n", b.eng.Prefix, b.repo)
	return b
}

// release builds the agent stamped with the next version (so each release
// is a new layer to pull, as in the field), publishes and signs it, and
// returns its version and repo@digest.
func (b *world) release(broken bool) (string, string) {
	b.version++
	v := fmt.Sprintf("%d.0.0", b.version)
	bin := b.unhealthy
	if !broken {
		var err error
		bin, err = bench.Build(b.ctx, b.binDir, "./cmd/radar-agent", "-X github.com/radarpod/radarpod/internal/buildinfo.Version="+v)
		b.t.check(err, "build agent "+v)
	}
	ref := b.repo + "@" + b.eng.Publish(b.ctx, b.repo+":"+v, dockertest.AgentImage(bin, v))
	b.pki.Sign(b.ctx, nil, b.repo+":"+v)
	return v, ref
}

// pod is one agent container and its updater.
type pod struct {
	b       *world
	check   string
	name    string
	dir     string
	updater *bench.Proc
	statusL *statusLog
}

func (b *world) newPod(check string) *pod {
	p := &pod{b: b, check: check, name: b.eng.Name("radar-agent-" + check)}
	var volume string
	volume, p.dir = b.eng.Volume(b.ctx, "data-"+check, 65532, 65532)
	net := b.eng.Network(b.ctx, "pod-"+check)
	v, ref := b.release(false)
	b.eng.Pull(b.ctx, ref)
	id := b.eng.RunAgent(b.ctx, dockertest.AgentSpec{
		Name: p.name, Image: ref, Volume: volume, Network: net, Alias: "agent",
		Env: []string{"RADAR_POD_NAME=bench-" + check}, Healthcheck: healthchecks[check],
	})
	fmt.Fprintf(b.log, "update: %s healthcheck: agent %s starting, waiting for Docker to call it healthy\n", check, v)
	b.eng.WaitHealthy(b.ctx, id, 5*time.Minute)
	p.startUpdater()
	return p
}

// startUpdater runs the radar-updater binary as the compose service runs
// it: its own environment, the production poll and health settings.
func (p *pod) startUpdater() {
	b := p.b
	dir := b.t.TempDir()
	rootCA := filepath.Join(dir, "root-ca.pem")
	b.t.check(os.WriteFile(rootCA, b.pki.RootPEM, 0o644), "write the root CA")
	// The CRL server's certificate plays the system roots GCS's would be.
	roots := filepath.Join(dir, "system-roots.pem")
	crlCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.pki.CRL.Server().Certificate().Raw})
	b.t.check(os.WriteFile(roots, crlCert, 0o644), "write the CRL server's root")
	stateDir := filepath.Join(dir, "updater-state")
	env := map[string]string{
		"RADAR_DATA_DIR":          p.dir,
		"RADAR_UPDATER_STATE_DIR": stateDir,
		"RADAR_AGENT_CONTAINER":   p.name,
		"RADAR_AGENT_IMAGE":       b.repo,
		"RADAR_CRL_URL":           b.pki.CRL.URL(),
		"RADAR_ROOT_CA_FILE":      rootCA,
		"RADAR_HEALTH_TIMEOUT":    b.healthTimeout.String(),
		"RADAR_LOG_FORMAT":        "json",
		"SSL_CERT_FILE":           roots,
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		env["DOCKER_HOST"] = h
	}
	p.statusL = &statusLog{}
	proc, err := bench.StartWithLines(b.updater, env, p.statusL.line, "run")
	b.t.check(err, "start the updater")
	p.updater = proc
	b.t.Cleanup(proc.Stop)
	deadline := time.Now().Add(time.Minute)
	for update.CheckAlive(stateDir, time.Now(), update.MaxSilence) != nil {
		if time.Now().After(deadline) || proc.Exited() {
			b.t.Fatalf("updater not alive: %s", proc.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// result is one measured update or rollback.
type result struct {
	// done: request → the updater reports the update succeeded: the new
	// agent passed its healthcheck (checked again here, independently) and
	// the old one is gone. Update only.
	done time.Duration
	// healthy: request → Docker reports the new agent healthy (update), or
	// the old agent healthy again (rollback).
	healthy time.Duration
	// running: request → the old agent running again (rollback only).
	running time.Duration
	// phases: time spent in each status state, in order.
	phases []phase
}

type phase struct {
	state handoff.State
	took  time.Duration
}

// attempt requests version v and waits for the outcome: the new agent
// healthy (want succeeded) or the old one back and healthy (rolled back).
func (p *pod) attempt(v string, broken bool) result {
	b := p.b
	old := b.eng.Inspect(b.ctx, p.name)
	ectx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	// Since replays what happens while the subscription is being set up.
	since := time.Now()
	evs := b.eng.API.Events(ectx, client.EventsListOptions{
		Since:   fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()),
		Filters: make(client.Filters).Add("type", "container").Add("label", dockertest.TestLabel+"="+b.eng.Prefix),
	})

	p.statusL.reset()
	t0 := time.Now()
	b.t.check(handoff.WriteRequest(p.dir, handoff.Request{Version: v, Source: "channel", RequestedAt: t0.UTC()}), "write the update request")

	deadline := time.Now().Add(b.healthTimeout + 5*time.Minute)
	var res result
	var oldStarted time.Time
	for {
		select {
		case m := <-evs.Messages:
			at := time.Unix(0, m.TimeNano)
			switch {
			case !broken && m.Action == events.ActionHealthStatusHealthy && m.Actor.ID != old.ID && m.Actor.Attributes["name"] == p.name:
				res.healthy = at.Sub(t0)
			case broken && m.Action == events.ActionStart && m.Actor.ID == old.ID:
				oldStarted = at
				res.running = at.Sub(t0)
			case broken && !oldStarted.IsZero() && m.Action == events.ActionHealthStatusHealthy && m.Actor.ID == old.ID:
				res.healthy = at.Sub(t0)
			}
		case err := <-evs.Err:
			b.t.Fatalf("docker events: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		final, ok := p.statusL.final(v)
		if ok && !broken && final == handoff.StateSucceeded && res.done == 0 {
			res.done = p.statusL.entered(v, final).Sub(t0)
			// Do not take the updater's word for it: the agent that now
			// carries the name must pass its healthcheck, run as Docker runs it.
			if out, err := exec.CommandContext(b.ctx, "docker", "exec", p.name, "/radar-agent", "healthcheck").CombinedOutput(); err != nil {
				b.t.Fatalf("update to %s: the updater reported success, but the agent's healthcheck fails: %v: %s", v, err, out)
			}
		}
		if ok && res.healthy > 0 {
			want := handoff.StateSucceeded
			if broken {
				want = handoff.StateRolledBack
			}
			if final != want {
				b.t.Fatalf("update to %s ended %s, want %s; updater log:\n%s", v, final, want, p.updater.Output())
			}
			res.phases = p.statusL.phases(v, t0)
			return res
		}
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			b.t.Fatalf("update to %s: no outcome (status %v, healthy after %s); updater log:\n%s", v, final, res.healthy, p.updater.Output())
		}
	}
}

// measure runs updates and rollbacks alternately on a fresh pod with the
// given healthcheck and returns the figures.
func (b *world) measure(check string, runs int, cmdline string) []benchreport.Figure {
	p := b.newPod(check)
	var upd, updDocker, back, backHealthy []time.Duration
	var updPhases, backPhases [][]phase
	loads := []string{bench.Load()}
	for i := range runs {
		v, _ := b.release(false)
		r := p.attempt(v, false)
		upd, updDocker, updPhases = append(upd, r.done), append(updDocker, r.healthy), append(updPhases, r.phases)
		fmt.Fprintf(b.log, "update: %s run %d: %s healthy and the update done %.2fs after the request, Docker calls it healthy after %.2fs (%s)\n",
			check, i+1, v, r.done.Seconds(), r.healthy.Seconds(), phaseString(r.phases))

		v, _ = b.release(true)
		r = p.attempt(v, true)
		back, backHealthy, backPhases = append(back, r.running), append(backHealthy, r.healthy), append(backPhases, r.phases)
		fmt.Fprintf(b.log, "update: %s run %d: broken %s rolled back, old agent running %.2fs and healthy %.2fs after the request (%s)\n",
			check, i+1, v, r.running.Seconds(), r.healthy.Seconds(), phaseString(r.phases))
	}
	hc := healthchecks[check]
	loads = append(loads, bench.Load())
	setup := fmt.Sprintf("radar-updater binary (poll 1s, RADAR_HEALTH_TIMEOUT=%s), agent healthcheck every %s (retries %d, start period %s), loopback docker-registry, signed releases with a loopback CRL; median of %d (load average %s)",
		b.healthTimeout, hc.Interval, hc.Retries, hc.StartPeriod, runs, strings.Join(loads, " → "))
	ht := b.healthTimeout.Seconds()
	return []benchreport.Figure{
		{Name: "update/" + check + "-healthcheck/update", Value: bench.Round(bench.Median(upd), 2), Unit: "s", Op: "<=", Target: updateTarget, Command: cmdline,
			Notes: "update-request written → the updater reports success: the new agent passed its healthcheck (run again by the benchmark, which must pass) and the old one is removed; " + setup + "; runs: " + bench.Seconds(upd) + "; median phases: " + medianPhases(updPhases)},
		{Name: "update/" + check + "-healthcheck/update_docker_healthy", Value: bench.Round(bench.Median(updDocker), 2), Unit: "s", Command: cmdline,
			Notes: "same, until Docker's own healthcheck first reports the new agent healthy (one healthcheck interval after the start); runs: " + bench.Seconds(updDocker)},
		{Name: "update/" + check + "-healthcheck/rollback", Value: bench.Round(bench.Median(back), 2), Unit: "s", Op: "<=", Target: ht + rollbackMargin, Command: cmdline,
			Notes: "broken release (never healthy) requested → the old agent running again; " + setup + "; runs: " + bench.Seconds(back) + "; median phases: " + medianPhases(backPhases)},
		{Name: "update/" + check + "-healthcheck/rollback_healthy", Value: bench.Round(bench.Median(backHealthy), 2), Unit: "s", Command: cmdline,
			Notes: "same, until Docker reports the old agent healthy again; runs: " + bench.Seconds(backHealthy)},
	}
}
