package container_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/radarpod/radarpod/internal/container"
	"github.com/radarpod/radarpod/internal/dockertest"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/registrytest"
)

// The engine tests run in parallel: each has its own dockertest prefix,
// registry, volume and networks, and most of their time is spent waiting
// on Docker (pulls, healthchecks), not on the CPU.
func TestMain(m *testing.M) {
	code := m.Run()
	proctest.Cleanup()
	os.Exit(code)
}

type fixture struct {
	ctx     context.Context
	eng     *dockertest.Engine
	cli     *container.Client
	bins    dockertest.Binaries
	repo    string // in the loopback docker-registry
	v1, v2  string // repo@digest; v1 is pulled, v2 only published
	volume  string
	netA    string
	netB    string
	agentID string
	name    string
}

// newFixture publishes agent v1 and v2 to a real docker-registry and runs
// v1 like docker-compose does, attached to two networks with aliases.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := t.Context()
	f := &fixture{ctx: ctx, eng: dockertest.New(t)}
	f.bins = dockertest.AgentBinaries(t)
	cli, err := container.New(container.Options{HealthPoll: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	f.cli = cli
	f.repo = registrytest.StartDistribution(t) + "/" + f.eng.Prefix + "/radar-agent"
	f.v1 = f.publish("1.0.0", f.bins.Agent)
	// v2's image runs as another user than v1's: the agent's data volume
	// belongs to the uid it ran as, so a replacement must keep that uid
	// rather than take up the new image's USER (DiffAgentConfig sees it).
	f.v2 = f.publishAs("2.0.0", f.bins.Agent, "1000:1000")
	f.eng.Pull(ctx, f.v1)
	f.volume, _ = f.eng.Volume(ctx, "data", 65532, 65532)
	f.netA = f.eng.Network(ctx, "a")
	f.netB = f.eng.Network(ctx, "b")
	f.name = f.eng.Name("radar-agent")
	f.agentID = f.eng.RunAgent(ctx, dockertest.AgentSpec{
		Name: f.name, Image: f.v1, Volume: f.volume, Network: f.netA, Alias: "agent",
		Env: []string{"OPERATOR_SET=yes"},
	})
	_, err = f.eng.API.NetworkConnect(ctx, f.netB, client.NetworkConnectOptions{
		Container:      f.agentID,
		EndpointConfig: &network.EndpointSettings{Aliases: []string{"agent-b", "probe"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.eng.WaitHealthy(ctx, f.agentID, 60*time.Second)
	return f
}

func (f *fixture) publish(version, binary string) string {
	return f.publishAs(version, binary, "")
}

// publishAs publishes an agent image whose USER is user ("" keeps
// dockertest's 65532:65532).
func (f *fixture) publishAs(version, binary, user string) string {
	spec := dockertest.AgentImage(binary, version)
	spec.Env = []string{"IMAGE_DEFAULT=" + version}
	if user != "" {
		spec.User = user
	}
	return f.repo + "@" + f.eng.Publish(f.ctx, f.repo+":"+version, spec)
}

func TestAgentFindsOnlyTheLabelledContainerByExactName(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	got, err := f.cli.Agent(ctx, f.name)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != f.agentID || got.Version != "1.0.0" || !got.Running || got.Health != "healthy" {
		t.Fatalf("Agent = %+v", got)
	}
	// An ID prefix resolves in the engine but is not the agent's name.
	if _, err := f.cli.Agent(ctx, f.agentID[:12]); !errors.Is(err, container.ErrNotFound) {
		t.Fatalf("Agent(ID prefix) err = %v, want ErrNotFound", err)
	}
	if _, err := f.cli.Agent(ctx, f.eng.Name("missing")); !errors.Is(err, container.ErrNotFound) {
		t.Fatalf("Agent(missing) err = %v, want ErrNotFound", err)
	}
}

func TestEveryMutationRefusesAContainerWithoutTheAgentLabel(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	impostor := f.eng.Name("impostor")
	id := f.eng.RunAgent(ctx, dockertest.AgentSpec{Name: impostor, Image: f.v1, Volume: f.volume, NotAgent: true})
	f.eng.WaitHealthy(ctx, id, 60*time.Second)
	before := f.eng.Inspect(ctx, id)

	if _, err := f.cli.Agent(ctx, impostor); !errors.Is(err, container.ErrNotAgent) {
		t.Errorf("Agent: err = %v, want ErrNotAgent", err)
	}
	calls := map[string]func() error{
		"Rename":      func() error { return f.cli.Rename(ctx, id, impostor+"-renamed") },
		"Stop":        func() error { return f.cli.Stop(ctx, id) },
		"Remove":      func() error { return f.cli.Remove(ctx, id) },
		"Start":       func() error { return f.cli.Start(ctx, id) },
		"WaitHealthy": func() error { return f.cli.WaitHealthy(ctx, id, time.Second) },
		"CreateLike": func() error {
			_, err := f.cli.CreateLike(ctx, id, impostor+"-copy", f.v2)
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, container.ErrNotAgent) {
			t.Errorf("%s: err = %v, want ErrNotAgent", name, err)
		}
	}
	after := f.eng.Inspect(ctx, id)
	if after.Name != before.Name || !after.State.Running || after.State.StartedAt != before.State.StartedAt {
		t.Fatalf("impostor was touched: before %s %s, after %s running=%v %s", before.Name, before.State.StartedAt, after.Name, after.State.Running, after.State.StartedAt)
	}
	if _, ok := f.eng.Containers(ctx)[impostor+"-copy"]; ok {
		t.Fatal("a copy of the impostor was created")
	}
}

func TestCreateLikeKeepsTheExactConfiguration(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	if err := f.cli.Rename(ctx, f.agentID, f.name+"-old"); err != nil {
		t.Fatal(err)
	}
	if err := f.cli.Stop(ctx, f.agentID); err != nil {
		t.Fatal(err)
	}
	img, err := f.cli.Pull(ctx, f.v2)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(img.RepoDigests, f.v2) || img.Labels["org.opencontainers.image.version"] != "2.0.0" {
		t.Fatalf("pulled %+v, want repo digest %s", img, f.v2)
	}
	newID, err := f.cli.CreateLike(ctx, f.agentID, f.name, f.v2)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cli.Start(ctx, newID); err != nil {
		t.Fatal(err)
	}
	if err := f.cli.WaitHealthy(ctx, newID, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, d := range f.eng.DiffAgentConfig(ctx, f.eng.Inspect(ctx, f.agentID), f.eng.Inspect(ctx, newID)) {
		t.Errorf("configuration differs: %s", d)
	}
	cur := f.eng.Inspect(ctx, newID)
	if got := cur.Config.Image; got != f.v2 {
		t.Errorf("image = %q, want %q", got, f.v2)
	}
	if !slices.Contains(cur.Config.Env, "IMAGE_DEFAULT=2.0.0") || slices.Contains(cur.Config.Env, "IMAGE_DEFAULT=1.0.0") {
		t.Errorf("image defaults not replaced: env %v", cur.Config.Env)
	}
	if got := cur.Config.Labels["org.opencontainers.image.version"]; got != "2.0.0" {
		t.Errorf("version label = %q, want the new image's 2.0.0", got)
	}
	if cur.Config.User != "65532:65532" {
		t.Errorf("user = %q, want the old agent's 65532:65532, not the new image's USER", cur.Config.User)
	}
	// The compose file's bounds (dockertest runs the agent with them), as
	// the engine reports them for the replacement: a new agent without
	// them could take the Pi's memory or tasks.
	r := cur.HostConfig.Resources
	var pids int64
	if r.PidsLimit != nil {
		pids = *r.PidsLimit
	}
	if r.Memory != dockertest.ComposeAgentMemory || r.MemorySwap != dockertest.ComposeAgentMemory || pids != dockertest.ComposeAgentPids {
		t.Errorf("limits: memory %d, memory+swap %d, pids %d; want the old agent's %d, %d, %d",
			r.Memory, r.MemorySwap, pids, dockertest.ComposeAgentMemory, dockertest.ComposeAgentMemory, dockertest.ComposeAgentPids)
	}
	ag, err := f.cli.Agent(ctx, f.name)
	if err != nil || ag.ID != newID || ag.Version != "2.0.0" {
		t.Fatalf("Agent after replacement = %+v, %v", ag, err)
	}
}

func TestWaitHealthyFailsFastWithTheReason(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	cases := []struct {
		name, binary, reason, output string
	}{
		{"unhealthy", f.bins.Unhealthy, "unhealthy", "main loop has not started"},
		{"exiting", f.bins.Exiting, "exited", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ref := f.publish("3.0.0-"+tc.name, tc.binary)
			f.eng.Pull(ctx, ref)
			id := f.eng.RunAgent(ctx, dockertest.AgentSpec{Name: f.eng.Name(tc.name), Image: ref, Volume: f.volume,
				// Restarting would hide the exit from a slow poll: compare
				// with the restart policy case below.
				Healthcheck: dockertest.ComposeHealthcheck()})
			start := time.Now()
			err := f.cli.WaitHealthy(ctx, id, 60*time.Second)
			var ue *container.UnhealthyError
			if !errors.As(err, &ue) {
				t.Fatalf("err = %v, want UnhealthyError", err)
			}
			t.Logf("failed after %s: %v", time.Since(start).Round(time.Millisecond), err)
			if ue.Reason != tc.reason && !(tc.reason == "exited" && ue.Reason == "restarting") {
				t.Errorf("reason = %q, want %q", ue.Reason, tc.reason)
			}
			if !strings.Contains(ue.Output, tc.output) {
				t.Errorf("output = %q, want it to contain %q", ue.Output, tc.output)
			}
			if ue.Reason == "timeout" {
				t.Errorf("did not fail fast")
			}
		})
	}
}

// slowDockerHealthcheck keeps Docker's own verdict "starting" for the
// whole test: its first probe is an hour away.
func slowDockerHealthcheck() *ctypes.HealthConfig {
	hc := dockertest.ComposeHealthcheck()
	hc.Interval, hc.StartPeriod = time.Hour, time.Hour
	return hc
}

// WaitHealthy takes Docker's verdict, nothing else: an agent that is ready
// (its healthcheck would pass) but that Docker has not probed yet is not
// healthy, and the wait ends at the timeout.
func TestWaitHealthyWaitsForDockersVerdict(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	id := f.eng.RunAgent(ctx, dockertest.AgentSpec{Name: f.eng.Name("ready"), Image: f.v1, Volume: f.volume, Healthcheck: slowDockerHealthcheck()})
	err := f.cli.WaitHealthy(ctx, id, 3*time.Second)
	var ue *container.UnhealthyError
	if !errors.As(err, &ue) || ue.Reason != "timeout" {
		t.Fatalf("err = %v, want a timeout UnhealthyError", err)
	}
	if !strings.Contains(err.Error(), "no healthcheck probe") {
		t.Errorf("the error does not say Docker never probed: %v", err)
	}
	if h := f.eng.Inspect(ctx, id).State.Health; h == nil || h.Status != ctypes.Starting || len(h.Log) != 0 {
		t.Errorf("Docker's health = %+v, want starting with no probe run", h)
	}
	// The same agent under Docker's probe every second is healthy.
	id = f.eng.RunAgent(ctx, dockertest.AgentSpec{Name: f.eng.Name("probed"), Image: f.v1, Volume: f.volume})
	if err := f.cli.WaitHealthy(ctx, id, 2*time.Minute); err != nil {
		t.Fatalf("WaitHealthy: %v", err)
	}
	if h := f.eng.Inspect(ctx, id).State.Health; h == nil || h.Status != ctypes.Healthy {
		t.Errorf("accepted while Docker says %+v", h)
	}
}

// A timeout while Docker's verdict is still "starting" (failures within
// the retries) carries Docker's last probe output.
func TestWaitHealthyTimesOutWithTheHealthchecksOutput(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	ref := f.publish("3.0.0-slow", f.bins.Unhealthy)
	f.eng.Pull(ctx, ref)
	hc := dockertest.ComposeHealthcheck()
	hc.Retries = 1000 // never "unhealthy" within the test
	id := f.eng.RunAgent(ctx, dockertest.AgentSpec{Name: f.eng.Name("slow"), Image: ref, Volume: f.volume, Healthcheck: hc})
	// Wait until Docker has probed at least once, so the timeout below
	// is not about a probe that has not run yet.
	deadline := time.Now().Add(2 * time.Minute)
	for h := f.eng.Inspect(ctx, id).State.Health; h == nil || len(h.Log) == 0; h = f.eng.Inspect(ctx, id).State.Health {
		if time.Now().After(deadline) {
			t.Fatal("Docker never probed the container")
		}
		time.Sleep(200 * time.Millisecond)
	}
	err := f.cli.WaitHealthy(ctx, id, 2*time.Second)
	var ue *container.UnhealthyError
	if !errors.As(err, &ue) || ue.Reason != "timeout" {
		t.Fatalf("err = %v, want a timeout UnhealthyError", err)
	}
	if !strings.Contains(ue.Output, "exit 1") || !strings.Contains(ue.Output, "main loop has not started") {
		t.Errorf("output = %q, want the healthcheck's exit status and message", ue.Output)
	}
}

// An agent without any healthcheck (the operator disabled it) is accepted
// once it stayed up; one that exits is not.
func TestWaitHealthyWithoutAHealthcheck(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	none := &ctypes.HealthConfig{Test: []string{"NONE"}}
	id := f.eng.RunAgent(ctx, dockertest.AgentSpec{Name: f.eng.Name("nocheck"), Image: f.v1, Volume: f.volume, Healthcheck: none})
	if err := f.cli.WaitHealthy(ctx, id, 2*time.Minute); err != nil {
		t.Fatalf("WaitHealthy: %v", err)
	}
	if c := f.eng.Inspect(ctx, id); !c.State.Running || c.State.Health != nil {
		t.Errorf("state %+v", c.State)
	}
	ref := f.publish("3.0.0-exit", f.bins.Exiting)
	f.eng.Pull(ctx, ref)
	id = f.eng.RunAgent(ctx, dockertest.AgentSpec{Name: f.eng.Name("nocheck-exit"), Image: ref, Volume: f.volume, Healthcheck: none})
	var ue *container.UnhealthyError
	if err := f.cli.WaitHealthy(ctx, id, 2*time.Minute); !errors.As(err, &ue) || (ue.Reason != "exited" && ue.Reason != "restarting") {
		t.Fatalf("err = %v, want exited or restarting", err)
	}
}

func TestRemoveImageKeepsAnImageInUse(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	ag, err := f.cli.Agent(ctx, f.name)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cli.RemoveImage(ctx, ag.Image); !errors.Is(err, container.ErrImageInUse) {
		t.Fatalf("RemoveImage(in use) err = %v, want ErrImageInUse", err)
	}
	if !f.eng.ImageExists(ctx, ag.Image) {
		t.Fatal("image in use was removed")
	}
	img, err := f.cli.Pull(ctx, f.v2)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.cli.RemoveImage(ctx, img.ID); err != nil {
		t.Fatal(err)
	}
	if f.eng.ImageExists(ctx, img.ID) {
		t.Fatal("unused image still present")
	}
}

// TestTagRepointsAComposeReference points a repo:tag at a pulled image, as
// the updater does after a swap, and refuses a digest reference as target.
func TestTagRepointsAComposeReference(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	tag := f.repo + ":compose"
	if err := f.cli.Tag(ctx, f.v1, tag); err != nil {
		t.Fatal(err)
	}
	byTag, err := f.eng.API.ImageInspect(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	byDigest, err := f.eng.API.ImageInspect(ctx, f.v1)
	if err != nil {
		t.Fatal(err)
	}
	if byTag.ID != byDigest.ID {
		t.Fatalf("%s names %s, want %s", tag, byTag.ID, byDigest.ID)
	}
	if err := f.cli.Tag(ctx, f.v1, f.v2); err == nil {
		t.Fatal("a digest reference was accepted as a tag target")
	}
}
