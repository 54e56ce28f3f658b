//go:build linux

package faults

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/benchreport"
	"github.com/radarpod/radarpod/internal/ooklatest"
	"github.com/radarpod/radarpod/internal/radartest"
)

// smallDisk mounts a tmpfs of size bytes on a fresh directory and
// unmounts it when the test ends (after the agent, started later, is
// killed: cleanups run last-registered first).
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0755", size), "radar-faults", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("mount a %d-byte tmpfs as the data dir (the disk drill needs root): %v: %s", size, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a ballast file until the disk is full, then gives back
// leave bytes: the disk is as good as full, and whatever the agent writes
// next decides what it has to give up.
func fill(t *testing.T, dir string, leave int64) string {
	t.Helper()
	path := filepath.Join(dir, "ballast")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("ballast: %v", err)
			}
			break
		}
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(max(0, st.Size()-leave)); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDiskFullEvictsOldestFirstAndRecovers runs the agent on a 1 MiB
// tmpfs while the service refuses every upload, fills the disk, and keeps
// the tests coming: the outbox must make room by evicting its oldest
// results, count each (radar_outbox_evictions_total) and report it (an
// error log line naming the reason), and the agent must keep running.
// Then space returns and the service heals: every result the pod kept is
// delivered, and every result the CLI ever printed is either delivered or
// counted as evicted.
func TestDiskFullEvictsOldestFirstAndRecovers(t *testing.T) {
	t.Parallel()
	sz := size()
	dataDir := smallDisk(t, 1<<20)
	srv := startService(t, false)
	ooklaDir := t.TempDir()
	fake := ooklatest.Install(t, ooklaDir, ooklatest.ModeUnique)
	tally := &replyTally{}
	srv.SetResponder(radartest.EndpointUpload, func(int) radartest.Reply {
		tally.add("500")
		return radartest.Reply{Status: 500}
	})
	p := newPod(t, srv, fake, podOptions{dataDir: dataDir, metrics: true})
	p.start()
	waitUntil(t, "the pod to subscribe", func() bool { return srv.Subscribed() > 0 })

	req := requestTests(srv, 300*time.Millisecond)
	defer req.halt()
	waitUntil(t, "results buffered", func() bool { return len(p.outboxRecords()) >= 3 })
	ballast := fill(t, dataDir, 0)

	// Full for everything, not just the outbox: the wait also lasts until the
	// agent's own ledger could not grow (a partial line it left behind once
	// made the next entry unreadable).
	healthy, unhealthy := 0, 0
	var evictions float64
	waitUntil(t, fmt.Sprintf("%d evictions and a failed ledger write", sz.evictions), func() bool {
		if !p.alive() {
			t.Fatalf("the agent exited on a full disk:\n%s", p.output())
		}
		v, ok := p.metric("radar_outbox_evictions_total")
		if !ok {
			t.Fatalf("/metrics does not answer on a full disk")
		}
		if code, _ := p.healthz(); code == 200 {
			healthy++
		} else {
			unhealthy++
		}
		evictions = v
		return v >= float64(sz.evictions) && p.countLogs("", "cannot append to results.jsonl") > 0
	})
	req.halt()
	waitIdle(t, srv, p)
	if n := p.countLogs("ERROR", "outbox evicted results without uploading them"); n == 0 {
		t.Errorf("no error log line reports the evictions")
	}
	diskFull := false
	for _, l := range p.logs() {
		diskFull = diskFull || (l.Level == "ERROR" && l.Reason == "disk_full")
	}
	if !diskFull {
		t.Errorf("no error log line gives disk_full as the reason of an eviction")
	}
	if !p.alive() {
		t.Fatalf("the agent exited on a full disk:\n%s", p.output())
	}

	// Space returns, the service heals, and one more test proves new
	// results are kept again.
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	srv.SetResponder(radartest.EndpointUpload, nil)
	srv.SendRunTest(nil)
	waitUntil(t, "the outbox to empty", func() bool {
		v, ok := p.metric("radar_outbox_records")
		return ok && v == 0 && len(p.outboxRecords()) == 0 && !p.testRunning()
	})
	waitUntil(t, "the pod to be healthy again", func() bool { code, _ := p.healthz(); return code == 200 })

	emitted := ooklatest.Emitted(t, ooklaDir)
	d := deliveries(t, srv)
	var evicted []int
	for _, n := range emitted {
		if d.times[n] == 0 {
			evicted = append(evicted, n)
		}
	}
	total, _ := p.metric("radar_outbox_evictions_total")
	if int(total) != len(evicted) {
		t.Errorf("radar_outbox_evictions_total = %v, but %d of the %d results the CLI printed were never delivered: "+
			"an eviction went uncounted (or a count has no eviction)", total, len(evicted), len(emitted))
	}
	if d.duplicates() != 0 {
		t.Errorf("%d results stored twice", d.duplicates())
	}
	if len(evicted) > 0 && len(d.order) > 0 && slices.Max(evicted) > slices.Min(d.order) {
		t.Errorf("not evicted oldest first: evicted %v, delivered %v", evicted, d.order)
	}
	if _, torn := p.ledger(); torn != 0 {
		t.Errorf("%s has %d unreadable lines after the disk filled and emptied again:\n%s", "results.jsonl", torn, readLedger(t, dataDir))
	}
	if n := d.missing(emitted[len(emitted)-1:]); len(n) != 0 {
		t.Errorf("the result of the test after the recovery was not delivered")
	}
	t.Logf("%s drill: %d results printed by the CLI, %d evicted (metric %.0f when the wait ended, %.0f in total), %d delivered; "+
		"/healthz while full: %d ok, %d unhealthy", sz.name, len(emitted), len(evicted), evictions, total, len(d.times), healthy, unhealthy)
	addFigure(benchreport.Figure{Name: "faults/diskfull/uncounted_evictions", Value: float64(len(evicted)) - total, Unit: "results", Op: "within", Target: 0,
		Notes: fmt.Sprintf("1 MiB tmpfs filled: %d printed, %d evicted and counted, %d delivered after space returned", len(emitted), len(evicted), len(d.times))})
}

func readLedger(t *testing.T, dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "results.jsonl"))
	if err != nil {
		return err.Error()
	}
	return string(b)
}
