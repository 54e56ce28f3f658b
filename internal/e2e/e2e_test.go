package e2e

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
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
	// The tests run make as a newcomer does, from a shell. Under `make
	// test` the parent make's job-server flags would reach them (and make
	// warns "jobserver unavailable"), so they start from a clean slate.
	for _, v := range []string{"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES"} {
		os.Unsetenv(v)
	}
	code := m.Run()
	proctest.Cleanup()
	os.Exit(code)
}

// wait bounds every wait here; the machine is shared, and an NDT7 test
// alone takes 20 s.
const wait = 3 * time.Minute

// poll is the pause between two looks at a condition: each look is a
// Docker or HTTP round trip, and the tests run side by side on two cores.
const poll = 250 * time.Millisecond

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
	t.Parallel()
	root := moduleRoot(t)
	eng := dockertest.New(t)
	src := checkout(t, root, "radarpod")
	reg := registrytest.StartDistribution(t)
	agentRepo := reg + "/" + eng.Prefix + "/radar-agent"
	updaterRepo := reg + "/" + eng.Prefix + "/radar-updater"
	agentName, updaterName := eng.Name("radar-agent"), eng.Name("radar-updater")
	tmp := t.TempDir()

	// A development release PKI; make stages its root for the updater
	// image to pin (ROOT_CA), its key never entering the build context.
	rootCA := filepath.Join(".pki", "e2e", "root-ca.pem")
	sign := proctest.Build(t, "./cmd/radar-sign")
	run(t, src, nil, sign, "init-ca", "--dir", filepath.Join(src, ".pki", "e2e"))

	// The agent runs on the compose file's own network, which does not
	// reach this machine's loopback: the devserver's pods service and ndt7
	// server listen on the Docker bridge's gateway, an address of this
	// machine every compose network reaches (the README's advice).
	crlFile := filepath.Join(tmp, "rootCRL.crl.pem")
	dev := startDevserver(t, tmp, "--listen", bridgeGateway(t)+":0", "--ndt7", bridgeGateway(t)+":0", "--crl-file", crlFile)
	signerCert, signerKey := filepath.Join(tmp, "signer.pem"), filepath.Join(tmp, "signer.key")
	run(t, src, nil, sign, "issue-signer", "--dir", filepath.Join(src, ".pki", "e2e"), "--crl-url", dev.ep.CRLURL, "--cert", signerCert, "--key", signerKey)
	run(t, src, nil, sign, "crl", "--dir", filepath.Join(src, ".pki", "e2e"), "--out", crlFile, "--next-update", "24h")

	// Three agent releases from the real Dockerfile: 1.0.0 runs first, 1.1.0
	// is signed, 1.2.0 is pushed without a signature. One updater (1.0.0)
	// runs throughout, so only 1.0.0 builds both images.
	dockerEnv := []string{"DOCKER_CONFIG=" + t.TempDir()}
	t.Cleanup(func() { removeImages(t, agentRepo, updaterRepo) })
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		target := "image-agent"
		if v == "1.0.0" {
			target = "images"
		}
		run(t, src, nil, "make", target, "VERSION="+v, "AGENT_IMAGE="+agentRepo, "UPDATER_IMAGE="+updaterRepo, "ROOT_CA="+rootCA)
		run(t, src, dockerEnv, "docker", "push", agentRepo+":"+v)
		if v != "1.2.0" {
			run(t, src, dockerEnv, sign, "sign", "--cert", signerCert, "--key", signerKey, agentRepo+":"+v)
		}
	}
	// The updater must pull what it installs.
	for _, v := range []string{"1.1.0", "1.2.0"} {
		run(t, src, nil, "docker", "rmi", agentRepo+":"+v)
	}

	s := &stack{t: t, root: src, dir: t.TempDir(), project: eng.Prefix, compose: composeCmd()}
	gid := strings.TrimSpace(run(t, src, nil, "stat", "-c", "%g", "/var/run/docker.sock"))
	// One secret of each container's in the one .env: the registration
	// token is the agent's alone, the registry credentials (for a registry
	// this pod never uses) the updater's alone. Steps 1 and 5 check that
	// neither reaches the other container.
	agentSecret := envSecret{"RADAR_REGISTRATION_TOKEN", "tok-agent-only-" + eng.Prefix}
	updaterSecret := envSecret{"DOCKER_AUTH_CONFIG",
		`{"auths":{"registry.invalid":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("e2e:updater-only-"+eng.Prefix)) + `"}}}`}
	env := []string{
		// The devserver speaks plain HTTP on the bridge, not on loopback.
		"RADAR_SERVER_URL=" + dev.ep.ServerURL, "RADAR_ALLOW_INSECURE_SERVER=true",
		"RADAR_TESTS=ndt7", "RADAR_NDT7_SERVER=" + dev.ep.NDT7,
		"RADAR_NDT7_SCHEME=ws", "RADAR_PING_INTERVAL=2s", "RADAR_RECONNECT_MAX=5s", agentSecret.String(),
		"RADAR_AGENT_IMAGE=" + agentRepo, "RADAR_AGENT_CONTAINER=" + agentName, "RADAR_CRL_URL=" + dev.ep.CRLURL,
		"RADAR_HEALTH_TIMEOUT=45s", "RADAR_LOG_LEVEL=debug", updaterSecret.String(),
		"AGENT_TAG=1.0.0", "UPDATER_IMAGE=" + updaterRepo, "UPDATER_TAG=1.0.0", "UPDATER_CONTAINER=" + updaterName,
		"DOCKER_GID=" + gid,
		// The status page on a free loopback port: other stacks of the
		// test run, or a pod on this machine, may hold 9100.
		"STATUS_PAGE_ADDR=127.0.0.1:",
	}
	writeFile(t, filepath.Join(s.dir, ".env"), strings.Join(env, "\n")+"\n")
	// The updater gets host networking, the one change to the shipped
	// networking: the registry and the CRL host listen on this machine's
	// loopback, and the engine pulls over plain HTTP only from registries
	// on 127.0.0.0/8 (no TLS registry and no insecure-registries setting
	// here), so the updater must verify against that same 127.0.0.1
	// address, which is its own loopback only on the host's network.
	// TestShippedComposeFilePosture checks the shipped file's networking.
	// The healthchecks keep their command but probe every 2 s instead of
	// 10 s: Docker's first probe comes one interval after a start, and
	// this test starts an agent three times (the updater copies the
	// setting to the agent it creates). The quick start waits out the
	// shipped interval. The CRL host's certificate comes from the
	// devserver's own CA, which the updater is told to trust.
	writeFile(t, filepath.Join(s.dir, "docker-compose.e2e.yml"), fmt.Sprintf(`services:
  agent:
    healthcheck:
      interval: 2s
  updater:
    network_mode: host
    healthcheck:
      interval: 2s
    environment:
      SSL_CERT_FILE: /etc/radar/crl-host-ca.pem
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

	// 1. Registration, the live channel, heartbeats; both containers
	// healthy, as `compose ps` shows an operator.
	waitFor(t, "registration, subscription and pongs", func() bool {
		st := dev.state()
		return st.Registrations == 1 && st.Subscribed >= 1 && st.Pongs >= 1
	})
	waitFor(t, "both containers healthy", func() bool {
		return healthy(t, eng, agentName) && healthy(t, eng, updaterName)
	})
	if ps := s.cmd("ps"); strings.Count(ps, "(healthy)") != 2 {
		t.Fatalf("compose ps does not show both containers healthy:\n%s", ps)
	}
	composed, _ := inspect(t, eng, agentName)
	checkOwnSecrets(t, eng, agentName, agentSecret, updaterSecret)
	checkOwnSecrets(t, eng, updaterName, updaterSecret, agentSecret)

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

	// 2b. The person beside the pod: the status page, through the port
	// compose publishes on the host's loopback, offers the button without
	// RADAR_STATUS_TOKEN (the engine's proxy connects from the container's
	// gateway, which the agent takes for the pod itself), and a press runs
	// a test that reaches the service.
	pressTheButton(t, eng, agentName, true)
	waitFor(t, "the button's measurement", func() bool { return len(dev.state().Measurements) >= 2 })
	// The README's command for a test now, in the running container: the
	// agent's queue runs it, stores it in the outbox and uploads it.
	checkExecTest(t, s.cmd("exec", "-T", "agent", "radar-agent", "test", "--format", "json"))
	waitFor(t, "the exec'd test's measurement", func() bool { return len(dev.state().Measurements) >= 3 })
	// The README's export and configuration commands in the container: the
	// three results, and the effective settings without the secret.
	if csv := s.cmd("exec", "-T", "agent", "radar-agent", "results", "--format", "csv"); strings.Count(csv, ",ndt7,") != 3 {
		t.Errorf("radar-agent results in the container, want 3 NDT7 rows:\n%s", csv)
	}
	cfgOut := s.cmd("exec", "-T", "agent", "radar-agent", "config")
	if strings.Contains(cfgOut, agentSecret.value) || !strings.Contains(cfgOut, "RADAR_REGISTRATION_TOKEN=[REDACTED]") ||
		!strings.Contains(cfgOut, "RADAR_LISTEN_ADDR=0.0.0.0:9100") {
		t.Errorf("radar-agent config in the container, want the token redacted and the image's listen address:\n%s", cfgOut)
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
	// The agent the updater created keeps the published status page.
	pressTheButton(t, eng, agentName, false)
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

	// 5. Security posture of the running stack: the agent the updater
	// created, on the compose network as the shipped file has it, and the
	// updater as compose created it (host networking: see above).
	checkPosture(t, eng, agentName, false, false)
	checkPosture(t, eng, updaterName, true, true)
	// The agent the updater created has the same secrets, none of the
	// updater's own, and the limits compose gave the first agent.
	checkOwnSecrets(t, eng, agentName, agentSecret, updaterSecret)
	if c, _ := inspect(t, eng, agentName); c.HostConfig.Memory != composed.HostConfig.Memory ||
		c.HostConfig.MemorySwap != composed.HostConfig.MemorySwap || !reflect.DeepEqual(c.HostConfig.PidsLimit, composed.HostConfig.PidsLimit) {
		t.Errorf("the installed agent's limits: memory %d swap %d pids %v, want compose's %d, %d, %v",
			c.HostConfig.Memory, c.HostConfig.MemorySwap, deref64(c.HostConfig.PidsLimit),
			composed.HostConfig.Memory, composed.HostConfig.MemorySwap, deref64(composed.HostConfig.PidsLimit))
	}
	if v := dev.state().Violations; len(v) > 0 {
		t.Errorf("pods service protocol violations: %v", v)
	}
}

// checkExecTest reads `radar-agent test --format json` as run inside the
// agent's container: the running agent ran an NDT7 test and stored it.
func checkExecTest(t *testing.T, out string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var last struct {
		Type   string `json:"type"`
		OK     bool   `json:"ok"`
		Source string `json:"source"`
		Tests  []struct {
			Runner       string  `json:"runner"`
			DownloadMbps float64 `json:"download_mbps"`
			OutboxID     string  `json:"outbox_id"`
		} `json:"tests"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatalf("radar-agent test: last line: %v\n%s", err, out)
	}
	if last.Type != "result" || !last.OK || last.Source != "agent" || len(last.Tests) != 1 ||
		last.Tests[0].Runner != "ndt7" || last.Tests[0].DownloadMbps <= 0 || last.Tests[0].OutboxID == "" {
		t.Fatalf("radar-agent test in the container, want one NDT7 result the running agent stored:\n%s", out)
	}
}

// pressTheButton loads the agent's status page through its published
// port, as a browser on the pod does, checks that it offers "Run a speed
// test", and presses it if press.
func pressTheButton(t *testing.T, eng *dockertest.Engine, name string, press bool) {
	t.Helper()
	c, _ := inspect(t, eng, name)
	var base string
	for port, bindings := range c.NetworkSettings.Ports {
		if port.String() == "9100/tcp" && len(bindings) > 0 {
			base = "http://" + net.JoinHostPort("127.0.0.1", bindings[0].HostPort)
		}
	}
	if base == "" {
		t.Fatalf("%s publishes no status page port: %v", name, c.NetworkSettings.Ports)
	}
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatalf("status page: %v", err)
	}
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("status page: %d %v", resp.StatusCode, err)
	}
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil || !bytes.Contains(page, []byte(`id="run-button"`)) {
		t.Fatalf("the status page opened on the pod offers no button:\n%s", page)
	}
	if !press {
		return
	}
	req, err := http.NewRequest("POST", base+"/test", strings.NewReader(url.Values{"csrf": {string(m[1])}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Origin", base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("press the button: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("press the button: %d %s", resp.StatusCode, body)
	}
}

// startDevserver runs radar-devserver with args (its state file in dir)
// and returns once it reports its endpoints.
func startDevserver(t *testing.T, dir string, args ...string) *devserver {
	t.Helper()
	bin := proctest.BuildCgo(t, "./cmd/radar-devserver")
	stateFile := filepath.Join(dir, "devserver.json")
	p := proctest.Start(t, bin, nil, append([]string{"--state-file", stateFile, "--ping", "2s"}, args...)...)
	var ep endpoints
	waitFor(t, "radar-devserver", func() bool {
		if p.Exited() {
			t.Fatalf("radar-devserver exited:\n%s", p.Output())
		}
		b, err := os.ReadFile(stateFile)
		return err == nil && json.Unmarshal(b, &ep) == nil && ep.Control != ""
	})
	return &devserver{t: t, ep: ep}
}

// bridgeGateway is the address of this machine on Docker's default bridge
// network (docker0): containers on any bridge network reach it, unlike
// loopback. Engines before 23 do not report the default bridge's gateway,
// so it is read off the bridge interface, within the network's subnet.
func bridgeGateway(t *testing.T) string {
	t.Helper()
	var nw struct {
		IPAM struct {
			Config []struct{ Subnet, Gateway string }
		}
		Options map[string]string
	}
	if err := json.Unmarshal([]byte(run(t, "", nil, "docker", "network", "inspect", "--format", "{{json .}}", "bridge")), &nw); err != nil {
		t.Fatalf("docker network inspect bridge: %v", err)
	}
	for _, c := range nw.IPAM.Config {
		if ip := net.ParseIP(c.Gateway); ip != nil && ip.To4() != nil {
			return c.Gateway
		}
	}
	name := cmp.Or(nw.Options["com.docker.network.bridge.name"], "docker0")
	iface, err := net.InterfaceByName(name)
	if err != nil {
		t.Fatalf("Docker's default bridge %s: %v", name, err)
	}
	addrs, err := iface.Addrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range nw.IPAM.Config {
		_, subnet, err := net.ParseCIDR(c.Subnet)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && subnet.Contains(ipn.IP) {
				return ipn.IP.String()
			}
		}
	}
	t.Fatalf("no address of %s (%v) lies in the default bridge network %v", name, addrs, nw.IPAM.Config)
	return ""
}

// waitFor polls cond until it holds, failing the test after wait. Nothing
// asserts on how soon it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", wait, what)
		}
		time.Sleep(poll)
	}
}

// healthy reports whether Docker says the container is healthy.
func healthy(t *testing.T, eng *dockertest.Engine, name string) bool {
	t.Helper()
	c, ok := inspect(t, eng, name)
	return ok && c.State.Health != nil && c.State.Health.Status == "healthy"
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

// checkPosture asserts what docker-compose.yml promises of a running
// container: a numeric non-root user, read-only root filesystem, no
// capabilities, no new privileges, no published port but the agent's
// status page (9100) on the host's loopback, and the Docker socket only in
// the updater. hostNetwork is what the test gave it.
func checkPosture(t *testing.T, eng *dockertest.Engine, name string, wantSocket, hostNetwork bool) {
	t.Helper()
	c, ok := inspect(t, eng, name)
	if !ok {
		t.Fatalf("no container %s", name)
	}
	if err := numericNonRoot(c.Config.User); err != nil {
		t.Errorf("%s: %v", name, err)
	}
	hc := c.HostConfig
	if got := hc.NetworkMode == "host"; got != hostNetwork {
		t.Errorf("%s: network mode %q, host networking %v, want %v", name, hc.NetworkMode, got, hostNetwork)
	}
	if c.NetworkSettings != nil {
		for port, bindings := range c.NetworkSettings.Ports {
			for _, b := range bindings {
				if wantSocket || port.String() != "9100/tcp" || !b.HostIP.IsLoopback() {
					t.Errorf("%s: port %s is bound on the host: %v", name, port, bindings)
				}
			}
		}
	}
	if !hc.ReadonlyRootfs {
		t.Errorf("%s: root filesystem is writable", name)
	}
	if !slices.Contains(hc.CapDrop, "ALL") || len(hc.CapAdd) > 0 {
		t.Errorf("%s: capabilities drop %v add %v, want all dropped", name, hc.CapDrop, hc.CapAdd)
	}
	if !slices.ContainsFunc(hc.SecurityOpt, func(o string) bool { return strings.HasPrefix(o, "no-new-privileges") }) {
		t.Errorf("%s: security options %v lack no-new-privileges", name, hc.SecurityOpt)
	}
	for port, bindings := range hc.PortBindings {
		for _, b := range bindings {
			if wantSocket || port.String() != "9100/tcp" || !b.HostIP.IsLoopback() {
				t.Errorf("%s publishes ports: %v", name, hc.PortBindings)
			}
		}
	}
	if hc.PublishAllPorts {
		t.Errorf("%s publishes all its ports", name)
	}
	socket := false
	for _, m := range c.Mounts {
		socket = socket || strings.HasSuffix(m.Source, "docker.sock") || strings.HasSuffix(m.Destination, "docker.sock")
	}
	if socket != wantSocket {
		t.Errorf("%s sees the Docker socket: %v, want %v", name, socket, wantSocket)
	}
	// The compose file's limits, as the engine applied them.
	if hc.Memory <= 0 || hc.MemorySwap != hc.Memory || hc.PidsLimit == nil || *hc.PidsLimit <= 0 {
		t.Errorf("%s: memory %d, memory+swap %d, pids %v: want a memory limit with no swap beyond it and a pids limit",
			name, hc.Memory, hc.MemorySwap, deref64(hc.PidsLimit))
	}
}

// envSecret is one container's secret as .env sets it.
type envSecret struct{ name, value string }

func (s envSecret) String() string { return s.name + "=" + s.value }

// checkOwnSecrets asserts, from `docker inspect`, that the container's
// environment holds its own secret and nothing of the other container's:
// neither the variable nor its value under any name.
func checkOwnSecrets(t *testing.T, eng *dockertest.Engine, name string, own, foreign envSecret) {
	t.Helper()
	c, ok := inspect(t, eng, name)
	if !ok {
		t.Fatalf("no container %s", name)
	}
	if !slices.Contains(c.Config.Env, own.String()) {
		t.Errorf("%s's environment lacks its own %s from .env", name, own.name)
	}
	for _, kv := range c.Config.Env {
		if k, _, _ := strings.Cut(kv, "="); k == foreign.name || strings.Contains(kv, foreign.value) {
			t.Errorf("%s's environment holds the other container's %s (as %s)", name, foreign.name, k)
		}
	}
}

func deref64(p *int64) any {
	if p == nil {
		return nil
	}
	return *p
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
