package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radarpod/radarpod/internal/dockertest"
)

// TestQuickStartOnAFreshClone does what the README tells a newcomer, on a
// fresh clone: `make up` (which makes .env from .env.example and records
// the Docker socket's group in it), the pod comes up; settings edited in
// .env and `make up` again, the pod registers and is healthy in `compose
// ps`; `make down` stops it and keeps its data. The clone holds only what
// git tracks, so a file the quick start needs but git does not track fails
// here. (The other quick-start command, `make test`, is what CI runs on a
// fresh checkout.)
//
// What differs from a newcomer's run, and why:
//   - the clone's directory, the container names and the image repository
//     are the test's own (environment variables compose and make read), so
//     a pod, images or volumes of someone sharing this engine are left alone;
//   - the one edit to .env points the pod at a local radar-devserver, since
//     this machine cannot reach the pods service (before that edit the pod
//     runs with the shipped defaults, where it fails to resolve the
//     service's name and keeps trying).
func TestQuickStartOnAFreshClone(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	eng := dockertest.New(t)
	clone := checkout(t, root, eng.Prefix)
	agentName, updaterName := eng.Name("radar-agent"), eng.Name("radar-updater")
	imageRepo := "radarpod-e2e/" + eng.Prefix
	env := []string{"IMAGE_REPO=" + imageRepo, "RADAR_AGENT_CONTAINER=" + agentName, "UPDATER_CONTAINER=" + updaterName}
	compose := composeCmd()
	volume := eng.Prefix + "_radar-data"
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", run(t, clone, env, compose[0], append(compose[1:], "logs", "--no-color", "--tail", "50")...))
		}
		run(t, clone, env, compose[0], append(compose[1:], "down", "--volumes", "--timeout", "10")...)
		removeImages(t, imageRepo+"/radar-agent", imageRepo+"/radar-updater")
	})

	// 1. First run: no .env yet.
	if _, err := os.Stat(filepath.Join(clone, ".env")); !os.IsNotExist(err) {
		t.Fatalf("the fresh clone has a .env (%v)", err)
	}
	out := run(t, clone, env, "make", "up")
	if !strings.Contains(out, agentName) || !strings.Contains(out, updaterName) {
		t.Fatalf("make up did not start both containers:\n%s", out)
	}
	gid := strings.TrimSpace(run(t, clone, nil, "stat", "-c", "%g", "/var/run/docker.sock"))
	example := readFile(t, filepath.Join(clone, ".env.example"))
	dotenv := readFile(t, filepath.Join(clone, ".env"))
	if rest, ok := strings.CutPrefix(dotenv, example); !ok || !strings.HasSuffix(rest, "\nDOCKER_GID="+gid+"\n") || strings.Count(rest, "\n") != 2 {
		t.Fatalf(".env after the first make up is not .env.example plus this host's DOCKER_GID=%s (a comment and the setting):\n%s", gid, dotenv)
	}
	for _, name := range []string{agentName, updaterName} {
		if c, ok := inspect(t, eng, name); !ok || !c.State.Running {
			t.Fatalf("%s is not running after make up", name)
		}
	}
	// The development PKI was created for the updater image, its key never
	// entering the build context.
	if _, err := os.Stat(filepath.Join(clone, ".pki", "dev", "root-ca.pem")); err != nil {
		t.Fatalf("make up did not create the development root: %v", err)
	}

	// 2. Edit .env, make up again. The devserver listens on the Docker
	// bridge's gateway: the pod runs on the compose file's own network, as
	// shipped, which does not reach this machine's loopback.
	dev := startDevserver(t, t.TempDir(), "--listen", bridgeGateway(t)+":0")
	f, err := os.OpenFile(filepath.Join(clone, ".env"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("RADAR_SERVER_URL=" + dev.ep.ServerURL + "\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	run(t, clone, env, "make", "up")
	if n := strings.Count(readFile(t, filepath.Join(clone, ".env")), "\nDOCKER_GID="); n != 1 {
		t.Errorf(".env holds %d DOCKER_GID settings after a second make up, want 1", n)
	}
	waitFor(t, "registration and heartbeats", func() bool {
		st := dev.state()
		return st.Registrations == 1 && st.Pongs >= 1
	})
	waitFor(t, "both containers healthy", func() bool {
		return healthy(t, eng, agentName) && healthy(t, eng, updaterName)
	})
	if ps := run(t, clone, env, compose[0], append(compose[1:], "ps")...); strings.Count(ps, "(healthy)") != 2 {
		t.Fatalf("compose ps does not show both containers healthy:\n%s", ps)
	}
	checkPosture(t, eng, agentName, false, false)
	checkPosture(t, eng, updaterName, true, false)

	// 3. make down: the containers go, the data (identity, outbox) stays.
	run(t, clone, env, "make", "down")
	for _, name := range []string{agentName, updaterName} {
		if _, ok := inspect(t, eng, name); ok {
			t.Errorf("%s still exists after make down", name)
		}
	}
	if err := exec.Command("docker", "volume", "inspect", volume).Run(); err != nil {
		t.Errorf("make down removed the data volume %s: %v", volume, err)
	}
}
