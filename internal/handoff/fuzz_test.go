package handoff

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
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
