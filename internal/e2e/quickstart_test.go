package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radarpod/radarpod/internal/dockertest"
)

// TestQuickStartOnAFreshClone runs the README's quick start with BuildKit
// (the buildx plugin where the docker CLI has it, else the BuildKit built
// into Debian's docker CLI): see quickStart.
func TestQuickStartOnAFreshClone(t *testing.T) {
	t.Parallel()
	quickStart(t, buildKitBuilder(t), false)
}

// TestQuickStartWithDebianDocker runs the README's quick start with what
// `apt install docker.io docker-compose` gives on Debian and Raspberry Pi
// OS: Debian's docker CLI (20.10), whose `docker build` is the legacy
// builder, no CLI plugins (no buildx), and docker-compose 1.29, which make
// runs when the CLI has no `docker compose` (Debian's 20.10 has none). It
// also runs `make up` a second time (see quickStart); what that checks does
// not depend on the builder, so the BuildKit run does not repeat it.
func TestQuickStartWithDebianDocker(t *testing.T) {
	t.Parallel()
	quickStart(t, legacyBuilder(t), true)
}

// quickStart does what the README tells a newcomer, on a fresh clone, with
// the images built by b: `make up` makes .env from .env.example, records
// the Docker socket's group in it and starts the pod, which registers and
// is healthy in `compose ps`; with again, `make up` a second time changes
// nothing it should not; `make down` stops the pod and keeps its data. The
// clone holds only what git tracks, so a file the quick start needs but git
// does not track fails here. (The other quick-start command, `make test`,
// is what CI runs on a fresh checkout.)
//
// What differs from a newcomer's run, and why:
//   - .env is made by its own make rule (the first thing `make up` does on a
//     fresh clone, checked with make -n) and then gets one line: the pods
//     service is a local radar-devserver. With the shipped default the pod
//     would register with the production service wherever this test runs
//     with internet access (GitHub's runners), and this machine has none;
//   - the clone's directory, the container names and the image repository
//     are the test's own (environment variables compose and make read), so
//     a pod, images or volumes of someone sharing this engine are left alone.
func quickStart(t *testing.T, b builder, again bool) {
	root := moduleRoot(t)
	eng := dockertest.New(t)
	clone := checkout(t, root, eng.Prefix)
	agentName, updaterName := eng.Name("radar-agent"), eng.Name("radar-updater")
	imageRepo := "radarpod-e2e/" + eng.Prefix
	// STATUS_PAGE_ADDR: the status page on a free loopback port (9100 may
	// be taken by another stack of the test run, or a pod on this machine).
	env := append([]string{"IMAGE_REPO=" + imageRepo, "RADAR_AGENT_CONTAINER=" + agentName, "UPDATER_CONTAINER=" + updaterName,
		"STATUS_PAGE_ADDR=127.0.0.1:"}, b.environ()...)
	compose := composeCmd()
	volume := eng.Prefix + "_radar-data"
	t.Logf("building with %s; compose is %s", b.name, strings.Join(compose, " "))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", run(t, clone, env, compose[0], append(compose[1:], "logs", "--no-color", "--tail", "50")...))
		}
		run(t, clone, env, compose[0], append(compose[1:], "down", "--volumes", "--timeout", "10")...)
		removeImages(t, imageRepo+"/radar-agent", imageRepo+"/radar-updater")
	})

	// 1. The first run's .env: the shipped example, made by make.
	dotenvPath := filepath.Join(clone, ".env")
	if _, err := os.Stat(dotenvPath); !os.IsNotExist(err) {
		t.Fatalf("the fresh clone has a .env (%v)", err)
	}
	if plan := run(t, clone, env, "make", "-n", "up"); !strings.Contains(plan, "cp .env.example .env") {
		t.Fatalf("make up on a fresh clone would not make .env from .env.example:\n%s", plan)
	}
	run(t, clone, env, "make", ".env")
	example := readFile(t, filepath.Join(clone, ".env.example"))
	if got := readFile(t, dotenvPath); got != example {
		t.Fatalf(".env is not a copy of .env.example:\n%s", got)
	}
	// The devserver listens on the Docker bridge's gateway: the pod runs on
	// the compose file's own network, as shipped, which does not reach this
	// machine's loopback (the README's advice for a local service). It
	// speaks plain HTTP off loopback, which the agent accepts only when
	// told to.
	dev := startDevserver(t, t.TempDir(), "--listen", bridgeGateway(t)+":0")
	edit := "RADAR_SERVER_URL=" + dev.ep.ServerURL + "\nRADAR_ALLOW_INSECURE_SERVER=true\n"
	appendFile(t, dotenvPath, edit)

	// 2. make up: the images come from b, the pod registers and is healthy.
	out := run(t, clone, env, "make", "up")
	if !strings.Contains(out, b.mark) {
		t.Fatalf("make up did not build with %s (no %q in its output):\n%s", b.name, b.mark, out)
	}
	if !strings.Contains(out, agentName) || !strings.Contains(out, updaterName) {
		t.Fatalf("make up did not start both containers:\n%s", out)
	}
	gid := strings.TrimSpace(run(t, clone, nil, "stat", "-c", "%g", "/var/run/docker.sock"))
	rest, ok := strings.CutPrefix(readFile(t, dotenvPath), example+edit)
	if !ok || !strings.HasSuffix(rest, "\nDOCKER_GID="+gid+"\n") || strings.Count(rest, "\n") != 2 {
		t.Fatalf(".env after make up is not the edited example plus this host's DOCKER_GID=%s (a comment and the setting):\n%s", gid, rest)
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
	// The development root was created and pinned in the updater; .pki/,
	// which holds its key, never enters the build context
	// (TestBuildContextHoldsNoKeys).
	devRoot := readFile(t, filepath.Join(clone, ".pki", "dev", "root-ca.pem"))
	if got := imageFiles(t, eng, imageRepo+"/radar-updater:latest", "", "/etc/radar/root-ca.pem")["/etc/radar/root-ca.pem"]; string(got) != devRoot {
		t.Errorf("the updater image does not pin the development root make up created")
	}

	// 3. make up again: .env keeps one DOCKER_GID, and the agent running
	// afterwards (recreated or not) keeps its identity: it pongs only once
	// registered, so two pongs after make up returns come after any second
	// registration would have.
	if again {
		run(t, clone, env, "make", "up")
		if n := strings.Count(readFile(t, dotenvPath), "\nDOCKER_GID="); n != 1 {
			t.Errorf(".env holds %d DOCKER_GID settings after a second make up, want 1", n)
		}
		pongs := dev.state().Pongs
		waitFor(t, "heartbeats after the second make up", func() bool { return dev.state().Pongs >= pongs+2 })
		if n := dev.state().Registrations; n != 1 {
			t.Errorf("%d registrations after a second make up, want 1 (the identity is in the data volume)", n)
		}
	}

	// 4. make down: the containers go, the data (identity, outbox) stays.
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

func appendFile(t *testing.T, path, content string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
