package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/radarpod/radarpod/internal/dockertest"
	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/registrytest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	proctest.Cleanup()
	os.Exit(code)
}

// wait bounds every wait here; the machine is shared, and an NDT7 test
// alone takes 20 s.
const wait = 3 * time.Minute

// run runs a command in dir and returns its combined output, failing the
// test (with the output) if it fails.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func composeCmd() []string {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}
	}
	return []string{"docker-compose"}
}

// endpoints is what radar-devserver reports once ready.
type endpoints struct {
	ServerURL string `json:"server_url"`
	NDT7      string `json:"ndt7"`
	CRLURL    string `json:"crl_url"`
	TLSCAFile string `json:"tls_ca_file"`
	Control   string `json:"control"`
}

type devState struct {
	Registrations int `json:"registrations"`
	Subscribed    int `json:"subscribed"`
	Connections   []struct {
		ServiceStarted string `json:"service_started"`
		Status         int    `json:"status"`
		Probe          bool   `json:"probe"`
	} `json:"connections"`
	Syncs        []string `json:"sync_versions"`
	Pongs        int      `json:"pongs"`
	Measurements []struct {
		Style        string  `json:"style"`
		DownloadMbps float64 `json:"download_mbps"`
		UploadMbps   float64 `json:"upload_mbps"`
		LatencyMs    float64 `json:"latency_ms"`
		ParseError   string  `json:"parse_error"`
	} `json:"measurements"`
	Violations []string `json:"violations"`
}

type devserver struct {
	t  *testing.T
	ep endpoints
}

func (d *devserver) state() devState {
	d.t.Helper()
	resp, err := http.Get(d.ep.Control + "/state")
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	var s devState
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		d.t.Fatal(err)
	}
	return s
}

func (d *devserver) post(path string, body any) {
	d.t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(d.ep.Control+path, "application/json", bytes.NewReader(b))
	if err != nil {
		d.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		d.t.Fatalf("POST %s: %s", path, resp.Status)
	}
}

// stack is one compose project of the real docker-compose.yml.
type stack struct {
	t       *testing.T
	root    string
	dir     string // project directory: .env and the override file
	project string
	compose []string
}

func (s *stack) cmd(args ...string) string {
	s.t.Helper()
	base := append(slices.Clone(s.compose[1:]), "-p", s.project, "--project-directory", s.dir,
		"-f", filepath.Join(s.root, "docker-compose.yml"), "-f", filepath.Join(s.dir, "docker-compose.e2e.yml"))
	return run(s.t, s.dir, nil, s.compose[0], append(base, args...)...)
}

// TestComposeStackEndToEnd runs the pod as an operator would, from the
// images the Dockerfile builds and the real compose file, against a local
// pods service and registry: registration, heartbeats, an NDT7 test that
// lands in the service, a signed update installed by the updater, an
// unsigned one refused, and the containers' security posture.
func TestComposeStackEndToEnd(t *testing.T) {
	root, err := proctest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	eng := dockertest.New(t)
	reg := registrytest.StartDistribution(t)
	agentRepo := reg + "/" + eng.Prefix + "/radar-agent"
	updaterRepo := reg + "/" + eng.Prefix + "/radar-updater"
	agentName, updaterName := eng.Name("radar-agent"), eng.Name("radar-updater")
	tmp := t.TempDir()

	// A development release PKI. Its root must sit in the build context for
	// the updater image to pin it (.dockerignore admits only .pki/*/root-ca.pem).
	pki := filepath.Join(root, ".pki", "e2e-"+eng.Prefix)
	t.Cleanup(func() { os.RemoveAll(pki) })
	sign := proctest.Build(t, "./cmd/radar-sign")
	run(t, root, nil, sign, "init-ca", "--dir", pki)

	crlFile := filepath.Join(tmp, "rootCRL.crl.pem")
	dev := startDevserver(t, crlFile, tmp)
	signerCert, signerKey := filepath.Join(tmp, "signer.pem"), filepath.Join(tmp, "signer.key")
	run(t, root, nil, sign, "issue-signer", "--dir", pki, "--crl-url", dev.ep.CRLURL, "--cert", signerCert, "--key", signerKey)
	run(t, root, nil, sign, "crl", "--dir", pki, "--out", crlFile, "--next-update", "24h")

	// Three agent releases from the real Dockerfile: 1.0.0 runs first, 1.1.0
	// is signed, 1.2.0 is pushed without a signature.
	rootCA := filepath.Join(".pki", "e2e-"+eng.Prefix, "root-ca.pem")
	dockerEnv := []string{"DOCKER_CONFIG=" + t.TempDir()}
	t.Cleanup(func() { removeImages(t, agentRepo, updaterRepo) })
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		run(t, root, nil, "make", "images", "VERSION="+v, "AGENT_IMAGE="+agentRepo, "UPDATER_IMAGE="+updaterRepo, "ROOT_CA="+rootCA)
		run(t, root, dockerEnv, "docker", "push", agentRepo+":"+v)
		if v != "1.2.0" {
			run(t, root, dockerEnv, sign, "sign", "--cert", signerCert, "--key", signerKey, agentRepo+":"+v)
		}
	}
	// The updater must pull what it installs.
	for _, v := range []string{"1.1.0", "1.2.0"} {
		run(t, root, nil, "docker", "rmi", agentRepo+":"+v)
	}

	s := &stack{t: t, root: root, dir: t.TempDir(), project: eng.Prefix, compose: composeCmd()}
	gid := strings.TrimSpace(run(t, root, nil, "stat", "-c", "%g", "/var/run/docker.sock"))
	env := []string{
		"RADAR_SERVER_URL=" + dev.ep.ServerURL, "RADAR_TESTS=ndt7", "RADAR_NDT7_SERVER=" + dev.ep.NDT7,
		"RADAR_NDT7_SCHEME=ws", "RADAR_LISTEN_ADDR=" + proctest.FreeAddr(t), "RADAR_PING_INTERVAL=2s",
		"RADAR_AGENT_IMAGE=" + agentRepo, "RADAR_AGENT_CONTAINER=" + agentName, "RADAR_CRL_URL=" + dev.ep.CRLURL,
		"RADAR_HEALTH_TIMEOUT=45s", "RADAR_LOG_LEVEL=debug",
		// The CRL host's certificate comes from the devserver's own CA.
		"SSL_CERT_FILE=/etc/radar/crl-host-ca.pem",
		"AGENT_TAG=1.0.0", "UPDATER_IMAGE=" + updaterRepo, "UPDATER_TAG=1.0.0", "UPDATER_CONTAINER=" + updaterName,
		"DOCKER_GID=" + gid,
	}
	writeFile(t, filepath.Join(s.dir, ".env"), strings.Join(env, "\n")+"\n")
	// Host networking: the devserver, the registry and the CRL host listen on
	// this machine's loopback, which the engine (pulls) and the updater
	// (verification) must both reach.
	writeFile(t, filepath.Join(s.dir, "docker-compose.e2e.yml"), fmt.Sprintf(`services:
  agent:
    network_mode: host
  updater:
    network_mode: host
    volumes:
      - %s:/etc/radar/crl-host-ca.pem:ro
`, dev.ep.TLSCAFile))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("compose logs:\n%s", s.cmd("logs", "--no-color", "--tail", "200"))
		}
		s.cmd("down", "-v", "--timeout", "10")
	})
	s.cmd("up", "-d")

	// 1. Registration, the live channel, heartbeats.
	waitFor(t, "registration, subscription and pongs", func() bool {
		st := dev.state()
		return st.Registrations == 1 && st.Subscribed >= 1 && st.Pongs >= 1
	})
	waitFor(t, "both containers healthy in compose ps", func() bool {
		ps := s.cmd("ps")
		return strings.Count(ps, "(healthy)") == 2
	})

	// 2. An NDT7 test requested by the service lands there, parsed.
	dev.post("/run-test", map[string]any{"interfaces": nil})
	waitFor(t, "an NDT7 measurement", func() bool { return len(dev.state().Measurements) >= 1 })
	m := dev.state().Measurements[0]
	if m.Style != "NDT7" || m.ParseError != "" || m.DownloadMbps <= 0 || m.UploadMbps <= 0 || m.LatencyMs <= 0 {
		t.Fatalf("measurement as the service parsed it: %+v", m)
	}
	if logs := s.cmd("logs", "--no-color", "agent"); !strings.Contains(logs, "speed test done") || !strings.Contains(logs, "result uploaded") {
		t.Fatalf("agent logs lack the test and its upload:\n%s", logs)
	}

	// 3. A signed 1.1.0 is announced: the updater installs it.
	oldID := containerID(t, eng, agentName)
	dev.post("/announce", map[string]string{"version": "1.1.0"})
	waitFor(t, "agent 1.1.0 healthy", func() bool {
		c, ok := inspect(t, eng, agentName)
		return ok && c.ID != oldID && c.Config.Labels["org.opencontainers.image.version"] == "1.1.0" &&
			c.State.Health != nil && c.State.Health.Status == "healthy"
	})
	waitFor(t, "the new agent's sync", func() bool { return slices.Contains(dev.state().Syncs, "1.1.0") })
	waitFor(t, "the updater to record success", func() bool {
		st := updateStatus(t, agentName)
		return st.State == handoff.StateSucceeded && st.ToVersion == "1.1.0"
	})
	// The compose file still names 1.0.0; the updater pointed that tag at
	// the installed image, so `compose up` does not downgrade the agent.
	// (docker-compose 1.x hashes the image ID into its config hash and so
	// recreates the container once, from the installed image.)
	s.cmd("up", "-d")
	waitFor(t, "the agent after compose up, still 1.1.0 and healthy", func() bool {
		c, ok := inspect(t, eng, agentName)
		return ok && c.Config.Labels["org.opencontainers.image.version"] == "1.1.0" &&
			c.State.Health != nil && c.State.Health.Status == "healthy"
	})
	newID := containerID(t, eng, agentName)

	// 4. An unsigned 1.2.0 is refused; 1.1.0 keeps running untouched.
	dev.post("/announce", map[string]string{"version": "1.2.0"})
	waitFor(t, "the refusal", func() bool {
		st := updateStatus(t, agentName)
		return st.ToVersion == "1.2.0" && st.State == handoff.StateRefused
	})
	if st := updateStatus(t, agentName); !strings.HasPrefix(st.Reason, "unsigned") {
		t.Errorf("refusal reason = %q, want the unsigned code", st.Reason)
	}
	if id := containerID(t, eng, agentName); id != newID {
		t.Fatal("the refused update touched the running agent")
	}

	// 5. Security posture of the running stack.
	checkPosture(t, eng, agentName, false)
	checkPosture(t, eng, updaterName, true)
	if v := dev.state().Violations; len(v) > 0 {
		t.Errorf("pods service protocol violations: %v", v)
	}
}

func startDevserver(t *testing.T, crlFile, dir string) *devserver {
	t.Helper()
	bin := proctest.BuildCgo(t, "./cmd/radar-devserver")
	stateFile := filepath.Join(dir, "devserver.json")
	p := proctest.Start(t, bin, nil, "--listen", "127.0.0.1:0", "--crl-file", crlFile, "--state-file", stateFile, "--ping", "2s")
	var ep endpoints
	waitFor(t, "radar-devserver", func() bool {
		b, err := os.ReadFile(stateFile)
		return err == nil && json.Unmarshal(b, &ep) == nil && ep.Control != ""
	})
	if p.Exited() {
		t.Fatalf("radar-devserver exited:\n%s", p.Output())
	}
	return &devserver{t: t, ep: ep}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	proctest.WaitFor(t, wait, what, cond)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func inspect(t *testing.T, eng *dockertest.Engine, name string) (ctypes.InspectResponse, bool) {
	t.Helper()
	res, err := eng.API.ContainerInspect(context.Background(), name, client.ContainerInspectOptions{})
	if err != nil {
		return ctypes.InspectResponse{}, false
	}
	return res.Container, true
}

func containerID(t *testing.T, eng *dockertest.Engine, name string) string {
	t.Helper()
	c, ok := inspect(t, eng, name)
	if !ok {
		t.Fatalf("no container %s", name)
	}
	return c.ID
}

// updateStatus reads the updater's status file from the shared volume,
// through the agent container (docker cp works on scratch images).
func updateStatus(t *testing.T, agentName string) handoff.Status {
	t.Helper()
	cmd := exec.Command("docker", "cp", agentName+":/data/"+handoff.StatusFile, "-")
	out, err := cmd.Output()
	if err != nil {
		return handoff.Status{}
	}
	dir := t.TempDir()
	untar := exec.Command("tar", "-x", "-C", dir)
	untar.Stdin = bytes.NewReader(out)
	if err := untar.Run(); err != nil {
		t.Fatal(err)
	}
	st, _, err := handoff.ReadStatus(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// checkPosture asserts what docker-compose.yml promises: non-root,
// read-only root filesystem, no capabilities, no new privileges, no
// published ports, and the Docker socket only in the updater.
func checkPosture(t *testing.T, eng *dockertest.Engine, name string, wantSocket bool) {
	t.Helper()
	c, ok := inspect(t, eng, name)
	if !ok {
		t.Fatalf("no container %s", name)
	}
	if u := c.Config.User; u == "" || u == "0" || strings.HasPrefix(u, "0:") || strings.HasPrefix(u, "root") {
		t.Errorf("%s runs as %q, want a non-root numeric user", name, u)
	}
	hc := c.HostConfig
	if !hc.ReadonlyRootfs {
		t.Errorf("%s: root filesystem is writable", name)
	}
	if !slices.Contains(hc.CapDrop, "ALL") || len(hc.CapAdd) > 0 {
		t.Errorf("%s: capabilities drop %v add %v, want all dropped", name, hc.CapDrop, hc.CapAdd)
	}
	if !slices.ContainsFunc(hc.SecurityOpt, func(o string) bool { return strings.HasPrefix(o, "no-new-privileges") }) {
		t.Errorf("%s: security options %v lack no-new-privileges", name, hc.SecurityOpt)
	}
	if len(hc.PortBindings) > 0 || hc.PublishAllPorts {
		t.Errorf("%s publishes ports: %v", name, hc.PortBindings)
	}
	socket := false
	for _, m := range c.Mounts {
		socket = socket || strings.HasSuffix(m.Source, "docker.sock") || strings.HasSuffix(m.Destination, "docker.sock")
	}
	if socket != wantSocket {
		t.Errorf("%s sees the Docker socket: %v, want %v", name, socket, wantSocket)
	}
}

func removeImages(t *testing.T, repos ...string) {
	out, err := exec.Command("docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}").Output()
	if err != nil {
		return
	}
	for _, ref := range strings.Fields(string(out)) {
		for _, repo := range repos {
			if strings.HasPrefix(ref, repo+":") {
				exec.Command("docker", "rmi", "-f", ref).Run()
			}
		}
	}
}
