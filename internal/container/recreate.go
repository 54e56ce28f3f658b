package container

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// CreateLike creates a container named name from image with the exact
// configuration of the agent container templateID: env, mounts and volumes,
// networks with their aliases and static addresses, restart policy, labels,
// healthcheck, user, read-only rootfs, capabilities, security options,
// tmpfs, log driver, an explicit hostname, resources. It does not start it.
//
// Whatever the old container inherited from its old image (env, labels,
// command, healthcheck, working dir, volumes, ports) is left out, so the new
// image's defaults apply, as `docker compose up` with the new image would
// do. Two things are always kept: the agent label, and the user, even when
// it is only the old image's default — the data volume's files belong to
// that uid, and a release that changed its USER would otherwise lose access
// to the pod's identity and outbox.
func (c *Client) CreateLike(ctx context.Context, templateID, name, image string) (string, error) {
	old, err := c.guard(ctx, templateID)
	if err != nil {
		return "", fmt.Errorf("create agent: %w", err)
	}
	var imgCfg *dockerspec.DockerOCIImageConfig
	if img, err := c.imageInspect(ctx, old.Image); err == nil {
		imgCfg = img.Config
	} else {
		// Without the old image we cannot tell inherited settings from
		// chosen ones; keeping them all is the safe side.
		c.log.Warn("old image not inspectable; copying its defaults into the new container", "image", old.Image, "err", err)
	}
	spec, err := createSpec(old, imgCfg, image)
	if err != nil {
		return "", fmt.Errorf("create agent: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	res, err := c.api.ContainerCreate(cctx, client.ContainerCreateOptions{
		Name:             name,
		Config:           spec.config,
		HostConfig:       spec.host,
		NetworkingConfig: spec.networking,
	})
	if err != nil {
		return "", fmt.Errorf("create agent %q from %s: %w", name, image, err)
	}
	for _, w := range res.Warnings {
		c.log.Warn("engine warning creating agent", "warning", w)
	}
	// API < 1.44 accepts one network at create; the rest are connected
	// before the first start, so the container never runs half-connected.
	for _, n := range spec.extraNetworks {
		nctx, cancel := context.WithTimeout(ctx, callTimeout)
		_, err := c.api.NetworkConnect(nctx, n.name, client.NetworkConnectOptions{Container: res.ID, EndpointConfig: n.settings})
		cancel()
		if err != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
			_, rerr := c.api.ContainerRemove(rctx, res.ID, client.ContainerRemoveOptions{Force: true})
			cancel()
			if rerr != nil {
				c.log.Error("could not remove half-created agent", "container", short(res.ID), "err", rerr)
			}
			return "", fmt.Errorf("create agent: connect network %q: %w", n.name, err)
		}
	}
	return res.ID, nil
}

type namedEndpoint struct {
	name     string
	settings *network.EndpointSettings
}

type spec struct {
	config        *ctypes.Config
	host          *ctypes.HostConfig
	networking    *network.NetworkingConfig
	extraNetworks []namedEndpoint
}

// createSpec derives the create request for a replacement of old running
// image. img is the old image's config (nil if unknown).
func createSpec(old ctypes.InspectResponse, img *dockerspec.DockerOCIImageConfig, image string) (spec, error) {
	var cfg ctypes.Config
	if err := deepCopy(old.Config, &cfg); err != nil {
		return spec{}, err
	}
	var host ctypes.HostConfig
	if err := deepCopy(old.HostConfig, &host); err != nil {
		return spec{}, err
	}
	cfg.Image = image
	// The engine names a container's host after its short ID unless told
	// otherwise; like a compose recreate, the new one gets its own.
	if cfg.Hostname == short(old.ID) {
		cfg.Hostname = ""
	}
	if img != nil {
		stripImageDefaults(&cfg, img)
	}
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	cfg.Labels[ComponentLabel] = AgentComponent
	// A container ID file would make the create fail (the old one wrote it).
	host.ContainerIDFile = ""
	carryAnonymousVolumes(&host, old.Mounts)

	s := spec{config: &cfg, host: &host}
	if old.NetworkSettings == nil || host.NetworkMode.IsHost() || host.NetworkMode.IsNone() || host.NetworkMode.IsContainer() {
		return s, nil
	}
	primary := primaryNetwork(host.NetworkMode, old.NetworkSettings.Networks)
	names := slices.Sorted(maps.Keys(old.NetworkSettings.Networks))
	for _, n := range names {
		ep := endpointLike(n, old.NetworkSettings.Networks[n], old.ID)
		if n == primary {
			s.networking = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{n: ep}}
			continue
		}
		s.extraNetworks = append(s.extraNetworks, namedEndpoint{name: n, settings: ep})
	}
	return s, nil
}

// stripImageDefaults removes from cfg what the engine merged in from the
// old image when the old container was created.
func stripImageDefaults(cfg *ctypes.Config, img *dockerspec.DockerOCIImageConfig) {
	cfg.Env = subtract(cfg.Env, img.Env)
	for k, v := range img.Labels {
		if cur, ok := cfg.Labels[k]; ok && cur == v {
			delete(cfg.Labels, k)
		}
	}
	// The engine takes the image's Cmd only when no Entrypoint was given,
	// so Cmd is dropped only together with an inherited Entrypoint or when
	// it is the image's own.
	if slices.Equal(cfg.Entrypoint, img.Entrypoint) {
		cfg.Entrypoint = nil
		if slices.Equal(cfg.Cmd, img.Cmd) {
			cfg.Cmd = nil
		}
	}
	if cfg.Healthcheck != nil && img.Healthcheck != nil && reflect.DeepEqual(*cfg.Healthcheck, *img.Healthcheck) {
		cfg.Healthcheck = nil
	}
	// User is deliberately not stripped: see CreateLike. (An empty user,
	// root by an old image without USER, stays empty: pinning root onto a
	// release could only add privileges.)
	if cfg.WorkingDir == img.WorkingDir {
		cfg.WorkingDir = ""
	}
	if cfg.StopSignal == img.StopSignal {
		cfg.StopSignal = ""
	}
	if slices.Equal(cfg.Shell, img.Shell) {
		cfg.Shell = nil
	}
	for v := range img.Volumes {
		delete(cfg.Volumes, v)
	}
	for p := range img.ExposedPorts {
		pp, err := network.ParsePort(p)
		if err == nil {
			delete(cfg.ExposedPorts, pp)
		}
	}
}

// carryAnonymousVolumes keeps volumes the old container got without naming
// them (image VOLUMEs, anonymous compose volumes): the new container mounts
// the same volumes instead of starting empty.
func carryAnonymousVolumes(host *ctypes.HostConfig, mounts []ctypes.MountPoint) {
	covered := map[string]bool{}
	for _, b := range host.Binds {
		parts := strings.Split(b, ":")
		if len(parts) >= 2 {
			covered[parts[1]] = true
		}
	}
	for _, m := range host.Mounts {
		covered[m.Target] = true
	}
	for dst := range host.Tmpfs {
		covered[dst] = true
	}
	var extra []mount.Mount
	for _, m := range mounts {
		if m.Type != mount.TypeVolume || m.Name == "" || covered[m.Destination] {
			continue
		}
		extra = append(extra, mount.Mount{Type: mount.TypeVolume, Source: m.Name, Target: m.Destination, ReadOnly: !m.RW})
	}
	sort.Slice(extra, func(i, j int) bool { return extra[i].Target < extra[j].Target })
	host.Mounts = append(host.Mounts, extra...)
}

func primaryNetwork(mode ctypes.NetworkMode, nets map[string]*network.EndpointSettings) string {
	switch {
	case mode.IsDefault(), mode.IsBridge():
		return network.NetworkBridge
	}
	name := string(mode)
	if _, ok := nets[name]; ok {
		return name
	}
	// NetworkMode may hold a network ID rather than its name.
	for n, ep := range nets {
		if ep != nil && ep.NetworkID != "" && strings.HasPrefix(ep.NetworkID, name) {
			return n
		}
	}
	return name
}

// endpointLike keeps the operator's choices for one network (aliases,
// static addresses, links, driver options) and drops what the engine
// assigned to the old container (its short-ID alias, addresses, MAC).
func endpointLike(netName string, old *network.EndpointSettings, oldID string) *network.EndpointSettings {
	ep := &network.EndpointSettings{}
	if old == nil {
		return ep
	}
	ep.IPAMConfig = old.IPAMConfig
	ep.Links = old.Links
	ep.DriverOpts = old.DriverOpts
	ep.GwPriority = old.GwPriority
	if netName == network.NetworkBridge {
		return ep // the default bridge rejects aliases
	}
	for _, a := range old.Aliases {
		if a == short(oldID) || a == oldID {
			continue
		}
		ep.Aliases = append(ep.Aliases, a)
	}
	return ep
}

func subtract(list, remove []string) []string {
	if len(list) == 0 {
		return list
	}
	drop := make(map[string]bool, len(remove))
	for _, r := range remove {
		drop[r] = true
	}
	out := make([]string, 0, len(list))
	for _, v := range list {
		if !drop[v] {
			out = append(out, v)
		}
	}
	return out
}

// deepCopy decouples the create request from the inspect result.
func deepCopy(src, dst any) error {
	b, err := json.Marshal(src)
	if err != nil {
		return fmt.Errorf("copy container config: %w", err)
	}
	if err := json.Unmarshal(b, dst); err != nil {
		return fmt.Errorf("copy container config: %w", err)
	}
	return nil
}
