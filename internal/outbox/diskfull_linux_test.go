//go:build linux

package outbox

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// mountTmpfs mounts a tmpfs of the given size (e.g. "512k") on a fresh
// directory: a real disk that fills up. The tests run as root here.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size="+size+",mode=0700"); err != nil {
		t.Fatalf("mount tmpfs on %s (the tests need root): %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes path until the filesystem refuses another byte.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil && !errors.Is(err, unix.ENOSPC) {
		t.Fatal(err)
	}
	if f == nil {
		return
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	for _, n := range []int{512, 1} {
		for {
			if _, err := f.Write(chunk[:n]); err != nil {
				break
			}
		}
	}
}

func TestDiskFullEvictsOldestThenRefusesThenRecovers(t *testing.T) {
	mnt := mountTmpfs(t, "512k")
	dir := filepath.Join(mnt, "outbox")
	var log evictLog
	// The byte bound is far above the disk: only the disk limits us.
	s := openStore(t, dir, 64<<20, &log)
	ndt7 := fixture(t, "ndt7-result.ndjson") // ~122 KiB, a real NDT7 result

	// 1. The disk holds only a few results: every Put still succeeds,
	// evicting the oldest to make room, and each eviction is counted.
	var recs []Record
	for range 8 {
		r, err := s.Put(Record{Runner: "ndt7", Style: "NDT7", Result: ndt7})
		if err != nil {
			t.Fatalf("Put %d on a full disk with older records to evict: %v", len(recs), err)
		}
		recs = append(recs, r)
	}
	evs := log.all()
	if len(evs) == 0 {
		t.Fatalf("8 results of %d bytes fit in a 512k tmpfs without eviction?", len(ndt7))
	}
	kept := len(recs) - len(evs)
	for i, e := range evs {
		if e.Reason != ReasonDiskFull || e.ID != recs[i].ID {
			t.Fatalf("eviction %d = %+v, want the oldest (%s) with reason disk_full", i, e, recs[i].ID)
		}
	}
	if got := ids(s.List()); !slices.Equal(got, ids(metas(recs[len(evs):]))) {
		t.Fatalf("records left = %v, want the %d newest", got, kept)
	}
	for _, r := range recs[len(evs):] {
		got, err := s.Get(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		checkEqual(t, got, r)
	}
	t.Logf("512k disk: kept %d results of %d bytes, evicted %d", kept, len(ndt7), len(evs))

	// 2. Something else fills the disk. Small records are evicted in the
	// hope of room; when nothing is left the new record is refused with
	// ErrDiskFull — and counted, not lost silently.
	for _, r := range recs[len(evs):] {
		if err := s.Remove(r.ID); err != nil {
			t.Fatal(err)
		}
	}
	small1 := mustPut(t, s, Record{Runner: "ookla", Style: "OOKLA", Result: []byte(`{"type":"result"}`)})
	small2 := mustPut(t, s, Record{Runner: "ookla", Style: "OOKLA", Result: []byte(`{"type":"result"}`)})
	filler := filepath.Join(mnt, "filler")
	fill(t, filler)
	before := len(log.all())
	_, err := s.Put(Record{Runner: "ndt7", Style: "NDT7", Result: ndt7})
	if !errors.Is(err, ErrDiskFull) || !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("Put on a disk full even when empty = %v, want ErrDiskFull wrapping ENOSPC", err)
	}
	evs = log.all()[before:]
	if len(evs) != 3 || evs[0].ID != small1.ID || evs[1].ID != small2.ID || evs[2].Runner != "ndt7" {
		t.Fatalf("evictions = %+v, want the two small records then the refused one", evs)
	}
	for _, e := range evs {
		if e.Reason != ReasonDiskFull {
			t.Fatalf("eviction %+v: reason %q, want disk_full", e, e.Reason)
		}
	}
	st := s.Stats()
	if st.Records != 0 || st.Evictions != int64(len(log.all())) {
		t.Fatalf("Stats = %+v, want empty with %d evictions counted", st, len(log.all()))
	}
	if left := tempLeftovers(t, dir); len(left) != 0 {
		t.Fatalf("failed writes left temp files: %v", left)
	}

	// 3. Space returns: Put works again, and the counters kept in memory
	// while the disk was full reach the state file.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	last, err := s.Put(Record{Runner: "ndt7", Style: "NDT7", Result: ndt7})
	if err != nil {
		t.Fatalf("Put after space returned: %v", err)
	}
	want := s.Stats()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, 64<<20, nil)
	if got := s.Stats(); got != want {
		t.Fatalf("after reopen Stats = %+v, want %+v (evictions persisted)", got, want)
	}
	got, err := s.Get(last.ID)
	if err != nil || !bytes.Equal(got.Result, ndt7) {
		t.Fatalf("record written after recovery: %v", err)
	}
}

func metas(rs []Record) []Meta {
	out := make([]Meta, len(rs))
	for i, r := range rs {
		out[i] = Meta{ID: r.ID}
	}
	return out
}

func TestReadOnlyDiskCountsWriteErrorAndRecovers(t *testing.T) {
	mnt := mountTmpfs(t, "1m")
	remount := func(flags uintptr) {
		t.Helper()
		if err := unix.Mount("tmpfs", mnt, "tmpfs", unix.MS_REMOUNT|flags, "size=1m"); err != nil {
			t.Fatalf("remount: %v", err)
		}
	}
	t.Cleanup(func() { unix.Mount("tmpfs", mnt, "tmpfs", unix.MS_REMOUNT, "size=1m") })
	var log evictLog
	s := openStore(t, mnt, 64<<20, &log)
	a := mustPut(t, s, Record{Runner: "ookla", Result: []byte(`{"type":"result"}`)})

	remount(unix.MS_RDONLY)
	_, err := s.Put(Record{Runner: "ndt7", Result: []byte("x")})
	if err == nil || errors.Is(err, ErrDiskFull) || !errors.Is(err, unix.EROFS) {
		t.Fatalf("Put on a read-only disk = %v, want an EROFS error that is not ErrDiskFull", err)
	}
	if evs := log.all(); len(evs) != 1 || evs[0].Reason != ReasonWriteError || evs[0].Runner != "ndt7" {
		t.Fatalf("evictions = %+v, want the refused record counted as write_error", evs)
	}
	// Remove fails and keeps the record: a retry later must still work.
	if err := s.Remove(a.ID); !errors.Is(err, unix.EROFS) {
		t.Fatalf("Remove on a read-only disk = %v, want EROFS", err)
	}
	if got, err := s.Get(a.ID); err != nil {
		t.Fatalf("record lost after a failed Remove: %v", err)
	} else {
		checkEqual(t, got, a)
	}
	if err := s.Close(); err == nil {
		t.Fatal("Close with counters that cannot be persisted reported success")
	}

	remount(0)
	s = openStore(t, mnt, 64<<20, nil)
	if st := s.Stats(); st.Records != 1 || st.Evictions != 0 {
		// The write_error was counted in memory only: the disk refused the
		// state file too. Documented: counters persist when they can.
		t.Fatalf("after remount: Stats = %+v", st)
	}
	if err := s.Remove(a.ID); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, Record{Runner: "ndt7"})
}
