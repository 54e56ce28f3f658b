// Package container owns every Docker Engine API call the updater makes:
// finding the agent container, pulling an image by digest, recreating the
// agent with its exact configuration on a new image, starting, stopping,
// renaming and removing it, and waiting for Docker to call it healthy.
//
// It acts only on containers that carry the agent label; anything else is
// refused before a request that could change it reaches the engine.
package container

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/radarpod/radarpod/internal/dockerauth"
)

// Labels the updater reads.
const (
	// ComponentLabel marks the container the updater may manage; its value
	// must be AgentComponent.
	ComponentLabel = "io.radarpod.component"
	AgentComponent = "radar-agent"
	// VersionLabel on the image names the agent version it contains.
	VersionLabel = "org.opencontainers.image.version"
)

// Errors a caller decides on.
var (
	// ErrNotFound: the container or image does not exist.
	ErrNotFound = errors.New("not found")
	// ErrNotAgent: the container exists but is not the agent (no agent
	// label, or another name); the updater must leave it alone.
	ErrNotAgent = errors.New("not the agent container")
)

// Timeouts of single engine calls; the caller's context may be shorter.
const (
	callTimeout = 30 * time.Second
	// stopTimeout bounds a stop request: Docker waits the container's own
	// stop timeout (10 s by default) before it kills.
	stopTimeout = 2 * time.Minute
)

// Options configure New.
type Options struct {
	// UserAgent identifies the updater to the engine.
	UserAgent string
	// Auth supplies registry credentials for pulls; nil pulls anonymously.
	Auth *dockerauth.Auth
	// Logger receives progress; nil discards.
	Logger *slog.Logger
	// HealthPoll is how often WaitHealthy inspects; 0 means 500 ms.
	HealthPoll time.Duration
}

// Client is the updater's view of the Docker engine.
type Client struct {
	api        *client.Client
	auth       *dockerauth.Auth
	log        *slog.Logger
	healthPoll time.Duration
}

// New connects to the engine named by DOCKER_HOST (default: the local
// socket). The API version is negotiated on the first call, down to 1.40,
// so Debian's Docker 20.10 on old Pi OS works.
func New(o Options) (*Client, error) {
	opts := []client.Opt{client.FromEnv}
	if o.UserAgent != "" {
		opts = append(opts, client.WithUserAgent(o.UserAgent))
	}
	api, err := client.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	poll := o.HealthPoll
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	return &Client{api: api, auth: o.Auth, log: log, healthPoll: poll}, nil
}

// Close releases the engine connection.
func (c *Client) Close() error { return c.api.Close() }

// Ping checks that the engine answers; it also fixes the API version.
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := c.api.Ping(ctx, client.PingOptions{}); err != nil {
		return fmt.Errorf("docker ping: %w", err)
	}
	return nil
}

// Container is what the updater needs to know about one container.
type Container struct {
	ID   string
	Name string // without Docker's leading slash
	// Image is the image ID (sha256:...); ImageRef is the reference the
	// container was created from (a tag or repo@digest).
	Image    string
	ImageRef string
	Labels   map[string]string
	// Version is the VersionLabel of the container's image ("" if absent).
	Version string
	// State is Docker's state word: created, running, exited, ...
	State   string
	Running bool
	// Health is "", "starting", "healthy" or "unhealthy".
	Health string
}

// IsAgent reports whether the container carries the agent label.
func (c Container) IsAgent() bool { return c.Labels[ComponentLabel] == AgentComponent }

// Inspect returns the container with this ID or name, whatever it is. It
// changes nothing, so it is not restricted to the agent.
func (c *Client) Inspect(ctx context.Context, idOrName string) (Container, error) {
	raw, err := c.inspect(ctx, idOrName)
	if err != nil {
		return Container{}, err
	}
	return c.summarize(ctx, raw), nil
}

// Agent returns the container named name if it is the agent: the name
// matches exactly (not an ID prefix) and it carries the agent label.
func (c *Client) Agent(ctx context.Context, name string) (Container, error) {
	raw, err := c.inspect(ctx, name)
	if err != nil {
		return Container{}, err
	}
	ct := c.summarize(ctx, raw)
	if ct.Name != strings.TrimPrefix(name, "/") {
		// The engine resolves ID prefixes too; "abc" may be someone's ID.
		return Container{}, fmt.Errorf("container %q: %w", name, ErrNotFound)
	}
	if !ct.IsAgent() {
		return Container{}, fmt.Errorf("container %q (%s) lacks label %s=%s: %w", name, short(ct.ID), ComponentLabel, AgentComponent, ErrNotAgent)
	}
	return ct, nil
}

// Agents lists every container that carries the agent label, running or
// not, whatever its name. Recovery uses it to find an agent it renamed
// when its journal cannot be trusted; it changes nothing.
func (c *Client) Agents(ctx context.Context) ([]Container, error) {
	lctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	res, err := c.api.ContainerList(lctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", ComponentLabel+"="+AgentComponent),
	})
	if err != nil {
		return nil, fmt.Errorf("list agent containers: %w", err)
	}
	var out []Container
	for _, s := range res.Items {
		raw, err := c.inspect(ctx, s.ID)
		if errors.Is(err, ErrNotFound) {
			continue // removed since the listing
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c.summarize(ctx, raw))
	}
	return out, nil
}

func (c *Client) inspect(ctx context.Context, idOrName string) (ctypes.InspectResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	res, err := c.api.ContainerInspect(ctx, idOrName, client.ContainerInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return ctypes.InspectResponse{}, fmt.Errorf("container %q: %w", idOrName, ErrNotFound)
		}
		return ctypes.InspectResponse{}, fmt.Errorf("inspect container %q: %w", idOrName, err)
	}
	if res.Container.Config == nil || res.Container.HostConfig == nil || res.Container.State == nil {
		return ctypes.InspectResponse{}, fmt.Errorf("inspect container %q: engine returned no config", idOrName)
	}
	return res.Container, nil
}

func (c *Client) summarize(ctx context.Context, raw ctypes.InspectResponse) Container {
	ct := Container{
		ID:       raw.ID,
		Name:     strings.TrimPrefix(raw.Name, "/"),
		Image:    raw.Image,
		ImageRef: raw.Config.Image,
		Labels:   raw.Config.Labels,
		State:    string(raw.State.Status),
		Running:  raw.State.Running,
	}
	if raw.State.Health != nil {
		ct.Health = string(raw.State.Health.Status)
	}
	if img, err := c.imageInspect(ctx, raw.Image); err == nil && img.Config != nil {
		ct.Version = img.Config.Labels[VersionLabel]
	} else if err != nil {
		c.log.Debug("image of container not inspectable", "container", short(raw.ID), "err", err)
	}
	return ct
}

// guard inspects id and refuses unless it is an agent container. Every
// mutating call goes through it, so a wrong ID in a journal can never reach
// an unrelated container.
func (c *Client) guard(ctx context.Context, id string) (ctypes.InspectResponse, error) {
	raw, err := c.inspect(ctx, id)
	if err != nil {
		return raw, err
	}
	if raw.Config.Labels[ComponentLabel] != AgentComponent {
		return raw, fmt.Errorf("container %s (%s): %w", short(raw.ID), strings.TrimPrefix(raw.Name, "/"), ErrNotAgent)
	}
	return raw, nil
}

// Rename gives the agent container id a new name.
func (c *Client) Rename(ctx context.Context, id, name string) error {
	raw, err := c.guard(ctx, id)
	if err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	if strings.TrimPrefix(raw.Name, "/") == name {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := c.api.ContainerRename(ctx, raw.ID, client.ContainerRenameOptions{NewName: name}); err != nil {
		return fmt.Errorf("rename %s to %q: %w", short(raw.ID), name, err)
	}
	return nil
}

// Start starts the agent container id; starting a running one is a no-op.
func (c *Client) Start(ctx context.Context, id string) error {
	raw, err := c.guard(ctx, id)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if raw.State.Running {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := c.api.ContainerStart(ctx, raw.ID, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start %s: %w", short(raw.ID), err)
	}
	return nil
}

// Stop stops the agent container id with its own stop timeout.
func (c *Client) Stop(ctx context.Context, id string) error {
	raw, err := c.guard(ctx, id)
	if err != nil {
		return fmt.Errorf("stop: %w", err)
	}
	if !raw.State.Running && !raw.State.Restarting {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, stopTimeout)
	defer cancel()
	if _, err := c.api.ContainerStop(ctx, raw.ID, client.ContainerStopOptions{}); err != nil {
		return fmt.Errorf("stop %s: %w", short(raw.ID), err)
	}
	return nil
}

// Remove deletes the agent container id, stopping it if needed. Volumes
// are never removed: the data volume outlives every agent container.
func (c *Client) Remove(ctx context.Context, id string) error {
	raw, err := c.guard(ctx, id)
	if err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, stopTimeout)
	defer cancel()
	if _, err := c.api.ContainerRemove(ctx, raw.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("remove %s: %w", short(raw.ID), err)
	}
	return nil
}

func short(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// ShortID is the 12-character form Docker shows and uses as hostname and
// network alias.
func ShortID(id string) string { return short(id) }
