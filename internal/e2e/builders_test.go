package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// debianCLI is where Debian's docker.io package (20.10 on Debian 12 and
// Raspberry Pi OS) installs the docker CLI: what a pod has.
const debianCLI = "/usr/bin/docker"

// builder is one of the image builders `make images` must work with: the
// environment that makes `docker build` (and make's image targets) use it,
// and a line only that builder prints, so a test knows which one did the
// work.
type builder struct {
	id   string // legacy, buildx or buildkit
	name string
	cli  string   // the docker CLI, for a test's own commands (os/exec looks a name up on this process's PATH)
	path string   // a PATH on which `docker` is cli, for make and its shell
	env  []string // DOCKER_BUILDKIT, DOCKER_CONFIG
	mark string
}

// environ is what to add to the process environment to build with b (for
// run: a later PATH wins, as os/exec keeps the last of a repeated name).
func (b builder) environ() []string {
	return append([]string{"PATH=" + b.path}, b.env...)
}

// legacyBuilder is Debian's own docker CLI with BuildKit off and a
// DOCKER_CONFIG that holds no CLI plugins: a pod's `apt install docker.io
// docker-compose`, without the buildx plugin.
func legacyBuilder(t *testing.T) builder {
	t.Helper()
	v := cliVersion(t, debianCLI)
	return builder{
		id:   "legacy",
		cli:  debianCLI,
		name: "the legacy builder (docker " + v + ", " + debianCLI + ", DOCKER_BUILDKIT=0, no CLI plugins)",
		path: cliOnPath(t, debianCLI),
		env:  []string{"DOCKER_BUILDKIT=0", "DOCKER_CONFIG=" + t.TempDir()},
		mark: "Sending build context to Docker daemon",
	}
}

// buildKitBuilder is BuildKit as this machine offers it: through the
// docker buildx plugin where the docker CLI on PATH has it (GitHub's
// runners), else built into Debian's docker CLI before 23 (this machine,
// and CI without buildx).
func buildKitBuilder(t *testing.T) builder {
	t.Helper()
	const mark = "[internal] load build definition from Dockerfile"
	if exec.Command("docker", "buildx", "version").Run() == nil {
		return builder{id: "buildx", name: "BuildKit through docker buildx", cli: "docker", path: os.Getenv("PATH"),
			env: []string{"DOCKER_BUILDKIT=1"}, mark: mark}
	}
	v := cliVersion(t, debianCLI)
	if major, err := strconv.Atoi(strings.SplitN(v, ".", 2)[0]); err != nil || major >= 23 {
		t.Fatalf("no BuildKit on this machine: the docker CLI on PATH has no buildx plugin, and %s (docker %s) has no BuildKit built in "+
			"(only CLIs before 23 have); install the buildx plugin or Debian's docker.io", debianCLI, v)
	}
	return builder{
		id:   "buildkit",
		cli:  debianCLI,
		name: "BuildKit built into docker " + v + " (" + debianCLI + ", DOCKER_BUILDKIT=1)",
		path: cliOnPath(t, debianCLI),
		env:  []string{"DOCKER_BUILDKIT=1"},
		mark: mark,
	}
}

// cliVersion is a docker CLI's own version, failing the test if the CLI
// is not there.
func cliVersion(t *testing.T, cli string) string {
	t.Helper()
	if _, err := os.Stat(cli); err != nil {
		t.Fatalf("%s is missing: this test builds with the docker CLI of Debian's docker.io package, which is what a pod has "+
			"(apt-get install docker.io): %v", cli, err)
	}
	// The client's version is printed even when the engine does not answer.
	out, _ := exec.Command(cli, "version", "--format", "{{.Client.Version}}").Output()
	v := strings.TrimSpace(string(out))
	if v == "" {
		t.Fatalf("%s version printed no client version", cli)
	}
	return v
}

// cliOnPath is this process's PATH with cli first, as `docker`.
func cliOnPath(t *testing.T, cli string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Symlink(cli, filepath.Join(dir, "docker")); err != nil {
		t.Fatal(err)
	}
	return dir + string(os.PathListSeparator) + os.Getenv("PATH")
}
