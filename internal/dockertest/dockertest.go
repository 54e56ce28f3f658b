// Package dockertest starts real things on the local Docker engine for
// tests: FROM-scratch images of a host-built static agent binary, named
// volumes, networks, and an agent container run the way docker-compose runs
// it. Everything it creates carries a per-test label and is removed when
// the test ends. A missing engine fails the test loudly; it never skips.
package dockertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// TestLabel marks every object a test creates; its value is the test's prefix.
const TestLabel = "io.radarpod.test"

// Engine is one test's handle on the Docker engine.
type Engine struct {
	API *client.Client
	// Prefix is unique per test; names and labels derive from it.
	Prefix string
	t      testing.TB
}

// New connects to the engine (DOCKER_HOST or the local socket) and
// registers cleanup of everything labelled with this test's prefix.
func New(t testing.TB) *Engine {
	t.Helper()
	api, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatalf("dockertest: Docker client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := api.Ping(ctx, client.PingOptions{}); err != nil {
		t.Fatalf("dockertest: these tests need a running Docker engine (DOCKER_HOST=%q, default unix:///var/run/docker.sock): %v",
			os.Getenv("DOCKER_HOST"), err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	e := &Engine{API: api, Prefix: "rpt" + hex.EncodeToString(b), t: t}
	t.Cleanup(func() {
		e.cleanup()
		api.Close()
	})
	return e
}

// Name returns a name unique to this test.
func (e *Engine) Name(s string) string { return e.Prefix + "-" + s }

// Labels returns the label set that marks an object as this test's.
func (e *Engine) Labels() map[string]string { return map[string]string{TestLabel: e.Prefix} }

func (e *Engine) filter() client.Filters {
	return make(client.Filters).Add("label", TestLabel+"="+e.Prefix)
}

func (e *Engine) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs, err := e.API.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: e.filter()})
	if err != nil {
		e.t.Errorf("dockertest cleanup: list containers: %v", err)
	}
	for _, c := range cs.Items {
		if _, err := e.API.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			e.t.Errorf("dockertest cleanup: remove container %s: %v", c.ID[:12], err)
		}
	}
	ns, err := e.API.NetworkList(ctx, client.NetworkListOptions{Filters: e.filter()})
	if err == nil {
		for _, n := range ns.Items {
			if _, err := e.API.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
				e.t.Errorf("dockertest cleanup: remove network %s: %v", n.Name, err)
			}
		}
	}
	vs, err := e.API.VolumeList(ctx, client.VolumeListOptions{Filters: e.filter()})
	if err == nil {
		for _, v := range vs.Items {
			if _, err := e.API.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
				e.t.Errorf("dockertest cleanup: remove volume %s: %v", v.Name, err)
			}
		}
	}
	is, err := e.API.ImageList(ctx, client.ImageListOptions{All: true, Filters: e.filter()})
	if err == nil {
		for _, img := range is.Items {
			if _, err := e.API.ImageRemove(ctx, img.ID, client.ImageRemoveOptions{Force: true, PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
				e.t.Logf("dockertest cleanup: remove image %s: %v", img.ID, err)
			}
		}
	}
}

// Volume creates a named volume owned by uid:gid and returns its name and
// its path on the host, which a test (running as root beside the engine)
// uses as the data directory the agent container sees at /data.
func (e *Engine) Volume(ctx context.Context, name string, uid, gid int) (string, string) {
	e.t.Helper()
	res, err := e.API.VolumeCreate(ctx, client.VolumeCreateOptions{Name: e.Name(name), Labels: e.Labels()})
	if err != nil {
		e.t.Fatalf("dockertest: create volume: %v", err)
	}
	mp := res.Volume.Mountpoint
	if err := os.Chown(mp, uid, gid); err != nil {
		e.t.Fatalf("dockertest: chown volume %s (tests must run as root beside the engine): %v", mp, err)
	}
	return res.Volume.Name, mp
}

// Network creates a user-defined bridge network and returns its name.
func (e *Engine) Network(ctx context.Context, name string) string {
	e.t.Helper()
	n := e.Name(name)
	if _, err := e.API.NetworkCreate(ctx, n, client.NetworkCreateOptions{Driver: "bridge", Labels: e.Labels()}); err != nil {
		e.t.Fatalf("dockertest: create network: %v", err)
	}
	return n
}

// Inspect returns the raw inspect of a container, failing the test if it
// cannot.
func (e *Engine) Inspect(ctx context.Context, idOrName string) ctypes.InspectResponse {
	e.t.Helper()
	res, err := e.API.ContainerInspect(ctx, idOrName, client.ContainerInspectOptions{})
	if err != nil {
		e.t.Fatalf("dockertest: inspect %s: %v", idOrName, err)
	}
	return res.Container
}

// Containers lists this test's containers (running or not), by name.
func (e *Engine) Containers(ctx context.Context) map[string]ctypes.Summary {
	e.t.Helper()
	cs, err := e.API.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: e.filter()})
	if err != nil {
		e.t.Fatalf("dockertest: list containers: %v", err)
	}
	out := map[string]ctypes.Summary{}
	for _, c := range cs.Items {
		for _, n := range c.Names {
			out[strings.TrimPrefix(n, "/")] = c
		}
	}
	return out
}

// ImageExists reports whether the engine has an image with this ID or reference.
func (e *Engine) ImageExists(ctx context.Context, ref string) bool {
	e.t.Helper()
	_, err := e.API.ImageInspect(ctx, ref)
	if err != nil && !cerrdefs.IsNotFound(err) {
		e.t.Fatalf("dockertest: inspect image %s: %v", ref, err)
	}
	return err == nil
}

// WaitHealthy waits (generously) for a container to be healthy and fails
// the test with its last healthcheck output otherwise.
func (e *Engine) WaitHealthy(ctx context.Context, id string, within time.Duration) {
	e.t.Helper()
	deadline := time.Now().Add(within)
	for {
		c := e.Inspect(ctx, id)
		if c.State.Health != nil && c.State.Health.Status == ctypes.Healthy {
			return
		}
		if time.Now().After(deadline) || (!c.State.Running && c.State.Status != ctypes.StateCreated) {
			out := ""
			if h := c.State.Health; h != nil && len(h.Log) > 0 {
				out = h.Log[len(h.Log)-1].Output
			}
			e.t.Fatalf("dockertest: container %s not healthy (state %s): %s", c.Name, c.State.Status, out)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func must(t testing.TB, err error, what string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("dockertest: "+what+": %v", append(args, err)...)
	}
}
