package agent_test

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/radarpod/radarpod/internal/outbox"
	"github.com/radarpod/radarpod/internal/radartest"
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
	if got := testutil.ToFloat64(p.metrics.OutboxEvictions); got != 1 {
		t.Errorf("evictions = %v, want 1 (one 30 KiB record over a 64 KiB bound)", got)
	}
	if got := testutil.ToFloat64(p.metrics.OutboxDepth); got != 2 {
		t.Errorf("outbox depth = %v, want the 2 newest records kept", got)
	}
	if len(srv.Measurements()) != 0 {
		t.Error("a refused upload was stored")
	}
}
