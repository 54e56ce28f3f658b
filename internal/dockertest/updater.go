package dockertest

import (
	"context"
	"maps"
	"strconv"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/registrytest"
)

// UpdaterComponent is the updater's component label and image title.
const UpdaterComponent = "radar-updater"

// UpdaterImage is the FROM-scratch image the release Dockerfile makes for
// the updater, around a host-built static radar-updater binary: the
// binary as /radar-updater (command "run"), the pinned root at
// /etc/radar/root-ca.pem, non-root, RADAR_DATA_DIR=/data, a healthcheck
// running `radar-updater healthcheck` every second (tests need it fast).
// files adds more (a CA for a test CRL host, say).
func UpdaterImage(binary string, rootPEM []byte, files map[string][]byte) registrytest.ImageSpec {
	all := map[string][]byte{"/etc/radar/root-ca.pem": rootPEM}
	maps.Copy(all, files)
	return registrytest.ImageSpec{
		HostFiles:  map[string]string{"/radar-updater": binary},
		Files:      all,
		Entrypoint: []string{"/radar-updater"},
		Cmd:        []string{"run"},
		User:       "65532:65532",
		Env:        []string{"RADAR_DATA_DIR=/data", "RADAR_ROOT_CA_FILE=/etc/radar/root-ca.pem"},
		Labels:     map[string]string{TitleLabel: UpdaterComponent},
		Healthcheck: &v1.HealthConfig{
			Test:        []string{"CMD", "/radar-updater", "healthcheck"},
			Interval:    time.Second,
			Timeout:     3 * time.Second,
			StartPeriod: 2 * time.Second,
			Retries:     3,
		},
	}
}

// UpdaterSpec describes an updater container as docker-compose.yml runs it.
type UpdaterSpec struct {
	Name  string
	Image string
	// Volumes maps each named volume docker-compose.yml mounts into the
	// updater ("radar-data", "radar-updater-state") to the test's volume
	// (Engine.Volume) standing in for it. The mounts themselves (targets,
	// the Docker socket) are the compose file's.
	Volumes map[string]string
	// Env is the updater's settings (the image sets RADAR_DATA_DIR and
	// RADAR_ROOT_CA_FILE; compose sets nothing else by default).
	Env []string
}

// RunUpdater creates and starts an updater container configured like the
// compose deployment — the compose file's mounts, the Docker socket's
// group, non-root, read-only rootfs, cap_drop ALL, no-new-privileges,
// restart unless-stopped — with one difference: host networking, as the
// end-to-end test gives it, because the test registry and CRL host listen
// on this machine's loopback (the engine pulls over plain HTTP only from
// 127.0.0.0/8). It returns the ID.
func (e *Engine) RunUpdater(ctx context.Context, s UpdaterSpec) string {
	e.t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat("/var/run/docker.sock", &st); err != nil {
		e.t.Fatalf("dockertest: the updater needs the Docker socket: %v", err)
	}
	cfg := &ctypes.Config{
		Image: s.Image,
		Env:   s.Env,
		User:  "65532:65532",
		Labels: map[string]string{
			"com.docker.compose.project": e.Prefix,
			"com.docker.compose.service": "updater",
			AgentLabel:                   UpdaterComponent,
			TestLabel:                    e.Prefix,
		},
	}
	host := &ctypes.HostConfig{
		Binds:          composeBinds(e.t, "updater", s.Volumes),
		GroupAdd:       []string{strconv.Itoa(int(st.Gid))},
		NetworkMode:    "host",
		RestartPolicy:  ctypes.RestartPolicy{Name: ctypes.RestartPolicyUnlessStopped},
		ReadonlyRootfs: true,
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges:true"},
		LogConfig:      ctypes.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "4m", "max-file": "2"}},
	}
	res, err := e.API.ContainerCreate(ctx, client.ContainerCreateOptions{Name: s.Name, Config: cfg, HostConfig: host})
	must(e.t, err, "create updater %s", s.Name)
	_, err = e.API.ContainerStart(ctx, res.ID, client.ContainerStartOptions{})
	must(e.t, err, "start updater %s", s.Name)
	return res.ID
}

// CheckAgentMounts fails the test unless docker-compose.yml gives the agent
// exactly what RunAgent gives it: the data volume at /data. Tests that
// attack from inside the agent rely on it.
func CheckAgentMounts(t testing.TB) {
	t.Helper()
	ms := ComposeMounts(t, "agent")
	if len(ms) != 1 || !ms[0].Named || ms[0].Target != "/data" || ms[0].ReadOnly {
		t.Fatalf("dockertest: docker-compose.yml gives the agent %+v; RunAgent mounts only a data volume at /data: update RunAgent", ms)
	}
}

// HostileBinary builds (once per process) the tool a compromised agent
// would run: see testdata/hostileagent.
func HostileBinary(t testing.TB) string {
	t.Helper()
	return proctest.Build(t, "./internal/dockertest/testdata/hostileagent")
}

// HostileAgentImage is AgentImage with the hostile tool at /hostile: the
// real agent, as someone who took it over (through the network it faces,
// or the proprietary Ookla CLI it runs) could extend it. The tool runs with
// `Engine.Exec(ctx, id, "", env, "/hostile", ...)`: the agent's uid,
// mounts and (no) capabilities.
func HostileAgentImage(agentBinary, hostileBinary, version string) registrytest.ImageSpec {
	spec := AgentImage(agentBinary, version)
	spec.HostFiles = maps.Clone(spec.HostFiles)
	spec.HostFiles["/hostile"] = hostileBinary
	return spec
}
