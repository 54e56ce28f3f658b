package registryclient_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/radarpod/radarpod/internal/dockerauth"
	"github.com/radarpod/radarpod/internal/registrytest"
	"github.com/radarpod/radarpod/internal/update/verify/registryclient"
)

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1:5000": true, "127.9.9.9": true, "localhost:5000": true, "[::1]:5000": true,
		"ghcr.io": false, "10.0.0.1:5000": false, "localhost.example.com": false, "192.168.1.2:5000": false,
	} {
		if got := registryclient.IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v", host, got)
		}
	}
}

func TestNormalizeAndSplit(t *testing.T) {
	if n, err := registryclient.Normalize("radar-agent"); err != nil || n != "docker.io/library/radar-agent" {
		t.Errorf("Normalize: %q %v", n, err)
	}
	if _, err := registryclient.Normalize("127.0.0.1:5000/radar-agent:1.0"); err == nil {
		t.Error("Normalize accepted a tag")
	}
	d := "sha256:" + fmt.Sprintf("%064x", 1)
	for ref, want := range map[string][2]string{
		"127.0.0.1:5000/a/radar-agent:1.2.0": {"127.0.0.1:5000/a/radar-agent", "1.2.0"},
		"ghcr.io/radarpod/radar-agent@" + d:  {"ghcr.io/radarpod/radar-agent", d},
		"ghcr.io/radarpod/radar-agent":       {"ghcr.io/radarpod/radar-agent", ""},
	} {
		repo, tag, err := registryclient.SplitReference(ref)
		if err != nil || repo != want[0] || tag != want[1] {
			t.Errorf("SplitReference(%q) = %q %q %v", ref, repo, tag, err)
		}
	}
}

// Credentials come from the Docker config named by DOCKER_CONFIG.
func TestRepositoryUsesDockerConfigCredentials(t *testing.T) {
	const user, pass = "radar", "s3cret"
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "auth required", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := srv.Listener.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Setenv("DOCKER_CONFIG", t.TempDir()) // empty: anonymous
	if _, err := registrytest.PushImage(ctx, host+"/radar-agent:1.0.0", registrytest.ImageSpec{}); err == nil {
		t.Fatal("anonymous push accepted by an authenticating registry")
	}

	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	pushed, err := registrytest.PushImage(ctx, host+"/radar-agent:1.0.0", registrytest.ImageSpec{})
	if err != nil {
		t.Fatalf("push with credentials: %v", err)
	}
	creds, err := dockerauth.Load(map[string]string{"DOCKER_CONFIG": dir})
	if err != nil {
		t.Fatal(err)
	}
	repo, err := registryclient.Repository(host+"/radar-agent", &http.Client{Timeout: time.Minute}, creds)
	if err != nil {
		t.Fatal(err)
	}
	if !repo.PlainHTTP {
		t.Error("loopback registry not reached over plain HTTP")
	}
	desc, err := repo.Resolve(ctx, "1.0.0")
	if err != nil || desc.Digest.String() != pushed {
		t.Fatalf("resolve: %v %v, pushed %s", desc.Digest, err, pushed)
	}
}
