package main

// update: how long an update takes on the real Docker engine, from the
// update-request file the agent writes when the service announces a
// version, to the new agent healthy and the update done; and how long a
// broken release keeps the pod without its old agent. Everything is real:
// the engine, Debian's docker-registry on 127.0.0.1 holding signed
// releases (images of the real agent binary, FROM scratch), the release
// PKI with its CRL served over loopback HTTPS, and the radar-updater
// binary with its production settings.

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/radarpod/radarpod/internal/benchreport"
	"github.com/radarpod/radarpod/internal/dockertest"
	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/registrytest"
	"github.com/radarpod/radarpod/internal/release/releasetest"
	"github.com/radarpod/radarpod/internal/update"
)

func init() {
	register("update", "agent update and rollback on the real Docker engine with a loopback registry", runUpdate)
}

// Targets from issue 6.
const (
	upUpdateTarget   = 15.0 // s, announcement → new agent healthy
	upRollbackMargin = 5.0  // s over the health timeout, failed update → old agent back
)

// upHealthchecks are the agent healthchecks a run can use: the one
// docker-compose.yml ships, and the one the engine tests use.
var upHealthchecks = map[string]*ctypes.HealthConfig{
	// docker-compose.yml (and the Dockerfile): interval 10s, timeout 5s,
	// start_period 30s, retries 3.
	"compose": {
		Test: []string{"CMD", "/radar-agent", "healthcheck"}, Interval: 10 * time.Second,
		Timeout: 5 * time.Second, StartPeriod: 30 * time.Second, Retries: 3,
	},
	// dockertest.ComposeHealthcheck: every second, unhealthy after three failures.
	"fast": dockertest.ComposeHealthcheck(),
}

func runUpdate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("update", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", ".", "repository root (bench/out is written there)")
	updaterBin := fs.String("updater", "", "radar-updater binary (default: build one, static)")
	runs := fs.Int("runs", 3, "updates and rollbacks per healthcheck (medians reported)")
	checks := fs.String("healthchecks", "compose,fast", "agent healthchecks to measure with: compose (as shipped), fast (1 s, as the engine tests)")
	healthTimeout := fs.Duration("health-timeout", 90*time.Second, "RADAR_HEALTH_TIMEOUT of the updater (the shipped default is 90s)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cmdline := "radar-bench update " + strings.Join(args, " ")
	var variants []string
	for _, v := range strings.Split(*checks, ",") {
		if _, ok := upHealthchecks[v]; !ok {
			fmt.Fprintf(stderr, "radar-bench update: unknown healthcheck %q (compose, fast)\n", v)
			return 2
		}
		variants = append(variants, v)
	}
	ctx, stop := pbSignalContext()
	defer stop()

	tb := newPbTB(ctx, stderr)
	var figs []benchreport.Figure
	err := tb.run(func() {
		b := newUpBench(ctx, tb, *updaterBin, *healthTimeout, stderr)
		for _, v := range variants {
			figs = append(figs, b.measure(v, *runs, cmdline)...)
		}
	})
	if err != nil {
		fmt.Fprintln(stderr, "radar-bench update:", err)
		return 1
	}
	return pbFinish(*root, "update", figs, stdout, stderr)
}

// upBench is the world shared by every run: engine, registry, PKI, updater.
type upBench struct {
	ctx           context.Context
	t             *pbTB
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

func newUpBench(ctx context.Context, t *pbTB, updaterBin string, healthTimeout time.Duration, log io.Writer) *upBench {
	b := &upBench{ctx: ctx, t: t, healthTimeout: healthTimeout, log: log, version: 1}
	b.eng = dockertest.New(t)
	b.repo = registrytest.StartDistribution(t) + "/" + b.eng.Prefix + "/radar-agent"
	b.pki = releasetest.NewPKI(t)
	b.binDir = t.TempDir()
	var err error
	if updaterBin == "" {
		updaterBin, err = pbBuild(ctx, b.binDir, "./cmd/radar-updater")
		t.check(err, "build the updater")
	}
	b.updater = updaterBin
	b.unhealthy, err = pbBuild(ctx, b.binDir, "./internal/dockertest/testdata/fakeagent", "-X main.mode=unhealthy")
	t.check(err, "build the broken agent")
	fmt.Fprintf(log, "update: engine prefix %s, registry repository %s\n", b.eng.Prefix, b.repo)
	return b
}

// release builds the agent stamped with the next version (so each release
// is a new layer to pull, as in the field), publishes and signs it, and
// returns its version and repo@digest.
func (b *upBench) release(broken bool) (string, string) {
	b.version++
	v := fmt.Sprintf("%d.0.0", b.version)
	bin := b.unhealthy
	if !broken {
		var err error
		bin, err = pbBuild(b.ctx, b.binDir, "./cmd/radar-agent", "-X github.com/radarpod/radarpod/internal/buildinfo.Version="+v)
		b.t.check(err, "build agent "+v)
	}
	ref := b.repo + "@" + b.eng.Publish(b.ctx, b.repo+":"+v, dockertest.AgentImage(bin, v))
	b.pki.Sign(b.ctx, nil, b.repo+":"+v)
	return v, ref
}

// upPod is one agent container and its updater.
type upPod struct {
	b       *upBench
	check   string
	name    string
	dir     string
	updater *pbProc
	statusL *upStatusLog
}

func (b *upBench) newPod(check string) *upPod {
	p := &upPod{b: b, check: check, name: b.eng.Name("radar-agent-" + check)}
	var volume string
	volume, p.dir = b.eng.Volume(b.ctx, "data-"+check, 65532, 65532)
	net := b.eng.Network(b.ctx, "pod-"+check)
	v, ref := b.release(false)
	b.eng.Pull(b.ctx, ref)
	id := b.eng.RunAgent(b.ctx, dockertest.AgentSpec{
		Name: p.name, Image: ref, Volume: volume, Network: net, Alias: "agent",
		Env: []string{"RADAR_POD_NAME=bench-" + check}, Healthcheck: upHealthchecks[check],
	})
	fmt.Fprintf(b.log, "update: %s healthcheck: agent %s starting, waiting for Docker to call it healthy\n", check, v)
	b.eng.WaitHealthy(b.ctx, id, 5*time.Minute)
	p.startUpdater()
	return p
}

// startUpdater runs the radar-updater binary as the compose service runs
// it: its own environment, the production poll and health settings.
func (p *upPod) startUpdater() {
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
	p.statusL = &upStatusLog{}
	proc, err := pbStartWithLines(b.updater, env, p.statusL.line, "run")
	b.t.check(err, "start the updater")
	p.updater = proc
	b.t.Cleanup(proc.stop)
	deadline := time.Now().Add(time.Minute)
	for update.CheckAlive(stateDir, time.Now(), update.MaxSilence) != nil {
		if time.Now().After(deadline) || proc.exited() {
			b.t.Fatalf("updater not alive: %s", proc.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// upResult is one measured update or rollback.
type upResult struct {
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
	phases []upPhase
}

type upPhase struct {
	state handoff.State
	took  time.Duration
}

// attempt requests version v and waits for the outcome: the new agent
// healthy (want succeeded) or the old one back and healthy (rolled back).
func (p *upPod) attempt(v string, broken bool) upResult {
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
	var res upResult
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
				b.t.Fatalf("update to %s ended %s, want %s; updater log:\n%s", v, final, want, p.updater.tail())
			}
			res.phases = p.statusL.phases(v, t0)
			return res
		}
		if time.Now().After(deadline) || b.ctx.Err() != nil {
			b.t.Fatalf("update to %s: no outcome (status %v, healthy after %s); updater log:\n%s", v, final, res.healthy, p.updater.tail())
		}
	}
}

// measure runs updates and rollbacks alternately on a fresh pod with the
// given healthcheck and returns the figures.
func (b *upBench) measure(check string, runs int, cmdline string) []benchreport.Figure {
	p := b.newPod(check)
	var upd, updDocker, back, backHealthy []time.Duration
	var updPhases, backPhases [][]upPhase
	loads := []string{pbLoad()}
	for i := range runs {
		v, _ := b.release(false)
		r := p.attempt(v, false)
		upd, updDocker, updPhases = append(upd, r.done), append(updDocker, r.healthy), append(updPhases, r.phases)
		fmt.Fprintf(b.log, "update: %s run %d: %s healthy and the update done %.2fs after the request, Docker calls it healthy after %.2fs (%s)\n",
			check, i+1, v, r.done.Seconds(), r.healthy.Seconds(), upPhaseString(r.phases))

		v, _ = b.release(true)
		r = p.attempt(v, true)
		back, backHealthy, backPhases = append(back, r.running), append(backHealthy, r.healthy), append(backPhases, r.phases)
		fmt.Fprintf(b.log, "update: %s run %d: broken %s rolled back, old agent running %.2fs and healthy %.2fs after the request (%s)\n",
			check, i+1, v, r.running.Seconds(), r.healthy.Seconds(), upPhaseString(r.phases))
	}
	hc := upHealthchecks[check]
	loads = append(loads, pbLoad())
	setup := fmt.Sprintf("radar-updater binary (poll 1s, RADAR_HEALTH_TIMEOUT=%s), agent healthcheck every %s (retries %d, start period %s), loopback docker-registry, signed releases with a loopback CRL; median of %d (load average %s)",
		b.healthTimeout, hc.Interval, hc.Retries, hc.StartPeriod, runs, strings.Join(loads, " → "))
	ht := b.healthTimeout.Seconds()
	return []benchreport.Figure{
		{Name: "update/" + check + "-healthcheck/update", Value: pbRound(pbMedian(upd), 2), Unit: "s", Op: "<=", Target: upUpdateTarget, Command: cmdline,
			Notes: "update-request written → the updater reports success: the new agent passed its healthcheck (run again by the benchmark, which must pass) and the old one is removed; " + setup + "; runs: " + pbSeconds(upd) + "; median phases: " + upMedianPhases(updPhases)},
		{Name: "update/" + check + "-healthcheck/update_docker_healthy", Value: pbRound(pbMedian(updDocker), 2), Unit: "s", Command: cmdline,
			Notes: "same, until Docker's own healthcheck first reports the new agent healthy (one healthcheck interval after the start); runs: " + pbSeconds(updDocker)},
		{Name: "update/" + check + "-healthcheck/rollback", Value: pbRound(pbMedian(back), 2), Unit: "s", Op: "<=", Target: ht + upRollbackMargin, Command: cmdline,
			Notes: "broken release (never healthy) requested → the old agent running again; " + setup + "; runs: " + pbSeconds(back) + "; median phases: " + upMedianPhases(backPhases)},
		{Name: "update/" + check + "-healthcheck/rollback_healthy", Value: pbRound(pbMedian(backHealthy), 2), Unit: "s", Command: cmdline,
			Notes: "same, until Docker reports the old agent healthy again; runs: " + pbSeconds(backHealthy)},
	}
}

// upStatusLog collects the updater's "update status" log lines: each state
// with the time the updater entered it.
type upStatusLog struct {
	mu      sync.Mutex
	entries []upStatus
}

type upStatus struct {
	at    time.Time
	state handoff.State
	to    string
}

func (l *upStatusLog) line(s string) {
	var e struct {
		Time  time.Time `json:"time"`
		Msg   string    `json:"msg"`
		State string    `json:"state"`
		To    string    `json:"to"`
	}
	if json.Unmarshal([]byte(s), &e) != nil || e.Msg != "update status" {
		return
	}
	l.mu.Lock()
	l.entries = append(l.entries, upStatus{at: e.Time, state: handoff.State(e.State), to: e.To})
	l.mu.Unlock()
}

func (l *upStatusLog) reset() {
	l.mu.Lock()
	l.entries = nil
	l.mu.Unlock()
}

// final returns the terminal state reached for version v, if any.
func (l *upStatusLog) final(v string) (handoff.State, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.entries {
		if e.to == v && (e.state == handoff.StateSucceeded || e.state.Failure()) {
			return e.state, true
		}
	}
	return "", false
}

// entered returns when the updater entered state for version v.
func (l *upStatusLog) entered(v string, state handoff.State) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.entries {
		if e.to == v && e.state == state {
			return e.at
		}
	}
	return time.Time{}
}

// phases turns the states of version v into time spent in each: "notice"
// from the request to the first state, then each state until the next.
func (l *upStatusLog) phases(v string, t0 time.Time) []upPhase {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []upPhase
	prev, prevState := t0, handoff.State("noticed")
	for _, e := range l.entries {
		if e.to != v {
			continue
		}
		out = append(out, upPhase{state: prevState, took: e.at.Sub(prev)})
		prev, prevState = e.at, e.state
		if e.state == handoff.StateSucceeded || e.state.Failure() {
			break
		}
	}
	return out
}

func upPhaseString(ps []upPhase) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%s %.2fs", p.state, p.took.Seconds())
	}
	return strings.Join(parts, ", ")
}

// upMedianPhases gives the median time per state over runs.
func upMedianPhases(runs [][]upPhase) string {
	var order []handoff.State
	per := map[handoff.State][]time.Duration{}
	for _, r := range runs {
		for _, p := range r {
			if _, ok := per[p.state]; !ok {
				order = append(order, p.state)
			}
			per[p.state] = append(per[p.state], p.took)
		}
	}
	parts := make([]string, len(order))
	for i, s := range order {
		parts[i] = fmt.Sprintf("%s %.2fs", s, pbMedian(per[s]))
	}
	return strings.Join(parts, ", ")
}

// pbStartWithLines is pbStart that also hands every output line to line.
func pbStartWithLines(bin string, env map[string]string, line func(string), args ...string) (*pbProc, error) {
	pr, pw := io.Pipe()
	p, err := pbStartTo(bin, env, pw, args...)
	if err != nil {
		pw.Close()
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line(sc.Text())
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		<-p.done
		pw.Close()
	}()
	return p, nil
}

// pbTB lets the test harnesses (dockertest, registrytest, releasetest),
// which take a testing.TB, run inside this command: cleanups are kept and
// run at the end, a Fatal stops the benchmark (through run) after them.
type pbTB struct {
	testing.TB // nil: only the methods below are used by those packages
	ctx        context.Context
	log        io.Writer
	cl         pbCleanups
	mu         sync.Mutex
	failed     bool
	tmp        string
}

type pbFatal struct{ msg string }

func newPbTB(ctx context.Context, log io.Writer) *pbTB { return &pbTB{ctx: ctx, log: log} }

// run calls f, then every cleanup; it returns f's fatal error, if any.
func (t *pbTB) run(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if fe, ok := r.(pbFatal); ok {
				err = fmt.Errorf("%s", fe.msg)
			} else {
				err = fmt.Errorf("panic: %v", r)
			}
		}
		t.cl.run()
		if t.tmp != "" {
			os.RemoveAll(t.tmp)
		}
		if err == nil && t.Failed() {
			err = fmt.Errorf("errors reported (see above)")
		}
	}()
	f()
	return nil
}

func (t *pbTB) check(err error, what string) {
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func (t *pbTB) Helper()                  {}
func (t *pbTB) Name() string             { return "radar-bench" }
func (t *pbTB) Context() context.Context { return t.ctx }
func (t *pbTB) Cleanup(f func())         { t.cl.add(f) }
func (t *pbTB) Log(args ...any)          { fmt.Fprintln(t.log, args...) }
func (t *pbTB) Logf(format string, args ...any) {
	fmt.Fprintf(t.log, format+"\n", args...)
}
func (t *pbTB) Error(args ...any) { t.fail(); fmt.Fprintln(t.log, args...) }
func (t *pbTB) Errorf(format string, args ...any) {
	t.fail()
	fmt.Fprintf(t.log, format+"\n", args...)
}
func (t *pbTB) Fatal(args ...any) { t.fail(); panic(pbFatal{fmt.Sprint(args...)}) }
func (t *pbTB) Fatalf(format string, args ...any) {
	t.fail()
	panic(pbFatal{fmt.Sprintf(format, args...)})
}
func (t *pbTB) FailNow() { t.fail(); panic(pbFatal{"failed"}) }
func (t *pbTB) Fail()    { t.fail() }
func (t *pbTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}
func (t *pbTB) fail() {
	t.mu.Lock()
	t.failed = true
	t.mu.Unlock()
}
func (t *pbTB) TempDir() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tmp == "" {
		d, err := os.MkdirTemp("", "radar-bench-update-")
		if err != nil {
			panic(pbFatal{err.Error()})
		}
		t.tmp = d
	}
	d, err := os.MkdirTemp(t.tmp, "")
	if err != nil {
		panic(pbFatal{err.Error()})
	}
	return d
}
