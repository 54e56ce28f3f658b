package agent_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/ooklatest"
	"github.com/radarpod/radarpod/internal/outbox"
	"github.com/radarpod/radarpod/internal/radartest"
	"github.com/radarpod/radarpod/internal/speedtest/ookla"
	"github.com/radarpod/radarpod/internal/wallclock"
)

// TestEvictionsAreCountedOnceAcrossRestarts fills an outbox beyond the
// bound a restarted agent is configured with: the eviction at open is
// counted once in metrics, the rest stays queued (the service is failing).
func TestEvictionsAreCountedOnceAcrossRestarts(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	srv.SetUploadResponder(func(int) (int, time.Duration) { return 503, 0 })
	dir := t.TempDir()
	box, err := outbox.Open(outbox.Options{Dir: filepath.Join(dir, "outbox"), MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := box.Put(outbox.Record{Runner: "ookla", Style: "OOKLA", Result: bytes.Repeat([]byte{'x'}, 30<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := box.Close(); err != nil {
		t.Fatal(err)
	}
	p := startPod(t, podOptions{env: map[string]string{
		"RADAR_SERVER_URL": srv.URL, "RADAR_DATA_DIR": dir, "RADAR_TESTS": "ookla", "RADAR_OUTBOX_MAX_BYTES": "64KiB",
	}})
	waitFor(t, "upload attempts", func() bool { return len(srv.UploadAttempts()) > 0 })
	if got := p.metrics.OutboxEvictions.Value(); got != 1 {
		t.Errorf("evictions = %v, want 1 (one 30 KiB record over a 64 KiB bound)", got)
	}
	if got := p.metrics.OutboxDepth.Value(); got != 2 {
		t.Errorf("outbox depth = %v, want the 2 newest records kept", got)
	}
	if len(srv.Measurements()) != 0 {
		t.Error("a refused upload was stored")
	}
}

// On balena the agent holds the supervisor's update lock during a test, so
// a release never restarts it mid-measurement, and leaves announcements to
// the fleet's releases.
func TestBalenaUpdateLockIsHeldDuringATest(t *testing.T) {
	t.Setenv("BALENA", "1")
	lock := handoff.BalenaLockFile
	if _, err := os.Stat(filepath.Dir(lock)); os.IsNotExist(err) {
		t.Cleanup(func() { os.Remove(filepath.Dir(lock)) })
	}
	t.Cleanup(func() { os.Remove(lock) })
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	fake := ooklatest.Install(t, t.TempDir(), ooklatest.ModeResult)
	gate := &gatedRunner{Runner: ookla.New(ookla.Options{Bin: fake}), started: make(chan struct{}), release: make(chan struct{})}
	srv.SetPendingTest(true)
	p := startPod(t, podOptions{
		env:     map[string]string{"RADAR_SERVER_URL": srv.URL, "RADAR_TESTS": "ookla"},
		runners: func(config.Agent) []agent.Runner { return []agent.Runner{gate} },
	})
	select {
	case <-gate.started:
	case <-time.After(wait):
		t.Fatal("test never started")
	}
	for _, path := range []string{lock, filepath.Join(p.cfg.DataDir, handoff.TestLockFile)} {
		if active, info, err := handoff.LockActive(path, wallclock.Now(), time.Hour); !active || err != nil || info.Holder != "ookla" {
			t.Fatalf("%s during a test: active=%v holder=%q err=%v", path, active, info.Holder, err)
		}
	}
	close(gate.release)
	waitFor(t, "the test to end", func() bool { return len(p.results()) == 1 })
	waitFor(t, "the lock to be released", func() bool {
		_, err := os.Stat(lock)
		return os.IsNotExist(err)
	})
	srv.SendVersionChanged("99.0.0", "/client_versions/99.0.0/distributions/linux-arm64/download")
	waitFor(t, "the announcement to be logged", func() bool { return strings.Contains(p.logs.String(), "fleet's release decides") })
	if _, ok, _ := handoff.ReadRequest(p.cfg.DataDir); ok {
		t.Fatal("an update request was written on balena, where no updater reads it")
	}
}
