package dockertest

import (
	"context"
	"maps"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/moby/client"

	"github.com/radarpod/radarpod/internal/registrytest"
)

// Labels of agent images and containers.
const (
	// AgentLabel is the label the updater requires on the agent container.
	// Like docker-compose.yml, dockertest sets it on the container, not the
	// image, so a container of the agent image without it is "not the agent".
	AgentLabel     = "io.radarpod.component"
	AgentComponent = "radar-agent"
	VersionLabel   = "org.opencontainers.image.version"
	TitleLabel     = "org.opencontainers.image.title"
)

// AgentImage is the FROM-scratch image the release Dockerfile makes for the
// agent: the static binary as /radar-agent (entrypoint, command "run"),
// non-root, version and title labels, and a healthcheck running
// `radar-agent healthcheck` every second (tests need it fast).
func AgentImage(binary, version string) registrytest.ImageSpec {
	return registrytest.ImageSpec{
		HostFiles:  map[string]string{"/radar-agent": binary},
		Entrypoint: []string{"/radar-agent"},
		Cmd:        []string{"run"},
		User:       "65532:65532",
		Labels: map[string]string{
			VersionLabel:                      version,
			TitleLabel:                        AgentComponent,
			"org.opencontainers.image.source": "https://github.com/radarpod/radarpod",
		},
		Healthcheck: &v1.HealthConfig{
			Test:        []string{"CMD", "/radar-agent", "healthcheck"},
			Interval:    time.Second,
			Timeout:     3 * time.Second,
			StartPeriod: 2 * time.Second,
			Retries:     3,
		},
	}
}

// Publish pushes spec to ref ("host/repo:tag") with registrytest and returns
// the digest the tag points to. The image carries this test's label, so
// whatever the engine pulls of it is removed at cleanup.
func (e *Engine) Publish(ctx context.Context, ref string, spec registrytest.ImageSpec) string {
	e.t.Helper()
	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, e.Labels())
	spec.Labels = labels
	d, err := registrytest.PushImage(ctx, ref, spec)
	must(e.t, err, "push %s", ref)
	return d
}

// Pull pulls ref into the engine (anonymously) and returns the image ID.
func (e *Engine) Pull(ctx context.Context, ref string) string {
	e.t.Helper()
	res, err := e.API.ImagePull(ctx, ref, client.ImagePullOptions{})
	must(e.t, err, "pull %s", ref)
	err = res.Wait(ctx)
	res.Close()
	must(e.t, err, "pull %s", ref)
	img, err := e.API.ImageInspect(ctx, ref)
	must(e.t, err, "inspect pulled %s", ref)
	return img.ID
}
