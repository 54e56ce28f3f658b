package dockertest

import (
	"context"
	"fmt"
	"reflect"
	"slices"

	ctypes "github.com/moby/moby/api/types/container"
)

// DiffAgentConfig compares, field by field, what an operator configured on
// two containers (inspects of the agent before and after a replacement)
// and returns the differences, empty when none. What each container got from its own
// image (env defaults, labels such as the version) is set aside first, so
// two releases with different image metadata compare equal; so are the
// engine's per-container values (short-ID hostname and alias).
func (e *Engine) DiffAgentConfig(ctx context.Context, old, cur ctypes.InspectResponse) []string {
	e.t.Helper()
	oldOwn, curOwn := e.operatorConfig(ctx, old), e.operatorConfig(ctx, cur)
	var diffs []string
	eq := func(field string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			diffs = append(diffs, fmt.Sprintf("%s: old %#v, new %#v", field, a, b))
		}
	}
	eq("Env", oldOwn.env, curOwn.env)
	eq("Labels", oldOwn.labels, curOwn.labels)
	eq("User", old.Config.User, cur.Config.User)
	eq("Healthcheck", old.Config.Healthcheck, cur.Config.Healthcheck)
	eq("Entrypoint", old.Config.Entrypoint, cur.Config.Entrypoint)
	eq("Cmd", old.Config.Cmd, cur.Config.Cmd)
	eq("Hostname", oldOwn.hostname, curOwn.hostname)
	eq("Domainname", old.Config.Domainname, cur.Config.Domainname)
	eq("WorkingDir", old.Config.WorkingDir, cur.Config.WorkingDir)
	eq("StopSignal", old.Config.StopSignal, cur.Config.StopSignal)
	eq("StopTimeout", old.Config.StopTimeout, cur.Config.StopTimeout)
	eq("Volumes", old.Config.Volumes, cur.Config.Volumes)
	eq("ExposedPorts", old.Config.ExposedPorts, cur.Config.ExposedPorts)
	eq("Tty", old.Config.Tty, cur.Config.Tty)
	// The whole HostConfig: restart policy, read-only rootfs, capabilities,
	// security options, tmpfs, binds, log config, resources, network mode.
	eq("HostConfig", old.HostConfig, cur.HostConfig)
	eq("Mounts", mounts(old.Mounts), mounts(cur.Mounts))
	eq("Networks", networks(old), networks(cur))
	return diffs
}

type ownConfig struct {
	env      []string
	labels   map[string]string
	hostname string
}

func (e *Engine) operatorConfig(ctx context.Context, c ctypes.InspectResponse) ownConfig {
	e.t.Helper()
	img, err := e.API.ImageInspect(ctx, c.Image)
	must(e.t, err, "inspect image of %s", c.Name)
	var o ownConfig
	imgEnv := map[string]bool{}
	imgLabels := map[string]string{}
	if img.Config != nil {
		for _, v := range img.Config.Env {
			imgEnv[v] = true
		}
		imgLabels = img.Config.Labels
	}
	for _, v := range c.Config.Env {
		if !imgEnv[v] {
			o.env = append(o.env, v)
		}
	}
	o.labels = map[string]string{}
	for k, v := range c.Config.Labels {
		if iv, ok := imgLabels[k]; !ok || iv != v {
			o.labels[k] = v
		}
	}
	o.hostname = c.Config.Hostname
	if o.hostname == c.ID[:12] {
		o.hostname = "(engine-assigned)"
	}
	return o
}

func mounts(ms []ctypes.MountPoint) []string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%s %s:%s mode=%q rw=%v", m.Type, m.Name, m.Destination, m.Mode, m.RW))
	}
	slices.Sort(out)
	return out
}

// networks maps each network to the aliases the operator chose (the engine
// adds the container's short ID and hostname itself).
func networks(c ctypes.InspectResponse) map[string][]string {
	out := map[string][]string{}
	for n, ep := range c.NetworkSettings.Networks {
		as := []string{}
		for _, a := range ep.Aliases {
			if a != c.ID[:12] && a != c.Config.Hostname {
				as = append(as, a)
			}
		}
		slices.Sort(as)
		if ep.IPAMConfig != nil {
			as = append(as, fmt.Sprintf("ipam=%v", *ep.IPAMConfig))
		}
		out[n] = as
	}
	return out
}
