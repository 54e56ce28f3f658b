//go:build linux

package outbox

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/radarpod/radarpod/internal/proctest"
)

// unreadLog collects OnUnreadable calls.
type unreadLog struct {
	mu   sync.Mutex
	ids  []string
	errs []error
}

func (l *unreadLog) add(id string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ids, l.errs = append(l.ids, id), append(l.errs, err)
}

func (l *unreadLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.ids)
}

func (l *unreadLog) last() (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ids) == 0 {
		return "", nil
	}
	return l.ids[len(l.ids)-1], l.errs[len(l.errs)-1]
}

// unreadableSource is a file the kernel refuses to let even root read,
// with a given error. Bind-mounted over a record file, it makes that
// record unreadable for the store — as a changed mode or owner does to a
// non-root agent, or a failing SD card to anyone — and unmounting it
// makes the untouched record readable again. Tests run as root, which
// chmod 000 would not stop.
type unreadableSource struct {
	name  string
	path  string
	errno syscall.Errno
}

func unreadableSources() []unreadableSource {
	return []unreadableSource{
		// sysfs refuses to open a write-only attribute for reading
		// (kernfs: no show method), whatever the caller's capabilities.
		// The platform bus exists on every Linux system.
		{"EACCES (a write-only sysfs attribute)", "/sys/bus/platform/uevent", syscall.EACCES},
		// Reading a process's memory at offset 0, an address never
		// mapped, fails with EIO.
		{"EIO (/proc/<pid>/mem at offset 0)", fmt.Sprintf("/proc/%d/mem", os.Getpid()), syscall.EIO},
	}
}

// bindOver mounts src over dst until the test ends or unmount is called.
func bindOver(t *testing.T, src, dst string) (unmount func()) {
	t.Helper()
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind %s over %s (the tests need root): %v", src, dst, err)
	}
	mounted := true
	unmount = func() {
		if mounted {
			if err := unix.Unmount(dst, 0); err != nil {
				t.Errorf("unmount %s: %v", dst, err)
			}
			mounted = false
		}
	}
	t.Cleanup(unmount)
	return unmount
}

// TestUnreadableRecordIsKeptAndDeliveredLater: a record file that fails
// with EACCES or EIO is not corrupt. The store keeps it (not quarantined,
// not counted as evicted), reports it (log at Error, OnUnreadable, Stats),
// hands out the records behind it meanwhile, opens with it in place, and
// delivers it, byte for byte, once it can be read again.
func TestUnreadableRecordIsKeptAndDeliveredLater(t *testing.T) {
	for _, src := range unreadableSources() {
		t.Run(src.name, func(t *testing.T) {
			if _, err := os.ReadFile(src.path); !errors.Is(err, src.errno) {
				t.Fatalf("reading %s gave %v, want %v: the mechanism does not work here", src.path, err, src.errno)
			}
			dir := t.TempDir()
			logs := &proctest.LogBuffer{}
			evicted := &evictLog{}
			unread := &unreadLog{}
			open := func() *Store {
				s, err := Open(Options{Dir: dir, MaxBytes: 64 << 20, OnEvict: evicted.add, OnUnreadable: unread.add,
					Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
				if err != nil {
					t.Fatalf("Open with an unreadable record: %v", err)
				}
				t.Cleanup(func() { s.Close() })
				return s
			}
			s := open()
			var recs []Record
			for i, name := range []string{"ndt7-result.ndjson", "ookla-result.json", "ndt7-result.ndjson"} {
				recs = append(recs, mustPut(t, s, Record{Runner: []string{"ndt7", "ookla", "ndt7"}[i], Style: "X", Interface: "eth0", Result: fixture(t, name)}))
			}
			sizeBefore := s.Stats().Bytes
			unmount := bindOver(t, src.path, s.path(recs[0].ID))

			checkKept := func(s *Store, when string) {
				t.Helper()
				// The records behind it are delivered meanwhile.
				got, ok, err := s.Next("")
				if err != nil || !ok || got.ID != recs[1].ID {
					t.Fatalf("%s: Next = %s, %v, %v; want the second record, past the unreadable first", when, got.ID, ok, err)
				}
				if got, ok, err := s.Next(recs[1].ID); err != nil || !ok || got.ID != recs[2].ID {
					t.Fatalf("%s: Next after the second = %s, %v, %v", when, got.ID, ok, err)
				}
				if _, ok, err := s.Next(recs[2].ID); ok || err != nil {
					t.Fatalf("%s: Next after the last = %v, %v", when, ok, err)
				}
				st := s.Stats()
				if st.Records != 3 || st.Unreadable != 1 || st.Evictions != 0 || len(evicted.all()) != 0 {
					t.Fatalf("%s: stats %+v, evictions %v; want 3 records, 1 unreadable, nothing evicted", when, st, evicted.all())
				}
				if _, err := os.Stat(filepath.Join(dir, quarantineSub)); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("%s: quarantine exists (%v): a readable-later record was taken for corrupt", when, err)
				}
				id, err := unread.last()
				if id != recs[0].ID || !errors.Is(err, ErrUnreadable) || !errors.Is(err, src.errno) {
					t.Fatalf("%s: OnUnreadable last saw %s, %v; want %s with %v", when, id, err, recs[0].ID, src.errno)
				}
				if _, err := s.Get(recs[0].ID); !errors.Is(err, ErrUnreadable) || !errors.Is(err, src.errno) || errors.Is(err, ErrCorrupt) {
					t.Fatalf("%s: Get = %v, want ErrUnreadable with %v", when, err, src.errno)
				}
			}
			checkKept(s, "while the store is open")
			reported := unread.count()

			// A restart while it is still unreadable: Open keeps it too.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = open()
			if unread.count() <= reported {
				t.Fatal("Open did not report the unreadable record")
			}
			if got := ids(s.List()); len(got) != 3 || got[0] != recs[0].ID {
				t.Fatalf("after reopening: records %v", got)
			}
			checkKept(s, "after reopening")

			// Readable again: delivered as it was stored, and its
			// bookkeeping (size, runner) is what it was.
			unmount()
			got, ok, err := s.Next("")
			if err != nil || !ok {
				t.Fatalf("Next once readable: %v, %v", ok, err)
			}
			checkEqual(t, got, recs[0])
			if m := s.List()[0]; m.Runner != "ndt7" || m.ID != recs[0].ID {
				t.Errorf("meta after the first read: %+v", m)
			}
			if st := s.Stats(); st.Unreadable != 0 || st.Bytes != sizeBefore || st.Evictions != 0 {
				t.Errorf("stats once readable: %+v, want 0 unreadable, %d bytes, no evictions", st, sizeBefore)
			}
			if err := s.RemoveBatch([]string{recs[0].ID, recs[1].ID, recs[2].ID}); err != nil {
				t.Fatal(err)
			}
			if st := s.Stats(); st.Records != 0 || st.Evictions != 0 {
				t.Errorf("after delivery: %+v", st)
			}
			out := logs.String()
			if n := strings.Count(out, `"level":"ERROR","msg":"outbox cannot read a record; keeping it and trying again later"`); n != 2 {
				t.Errorf("%d Error reports, want 2 (once per process that met it):\n%s", n, out)
			}
			if !strings.Contains(out, `"msg":"outbox can read a record again"`) || strings.Contains(out, "corrupt") {
				t.Errorf("logs:\n%s", out)
			}
		})
	}
}

// TestRetryableErrors: which read errors keep a record (retryable) and
// which mean the file itself is bad. EPERM has no mechanism that fails a
// read for root in a test, so the classification is checked here.
func TestRetryableErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&fs.PathError{Op: "open", Path: "x.rec", Err: syscall.EACCES}, true},
		{&fs.PathError{Op: "open", Path: "x.rec", Err: syscall.EPERM}, true},
		{&fs.PathError{Op: "read", Path: "x.rec", Err: syscall.EIO}, true},
		{&fs.PathError{Op: "open", Path: "x.rec", Err: syscall.EMFILE}, true},
		{&fs.PathError{Op: "open", Path: "x.rec", Err: syscall.ENFILE}, true},
		{&fs.PathError{Op: "read", Path: "x.rec", Err: syscall.ENOMEM}, true},
		{fmt.Errorf("outbox: read: %w", &fs.PathError{Op: "read", Path: "x.rec", Err: syscall.EINTR}), true},
		{&fs.PathError{Op: "open", Path: "x.rec", Err: syscall.ENOENT}, false}, // vanished
		{&fs.PathError{Op: "read", Path: "x.rec", Err: syscall.EISDIR}, false},
		{fmt.Errorf("%w: bad checksum", errFormat), false},
	} {
		if got := retryable(tc.err); got != tc.want {
			t.Errorf("retryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
