package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/telemetry"
	"github.com/radarpod/radarpod/internal/update"
	"github.com/radarpod/radarpod/internal/update/verify"
)

func baseEnv(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(root, []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return map[string]string{"RADAR_DATA_DIR": dir, "RADAR_ROOT_CA_FILE": root, "RADAR_UPDATER_STATE_DIR": t.TempDir()}
}

func runCmd(env map[string]string, args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(args, env, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestInvalidConfigurationExitsWithTheVariableNamed(t *testing.T) {
	cases := map[string]string{
		"RADAR_HEALTH_TIMEOUT": "soon",
		"RADAR_TEST_TIMEOUT":   "2562047h", // twice it overflowed the lock wait
		"RADAR_CRL_URL":        "http://insecure.example/crl.pem",
		"RADAR_AGENT_IMAGE":    "ghcr.io/radarpod/radar-agent:1.0.0",
	}
	for name, value := range cases {
		t.Run(name, func(t *testing.T) {
			env := baseEnv(t)
			env[name] = value
			for _, cmd := range []string{"run", "config"} {
				code, _, stderr := runCmd(env, cmd)
				if code != config.ExitCode || !strings.Contains(stderr, name) {
					t.Errorf("%s: exit %d, stderr %q; want %d naming %s", cmd, code, stderr, config.ExitCode, name)
				}
			}
		})
	}
}

func TestHealthcheckReadsTheHeartbeat(t *testing.T) {
	env := baseEnv(t)
	if code, _, stderr := runCmd(env, "healthcheck"); code != 1 || !strings.Contains(stderr, "not started") {
		t.Fatalf("no heartbeat: exit %d, %q", code, stderr)
	}
	hb := telemetry.HealthFile(env["RADAR_UPDATER_STATE_DIR"], update.Component)
	if err := os.WriteFile(hb, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := runCmd(env, "healthcheck"); code != 0 || !strings.Contains(out, "healthy") {
		t.Fatalf("fresh heartbeat: exit %d, %q %q", code, out, stderr)
	}
	old := time.Now().Add(-2 * update.MaxSilence)
	os.Chtimes(hb, old, old)
	if code, _, stderr := runCmd(env, "healthcheck"); code != 1 || !strings.Contains(stderr, "silent") {
		t.Fatalf("stale heartbeat: exit %d, %q", code, stderr)
	}
}

func TestConfigRedactsSecretsAndWarnsAboutTypos(t *testing.T) {
	env := baseEnv(t)
	env["SENTRY_DSN"] = "https://0123456789abcdef@o1.ingest.sentry.io/42"
	env["RADAR_HELTH_TIMEOUT"] = "30s"
	code, out, stderr := runCmd(env, "config")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(out, "0123456789abcdef") || !strings.Contains(out, "RADAR_AGENT_CONTAINER=radar-agent") {
		t.Errorf("config output:\n%s", out)
	}
	if !strings.Contains(stderr, "RADAR_HELTH_TIMEOUT") {
		t.Errorf("no warning about the unknown variable: %q", stderr)
	}
}

func TestVersionAndUnknownCommand(t *testing.T) {
	if code, out, _ := runCmd(nil, "version"); code != 0 || !strings.HasPrefix(out, "radar-updater ") {
		t.Errorf("version: %d %q", code, out)
	}
	if code, _, stderr := runCmd(nil, "upgrade"); code != 2 || !strings.Contains(stderr, "usage") {
		t.Errorf("unknown command: %d %q", code, stderr)
	}
}

func TestRunRejectsAnInvalidRootCA(t *testing.T) {
	env := baseEnv(t) // the root file holds no certificate
	code, _, stderr := runCmd(env, "run")
	if code != config.ExitCode || !strings.Contains(stderr, "root") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// reset-crl-state is the operator's way out of crl_state_corrupt: it moves
// the state aside (kept for inspection) in the updater's state dir.
func TestResetCRLStateMovesTheStateAside(t *testing.T) {
	env := baseEnv(t)
	stateDir := env["RADAR_UPDATER_STATE_DIR"]
	state := filepath.Join(stateDir, verify.CRLStateFile)
	if err := os.WriteFile(state, []byte(`{"highest_number": "garbage`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCmd(env, "reset-crl-state")
	if code != 0 || !strings.Contains(out, "moved to") {
		t.Fatalf("exit %d, %q %q", code, out, stderr)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("state still in place: %v", err)
	}
	moved, _ := filepath.Glob(state + ".reset-*")
	if len(moved) != 1 {
		t.Errorf("moved aside: %v", moved)
	}
	if code, out, _ := runCmd(env, "reset-crl-state"); code != 0 || !strings.Contains(out, "nothing to reset") {
		t.Errorf("second reset: exit %d, %q", code, out)
	}
	// An explicit RADAR_UPDATER_STATE_DIR is where it looks.
	env["RADAR_UPDATER_STATE_DIR"] = t.TempDir()
	if code, out, _ := runCmd(env, "config"); code != 0 || !strings.Contains(out, "RADAR_UPDATER_STATE_DIR="+env["RADAR_UPDATER_STATE_DIR"]) {
		t.Errorf("config: exit %d, %q", code, out)
	}
}

// The updater's state must be out of the agent's reach: a state directory
// inside the data directory (the agent's volume), equal to it or holding
// it is refused at start-up with status 2 naming the variable, also when
// a symbolic link hides it.
func TestStateDirInTheDataDirIsRefused(t *testing.T) {
	env := baseEnv(t)
	data := env["RADAR_DATA_DIR"]
	link := filepath.Join(t.TempDir(), "state-link")
	if err := os.Symlink(data, link); err != nil {
		t.Fatal(err)
	}
	for _, state := range []string{filepath.Join(data, "updater-state"), data, filepath.Dir(data), filepath.Join(link, "state")} {
		env["RADAR_UPDATER_STATE_DIR"] = state
		for _, cmd := range []string{"run", "config", "reset-crl-state"} {
			code, _, stderr := runCmd(env, cmd)
			if code != config.ExitCode || !strings.Contains(stderr, "RADAR_UPDATER_STATE_DIR") {
				t.Errorf("%s with the state in %s: exit %d, stderr %q; want %d naming RADAR_UPDATER_STATE_DIR", cmd, state, code, stderr, config.ExitCode)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(data, "updater-state")); !os.IsNotExist(err) {
		t.Errorf("the refused state directory was created: %v", err)
	}
}
