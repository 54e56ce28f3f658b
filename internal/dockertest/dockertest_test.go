package dockertest_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

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

// TestComposeLimits: RunAgent bounds an agent as docker-compose.yml does.
func TestComposeLimits(t *testing.T) {
	root, err := proctest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]struct {
			MemLimit     string `yaml:"mem_limit"`
			MemswapLimit string `yaml:"memswap_limit"`
			PidsLimit    int64  `yaml:"pids_limit"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	agent := f.Services["agent"]
	want := strconv.FormatInt(dockertest.ComposeAgentMemory>>20, 10) + "m"
	if agent.MemLimit != want || agent.MemswapLimit != want || agent.PidsLimit != dockertest.ComposeAgentPids {
		t.Errorf("docker-compose.yml bounds the agent to mem_limit %q, memswap_limit %q, pids_limit %d; RunAgent to %s, %s, %d",
			agent.MemLimit, agent.MemswapLimit, agent.PidsLimit, want, want, dockertest.ComposeAgentPids)
	}
}
