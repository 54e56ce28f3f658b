package e2e

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
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
// .env) and checks what design.md promises of it: no published ports and
// no host networking, non-root numeric users, read-only root filesystems,
// every capability dropped and none added, no-new-privileges, restart
// unless-stopped, a healthcheck, the shared data volume, and the Docker
// socket in the updater only. The running stack's own check
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
		if len(s.Ports) > 0 {
			t.Errorf("%s publishes ports: %v", name, s.Ports)
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
	}
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
