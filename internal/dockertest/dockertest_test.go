package dockertest_test

import (
	"os"
	"strings"
	"testing"

	"github.com/radarpod/radarpod/internal/dockertest"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/registrytest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	proctest.Cleanup()
	os.Exit(code)
}

// The comparison the update tests rely on must see real differences and
// ignore what the engine assigns per container.
func TestDiffAgentConfig(t *testing.T) {
	ctx := t.Context()
	e := dockertest.New(t)
	bins := dockertest.AgentBinaries(t)
	repo := registrytest.StartDistribution(t) + "/" + e.Prefix + "/radar-agent"
	ref := repo + "@" + e.Publish(ctx, repo+":1.0.0", dockertest.AgentImage(bins.Agent, "1.0.0"))
	e.Pull(ctx, ref)
	vol, _ := e.Volume(ctx, "data", 65532, 65532)
	net := e.Network(ctx, "pod")
	spec := func(name, alias string, env ...string) dockertest.AgentSpec {
		return dockertest.AgentSpec{Name: e.Name(name), Image: ref, Volume: vol, Network: net, Alias: alias, Env: env, NoStart: true}
	}
	a := e.RunAgent(ctx, spec("a", "agent", "RADAR_POD_NAME=x"))
	b := e.RunAgent(ctx, spec("b", "agent", "RADAR_POD_NAME=x"))
	if d := e.DiffAgentConfig(ctx, e.Inspect(ctx, a), e.Inspect(ctx, b)); len(d) != 0 {
		t.Fatalf("identical configurations differ: %v", d)
	}
	c := e.RunAgent(ctx, spec("c", "other", "RADAR_POD_NAME=y"))
	d := strings.Join(e.DiffAgentConfig(ctx, e.Inspect(ctx, a), e.Inspect(ctx, c)), "\n")
	for _, want := range []string{"Env:", "Networks:"} {
		if !strings.Contains(d, want) {
			t.Errorf("difference in %s not reported; got:\n%s", want, d)
		}
	}
	// The user counts even when it is an image's default: a replacement
	// that took up a new image's USER would lose the data volume.
	su := spec("u", "agent", "RADAR_POD_NAME=x")
	su.User = "1000:1000"
	u := e.RunAgent(ctx, su)
	d = strings.Join(e.DiffAgentConfig(ctx, e.Inspect(ctx, a), e.Inspect(ctx, u)), "\n")
	for _, want := range []string{"User:"} {
		if !strings.Contains(d, want) {
			t.Errorf("difference in %s not reported; got:\n%s", want, d)
		}
	}
}
