package update

// Integration tests on the Docker engine of this machine, Debian's
// docker-registry on 127.0.0.1, the real verifier and real signatures.
// Nothing is pulled from the internet: agent images are FROM scratch
// around a binary built here.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/radarpod/radarpod/internal/backoff"
	"github.com/radarpod/radarpod/internal/container"
	"github.com/radarpod/radarpod/internal/dockertest"
	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/registrytest"
	"github.com/radarpod/radarpod/internal/release"
	"github.com/radarpod/radarpod/internal/release/releasetest"
	"github.com/radarpod/radarpod/internal/update/verify"
)

// The engine tests run in parallel: each has its own dockertest prefix,
// registry, volume and networks, and most of their time is spent waiting
// on Docker (pulls, healthchecks), not on the CPU.
func TestMain(m *testing.M) {
	code := m.Run()
	proctest.Cleanup()
	os.Exit(code)
}

// pod is one Docker host: a registry with signed releases, the agent
// running like docker-compose runs it, and the updater's data dir being the
// agent's named volume.
type pod struct {
	*runner
	ctx    context.Context
	eng    *dockertest.Engine
	bins   dockertest.Binaries
	repo   string
	pki    *releasetest.PKI
	docker *container.Client
	volume string
	net    string
	name   string
}

// healthTimeout is short so a failing release is rolled back quickly.
const healthTimeout = 15 * time.Second

func newPod(t *testing.T) *pod {
	t.Helper()
	ctx := t.Context()
	p := &pod{ctx: ctx, eng: dockertest.New(t)}
	p.bins = dockertest.AgentBinaries(t)
	p.repo = registrytest.StartDistribution(t) + "/" + p.eng.Prefix + "/radar-agent"
	p.pki = releasetest.NewPKI(t)
	docker, err := container.New(container.Options{Logger: testLogger(t), HealthPoll: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { docker.Close() })
	p.docker = docker
	var dataDir string
	p.volume, dataDir = p.eng.Volume(ctx, "data", 65532, 65532)
	p.net = p.eng.Network(ctx, "pod")
	p.name = p.eng.Name("radar-agent")

	v, err := verify.New(verify.Config{
		Repository: p.repo, Component: container.AgentComponent,
		RootCAPEM: p.pki.RootPEM, CRLURL: p.pki.CRL.URL(), HTTPClient: p.pki.CRL.Client(),
		StateDir: t.TempDir(), Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	slow := backoff.Backoff{Initial: time.Hour, Max: 2 * time.Hour}
	stateDir := t.TempDir()
	p.runner = &runner{t: t, dir: dataDir, stateDir: stateDir, engine: docker, verifier: v, opts: Options{
		DataDir: dataDir, StateDir: stateDir, AgentName: p.name, Repository: p.repo,
		HealthTimeout: healthTimeout, TestTimeout: 5 * time.Second,
		Poll: 200 * time.Millisecond, Retry: slow, TransientRetry: slow,
		Logger: testLogger(t),
	}}
	return p
}

// release publishes a signed agent image and returns repo@digest.
func (p *pod) release(version, binary string) string {
	p.t.Helper()
	ref := p.repo + "@" + p.eng.Publish(p.ctx, p.repo+":"+version, dockertest.AgentImage(binary, version))
	p.pki.Sign(p.ctx, nil, p.repo+":"+version)
	return ref
}

// runAgent starts the agent from ref the way docker-compose.yml does and
// waits for it to be healthy.
func (p *pod) runAgent(ref string) string {
	p.t.Helper()
	p.eng.Pull(p.ctx, ref)
	id := p.eng.RunAgent(p.ctx, dockertest.AgentSpec{
		Name: p.name, Image: ref, Volume: p.volume, Network: p.net, Alias: "agent",
		Env: []string{"RADAR_POD_NAME=bench-7"},
	})
	p.eng.WaitHealthy(p.ctx, id, 2*time.Minute)
	return id
}

// agent checks the pod has exactly one agent container the updater
// manages (under the agent name; none left under a temporary name),
// running and healthy, and returns it.
func (p *pod) agent() ctypes.InspectResponse {
	p.t.Helper()
	var agents []string
	for name, c := range p.eng.Containers(p.ctx) {
		managed := name == p.name || strings.HasPrefix(name, p.name+"-old-")
		if c.Labels[dockertest.AgentLabel] == dockertest.AgentComponent && managed {
			agents = append(agents, name)
		}
	}
	if len(agents) != 1 || agents[0] != p.name {
		p.t.Fatalf("want exactly one agent container named %s, have %v", p.name, agents)
	}
	p.eng.WaitHealthy(p.ctx, p.name, time.Minute)
	return p.eng.Inspect(p.ctx, p.name)
}

func (p *pod) agentVersion(c ctypes.InspectResponse) string {
	p.t.Helper()
	img, err := p.eng.API.ImageInspect(p.ctx, c.Image)
	if err != nil {
		p.t.Fatal(err)
	}
	return img.Config.Labels[dockertest.VersionLabel]
}

func (p *pod) noJournal() {
	p.t.Helper()
	if j := p.journal(); j != nil {
		p.t.Fatalf("journal left behind: %+v", j)
	}
}

// TestEngineUpdateLifecycle walks one pod through a release's life:
// an update with identical configuration, refused announcements that leave
// the agent alone, and a broken release rolled back.
func TestEngineUpdateLifecycle(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	ctx := p.ctx
	v1 := p.release("1.0.0", p.bins.Agent)
	v1ID := p.runAgent(v1)
	before := p.eng.Inspect(ctx, v1ID)
	v1Image := before.Image
	// Bystanders: the agent image run by hand under another name, and an
	// agent-labelled container that is not RADAR_AGENT_CONTAINER.
	debug := p.eng.RunAgent(ctx, dockertest.AgentSpec{Name: p.eng.Name("debug"), Image: v1, Volume: p.volume, NotAgent: true})
	canary := p.eng.RunAgent(ctx, dockertest.AgentSpec{Name: p.name + "-canary", Image: v1, Volume: p.volume})
	bystanders := map[string]ctypes.InspectResponse{}
	for _, id := range []string{debug, canary} {
		p.eng.WaitHealthy(ctx, id, time.Minute)
		c := p.eng.Inspect(ctx, id)
		bystanders[c.ID] = c
	}
	p.start(nil)

	// 1. v1 → v2, same configuration.
	v2 := p.release("2.0.0", p.bins.Agent)
	asked := time.Now()
	p.request("2.0.0")
	first := p.waitState(handoff.StateVerifying)
	t.Logf("reacted to the request after %s", first.UpdatedAt.Sub(asked).Round(time.Millisecond))
	st := p.waitState(handoff.StateSucceeded)
	if st.FromVersion != "1.0.0" || st.ToVersion != "2.0.0" || v2 != p.repo+"@"+st.Digest {
		t.Fatalf("status = %+v, want 1.0.0 → 2.0.0 at %s", st, v2)
	}
	cur := p.agent()
	if p.agentVersion(cur) != "2.0.0" || cur.Config.Image != v2 {
		t.Fatalf("agent runs %s (%s), want 2.0.0 from %s", p.agentVersion(cur), cur.Config.Image, v2)
	}
	for _, d := range p.eng.DiffAgentConfig(ctx, before, cur) {
		t.Errorf("configuration changed by the update: %s", d)
	}
	if _, err := p.eng.API.ContainerInspect(ctx, v1ID, client.ContainerInspectOptions{}); err == nil {
		t.Error("old agent container still exists")
	}
	if !p.eng.ImageExists(ctx, v1Image) {
		t.Error("v1 image removed although the bystanders use it")
	}
	p.noJournal()
	v2ID := cur.ID
	v2Started := cur.State.StartedAt

	// 2. Announcements that must be refused, each leaving v2 untouched.
	p.release("3.0.1", p.bins.Agent)
	// Moving the signed tag to other content is what a compromised registry does.
	p.eng.Publish(ctx, p.repo+":3.0.1", dockertest.AgentImage(p.bins.Unhealthy, "3.0.1"))
	p.eng.Publish(ctx, p.repo+":3.0.2", dockertest.AgentImage(p.bins.Agent, "3.0.2")) // never signed
	revokedSigner := p.pki.IssueSigner(release.SignerOptions{CommonName: "Leaked Signer", CRLURL: p.pki.CRL.URL()})
	p.eng.Publish(ctx, p.repo+":3.0.3", dockertest.AgentImage(p.bins.Agent, "3.0.3"))
	p.pki.Sign(ctx, revokedSigner, p.repo+":3.0.3")
	p.pki.Revoke(revokedSigner)
	foreign := p.pki.ForeignCA()
	foreignSigner, err := foreign.IssueSigner(release.SignerOptions{CommonName: "Radar Pod Test Signer", CRLURL: p.pki.CRL.URL()})
	if err != nil {
		t.Fatal(err)
	}
	p.eng.Publish(ctx, p.repo+":3.0.4", dockertest.AgentImage(p.bins.Agent, "3.0.4"))
	p.pki.Sign(ctx, foreignSigner, p.repo+":3.0.4")
	for _, tc := range []struct{ name, version, code string }{
		{"tampered", "3.0.1", verify.CodeUnsigned},
		{"unsigned", "3.0.2", verify.CodeUnsigned},
		{"revoked", "3.0.3", verify.CodeRevoked},
		{"foreign root", "3.0.4", verify.CodeUntrustedSignature},
		{"downgrade", "1.0.0", verify.CodeDowngrade},
	} {
		p.request(tc.version)
		st := p.waitStatus("refused "+tc.version, func(s handoff.Status) bool {
			return s.ToVersion == tc.version && s.State.Failure()
		})
		if st.State != handoff.StateRefused || !strings.HasPrefix(st.Reason, tc.code+":") || st.NextRetryAt == nil {
			t.Errorf("%s: status %s %q (next retry %v), want refused %s", tc.name, st.State, st.Reason, st.NextRetryAt, tc.code)
		}
		c := p.agent()
		if c.ID != v2ID || c.State.StartedAt != v2Started {
			t.Fatalf("%s: the agent was touched (now %s started %s)", tc.name, c.ID[:12], c.State.StartedAt)
		}
	}
	imgs, err := p.eng.API.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("label", dockertest.TestLabel+"="+p.eng.Prefix)})
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range imgs.Items {
		if v := img.Labels[dockertest.VersionLabel]; strings.HasPrefix(v, "3.0.") {
			t.Errorf("refused release %s was pulled", v)
		}
	}

	// 3. v3 fails its healthcheck: rolled back to v2.
	v3 := p.release("3.0.0", p.bins.Unhealthy)
	p.request("3.0.0")
	hc := p.waitStatus("health check of 3.0.0", func(s handoff.Status) bool {
		return s.ToVersion == "3.0.0" && s.State == handoff.StateHealthCheck
	})
	rb := p.waitStatus("rollback of 3.0.0", func(s handoff.Status) bool { return s.ToVersion == "3.0.0" && s.State.Failure() })
	took := rb.UpdatedAt.Sub(hc.UpdatedAt)
	t.Logf("rolled back %s after the health check began (health timeout %s; budget %s)", took.Round(time.Millisecond), healthTimeout, healthTimeout+5*time.Second)
	if rb.State != handoff.StateRolledBack || !strings.Contains(rb.Reason, "healthcheck") || rb.NextRetryAt == nil {
		t.Errorf("status = %s %q, want rolled_back with the healthcheck output", rb.State, rb.Reason)
	}
	c := p.agent()
	if c.ID != v2ID || p.agentVersion(c) != "2.0.0" {
		t.Fatalf("after rollback the agent is %s %s, want the v2 container %s", c.ID[:12], p.agentVersion(c), v2ID[:12])
	}
	if p.eng.ImageExists(ctx, v3) {
		t.Error("the failed release's image was kept")
	}
	p.noJournal()

	// Bystanders were never touched.
	for id, before := range bystanders {
		after := p.eng.Inspect(ctx, id)
		if after.Name != before.Name || !after.State.Running || after.State.StartedAt != before.State.StartedAt || after.Image != before.Image {
			t.Errorf("bystander %s was touched", before.Name)
		}
	}
}

// TestEngineSameNameWithoutLabelIsNeverTouched: a container holding
// RADAR_AGENT_CONTAINER's name but not the agent label is not managed.
func TestEngineSameNameWithoutLabelIsNeverTouched(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	v1 := p.release("1.0.0", p.bins.Agent)
	p.eng.Pull(p.ctx, v1)
	id := p.eng.RunAgent(p.ctx, dockertest.AgentSpec{Name: p.name, Image: v1, Volume: p.volume, NotAgent: true})
	p.eng.WaitHealthy(p.ctx, id, time.Minute)
	before := p.eng.Inspect(p.ctx, id)
	p.release("2.0.0", p.bins.Agent)
	p.start(nil)
	p.request("2.0.0")
	st := p.waitState(handoff.StateFailed)
	if !strings.Contains(st.Reason, "lacks label") {
		t.Errorf("reason = %q", st.Reason)
	}
	time.Sleep(3 * p.opts.Poll)
	p.stop()
	after := p.eng.Inspect(p.ctx, id)
	if after.Name != before.Name || !after.State.Running || after.State.StartedAt != before.State.StartedAt {
		t.Fatal("the unlabelled container was touched")
	}
	if p.eng.ImageExists(p.ctx, p.repo+":2.0.0") {
		t.Error("an image was pulled for a container that is not the agent")
	}
	if n := len(p.eng.Containers(p.ctx)); n != 1 {
		t.Errorf("%d containers, want only the unlabelled one", n)
	}
}

// TestEngineCrashAfterEveryStepConverges stops the updater right after
// each journaled step took effect (the journal does not know the outcome),
// starts a new one, and checks the pod converges to exactly one healthy
// agent: the new one once it was proven healthy, else the old one.
func TestEngineCrashAfterEveryStepConverges(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	running := "1.0.0"
	p.runAgent(p.release(running, p.bins.Agent))
	for i, phase := range Phases {
		version := fmt.Sprintf("1.%d.0", i+1)
		binary, want := p.bins.Agent, version
		switch phase {
		case PhaseRename, PhaseCreate, PhaseStopOld, PhaseStartNew:
			want = running // recovery cannot know the new one works
		case PhaseRollback:
			binary, want = p.bins.Unhealthy, running
		}
		ok := t.Run(string(phase), func(t *testing.T) {
			p.t = t
			p.release(version, binary)
			old := p.agent()
			p.forget()
			p.request(version)
			p.start(func(ph Phase, after bool) error {
				if ph == phase && after {
					return errors.New("kill -9")
				}
				return nil
			})
			p.waitStopped()
			if j := p.journal(); j == nil || j.Phase != phase {
				t.Fatalf("journal after the crash = %+v, want phase %s", j, phase)
			}
			p.start(nil)
			p.waitStatus("the outcome", func(s handoff.Status) bool {
				return s.ToVersion == version && (s.State == handoff.StateSucceeded || s.State.Failure())
			})
			p.stop()
			c := p.agent()
			if got := p.agentVersion(c); got != want {
				t.Fatalf("agent runs %s, want %s", got, want)
			}
			if want == running && c.ID != old.ID {
				t.Errorf("rolled back to a different container (%s, was %s)", c.ID[:12], old.ID[:12])
			}
			p.noJournal()
			running = want
		})
		if !ok {
			break
		}
	}
}

// TestEngineRealKillDuringHealthWait runs the radar-updater binary, kills
// it with SIGKILL while it waits for the new agent to become healthy, and
// starts it again: the new process finishes the update from the journal.
func TestEngineRealKillDuringHealthWait(t *testing.T) {
	t.Parallel()
	p := newPod(t)
	p.runAgent(p.release("1.0.0", p.bins.Agent))
	p.release("2.0.0", p.bins.Agent)
	bin := buildUpdater(t)
	env := p.updaterEnv(t)

	p.request("2.0.0")
	first := startUpdater(t, bin, env)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if j, _ := p.journalOrNil(); j != nil && j.Phase == PhaseHealth {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the updater never reached the health wait; output:\n%s", first.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	first.kill()
	if j := p.journal(); j == nil || j.Phase != PhaseHealth {
		t.Fatalf("journal after kill -9 = %+v", j)
	}
	t.Logf("killed during %s", PhaseHealth)

	second := startUpdater(t, bin, env)
	deadline = time.Now().Add(2 * time.Minute)
	for {
		st, ok, _ := handoff.ReadStatus(p.dir)
		if ok && st.ToVersion == "2.0.0" && (st.State == handoff.StateSucceeded || st.State.Failure()) {
			if st.State != handoff.StateSucceeded {
				t.Fatalf("status after restart = %+v; output:\n%s", st, second.output())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no outcome after the restart; output:\n%s", second.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	second.stop(t)
	if got := p.agentVersion(p.agent()); got != "2.0.0" {
		t.Fatalf("agent runs %s, want 2.0.0", got)
	}
	p.noJournal()
	if err := CheckAlive(p.stateDir, time.Now(), MaxSilence); err != nil {
		t.Errorf("heartbeat: %v", err)
	}
}
