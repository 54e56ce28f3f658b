package container_test

import (
	"encoding/base64"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/radarpod/radarpod/internal/container"
	"github.com/radarpod/radarpod/internal/dockerauth"
	"github.com/radarpod/radarpod/internal/dockertest"
)

// TestPullSendsRegistryCredentials pulls from a loopback registry that
// demands basic auth: the engine gets in only with the configured
// credentials.
func TestPullSendsRegistryCredentials(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	eng := dockertest.New(t)
	bins := dockertest.AgentBinaries(t)
	h := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	open := httptest.NewServer(h) // the release pipeline pushes here
	defer open.Close()
	guarded := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "robot" || p != "s3cret-pass" {
			w.Header().Set("WWW-Authenticate", `Basic realm="radar"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer guarded.Close()
	path := "/" + eng.Prefix + "/radar-agent"
	digest := eng.Publish(ctx, open.Listener.Addr().String()+path+":1.0.0", dockertest.AgentImage(bins.Agent, "1.0.0"))
	host := guarded.Listener.Addr().String()
	ref := host + path + "@" + digest

	anon, err := container.New(container.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, err := anon.Pull(ctx, ref); err == nil || !strings.Contains(err.Error(), "no basic auth credentials") {
		t.Fatalf("anonymous pull from a guarded registry: err = %v, want the registry to demand credentials", err)
	}
	cfg := `{"auths": {"` + host + `": {"auth": "` + base64.StdEncoding.EncodeToString([]byte("robot:s3cret-pass")) + `"}}}`
	auth, err := dockerauth.Load(map[string]string{"DOCKER_AUTH_CONFIG": cfg})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := container.New(container.Options{Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	img, err := cli.Pull(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if len(img.RepoDigests) == 0 || !strings.HasSuffix(img.RepoDigests[0], digest) {
		t.Errorf("RepoDigests = %v, want …@%s", img.RepoDigests, digest)
	}
	if _, err := cli.Pull(ctx, host+path+":1.0.0"); err == nil || !strings.Contains(err.Error(), "without a digest") {
		t.Errorf("pull by tag: err = %v, want a refusal", err)
	}
}
