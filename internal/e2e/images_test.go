package e2e

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/radarpod/radarpod/internal/dockertest"
	"github.com/radarpod/radarpod/internal/proctest"
)

// TestMultiArchImagesCarryTheirPlatformsBinaries builds every platform's
// images with buildx (`make images-multiarch`) and opens each one: the
// binary inside must be for the image's platform, and the labels the
// updater trusts must be set. A Dockerfile that lets a default shadow
// BuildKit's TARGETPLATFORM ships the build machine's binary in every image.
func TestMultiArchImagesCarryTheirPlatformsBinaries(t *testing.T) {
	root, err := proctest.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	eng := dockertest.New(t)
	agentRepo, updaterRepo := "radarpod-test/"+eng.Prefix+"-agent", "radarpod-test/"+eng.Prefix+"-updater"
	t.Cleanup(func() { removeImages(t, agentRepo, updaterRepo) })
	const version = "9.8.7"
	run(t, root, nil, "make", "images-multiarch", "VERSION="+version, "AGENT_IMAGE="+agentRepo, "UPDATER_IMAGE="+updaterRepo)

	want := map[string]elf.Machine{"linux-amd64": elf.EM_X86_64, "linux-arm64": elf.EM_AARCH64, "linux-arm-v7": elf.EM_ARM}
	for suffix, machine := range want {
		for repo, bin := range map[string]string{agentRepo: "radar-agent", updaterRepo: "radar-updater"} {
			ref := repo + ":" + version + "-" + suffix
			labels := run(t, root, nil, "docker", "image", "inspect", "--format",
				"{{index .Config.Labels \"org.opencontainers.image.version\"}} {{index .Config.Labels \"org.opencontainers.image.title\"}} {{.Os}}/{{.Architecture}}", ref)
			if f := strings.Fields(labels); len(f) != 3 || f[0] != version || f[1] != bin || f[2] != strings.Join(strings.Split(suffix, "-")[:2], "/") {
				t.Errorf("%s: version, title, platform = %q", ref, strings.TrimSpace(labels))
			}
			got := binaryMachine(t, ref, strings.ReplaceAll(suffix, "-", "/"), bin)
			if got != machine {
				t.Errorf("%s holds a %v binary, want %v", ref, got, machine)
			}
		}
	}
}

func binaryMachine(t *testing.T, ref, platform, bin string) elf.Machine {
	t.Helper()
	id := strings.TrimSpace(run(t, "", nil, "docker", "create", "--platform", platform, ref))
	defer exec.Command("docker", "rm", "-f", id).Run()
	path := filepath.Join(t.TempDir(), bin)
	run(t, "", nil, "docker", "cp", id+":/"+bin, path)
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("%s: /%s is not an ELF binary: %v", ref, bin, err)
	}
	defer f.Close()
	os.Remove(path)
	return f.Machine
}
