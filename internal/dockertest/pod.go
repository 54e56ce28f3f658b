package dockertest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/registrytest"
	"github.com/radarpod/radarpod/internal/release"
	"github.com/radarpod/radarpod/internal/release/releasetest"
)

// Pod is a whole pod on the engine, as docker-compose.yml deploys it: the
// agent container and the updater container (a host-built radar-updater in
// a FROM-scratch image), each with the mounts the compose file gives it,
// named volumes standing in for the file's, a loopback registry of signed
// agent releases and a release PKI with its CRL host. Every agent release
// carries the hostile tool (HostileAgentImage), so a test can attack the
// updater from inside the agent's container: the agent's uid, mounts and
// capabilities, nothing more.
type Pod struct {
	t   testing.TB
	ctx context.Context
	Eng *Engine
	PKI *releasetest.PKI
	// Repo is RADAR_AGENT_IMAGE.
	Repo string
	// DataVolume and StateVolume stand in for radar-data and
	// radar-updater-state; DataDir and StateDir are where they are on this
	// machine (the test runs as root beside the engine).
	DataVolume, DataDir    string
	StateVolume, StateDir  string
	AgentName, UpdaterName string
	// UpdaterID is the running updater container.
	UpdaterID string

	agent, hostile, updater string
	registry                string
}

// NewPod prepares the pod's registry, PKI, volumes and binaries; RunAgent
// and StartUpdater start its containers.
func NewPod(t testing.TB) *Pod {
	t.Helper()
	CheckAgentMounts(t)
	ctx := t.Context()
	e := New(t)
	p := &Pod{t: t, ctx: ctx, Eng: e, PKI: releasetest.NewPKI(t)}
	p.registry = registrytest.StartDistribution(t)
	p.Repo = p.registry + "/" + e.Prefix + "/radar-agent"
	p.DataVolume, p.DataDir = e.Volume(ctx, "data", 65532, 65532)
	p.StateVolume, p.StateDir = e.Volume(ctx, "updater-state", 65532, 65532)
	p.AgentName, p.UpdaterName = e.Name("radar-agent"), e.Name("radar-updater")
	p.agent = proctest.Build(t, "./cmd/radar-agent")
	p.hostile = HostileBinary(t)
	p.updater = proctest.Build(t, "./cmd/radar-updater")
	return p
}

// Release publishes agent version (the real agent, with the hostile tool)
// signed by signer (nil: the PKI's own signer) and returns repo@digest.
func (p *Pod) Release(version string, signer *release.Identity) string {
	p.t.Helper()
	ref := p.Repo + "@" + p.Eng.Publish(p.ctx, p.Repo+":"+version, HostileAgentImage(p.agent, p.hostile, version))
	p.PKI.Sign(p.ctx, signer, p.Repo+":"+version)
	return ref
}

// AgentImage is the image Release publishes for version (the real agent
// with the hostile tool), for a test to publish unsigned or elsewhere.
func (p *Pod) AgentImage(version string) registrytest.ImageSpec {
	return HostileAgentImage(p.agent, p.hostile, version)
}

// Publish pushes an unsigned image to repo:tag (any repository of the
// pod's registry) and returns repo@digest.
func (p *Pod) Publish(repo, tag string, spec registrytest.ImageSpec) string {
	p.t.Helper()
	if !strings.Contains(repo, "/") {
		repo = p.registry + "/" + p.Eng.Prefix + "/" + repo
	}
	return repo + "@" + p.Eng.Publish(p.ctx, repo+":"+tag, spec)
}

// RunAgent starts the agent from ref as compose does and waits until it
// is healthy.
func (p *Pod) RunAgent(ref string) string {
	p.t.Helper()
	p.Eng.Pull(p.ctx, ref)
	id := p.Eng.RunAgent(p.ctx, AgentSpec{Name: p.AgentName, Image: ref, Volume: p.DataVolume})
	p.Eng.WaitHealthy(p.ctx, id, 2*time.Minute)
	return id
}

// StartUpdater starts the updater container as compose does (see
// RunUpdater), managing the agent, with env added to its settings, and
// waits until Docker calls it healthy.
func (p *Pod) StartUpdater(env ...string) {
	p.t.Helper()
	crlCA := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.PKI.CRL.Server().Certificate().Raw})
	ref := p.Publish("radar-updater", "test", UpdaterImage(p.updater, p.PKI.RootPEM, map[string][]byte{"/etc/radar/crl-host-ca.pem": crlCA}))
	p.Eng.Pull(p.ctx, ref)
	p.UpdaterID = p.Eng.RunUpdater(p.ctx, UpdaterSpec{
		Name: p.UpdaterName, Image: ref,
		Volumes: map[string]string{"radar-data": p.DataVolume, "radar-updater-state": p.StateVolume},
		Env: append([]string{
			"RADAR_AGENT_CONTAINER=" + p.AgentName,
			"RADAR_AGENT_IMAGE=" + p.Repo,
			"RADAR_CRL_URL=" + p.PKI.CRL.URL(),
			// The CRL host's certificate plays the system roots GCS's
			// would be.
			"SSL_CERT_FILE=/etc/radar/crl-host-ca.pem",
			"RADAR_HEALTH_TIMEOUT=45s",
			"RADAR_TEST_TIMEOUT=5s",
			"RADAR_LOG_LEVEL=debug",
			"RADAR_LOG_FORMAT=text",
		}, env...),
	})
	p.t.Cleanup(func() {
		if p.t.Failed() {
			p.t.Logf("updater logs:\n%s", p.UpdaterLogs())
		}
	})
	p.Eng.WaitHealthy(p.ctx, p.UpdaterID, 2*time.Minute)
}

// UpdaterLogs is what the updater container logged.
func (p *Pod) UpdaterLogs() string { return p.Eng.Logs(context.WithoutCancel(p.ctx), p.UpdaterID) }

// Request writes an update request for version into the data volume, as
// the agent does when the service announces it.
func (p *Pod) Request(version string) {
	p.t.Helper()
	if err := handoff.WriteRequest(p.DataDir, handoff.Request{Version: version, Source: "channel", RequestedAt: time.Now().UTC()}); err != nil {
		p.t.Fatal(err)
	}
	// Owned by the agent's uid, as the agent's own write leaves it.
	if err := os.Chown(filepath.Join(p.DataDir, handoff.RequestFile), 65532, 65532); err != nil {
		p.t.Fatal(err)
	}
}

// WaitStatus waits (generously) for the updater's status to satisfy pred.
func (p *Pod) WaitStatus(what string, pred func(handoff.Status) bool) handoff.Status {
	p.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	var last handoff.Status
	for time.Now().Before(deadline) {
		st, ok, err := handoff.ReadStatus(p.DataDir)
		if ok && err == nil {
			last = st
			if pred(st) {
				return st
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("dockertest: no update status %s; last %+v", what, last)
	return last
}

// WaitOutcome waits for the end of the attempt at version: succeeded or a
// failure.
func (p *Pod) WaitOutcome(version string) handoff.Status {
	p.t.Helper()
	return p.WaitStatus("outcome of "+version, func(s handoff.Status) bool {
		return s.ToVersion == version && (s.State == handoff.StateSucceeded || s.State.Failure())
	})
}

// Agent returns the running agent container's ID and version.
func (p *Pod) Agent() (id, version string) {
	p.t.Helper()
	c := p.Eng.Inspect(p.ctx, p.AgentName)
	img, err := p.Eng.API.ImageInspect(p.ctx, c.Image)
	must(p.t, err, "inspect the agent's image")
	return c.ID, img.Config.Labels[VersionLabel]
}

// Attack runs the hostile tool inside the running agent container (see
// testdata/hostileagent), content passed as $HOSTILE_CONTENT, and returns
// whether the kernel let it do it and what it said.
func (p *Pod) Attack(content []byte, args ...string) (bool, string) {
	p.t.Helper()
	env := []string{"HOSTILE_CONTENT=" + base64.StdEncoding.EncodeToString(content)}
	code, out := p.Eng.Exec(p.ctx, p.AgentName, "", env, append([]string{"/hostile"}, args...)...)
	if code == 2 {
		p.t.Fatalf("dockertest: hostile %v: %s", args, out)
	}
	return code == 0, strings.TrimSpace(out)
}

// StateSnapshot maps each file of the updater's state volume (as this
// machine sees the volume, whatever the updater container sees) to a hash
// of its content; the heartbeat, touched every few seconds, is left out.
func (p *Pod) StateSnapshot() map[string]string {
	p.t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(p.StateDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(d.Name(), ".alive") {
			return err
		}
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		rel, _ := filepath.Rel(p.StateDir, path)
		out[rel] = hex.EncodeToString(sum[:8])
		return nil
	})
	must(p.t, err, "read the updater's state volume")
	return out
}
