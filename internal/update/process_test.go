package update

import (
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/proctest"
)

// buildUpdater builds cmd/radar-updater as the release does (static).
func buildUpdater(t *testing.T) string {
	t.Helper()
	return proctest.Build(t, "./cmd/radar-updater")
}

// updaterEnv is the pod's environment for the updater binary: the test
// registry, CRL server and root, and the CRL server's certificate as the
// system roots (SSL_CERT_FILE), as GCS's would be in production.
func (p *pod) updaterEnv(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root-ca.pem")
	if err := os.WriteFile(root, p.pki.RootPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	certs := filepath.Join(dir, "system-roots.pem")
	crlCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.pki.CRL.Server().Certificate().Raw})
	if err := os.WriteFile(certs, crlCert, 0o644); err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RADAR_") && !strings.HasPrefix(kv, "SENTRY_") && !strings.HasPrefix(kv, "SSL_CERT_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"RADAR_DATA_DIR="+p.dir,
		"RADAR_UPDATER_STATE_DIR="+p.stateDir,
		"RADAR_AGENT_CONTAINER="+p.name,
		"RADAR_AGENT_IMAGE="+p.repo,
		"RADAR_CRL_URL="+p.pki.CRL.URL(),
		"RADAR_ROOT_CA_FILE="+root,
		"RADAR_HEALTH_TIMEOUT="+healthTimeout.String(),
		"RADAR_TEST_TIMEOUT=5s",
		"RADAR_LOG_FORMAT=text",
		"RADAR_LOG_LEVEL=debug",
		"SSL_CERT_FILE="+certs,
	)
}

type proc struct {
	cmd    *exec.Cmd
	out    *proctest.LogBuffer
	exited chan error
}

func startUpdater(t *testing.T, bin string, env []string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, "run"), out: &proctest.LogBuffer{Max: 4 << 20}, exited: make(chan error, 1)}
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.kill()
		}
	})
	return p
}

// kill is kill -9: no signal handler, no deferred cleanup runs.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	err := <-p.exited
	p.exited <- err
}

// stop is what Docker does to the updater container: SIGTERM.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		p.exited <- err
		if err != nil {
			t.Errorf("updater exited with %v after SIGTERM; output:\n%s", err, p.output())
		}
	case <-time.After(time.Minute):
		t.Errorf("updater ignored SIGTERM; output:\n%s", p.output())
		p.kill()
	}
}

func (p *proc) output() string { return p.out.String() }
