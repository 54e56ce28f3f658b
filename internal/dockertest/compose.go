package dockertest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/radarpod/radarpod/internal/proctest"
)

// ComposeMount is one entry of a service's `volumes:` in the shipped
// docker-compose.yml.
type ComposeMount struct {
	// Source is a named volume of the file (Named) or a host path.
	Source string
	Target string
	Named  bool
	// ReadOnly: mode "ro".
	ReadOnly bool
}

// ComposeMounts returns the mounts the module's own docker-compose.yml
// gives service, so tests run containers with exactly the mounts a pod
// has (and follow the file when it changes).
func ComposeMounts(t testing.TB, service string) []ComposeMount {
	t.Helper()
	root, err := proctest.ModuleRoot()
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	var file struct {
		Services map[string]struct {
			Volumes []string `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatalf("dockertest: docker-compose.yml: %v", err)
	}
	s, ok := file.Services[service]
	if !ok {
		t.Fatalf("dockertest: docker-compose.yml has no service %q", service)
	}
	var out []ComposeMount
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || strings.Contains(v, "$") {
			t.Fatalf("dockertest: %s volume %q: only short src:dst[:mode] syntax without variables is understood", service, v)
		}
		m := ComposeMount{Source: parts[0], Target: parts[1]}
		m.Named = !strings.HasPrefix(m.Source, "/") && !strings.HasPrefix(m.Source, ".")
		m.ReadOnly = len(parts) > 2 && parts[2] == "ro"
		out = append(out, m)
	}
	return out
}

// composeBinds turns a service's mounts into engine binds: each named
// volume of the file becomes the test volume volumes maps it to (every
// one must be mapped), a host path stays itself.
func composeBinds(t testing.TB, service string, volumes map[string]string) []string {
	t.Helper()
	var binds []string
	for _, m := range ComposeMounts(t, service) {
		src := m.Source
		if m.Named {
			v, ok := volumes[m.Source]
			if !ok {
				t.Fatalf("dockertest: docker-compose.yml mounts volume %s into %s at %s; the test gave no volume for it", m.Source, service, m.Target)
			}
			src = v
		}
		mode := "rw"
		if m.ReadOnly {
			mode = "ro"
		}
		binds = append(binds, src+":"+m.Target+":"+mode)
	}
	return binds
}
