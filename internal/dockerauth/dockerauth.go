// Package dockerauth owns registry credentials in the standard Docker client
// format (DOCKER_AUTH_CONFIG, $DOCKER_CONFIG/config.json,
// ~/.docker/config.json), so every registry client of the pod and of the
// release tooling authenticates the way `docker login` configured it: the
// engine's pull, the updater's verifier and radar-sign.
package dockerauth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/moby/api/types/registry"
)

// Auth holds registry credentials in the standard Docker client format, so
// an operator configures the updater exactly like `docker login` would.
// Credential helpers (credsStore, credHelpers) are not supported: the
// updater image is FROM scratch and has no helper binaries to run.
type Auth struct {
	entries map[string]registry.AuthConfig
	// Source says where the credentials came from, for logs (never the
	// credentials themselves).
	Source string
	// Helpers names registries configured only through a credential helper;
	// pulls from them go anonymous, and the caller should warn.
	Helpers []string
}

// maxDockerConfig bounds the config file read: it holds a handful of tokens.
const maxDockerConfig = 1 << 20

type dockerConfigFile struct {
	Auths       map[string]dockerAuthEntry `json:"auths"`
	CredsStore  string                     `json:"credsStore"`
	CredHelpers map[string]string          `json:"credHelpers"`
}

type dockerAuthEntry struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// Load reads registry credentials the way the Docker CLI does:
// DOCKER_AUTH_CONFIG (the config JSON itself) if set, else
// $DOCKER_CONFIG/config.json, else $HOME/.docker/config.json. No file means
// anonymous pulls.
func Load(environ map[string]string) (*Auth, error) {
	if js := environ["DOCKER_AUTH_CONFIG"]; js != "" {
		a, err := parseAuth([]byte(js))
		if err != nil {
			return nil, fmt.Errorf("DOCKER_AUTH_CONFIG: %w", err)
		}
		a.Source = "DOCKER_AUTH_CONFIG"
		return a, nil
	}
	dir := environ["DOCKER_CONFIG"]
	if dir == "" {
		home := environ["HOME"]
		if home == "" {
			return &Auth{Source: "none"}, nil
		}
		dir = filepath.Join(home, ".docker")
	}
	path := filepath.Join(dir, "config.json")
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Auth{Source: "none"}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("registry credentials: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxDockerConfig+1))
	if err != nil {
		return nil, fmt.Errorf("registry credentials: read %s: %w", path, err)
	}
	if len(b) > maxDockerConfig {
		return nil, fmt.Errorf("registry credentials: %s is larger than %d bytes", path, maxDockerConfig)
	}
	a, err := parseAuth(b)
	if err != nil {
		return nil, fmt.Errorf("registry credentials: %s: %w", path, err)
	}
	a.Source = path
	return a, nil
}

func parseAuth(b []byte) (*Auth, error) {
	var cf dockerConfigFile
	if err := json.Unmarshal(b, &cf); err != nil {
		// The JSON error may quote the file: it holds secrets.
		return nil, errors.New("not valid Docker config JSON")
	}
	a := &Auth{entries: map[string]registry.AuthConfig{}}
	for key, e := range cf.Auths {
		host := registryHost(key)
		ac := registry.AuthConfig{
			Username:      e.Username,
			Password:      e.Password,
			IdentityToken: e.IdentityToken,
			RegistryToken: e.RegistryToken,
			ServerAddress: key,
		}
		if e.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil {
				return nil, fmt.Errorf("auths[%q].auth is not base64", key)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return nil, fmt.Errorf("auths[%q].auth is not user:password", key)
			}
			ac.Username, ac.Password = user, pass
		}
		a.entries[host] = ac
	}
	for host := range cf.CredHelpers {
		if _, ok := a.entries[registryHost(host)]; !ok {
			a.Helpers = append(a.Helpers, host)
		}
	}
	if cf.CredsStore != "" && len(a.entries) == 0 {
		a.Helpers = append(a.Helpers, "credsStore:"+cf.CredsStore)
	}
	return a, nil
}

// registryHost maps the keys Docker writes ("https://ghcr.io",
// "https://index.docker.io/v1/") to the domain of an image reference.
func registryHost(key string) string {
	h := strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	switch h {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return "docker.io"
	}
	return h
}

// Credentials returns the username and password for host (empty when
// none), for other clients of the same registry.
func (a *Auth) Credentials(host string) (user, password string, ok bool) {
	ac, ok := a.Lookup(host)
	return ac.Username, ac.Password, ok
}

// Lookup returns everything configured for host, tokens included.
func (a *Auth) Lookup(host string) (registry.AuthConfig, bool) {
	if a == nil {
		return registry.AuthConfig{}, false
	}
	ac, ok := a.entries[registryHost(host)]
	return ac, ok
}

// Encoded returns the X-Registry-Auth value for host, or "" for anonymous.
func (a *Auth) Encoded(host string) (string, error) {
	if a == nil {
		return "", nil
	}
	ac, ok := a.entries[registryHost(host)]
	if !ok {
		return "", nil
	}
	b, err := json.Marshal(ac)
	if err != nil {
		return "", err
	}
	return base64.URLEncoding.EncodeToString(b), nil
}
