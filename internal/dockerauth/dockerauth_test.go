package dockerauth

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadAuth(t *testing.T) {
	basic := base64.StdEncoding.EncodeToString([]byte("robot:s3cret-pass"))
	cfg := `{"auths": {"https://ghcr.io": {"auth": "` + basic + `"},
		"https://index.docker.io/v1/": {"username": "hub", "password": "hub-pass"}},
		"credHelpers": {"123.dkr.ecr.eu-west-1.amazonaws.com": "ecr-login"}}`
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]map[string]string{
		"DOCKER_CONFIG":      {"DOCKER_CONFIG": dir},
		"DOCKER_AUTH_CONFIG": {"DOCKER_AUTH_CONFIG": cfg, "DOCKER_CONFIG": t.TempDir()},
		"HOME":               {"HOME": filepath.Dir(dir)},
	}
	// HOME/.docker/config.json
	os.MkdirAll(filepath.Join(filepath.Dir(dir), ".docker"), 0o700)
	os.WriteFile(filepath.Join(filepath.Dir(dir), ".docker", "config.json"), []byte(cfg), 0o600)
	for name, env := range cases {
		t.Run(name, func(t *testing.T) {
			a, err := Load(env)
			if err != nil {
				t.Fatal(err)
			}
			if u, p, ok := a.Credentials("ghcr.io"); !ok || u != "robot" || p != "s3cret-pass" {
				t.Errorf("ghcr.io = %q %q %v", u, p, ok)
			}
			if u, _, ok := a.Credentials("docker.io"); !ok || u != "hub" {
				t.Errorf("docker.io = %q %v", u, ok)
			}
			enc, err := a.Encoded("ghcr.io")
			if err != nil || enc == "" {
				t.Fatalf("Encoded = %q, %v", enc, err)
			}
			raw, _ := base64.URLEncoding.DecodeString(enc)
			var ac map[string]string
			json.Unmarshal(raw, &ac)
			if ac["username"] != "robot" || ac["password"] != "s3cret-pass" {
				t.Errorf("X-Registry-Auth = %s", raw)
			}
			if e, _ := a.Encoded("quay.io"); e != "" {
				t.Errorf("credentials for an unknown registry: %q", e)
			}
			if len(a.Helpers) != 1 || !strings.Contains(a.Helpers[0], "ecr") {
				t.Errorf("helpers = %v", a.Helpers)
			}
		})
	}
	if a, err := Load(map[string]string{"DOCKER_CONFIG": t.TempDir()}); err != nil || a.Source != "none" {
		t.Errorf("no config: %+v, %v", a, err)
	}
	_, err := Load(map[string]string{"DOCKER_AUTH_CONFIG": `{"auths": {"x": {"auth": "s3cret-pass"}}}`})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("broken config: err = %v (must not echo secrets)", err)
	}
}
