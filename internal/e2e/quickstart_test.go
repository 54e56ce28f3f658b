package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radarpod/radarpod/internal/dockertest"
	"github.com/radarpod/radarpod/internal/proctest"
)

// TestQuickStartOnAFreshClone does what the README tells a newcomer: clone,
// `make up`, see the pod healthy, `make down`. The clone holds only what is
// committed, so a file the quick start needs but git does not track fails
// here. (The other quick-start command, `make test`, is what CI runs on a
// fresh checkout.)
func TestQuickStartOnAFreshClone(t *testing.T) {
	root, err := proctest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	eng := dockertest.New(t)
	clone := filepath.Join(t.TempDir(), "radarpod")
	run(t, root, nil, "git", "clone", "--quiet", "--no-hardlinks", root, clone)

	// Standalone (this machine reaches no pods service), and names of our
	// own so a developer's running pod is left alone.
	agentName, updaterName := eng.Name("qs-agent"), eng.Name("qs-updater")
	writeFile(t, filepath.Join(clone, ".env"), strings.Join([]string{
		"RADAR_SERVER_URL=", "RADAR_AGENT_CONTAINER=" + agentName, "UPDATER_CONTAINER=" + updaterName,
	}, "\n")+"\n")
	env := []string{"COMPOSE_PROJECT_NAME=" + eng.Prefix}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", run(t, clone, env, "docker", "logs", "--tail", "50", agentName))
		}
		run(t, clone, env, "make", "down")
		run(t, clone, nil, "docker", "volume", "rm", "-f", eng.Prefix+"_radar-data")
	})

	out := run(t, clone, env, "make", "up")
	if !strings.Contains(out, agentName) || !strings.Contains(out, updaterName) {
		t.Fatalf("make up did not start both containers:\n%s", out)
	}
	compose := composeCmd()
	waitFor(t, "both containers healthy", func() bool {
		ps := run(t, clone, env, compose[0], append(compose[1:], "ps")...)
		return strings.Count(ps, "(healthy)") == 2
	})
	// The development PKI was created for the updater image, its key never
	// entering the build context.
	if _, err := os.Stat(filepath.Join(clone, ".pki", "dev", "root-ca.pem")); err != nil {
		t.Fatalf("make up did not create the development root: %v", err)
	}
}
