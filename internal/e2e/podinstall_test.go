package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/radarpod/radarpod/internal/dockertest"
)

// testPodInstall installs a pod the README's way for a pod that is not a
// build machine ("Pod install"): in an empty directory, the compose file
// and a .env made from .env.example, then `compose up -d`: no source tree,
// no Go, no make (compose runs with a PATH holding only itself and docker).
// The images are agentImage and updaterImage, built from src, tagged under
// the names the compose file runs by default (ghcr.io/radarpod/...), as a
// pod pulls them once published; the tag is the test's own, so the
// engine's other images under those names are left alone.
//
// The .env is the example plus what the README says to set (the pods
// service's URL, here a local radar-devserver on the Docker bridge; the
// Docker socket's group) and the test's own image tag and container
// names. The pod registers, heartbeats, both containers become healthy
// with the shipped posture, the status page opens through the published
// port with its button, and `compose down -v` leaves nothing behind.
func testPodInstall(t *testing.T, eng *dockertest.Engine, src, agentImage, updaterImage string) {
	t.Helper()
	tag := "e2e-" + eng.Prefix
	agentRef, updaterRef := "ghcr.io/radarpod/radar-agent:"+tag, "ghcr.io/radarpod/radar-updater:"+tag
	for from, to := range map[string]string{agentImage: agentRef, updaterImage: updaterRef} {
		run(t, "", nil, "docker", "tag", from, to)
		t.Cleanup(func() { exec.Command("docker", "rmi", to).Run() }) // after compose down (cleanups run last first)
	}

	// The directory's name is compose's project name.
	dir := filepath.Join(t.TempDir(), eng.Prefix)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "docker-compose.yml"), readFile(t, filepath.Join(src, "docker-compose.yml")))
	dev := startDevserver(t, t.TempDir(), "--listen", bridgeGateway(t)+":0")
	gid := strings.TrimSpace(run(t, "", nil, "stat", "-c", "%g", "/var/run/docker.sock"))
	agentName, updaterName := eng.Name("radar-agent"), eng.Name("radar-updater")
	writeFile(t, filepath.Join(dir, ".env"), readFile(t, filepath.Join(src, ".env.example"))+strings.Join([]string{
		// Plain HTTP on the Docker bridge, which is not loopback.
		"RADAR_SERVER_URL=" + dev.ep.ServerURL, "RADAR_ALLOW_INSECURE_SERVER=true",
		"DOCKER_GID=" + gid,
		"AGENT_TAG=" + tag, "UPDATER_TAG=" + tag,
		"RADAR_AGENT_CONTAINER=" + agentName, "UPDATER_CONTAINER=" + updaterName,
		// A free loopback port for the status page (9100 may be taken).
		"STATUS_PAGE_ADDR=127.0.0.1:",
	}, "\n")+"\n")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{".env", "docker-compose.yml"}) {
		t.Fatalf("the pod's directory holds %v, want only .env and docker-compose.yml", names)
	}

	// compose and the docker CLI are all the pod has.
	compose := composeCmd()
	bin := t.TempDir()
	for _, name := range []string{"docker", "docker-compose"} {
		if path, err := exec.LookPath(name); err == nil {
			if err := os.Symlink(path, filepath.Join(bin, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	podCompose := func(args ...string) string {
		t.Helper()
		return run(t, dir, []string{"PATH=" + bin}, filepath.Join(bin, compose[0]), append(slices.Clone(compose[1:]), args...)...)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("compose logs:\n%s", podCompose("logs", "--no-color", "--tail", "100"))
		}
		podCompose("down", "-v", "--timeout", "10")
	})
	podCompose("up", "-d")

	waitFor(t, "registration and heartbeats", func() bool {
		st := dev.state()
		return st.Registrations == 1 && st.Pongs >= 1
	})
	waitFor(t, "both containers healthy", func() bool {
		return healthy(t, eng, agentName) && healthy(t, eng, updaterName)
	})
	if ps := podCompose("ps"); strings.Count(ps, "(healthy)") != 2 {
		t.Fatalf("compose ps does not show both containers healthy:\n%s", ps)
	}
	for name, ref := range map[string]string{agentName: agentRef, updaterName: updaterRef} {
		if c, ok := inspect(t, eng, name); !ok || c.Config.Image != ref {
			t.Errorf("%s runs %q, want the published name %s", name, c.Config.Image, ref)
		}
	}
	// The status page the README sends the person beside the pod to.
	pressTheButton(t, eng, agentName, false)
	checkPosture(t, eng, agentName, false, false)
	checkPosture(t, eng, updaterName, true, false)
	if v := dev.state().Violations; len(v) > 0 {
		t.Errorf("pods service protocol violations: %v", v)
	}

	// down -v: the containers and the pod's volumes go.
	podCompose("down", "-v", "--timeout", "10")
	for _, name := range []string{agentName, updaterName} {
		if _, ok := inspect(t, eng, name); ok {
			t.Errorf("%s still exists after compose down", name)
		}
	}
	if vols := run(t, "", nil, "docker", "volume", "ls", "-q", "--filter", "label=com.docker.compose.project="+eng.Prefix); strings.TrimSpace(vols) != "" {
		t.Errorf("compose down -v left volumes: %s", vols)
	}
}
