package e2e

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/radarpod/radarpod/internal/dockertest"
)

// TestBuildContextHoldsNoKeys builds the build context itself into an image
// (`COPY . /context/`) with the repository's .dockerignore, once with each
// builder, and lists what arrived: the staged build outputs (dist/, where
// make stages the updater's root CA, and deploy/docker/) and nothing else.
// No private key of .pki/ and no other file of the tree may reach the
// engine. The legacy builder (Debian's docker.io 20.10) and BuildKit read
// .dockerignore with different walkers, hence both: the legacy one's
// skipping of excluded directories is what once kept the root CA out of
// its context.
func TestBuildContextHoldsNoKeys(t *testing.T) {
	t.Parallel()
	root := moduleRoot(t)
	eng := dockertest.New(t)
	dir := t.TempDir()
	admitted := map[string]bool{
		"dist/linux/amd64/radar-agent":              true,
		"dist/linux/arm/v7/radar-updater":           true,
		"dist/pki/root-ca.pem":                      true,
		"deploy/docker/data/.keep":                  true,
		"deploy/docker/ookla/linux/amd64/speedtest": true,
		".pki/dev/root-ca.pem":                      false,
		".pki/dev/root-ca.key":                      false,
		".pki/release/root-ca.pem":                  false,
		"deploy/pki/root-ca.pem":                    false,
		"deploy/balena/docker-compose.yml":          false,
		"signer.key":                                false,
		".env":                                      false,
		"cmd/radar-agent/main.go":                   false,
		"bin/radar-agent":                           false,
	}
	for path := range admitted {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(path)), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, path), "content of "+path+"\n")
	}
	writeFile(t, filepath.Join(dir, ".dockerignore"), readFile(t, filepath.Join(root, ".dockerignore")))
	// The Dockerfile stays out of the directory: the context is what is tested.
	dockerfile := filepath.Join(t.TempDir(), "Dockerfile")
	writeFile(t, dockerfile, "FROM scratch\nCOPY . /context/\n")

	for _, b := range []builder{legacyBuilder(t), buildKitBuilder(t)} {
		t.Run(b.id, func(t *testing.T) {
			ref := "radarpod-e2e/" + eng.Prefix + "/context:" + b.id
			t.Cleanup(func() { exec.Command("docker", "rmi", "-f", ref).Run() })
			if out := run(t, dir, b.environ(), b.cli, "build", "-f", dockerfile, "-t", ref, "."); !strings.Contains(out, b.mark) {
				t.Fatalf("the build did not go through %s (no %q):\n%s", b.name, b.mark, out)
			}
			files, dirs := contextEntries(t, eng, ref)
			for path, want := range admitted {
				if slices.Contains(files, path) != want {
					t.Errorf("%s in the build context: %v, want %v", path, !want, want)
				}
			}
			for _, path := range files {
				if _, known := admitted[path]; known {
					continue
				}
				// A legacy CLI sends the build files along; the daemon reads
				// what they say. Nothing else may appear.
				if base := filepath.Base(path); path != base || (base != "Dockerfile" && base != ".dockerignore" && !strings.HasPrefix(base, ".dockerfile.")) {
					t.Errorf("unexpected %s in the build context", path)
				}
			}
			// Not even an empty directory of what is left out (an exception
			// pattern below an excluded directory brings that in).
			for _, dir := range dirs {
				holdsAdmitted := false
				for path, ok := range admitted {
					holdsAdmitted = holdsAdmitted || ok && strings.HasPrefix(path, dir+"/")
				}
				if !holdsAdmitted {
					t.Errorf("unexpected directory %s/ in the build context", dir)
				}
			}
		})
	}
}

// contextEntries lists the regular files and the directories under
// /context in an image, from a created (never started) container's export.
func contextEntries(t *testing.T, eng *dockertest.Engine, ref string) (files, dirs []string) {
	t.Helper()
	id := strings.TrimSpace(run(t, "", nil, "docker", "create", "--label", dockertest.TestLabel+"="+eng.Prefix, ref, "/none"))
	defer exec.Command("docker", "rm", "-f", "-v", id).Run()
	out, err := exec.Command("docker", "export", id).Output()
	if err != nil {
		t.Fatalf("docker export %s: %v", ref, err)
	}
	tr := tar.NewReader(bytes.NewReader(out))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, dirs
		}
		if err != nil {
			t.Fatalf("docker export %s: %v", ref, err)
		}
		name, ok := strings.CutPrefix(filepath.Clean(h.Name), "context/")
		switch {
		case !ok:
		case h.Typeflag == tar.TypeReg:
			files = append(files, name)
		case h.Typeflag == tar.TypeDir:
			dirs = append(dirs, name)
		default:
			t.Errorf("%s: unexpected %s (type %c) in the build context", ref, name, h.Typeflag)
		}
	}
}
