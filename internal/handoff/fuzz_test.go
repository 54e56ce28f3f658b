package handoff

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/wallclock"
)

// The files in the shared volume are written by the other container, may
// be torn by a power cut, and can be edited by hand: whatever they hold,
// reading them must not panic, and what a reader accepts must be usable.

func FuzzRequestFile(f *testing.F) {
	f.Add([]byte(`{"version":"1.5.0","binary_url":"/client_versions/1.5.0/distributions/linux-arm64/download?signed=true","source":"channel","requested_at":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"version":"v1.5.0","source":"status","requested_at":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"version":"1.5.0/../../x","source":"channel"}`))
	f.Add([]byte(`{"version":5,"requested_at":"yesterday"}`))
	f.Add([]byte(`{"version":"1.5.0"`))
	f.Add([]byte(`{"version":"1.5.0"} trailing`))
	f.Add([]byte(strings.Repeat(" ", maxFileSize) + `{"version":"1.5.0"}`))
	f.Add([]byte(``))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, content []byte) {
		if err := os.WriteFile(filepath.Join(dir, RequestFile), content, 0o644); err != nil {
			t.Fatal(err)
		}
		r, ok, err := ReadRequest(dir)
		if !ok {
			t.Fatalf("an existing request file read as none (err %v)", err)
		}
		if err != nil {
			return
		}
		if verr := r.Validate(); verr != nil {
			t.Fatalf("accepted an invalid request %+v: %v", r, verr)
		}
		// What was accepted survives a round trip through the writer.
		if err := WriteRequest(dir, r); err != nil {
			t.Fatalf("cannot write back the request %+v: %v", r, err)
		}
		again, ok, err := ReadRequest(dir)
		if !ok || err != nil || again.Version != r.Version || again.Source != r.Source || !again.RequestedAt.Equal(r.RequestedAt) {
			t.Fatalf("round trip of %+v gave %+v, %v, %v", r, again, ok, err)
		}
	})
}

func FuzzStatusFile(f *testing.F) {
	retry := time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC)
	for _, s := range []Status{
		{State: StateSucceeded, FromVersion: "1.4.0", ToVersion: "1.5.0", Digest: "sha256:" + strings.Repeat("ab", 32), UpdatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)},
		{State: StateRefused, ToVersion: "1.5.0", Reason: "crl_unreachable: ...", Attempt: 3, NextRetryAt: &retry},
	} {
		b, _ := json.Marshal(s)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte(`{"state":7,"attempt":"three"}`))
	f.Add([]byte(`{"state":"exploded","next_retry_at":null}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, content []byte) {
		if err := os.WriteFile(filepath.Join(dir, StatusFile), content, 0o644); err != nil {
			t.Fatal(err)
		}
		s, ok, err := ReadStatus(dir)
		if !ok {
			t.Fatalf("an existing status file read as none (err %v)", err)
		}
		if err != nil {
			return
		}
		if err := WriteStatus(dir, s); err != nil {
			t.Fatalf("cannot write back the status %+v: %v", s, err)
		}
		if again, ok, err := ReadStatus(dir); !ok || err != nil || again.State != s.State || again.Attempt != s.Attempt {
			t.Fatalf("round trip of %+v gave %+v, %v, %v", s, again, ok, err)
		}
	})
}

func FuzzTestLock(f *testing.F) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b, _ := json.Marshal(LockInfo{PID: 42, Holder: "ookla", Since: now, ExpiresAt: now.Add(time.Minute)})
	f.Add(b)
	f.Add(b[:len(b)/3])
	f.Add([]byte(`{"pid":"x","expires_at":"soon"}`))
	f.Add([]byte(`{"expires_at":"0001-01-01T00:00:00Z"}`))
	f.Add([]byte(``))
	same, _ := json.Marshal(LockInfo{PID: 42, Holder: "ndt7", Since: now, ExpiresAt: now.Add(time.Minute),
		BootID: wallclock.Now().BootID, BootExpires: wallclock.Now().Boot + time.Hour})
	f.Add(same)
	dir := f.TempDir()
	path := filepath.Join(dir, TestLockFile)
	f.Fuzz(func(t *testing.T, content []byte) {
		if err := os.WriteFile(path, content, 0o644); err != nil {
			t.Fatal(err)
		}
		// The file was just written: whatever it holds (a torn write
		// included), the updater may take it for stale only when it says,
		// readably, that it has expired.
		now := wallclock.Now()
		active, info, err := LockActive(path, now, time.Hour)
		if err != nil {
			t.Fatalf("LockActive: %v", err)
		}
		if !active && info.ExpiresAt.IsZero() {
			t.Fatalf("a fresh lock file %q without an expiry counted as stale", content)
		}
		sameBoot := info.BootID != "" && info.BootID == now.BootID
		if !active && (sameBoot && now.Boot < info.BootExpires || !sameBoot && now.Wall.Before(info.ExpiresAt)) {
			t.Fatalf("lock %+v not yet expired counted as stale", info)
		}
	})
}

// FuzzHostileSharedFile plants whatever the agent could at the names the
// updater reads (the request and the test lock; the status too): content
// of any kind as a regular file, behind a link, or a FIFO, directory,
// socket or sparse file in its place. The readers must return at once,
// never follow a link, and accept only a regular file of at most 64 KiB,
// whose content is then what they decoded.
func FuzzHostileSharedFile(f *testing.F) {
	now := time.Now().UTC()
	lock, _ := json.Marshal(LockInfo{PID: 1, Holder: "ookla", Since: now, ExpiresAt: now.Add(time.Minute)})
	for kind := range uint8(8) {
		f.Add(kind, []byte(`{"version":"1.5.0","source":"channel"}`))
		f.Add(kind, lock)
	}
	f.Add(uint8(0), []byte(`{"version":"1.5.0"`))
	root := f.TempDir()
	n := 0
	f.Fuzz(func(t *testing.T, kind uint8, content []byte) {
		n++
		dir := filepath.Join(root, strconv.Itoa(n))
		elsewhere := dir + "-elsewhere"
		for _, d := range []string{dir, elsewhere} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		defer os.RemoveAll(dir)
		defer os.RemoveAll(elsewhere)
		regular := kind%8 == 0
		var err error
		for _, name := range []string{RequestFile, TestLockFile, StatusFile} {
			path := filepath.Join(dir, name)
			switch kind % 8 {
			case 0:
				err = os.WriteFile(path, content, 0o644)
			case 1:
				target := filepath.Join(elsewhere, name)
				if err = os.WriteFile(target, content, 0o644); err == nil {
					err = os.Symlink(target, path)
				}
			case 2:
				err = os.Symlink(filepath.Join(elsewhere, "missing-"+name), path)
			case 3:
				err = syscall.Mkfifo(path, 0o644)
			case 4:
				err = os.Mkdir(path, 0o755)
			case 5:
				var fd int
				if fd, err = syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0); err == nil {
					err = syscall.Bind(fd, &syscall.SockaddrUnix{Name: path})
					syscall.Close(fd)
				}
			case 6:
				if err = os.WriteFile(path, content, 0o644); err == nil {
					err = os.Truncate(path, maxFileSize+1+int64(len(content)))
				}
			case 7:
				// The whole data dir's entry for it is a link to a
				// directory elsewhere: ReadFile of "<link>/name".
				err = os.WriteFile(filepath.Join(elsewhere, name), content, 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		readDir := dir
		if kind%8 == 7 {
			if err := os.Symlink(elsewhere, filepath.Join(dir, "linked")); err != nil {
				t.Fatal(err)
			}
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			if kind%8 == 7 {
				if b, err := ReadFile(readDir, "linked/"+RequestFile, maxFileSize); err == nil {
					t.Errorf("read %q through a linked directory", b)
				}
				return
			}
			r, ok, err := ReadRequest(readDir)
			if ok && err == nil {
				if !regular || len(content) > maxFileSize {
					t.Errorf("request planted as kind %d accepted: %+v", kind%8, r)
				}
				if verr := r.Validate(); verr != nil {
					t.Errorf("invalid request accepted: %v", verr)
				}
			}
			if !regular && err == nil && ok {
				t.Errorf("kind %d read without error", kind%8)
			}
			active, info, err := LockActive(filepath.Join(readDir, TestLockFile), wallclock.Now(), time.Hour)
			if !regular && (!active || info != (LockInfo{}) || err == nil) {
				t.Errorf("lock planted as kind %d: active=%v info=%+v err=%v; want active (young), unread, with a reason", kind%8, active, info, err)
			}
			if _, ok, err := ReadStatus(readDir); !regular && ok && err == nil {
				t.Errorf("status planted as kind %d read", kind%8)
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("a reader blocked on kind %d", kind%8)
		}
	})
}
