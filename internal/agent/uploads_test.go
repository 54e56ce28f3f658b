package agent_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/outbox"
	"github.com/radarpod/radarpod/internal/radar"
	"github.com/radarpod/radarpod/internal/radartest"
)

// TestBacklogDeliveredExactlyOnceThroughFaults: a backlog buffered before
// the agent started reaches the service with several uploads in flight
// while the service answers some with 503, hangs up on others and delays
// more: every result is stored exactly once, and the outbox ends empty.
func TestBacklogDeliveredExactlyOnceThroughFaults(t *testing.T) {
	const n = 150
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	srv.SetResponder(radartest.EndpointUpload, func(i int) radartest.Reply {
		switch {
		case i%17 == 0:
			return radartest.Reply{Status: 503}
		case i%29 == 0:
			return radartest.Reply{Hangup: true}
		case i%3 == 0:
			return radartest.Reply{Delay: 20 * time.Millisecond} // then stored normally
		}
		return radartest.Reply{}
	})
	dir := t.TempDir()
	box, err := outbox.Open(outbox.Options{Dir: filepath.Join(dir, "outbox"), MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := box.Put(outbox.Record{Runner: "ookla", Style: radar.StyleOokla, Result: ooklaResult(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := box.Close(); err != nil {
		t.Fatal(err)
	}
	p := startPod(t, podOptions{env: map[string]string{"RADAR_SERVER_URL": srv.URL, "RADAR_DATA_DIR": dir, "RADAR_TESTS": "ookla"}})

	ms := waitMeasurements(t, srv, n)
	waitFor(t, "outbox drained", func() bool { return p.metrics.OutboxDepth.Value() == 0 })
	seen := map[string]int{}
	for _, m := range srv.Measurements() {
		if m.Ookla == nil {
			t.Fatalf("upload not parsed as an Ookla result: %v", m.ParseErr)
		}
		seen[m.Ookla.ResultID]++
	}
	for i := range n {
		if c := seen[resultID(i)]; c != 1 {
			t.Errorf("result %d stored %d times", i, c)
		}
	}
	if len(ms) != n || len(seen) != n {
		t.Errorf("%d measurements stored, %d distinct, want %d", len(ms), len(seen), n)
	}
	if failed := len(srv.UploadAttempts()) - n; failed < 5 {
		t.Errorf("only %d failed attempts: the faults were not exercised", failed)
	}
	if got := p.metrics.Uploads.WithLabelValues("ok").Value(); got != n {
		t.Errorf("uploads ok = %v, want %d", got, n)
	}
}

func resultID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }

// ooklaResult is a minimal result the service parses, told apart by
// Ookla's result id as real ones are.
func ooklaResult(i int) []byte {
	return fmt.Appendf(nil, `{"type":"result","timestamp":"2024-05-01T10:00:00Z","ping":{"jitter":0.7,"latency":13.4},`+
		`"download":{"bandwidth":50357709,"bytes":529086852,"elapsed":10616},"upload":{"bandwidth":5899553,"bytes":44203740,"elapsed":7708},`+
		`"packetLoss":0,"result":{"id":%q}}`, resultID(i))
}
