//go:build linux

package agent_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/ooklatest"
	"github.com/radarpod/radarpod/internal/outbox"
	"github.com/radarpod/radarpod/internal/radar"
	"github.com/radarpod/radarpod/internal/radartest"
	"github.com/radarpod/radarpod/internal/speedtest/ookla"
)

// TestUnreadableResultIsDeliveredOnceReadable: a result file the agent
// cannot read (EACCES even for root: a write-only sysfs attribute is bound
// over it, as a changed owner would do to the pod's non-root agent) holds
// back nothing behind it, is counted in radar_outbox_unreadable_total and
// is neither evicted nor quarantined; once readable it is delivered on the
// uploader's next walk (here woken by a new result), exactly once.
func TestUnreadableResultIsDeliveredOnceReadable(t *testing.T) {
	const eacces = "/sys/bus/platform/uevent"
	if _, err := os.ReadFile(eacces); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("reading %s gave %v, want EACCES: the mechanism does not work here", eacces, err)
	}
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	dir := t.TempDir()
	outboxDir := filepath.Join(dir, "outbox")
	box, err := outbox.Open(outbox.Options{Dir: outboxDir, MaxBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	var first outbox.Record
	for i := range 3 {
		r, err := box.Put(outbox.Record{Runner: "ookla", Style: radar.StyleOokla, Result: ooklaResult(i)})
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = r
		}
	}
	if err := box.Close(); err != nil {
		t.Fatal(err)
	}
	recFile := filepath.Join(outboxDir, first.ID+".rec")
	if err := unix.Mount(eacces, recFile, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s over %s (the tests need root): %v", eacces, recFile, err)
	}
	mounted := true
	unmount := func() {
		if mounted {
			if err := unix.Unmount(recFile, 0); err != nil {
				t.Errorf("unmount %s: %v", recFile, err)
			}
			mounted = false
		}
	}
	t.Cleanup(unmount)

	fake := ooklatest.Install(t, t.TempDir(), ooklatest.ModeResult)
	p := startPod(t, podOptions{
		env:     map[string]string{"RADAR_SERVER_URL": srv.URL, "RADAR_DATA_DIR": dir, "RADAR_TESTS": "ookla"},
		runners: func(config.Agent) []agent.Runner { return []agent.Runner{ookla.New(ookla.Options{Bin: fake})} },
	})

	// The two readable results go; the unreadable one stays, reported.
	waitMeasurements(t, srv, 2)
	waitFor(t, "the unreadable result to be counted", func() bool {
		return p.metrics.OutboxUnreadable.Value() >= 1 && p.metrics.OutboxDepth.Value() == 1
	})
	if ev := p.metrics.OutboxEvictions.Value(); ev != 0 {
		t.Fatalf("%v evictions: the unreadable result was counted as lost", ev)
	}

	unmount()
	srv.SendRunTest(nil)
	ms := waitMeasurements(t, srv, 4)
	waitFor(t, "outbox drained", func() bool { return p.metrics.OutboxDepth.Value() == 0 })
	seen := map[string]int{}
	for _, m := range ms {
		if m.Ookla == nil {
			t.Fatalf("upload not parsed as an Ookla result: %v", m.ParseErr)
		}
		seen[m.Ookla.ResultID]++
	}
	for i := range 3 {
		if seen[resultID(i)] != 1 {
			t.Errorf("result %d stored %d times, want once (all: %v)", i, seen[resultID(i)], seen)
		}
	}
	if ev := p.metrics.OutboxEvictions.Value(); ev != 0 {
		t.Errorf("%v evictions", ev)
	}
	if _, err := os.Stat(filepath.Join(outboxDir, "quarantine")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("quarantine exists (%v)", err)
	}
}
