// Package registrytest starts real OCI registries for tests and builds
// images without Docker: go-containerregistry's registry in-process, or
// Debian's docker-registry (distribution 2.8) as a child process that the
// Docker engine can pull from, plus PushImage to put runnable FROM-scratch
// images (single-platform manifests or multi-arch indexes) into either.
package registrytest

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/radarpod/radarpod/internal/proctest"
)

// StartInProcess serves go-containerregistry's registry (referrers API
// enabled) on 127.0.0.1 for the duration of the test and returns its host
// ("127.0.0.1:port").
func StartInProcess(t testing.TB) string {
	t.Helper()
	h := registry.New(
		registry.Logger(log.New(io.Discard, "", 0)),
		registry.WithReferrersSupport(true),
	)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// DistributionBinary is Debian's packaged distribution registry.
const DistributionBinary = "/usr/bin/docker-registry"

// StartDistribution runs DistributionBinary on 127.0.0.1:<free port> with
// filesystem storage in a temporary directory, no auth and deletes enabled,
// waits until it answers, and kills it when the test ends. Distribution 2.8
// has no referrers API, so signatures go through the sha256-<digest> tag
// schema there. The Docker engine treats 127.0.0.0/8 registries as insecure,
// so it pulls from this one over plain HTTP.
func StartDistribution(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(DistributionBinary); err != nil {
		t.Fatalf("distribution registry: %v (install Debian's docker-registry package)", err)
	}
	var lastErr error
	// The free port is found by listening and closing, so another process
	// can take it before the registry binds it: try a few ports.
	for attempt := 0; attempt < 5; attempt++ {
		host, err := startDistribution(t)
		if err == nil {
			return host
		}
		lastErr = err
	}
	t.Fatalf("distribution registry: %v", lastErr)
	return ""
}

func startDistribution(t testing.TB) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	host := fmt.Sprintf("127.0.0.1:%d", port)
	dir := t.TempDir()
	config := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
`, filepath.Join(dir, "storage"), host)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		return "", err
	}
	// Bounded: a chatty registry must not grow a test's memory forever.
	out := &proctest.LogBuffer{Max: 1 << 20}
	cmd := exec.Command(DistributionBinary, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = out, out
	// REGISTRY_* variables override the config file; none may leak in.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start %s: %w", DistributionBinary, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}

	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err // stop() waits on it
			stop()
			return "", fmt.Errorf("%s exited before serving (%v): %s", DistributionBinary, err, out.String())
		default:
		}
		resp, err := client.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			stop()
			return "", fmt.Errorf("%s did not answer on %s within 30s: %s", DistributionBinary, host, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("docker-registry output:\n%s", out.String())
		}
	})
	return host, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
