package dockertest

import (
	"context"
	"time"

	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// AgentSpec describes an agent container as docker-compose.yml runs it.
type AgentSpec struct {
	Name  string // container name (use Engine.Name for uniqueness)
	Image string
	// Volume is a named volume mounted at /data.
	Volume string
	// Network is a user-defined network; Alias its DNS alias there.
	Network string
	Alias   string
	// Env adds to the compose-like defaults (standalone agent on
	// 127.0.0.1:9100 with data in /data).
	Env []string
	// Labels add to the compose labels; NotAgent leaves out the agent label.
	Labels   map[string]string
	NotAgent bool
	// User defaults to 65532:65532.
	User string
	// Healthcheck overrides the compose healthcheck (radar-agent
	// healthcheck every second).
	Healthcheck *ctypes.HealthConfig
	// NoStart creates without starting.
	NoStart bool
}

// The agent's limits as docker-compose.yml sets them (mem_limit,
// memswap_limit, pids_limit; TestComposeLimits keeps them equal), so an
// update under test must carry them over as it must in the field.
const (
	ComposeAgentMemory int64 = 256 << 20
	ComposeAgentPids   int64 = 128
)

// ComposeHealthcheck is what docker-compose.yml would set, tightened for
// tests: a check every second, unhealthy after three failures.
func ComposeHealthcheck() *ctypes.HealthConfig {
	return &ctypes.HealthConfig{
		Test:        []string{"CMD", "/radar-agent", "healthcheck"},
		Interval:    time.Second,
		Timeout:     3 * time.Second,
		StartPeriod: 2 * time.Second,
		Retries:     3,
	}
}

// RunAgent creates and starts an agent container configured like the
// compose deployment: named volume, network alias, restart unless-stopped,
// labels, healthcheck, read-only rootfs, cap_drop ALL, no-new-privileges,
// tmpfs /tmp, non-root user, bounded json-file logs, memory (without swap)
// and pids limits. It returns the ID.
func (e *Engine) RunAgent(ctx context.Context, s AgentSpec) string {
	e.t.Helper()
	labels := map[string]string{
		"com.docker.compose.project": e.Prefix,
		"com.docker.compose.service": "agent",
		TestLabel:                    e.Prefix,
	}
	if !s.NotAgent {
		labels[AgentLabel] = AgentComponent
	}
	for k, v := range s.Labels {
		labels[k] = v
	}
	user := s.User
	if user == "" {
		user = "65532:65532"
	}
	hc := s.Healthcheck
	if hc == nil {
		hc = ComposeHealthcheck()
	}
	env := append([]string{
		"RADAR_SERVER_URL=",
		"RADAR_LISTEN_ADDR=127.0.0.1:9100",
		"RADAR_DATA_DIR=/data",
		"RADAR_TESTS_PER_DAY=0.01", // the least the agent accepts: no test during a test
		"RADAR_LOG_FORMAT=json",
	}, s.Env...)
	cfg := &ctypes.Config{
		Image:       s.Image,
		Env:         env,
		Labels:      labels,
		User:        user,
		Healthcheck: hc,
	}
	pids := ComposeAgentPids
	host := &ctypes.HostConfig{
		Resources:      ctypes.Resources{Memory: ComposeAgentMemory, MemorySwap: ComposeAgentMemory, PidsLimit: &pids},
		RestartPolicy:  ctypes.RestartPolicy{Name: ctypes.RestartPolicyUnlessStopped},
		ReadonlyRootfs: true,
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges:true"},
		Tmpfs:          map[string]string{"/tmp": "rw,noexec,nosuid,size=16m"},
		LogConfig:      ctypes.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "1m", "max-file": "2"}},
	}
	if s.Volume != "" {
		host.Binds = []string{s.Volume + ":/data:rw"}
	}
	var netCfg *network.NetworkingConfig
	if s.Network != "" {
		host.NetworkMode = ctypes.NetworkMode(s.Network)
		ep := &network.EndpointSettings{}
		if s.Alias != "" {
			ep.Aliases = []string{s.Alias}
		}
		netCfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{s.Network: ep}}
	}
	res, err := e.API.ContainerCreate(ctx, client.ContainerCreateOptions{Name: s.Name, Config: cfg, HostConfig: host, NetworkingConfig: netCfg})
	must(e.t, err, "create agent %s", s.Name)
	if !s.NoStart {
		_, err = e.API.ContainerStart(ctx, res.ID, client.ContainerStartOptions{})
		must(e.t, err, "start agent %s", s.Name)
	}
	return res.ID
}
