package registrytest_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/radarpod/radarpod/internal/registrytest"
)

// A multi-arch image pushed to the real distribution registry is pulled and
// run by the Docker engine of this machine, as the updater's integration
// tests need: FROM scratch, a static binary, non-root user, labels and a
// healthcheck in the config.
func TestPushedImageRunsInDocker(t *testing.T) {
	if _, err := exec.LookPath("docker"); err != nil {
		t.Fatalf("docker CLI not found: %v (the registry images must be proven runnable)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	bin := filepath.Join(t.TempDir(), "hello")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", bin, "./testdata/hello")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build hello: %v\n%s", err, out)
	}

	host := registrytest.StartDistribution(t)
	ref := host + "/registrytest-hello:1.0.0"
	digest, err := registrytest.PushImage(ctx, ref, registrytest.ImageSpec{
		Platforms:  []string{runtime.GOOS + "/" + runtime.GOARCH, "linux/arm/v7"},
		HostFiles:  map[string]string{"/usr/local/bin/hello": bin},
		Files:      map[string][]byte{"/etc/greeting": []byte("hi\n")},
		Entrypoint: []string{"/usr/local/bin/hello"},
		Cmd:        []string{"run"},
		Env:        []string{"GREETING=bonjour"},
		User:       "65532:65532",
		Labels:     map[string]string{"org.opencontainers.image.title": "hello", "org.opencontainers.image.version": "1.0.0"},
		Healthcheck: &v1.HealthConfig{
			Test:     []string{"CMD", "/usr/local/bin/hello", "healthcheck"},
			Interval: 5 * time.Second,
			Retries:  3,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	byDigest := host + "/registrytest-hello@" + digest
	t.Cleanup(func() {
		_ = exec.Command("docker", "image", "rm", "-f", byDigest).Run()
	})

	docker := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, "docker", args...).CombinedOutput()
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	docker("pull", byDigest)
	out := docker("run", "--rm", "--read-only", "--cap-drop", "ALL", byDigest)
	if want := "hello args=run uid=65532 greeting=bonjour"; !strings.Contains(out, want) {
		t.Fatalf("docker run printed %q, want %q", out, want)
	}

	var inspect []struct {
		RepoDigests []string
		Config      struct {
			User        string
			Labels      map[string]string
			Healthcheck struct{ Test []string }
		}
	}
	if err := json.Unmarshal([]byte(docker("image", "inspect", byDigest)), &inspect); err != nil || len(inspect) != 1 {
		t.Fatalf("inspect: %v %v", err, inspect)
	}
	img := inspect[0]
	if img.Config.User != "65532:65532" || img.Config.Labels["org.opencontainers.image.title"] != "hello" ||
		strings.Join(img.Config.Healthcheck.Test, " ") != "CMD /usr/local/bin/hello healthcheck" {
		t.Errorf("config after pull: %+v", img.Config)
	}
	found := false
	for _, d := range img.RepoDigests {
		found = found || d == byDigest
	}
	if !found {
		t.Errorf("RepoDigests %v do not include %s", img.RepoDigests, byDigest)
	}
}

// Equal specs give equal digests; a changed file gives another.
func TestPushImageIsReproducible(t *testing.T) {
	ctx := context.Background()
	host := registrytest.StartInProcess(t)
	spec := registrytest.ImageSpec{Files: map[string][]byte{"/a/b": []byte("x")}, Labels: map[string]string{"k": "v"}}
	d1, err := registrytest.PushImage(ctx, host+"/r:1", spec)
	if err != nil {
		t.Fatal(err)
	}
	d2, err := registrytest.PushImage(ctx, host+"/r:2", spec)
	if err != nil {
		t.Fatal(err)
	}
	spec.Files["/a/b"] = []byte("y")
	d3, err := registrytest.PushImage(ctx, host+"/r:3", spec)
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 || d1 == d3 {
		t.Fatalf("digests %s %s %s", d1, d2, d3)
	}
	tags, err := registrytest.Tags(ctx, host+"/r")
	if err != nil || strings.Join(tags, ",") != "1,2,3" {
		t.Fatalf("tags %v, %v", tags, err)
	}
}
