package container

import (
	"reflect"
	"testing"

	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const oldID = "4c0af2d76c49aa1f3c6e8d1e0b7c2a9f4c0af2d76c49aa1f3c6e8d1e0b7c2a9f"

// oldAgent is an inspect of an agent created by compose from an image with
// its own env, labels, healthcheck, user and VOLUME.
func oldAgent() ctypes.InspectResponse {
	return ctypes.InspectResponse{
		ID: oldID,
		Config: &ctypes.Config{
			Hostname:   oldID[:12],
			User:       "65532:65532",
			Env:        []string{"PATH=/", "IMAGE_ONLY=1", "RADAR_POD_NAME=bench-7"},
			Entrypoint: []string{"/radar-agent"},
			Cmd:        []string{"run"},
			Image:      "ghcr.io/radarpod/radar-agent:1.0.0",
			Labels: map[string]string{
				"org.opencontainers.image.version": "1.0.0",
				"com.docker.compose.service":       "agent",
				ComponentLabel:                     AgentComponent,
			},
			Healthcheck: &ctypes.HealthConfig{Test: []string{"CMD", "/radar-agent", "healthcheck"}},
			Volumes:     map[string]struct{}{"/cache": {}},
		},
		HostConfig: &ctypes.HostConfig{
			Binds:           []string{"radar_data:/data:rw"},
			NetworkMode:     "radar_default",
			RestartPolicy:   ctypes.RestartPolicy{Name: ctypes.RestartPolicyUnlessStopped},
			ReadonlyRootfs:  true,
			CapDrop:         []string{"ALL"},
			SecurityOpt:     []string{"no-new-privileges:true"},
			Tmpfs:           map[string]string{"/tmp": "size=16m"},
			ContainerIDFile: "/run/agent.cid",
		},
		Mounts: []ctypes.MountPoint{
			{Type: mount.TypeVolume, Name: "radar_data", Destination: "/data", RW: true},
			{Type: mount.TypeVolume, Name: "0f3e9a", Destination: "/cache", RW: true},
		},
		NetworkSettings: &ctypes.NetworkSettings{Networks: map[string]*network.EndpointSettings{
			"radar_default": {Aliases: []string{"agent", oldID[:12]}, NetworkID: "n1", MacAddress: network.HardwareAddr{2, 66, 172, 17, 0, 2}},
			"radar_probe":   {Aliases: []string{"probe", oldID[:12]}, NetworkID: "n2"},
		}},
	}
}

func oldImage() *dockerspec.DockerOCIImageConfig {
	return &dockerspec.DockerOCIImageConfig{
		ImageConfig: ocispec.ImageConfig{
			User:       "65532:65532",
			Env:        []string{"PATH=/", "IMAGE_ONLY=1"},
			Entrypoint: []string{"/radar-agent"},
			Cmd:        []string{"run"},
			Labels:     map[string]string{"org.opencontainers.image.version": "1.0.0", "com.docker.compose.service": "other"},
			Volumes:    map[string]struct{}{"/cache": {}},
		},
		DockerOCIImageConfigExt: dockerspec.DockerOCIImageConfigExt{
			Healthcheck: &dockerspec.HealthcheckConfig{Test: []string{"CMD", "/radar-agent", "healthcheck"}},
		},
	}
}

func TestCreateSpecKeepsWhatTheOperatorChoseAndDropsWhatTheImageGave(t *testing.T) {
	old := oldAgent()
	s, err := createSpec(old, oldImage(), "ghcr.io/radarpod/radar-agent@sha256:abc")
	if err != nil {
		t.Fatal(err)
	}
	c, h := s.config, s.host
	check := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", what, got, want)
		}
	}
	check("Image", c.Image, "ghcr.io/radarpod/radar-agent@sha256:abc")
	check("Env", c.Env, []string{"RADAR_POD_NAME=bench-7"})
	// The compose label differs from the image's, so it was the operator's.
	check("Labels", c.Labels, map[string]string{"com.docker.compose.service": "agent", ComponentLabel: AgentComponent})
	check("Entrypoint", c.Entrypoint, []string(nil))
	check("Cmd", c.Cmd, []string(nil))
	check("Healthcheck", c.Healthcheck, (*ctypes.HealthConfig)(nil))
	// The user stays even though it is the old image's default: the data
	// volume belongs to that uid, whatever USER the new image names.
	check("User", c.User, "65532:65532")
	check("Hostname", c.Hostname, "")
	check("Volumes", c.Volumes, map[string]struct{}{})
	check("ContainerIDFile", h.ContainerIDFile, "")
	check("RestartPolicy", h.RestartPolicy, old.HostConfig.RestartPolicy)
	check("ReadonlyRootfs", h.ReadonlyRootfs, true)
	check("CapDrop", h.CapDrop, []string{"ALL"})
	check("SecurityOpt", h.SecurityOpt, []string{"no-new-privileges:true"})
	check("Tmpfs", h.Tmpfs, map[string]string{"/tmp": "size=16m"})
	check("Binds", h.Binds, []string{"radar_data:/data:rw"})
	// The image VOLUME's anonymous volume follows the agent.
	check("Mounts", h.Mounts, []mount.Mount{{Type: mount.TypeVolume, Source: "0f3e9a", Target: "/cache"}})
	check("primary network", s.networking.EndpointsConfig, map[string]*network.EndpointSettings{"radar_default": {Aliases: []string{"agent"}}})
	if len(s.extraNetworks) != 1 || s.extraNetworks[0].name != "radar_probe" || !reflect.DeepEqual(s.extraNetworks[0].settings.Aliases, []string{"probe"}) {
		t.Errorf("extra networks = %+v", s.extraNetworks)
	}
	// The inspect result is not aliased by the request.
	s.config.Env[0] = "CHANGED=1"
	if old.Config.Env[2] != "RADAR_POD_NAME=bench-7" {
		t.Error("createSpec shares memory with the inspect result")
	}
}

func TestCreateSpecKeepsExplicitChoicesThatMatchNothingInTheImage(t *testing.T) {
	old := oldAgent()
	old.Config.Hostname = "pod-7"
	old.Config.User = "1000"
	old.Config.Cmd = []string{"run", "--verbose"}
	old.Config.Healthcheck = &ctypes.HealthConfig{Test: []string{"NONE"}}
	s, err := createSpec(old, oldImage(), "img@sha256:abc")
	if err != nil {
		t.Fatal(err)
	}
	if s.config.Hostname != "pod-7" || s.config.User != "1000" || !reflect.DeepEqual(s.config.Cmd, []string{"run", "--verbose"}) ||
		s.config.Healthcheck == nil || s.config.Healthcheck.Test[0] != "NONE" {
		t.Errorf("operator choices lost: %+v", s.config)
	}
}

func TestCreateSpecWithoutTheOldImageCopiesEverything(t *testing.T) {
	old := oldAgent()
	s, err := createSpec(old, nil, "img@sha256:abc")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.config.Env, old.Config.Env) || s.config.Healthcheck == nil {
		t.Errorf("config = %+v", s.config)
	}
}

func TestCreateSpecNetworkModes(t *testing.T) {
	for _, mode := range []ctypes.NetworkMode{"host", "none", "container:" + oldID} {
		old := oldAgent()
		old.HostConfig.NetworkMode = mode
		s, err := createSpec(old, nil, "img@sha256:abc")
		if err != nil {
			t.Fatal(err)
		}
		if s.networking != nil || s.extraNetworks != nil || s.host.NetworkMode != mode {
			t.Errorf("%s: networking %+v extra %+v", mode, s.networking, s.extraNetworks)
		}
	}
	old := oldAgent()
	old.HostConfig.NetworkMode = "default"
	old.NetworkSettings.Networks = map[string]*network.EndpointSettings{"bridge": {Aliases: []string{"x"}}}
	s, _ := createSpec(old, nil, "img@sha256:abc")
	if ep := s.networking.EndpointsConfig["bridge"]; ep == nil || ep.Aliases != nil {
		t.Errorf("default bridge: %+v (aliases are rejected there)", s.networking)
	}
}
