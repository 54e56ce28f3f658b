package e2e

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/radarpod/radarpod/internal/config"
)

// composeService is what the posture check reads of a service in
// `compose config` output. Volumes come as "src:dst[:mode]" strings from
// docker-compose 1.x and as maps from compose v2.
type composeService struct {
	Image       string   `yaml:"image"`
	User        string   `yaml:"user"`
	ReadOnly    bool     `yaml:"read_only"`
	CapDrop     []string `yaml:"cap_drop"`
	CapAdd      []string `yaml:"cap_add"`
	SecurityOpt []string `yaml:"security_opt"`
	Privileged  bool     `yaml:"privileged"`
	Ports       []any    `yaml:"ports"`
	NetworkMode string   `yaml:"network_mode"`
	Pid         string   `yaml:"pid"`
	Ipc         string   `yaml:"ipc"`
	Devices     []any    `yaml:"devices"`
	Restart     string   `yaml:"restart"`
	Volumes     []any    `yaml:"volumes"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	// Environment: nil is a variable compose passes unset (docker-compose
	// 1.x renders it null; compose v2 leaves it out).
	Environment  map[string]*string `yaml:"environment"`
	MemLimit     string             `yaml:"mem_limit"`
	MemswapLimit string             `yaml:"memswap_limit"`
	PidsLimit    int64              `yaml:"pids_limit"`
}

// ports renders a service's published ports as "host_ip:published:target"
// (docker-compose 1.x gives "127.0.0.1:9100:9100/tcp", compose v2 a map).
func (s composeService) ports() []string {
	var out []string
	for _, p := range s.Ports {
		switch p := p.(type) {
		case string:
			out = append(out, strings.TrimSuffix(p, "/tcp"))
		case map[string]any:
			out = append(out, fmt.Sprintf("%v:%v:%v", p["host_ip"], p["published"], p["target"]))
		default:
			out = append(out, fmt.Sprint(p))
		}
	}
	return out
}

// mounts renders a service's volumes as "source:target".
func (s composeService) mounts() []string {
	var out []string
	for _, v := range s.Volumes {
		switch v := v.(type) {
		case string:
			parts := strings.Split(v, ":")
			if len(parts) >= 2 {
				out = append(out, parts[0]+":"+parts[1])
			}
		case map[string]any:
			out = append(out, fmt.Sprint(v["source"])+":"+fmt.Sprint(v["target"]))
		}
	}
	return out
}

// TestShippedComposeFilePosture renders docker-compose.yml the way compose
// itself resolves it for a new pod (`compose config`, with .env.example as
// .env) and checks what design.md promises of it: no published port but
// the agent's status page on the host's loopback, no host networking, non-root numeric users, read-only root filesystems,
// every capability dropped and none added, no-new-privileges, restart
// unless-stopped, a healthcheck, the shared data volume, the Docker
// socket in the updater only, and memory (without swap) and task limits. The running stack's own check
// (TestComposeStackEndToEnd) gives the updater host networking to reach a
// loopback registry, so the shipped networking is checked here.
func TestShippedComposeFilePosture(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	project := t.TempDir()
	writeFile(t, filepath.Join(project, ".env"), readFile(t, filepath.Join(root, ".env.example")))
	compose := composeCmd()
	out := run(t, project, nil, compose[0], append(compose[1:], "--project-directory", project,
		"-f", filepath.Join(root, "docker-compose.yml"), "config")...)
	var cfg struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("compose config output: %v\n%s", err, out)
	}
	if len(cfg.Services) != 2 {
		t.Fatalf("services %v, want agent and updater", slices.Sorted(maps.Keys(cfg.Services)))
	}
	for name, wantSocket := range map[string]bool{"agent": false, "updater": true} {
		s, ok := cfg.Services[name]
		if !ok {
			t.Errorf("no %s service", name)
			continue
		}
		// The agent's status page, on the host's loopback only; nothing
		// else is published.
		wantPorts := map[string][]string{"agent": {"127.0.0.1:9100:9100"}}[name]
		if got := s.ports(); !slices.Equal(got, wantPorts) {
			t.Errorf("%s publishes ports %v, want %v", name, got, wantPorts)
		}
		if s.NetworkMode == "host" || s.Pid == "host" || s.Ipc == "host" {
			t.Errorf("%s shares the host's namespaces: network %q pid %q ipc %q", name, s.NetworkMode, s.Pid, s.Ipc)
		}
		if err := numericNonRoot(s.User); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !s.ReadOnly {
			t.Errorf("%s: root filesystem is writable", name)
		}
		if !slices.Contains(s.CapDrop, "ALL") || len(s.CapAdd) > 0 || s.Privileged || len(s.Devices) > 0 {
			t.Errorf("%s: cap_drop %v cap_add %v privileged %v devices %v, want every capability dropped and nothing added",
				name, s.CapDrop, s.CapAdd, s.Privileged, s.Devices)
		}
		if !slices.Contains(s.SecurityOpt, "no-new-privileges:true") {
			t.Errorf("%s: security_opt %v lacks no-new-privileges:true", name, s.SecurityOpt)
		}
		if s.Restart != "unless-stopped" {
			t.Errorf("%s: restart %q, want unless-stopped", name, s.Restart)
		}
		if s.Healthcheck == nil || len(s.Healthcheck.Test) == 0 {
			t.Errorf("%s has no healthcheck", name)
		}
		mounts := s.mounts()
		if !slices.Contains(mounts, "radar-data:/data") {
			t.Errorf("%s mounts %v, want the radar-data volume at /data", name, mounts)
		}
		socket := slices.ContainsFunc(mounts, func(m string) bool { return strings.Contains(m, "docker.sock") })
		if socket != wantSocket {
			t.Errorf("%s mounts %v: Docker socket %v, want %v", name, mounts, socket, wantSocket)
		}
		checkComposeLimits(t, name, s)
	}
}

// Floors for the compose limits: well above the measured peaks
// (docs/benchmarks/footprint.md: agent 9.9-11.7 MiB idle, peak 14.2, 7-8 MiB
// more during an NDT7 test; updater 8.8-9.9 MiB idle, peak 12.7), so a
// limit that would kill a working pod
// fails here; the values themselves are docker-compose.yml's to choose.
var composeLimitFloors = map[string]struct{ mem, pids int64 }{
	"agent":   {mem: 64 << 20, pids: 32},
	"updater": {mem: 32 << 20, pids: 16},
}

// checkComposeLimits: the service is bounded in memory (with no swap
// beyond it) and in tasks, at no less than the floors.
func checkComposeLimits(t *testing.T, name string, s composeService) {
	t.Helper()
	mem, err := parseComposeBytes(s.MemLimit)
	if err != nil || mem < composeLimitFloors[name].mem {
		t.Errorf("%s: mem_limit %q (%v), want at least %d MiB", name, s.MemLimit, err, composeLimitFloors[name].mem>>20)
	}
	if swap, err := parseComposeBytes(s.MemswapLimit); err != nil || swap != mem {
		t.Errorf("%s: memswap_limit %q (%v), want the mem_limit: no swap beyond it", name, s.MemswapLimit, err)
	}
	if s.PidsLimit < composeLimitFloors[name].pids {
		t.Errorf("%s: pids_limit %d, want at least %d", name, s.PidsLimit, composeLimitFloors[name].pids)
	}
}

// parseComposeBytes reads a size as compose renders it: docker-compose 1.x
// keeps the file's "256m", compose v2 prints bytes.
func parseComposeBytes(v string) (int64, error) {
	v = strings.ToLower(strings.TrimSpace(v))
	mult := int64(1)
	for suffix, m := range map[string]int64{"k": 1 << 10, "m": 1 << 20, "g": 1 << 30} {
		if rest, ok := strings.CutSuffix(strings.TrimSuffix(v, "b"), suffix); ok {
			v, mult = rest, m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(v, "b"), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("not a positive size")
	}
	return n * mult, nil
}

// numericNonRoot accepts a user given as uid or uid:gid, both numeric and
// the uid not 0: a name would be resolved in the image's /etc/passwd, which
// a scratch image does not have, and root is root whatever else is locked.
func numericNonRoot(user string) error {
	uid, gid, hasGID := strings.Cut(user, ":")
	if _, err := strconv.ParseUint(uid, 10, 32); err != nil {
		return fmt.Errorf("user %q: want a numeric uid", user)
	}
	if hasGID {
		if _, err := strconv.ParseUint(gid, 10, 32); err != nil {
			return fmt.Errorf("user %q: want a numeric gid", user)
		}
	}
	if n, _ := strconv.ParseUint(uid, 10, 32); n == 0 {
		return fmt.Errorf("user %q is root", user)
	}
	return nil
}

// composeEnvKeys is what docker-compose.yml must give each container: the
// variables its binary reads (internal/config, with NAME_FILE for its
// secrets), the proxy variables, the agent's network check's two
// non-secret updater settings, and the updater's registry credentials. It
// is derived from the binaries' own lists, so a variable a binary gains but
// compose does not pass fails here instead of being dropped in silence.
func composeEnvKeys() (agent, updater map[string]bool) {
	agent, updater = map[string]bool{}, map[string]bool{}
	for _, row := range config.Docs(config.Agent{}) {
		agent[row[0]] = true
	}
	for _, row := range config.Docs(config.Updater{}) {
		updater[row[0]] = true
	}
	for _, k := range []string{"RADAR_REGISTRATION_TOKEN_FILE", "SENTRY_DSN_FILE", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY",
		"RADAR_CRL_URL", "RADAR_AGENT_IMAGE"} {
		agent[k] = true
	}
	for _, k := range []string{"SENTRY_DSN_FILE", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "DOCKER_AUTH_CONFIG", "DOCKER_CONFIG"} {
		updater[k] = true
	}
	return agent, updater
}

// renderCompose runs `compose config` on the shipped docker-compose.yml
// with dotenv as .env, in an environment holding none of the variables the
// file passes (compose would prefer the test runner's own to .env's).
func renderCompose(t *testing.T, dotenv string) map[string]composeService {
	t.Helper()
	root := moduleRoot(t)
	project := t.TempDir()
	writeFile(t, filepath.Join(project, ".env"), dotenv)
	agentKeys, updaterKeys := composeEnvKeys()
	var environ []string
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !agentKeys[k] && !updaterKeys[k] {
			environ = append(environ, kv)
		}
	}
	compose := composeCmd()
	cmd := exec.Command(compose[0], append(compose[1:], "--project-directory", project,
		"-f", filepath.Join(root, "docker-compose.yml"), "config")...)
	cmd.Dir, cmd.Env = project, environ
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("compose config: %v\n%s", err, out)
	}
	var cfg struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("compose config output: %v\n%s", err, out)
	}
	return cfg.Services
}

// TestShippedComposeFileGivesEachContainerOnlyItsOwnSettings: with every
// variable set in .env, each service's environment holds exactly its own
// keys, each with the value .env gave it, and no value of the other
// container's own settings — the registry credentials never reach the
// agent, the registration token never reaches the updater, and a name no
// binary reads reaches neither. With the example .env (nothing set) no
// variable is set to an empty value compose made up: each stays unset, so
// the binaries' defaults apply, while an empty value set in .env
// (RADAR_SERVER_URL=, standalone) stays empty.
func TestShippedComposeFileGivesEachContainerOnlyItsOwnSettings(t *testing.T) {
	t.Parallel()
	agentKeys, updaterKeys := composeEnvKeys()
	value := func(k string) string { return "<value-of-" + strings.ToLower(k) + ">" }
	var dotenv strings.Builder
	for _, keys := range []map[string]bool{agentKeys, updaterKeys} {
		for _, k := range slices.Sorted(maps.Keys(keys)) {
			fmt.Fprintf(&dotenv, "%s=%s\n", k, value(k))
		}
	}
	// Not passed to anyone: a typo of an agent setting and a stranger.
	dotenv.WriteString("RADAR_TSETS=" + value("RADAR_TSETS") + "\nOTHER_SECRET=" + value("OTHER_SECRET") + "\n")
	services := renderCompose(t, dotenv.String())

	// RADAR_AGENT_IMAGE is also the image compose runs the agent from, so
	// it comes from the compose file's own interpolation (the same value).
	want := map[string]map[string]bool{"agent": agentKeys, "updater": updaterKeys}
	for name, keys := range want {
		env := services[name].Environment
		if got := slices.Sorted(maps.Keys(env)); !slices.Equal(got, slices.Sorted(maps.Keys(keys))) {
			t.Errorf("%s environment keys:\n  %v\nwant exactly\n  %v", name, got, slices.Sorted(maps.Keys(keys)))
		}
		for k := range keys {
			if v := env[k]; v == nil || *v != value(k) {
				t.Errorf("%s: %s = %v, want %q from .env", name, k, deref(v), value(k))
			}
		}
	}
	foreign := map[string][]string{"agent": nil, "updater": nil}
	for k := range updaterKeys {
		if !agentKeys[k] {
			foreign["agent"] = append(foreign["agent"], k)
		}
	}
	for k := range agentKeys {
		if !updaterKeys[k] {
			foreign["updater"] = append(foreign["updater"], k)
		}
	}
	for _, k := range []string{"DOCKER_AUTH_CONFIG", "DOCKER_CONFIG"} {
		if !slices.Contains(foreign["agent"], k) {
			t.Errorf("%s is not kept from the agent", k)
		}
	}
	for _, k := range []string{"RADAR_REGISTRATION_TOKEN", "RADAR_REGISTRATION_TOKEN_FILE"} {
		if !slices.Contains(foreign["updater"], k) {
			t.Errorf("%s is not kept from the updater", k)
		}
	}
	for name, keys := range foreign {
		keys = append(keys, "RADAR_TSETS", "OTHER_SECRET")
		for envKey, v := range services[name].Environment {
			for _, k := range keys {
				if v != nil && strings.Contains(*v, value(k)) {
					t.Errorf("%s gets the value of %s (as %s)", name, k, envKey)
				}
			}
		}
	}

	// Nothing set: every variable stays unset (null, or left out by
	// compose v2), never empty, except one the image sets (Dockerfile
	// ENV), which carries the image's value: docker-compose 1.29 sends a
	// null as a bare name, which unsets the image's value in the
	// container. Set empty, it stays empty.
	example := readFile(t, filepath.Join(moduleRoot(t), ".env.example"))
	imageEnv := dockerfileEnv(t)
	for dotenv, empty := range map[string][]string{
		example: nil,
		example + "RADAR_SERVER_URL=\nRADAR_LISTEN_ADDR=\n": {"RADAR_SERVER_URL", "RADAR_LISTEN_ADDR"},
	} {
		services := renderCompose(t, dotenv)
		for name, s := range services {
			for k, v := range s.Environment {
				switch {
				case slices.Contains(empty, k) && name == "agent":
					if v == nil || *v != "" {
						t.Errorf("%s: %s set empty in .env is %v, want empty", name, k, deref(v))
					}
				case imageEnv[name][k] != "":
					if v == nil || *v != imageEnv[name][k] {
						t.Errorf("%s: %s unset in .env is %v, want the image's %q (Dockerfile ENV)", name, k, deref(v), imageEnv[name][k])
					}
				case k == "RADAR_LOG_FORMAT":
					// Compose's own default: text, for `docker compose logs`.
					if v == nil || *v != "text" {
						t.Errorf("%s: RADAR_LOG_FORMAT unset in .env is %v, want text", name, deref(v))
					}
				case v != nil && k != "RADAR_AGENT_IMAGE" && k != "RADAR_AGENT_CONTAINER":
					t.Errorf("%s: %s = %q, unset in .env: want it unset so the binary's default applies", name, k, *v)
				}
			}
		}
	}
}

func deref(v *string) string {
	if v == nil {
		return "(unset)"
	}
	return strconv.Quote(*v)
}

// dockerfileEnv reads the ENV instructions of the Dockerfile's stages,
// by stage name (agent, updater).
func dockerfileEnv(t *testing.T) map[string]map[string]string {
	t.Helper()
	env := map[string]map[string]string{}
	stage := ""
	var instr strings.Builder
	flush := func() {
		fields := strings.Fields(instr.String())
		instr.Reset()
		if len(fields) > 1 && strings.EqualFold(fields[0], "ENV") && stage != "" {
			for _, kv := range fields[1:] {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					t.Fatalf("Dockerfile: ENV %q is not NAME=value", kv)
				}
				env[stage][k] = v
			}
		}
	}
	for _, line := range strings.Split(readFile(t, filepath.Join(moduleRoot(t), "Dockerfile")), "\n") {
		trimmed := strings.TrimSpace(line)
		if instr.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if f := strings.Fields(trimmed); instr.Len() == 0 && len(f) == 4 && strings.EqualFold(f[0], "FROM") && strings.EqualFold(f[2], "AS") {
			stage = f[3]
			env[stage] = map[string]string{}
			continue
		}
		if cont, ok := strings.CutSuffix(trimmed, "\\"); ok {
			instr.WriteString(cont + " ")
			continue
		}
		instr.WriteString(trimmed)
		flush()
	}
	if env["agent"]["RADAR_LISTEN_ADDR"] == "" || env["updater"]["RADAR_ROOT_CA_FILE"] == "" {
		t.Fatalf("Dockerfile ENV as read: %v", env)
	}
	return env
}
