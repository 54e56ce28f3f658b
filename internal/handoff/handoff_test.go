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

func TestRequestRoundTripAndValidation(t *testing.T) {
	dir := t.TempDir()
	if _, ok, err := ReadRequest(dir); ok || err != nil {
		t.Fatalf("empty dir: ok=%v err=%v", ok, err)
	}
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	want := Request{Version: "1.5.0", BinaryURL: "/client_versions/1.5.0/distributions/linux-arm64/download?signed=true", Source: "channel", RequestedAt: at}
	if err := WriteRequest(dir, want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := ReadRequest(dir)
	if err != nil || !ok || got != want {
		t.Fatalf("ReadRequest = %+v, %v, %v", got, ok, err)
	}
	for _, bad := range []string{"", "1.0/../x", "1.0 beta", "repo@sha256:x", strings.Repeat("9", 200)} {
		if err := WriteRequest(dir, Request{Version: bad}); err == nil {
			t.Errorf("version %q accepted", bad)
		}
	}
	os.WriteFile(filepath.Join(dir, RequestFile), []byte(`{"version": 3`), 0o644)
	if _, ok, err := ReadRequest(dir); !ok || err == nil {
		t.Fatalf("corrupt request: ok=%v err=%v", ok, err)
	}
	os.WriteFile(filepath.Join(dir, RequestFile), []byte(`{"version":"`+strings.Repeat("a", 100<<10)+`"}`), 0o644)
	if _, _, err := ReadRequest(dir); err == nil {
		t.Fatal("oversized request accepted")
	}
}

func TestStatusRoundTrip(t *testing.T) {
	dir := t.TempDir()
	next := time.Now().Add(time.Minute).UTC().Round(0)
	want := Status{State: StateRolledBack, FromVersion: "1.0.0", ToVersion: "1.1.0", Digest: "sha256:ab", Reason: "not healthy within 90s", Attempt: 2, UpdatedAt: time.Now().UTC().Round(0), NextRetryAt: &next}
	if err := WriteStatus(dir, want); err != nil {
		t.Fatal(err)
	}
	got, ok, err := ReadStatus(dir)
	if err != nil || !ok || got.State != want.State || got.Reason != want.Reason || !got.NextRetryAt.Equal(next) {
		t.Fatalf("ReadStatus = %+v, %v, %v", got, ok, err)
	}
	for s, fail := range map[State]bool{StateRefused: true, StateRolledBack: true, StateFailed: true, StateSucceeded: false, StatePulling: false} {
		if s.Failure() != fail {
			t.Errorf("%s.Failure() = %v", s, !fail)
		}
	}
}

func TestTestLock(t *testing.T) {
	dir := t.TempDir()
	dataLock := filepath.Join(dir, TestLockFile)
	balena := filepath.Join(dir, "balena", "updates.lock")
	l := &TestLock{Paths: []string{dataLock, balena}}
	now := wallclock.Now()
	if active, _, _ := LockActive(dataLock, now, time.Hour); active {
		t.Fatal("lock active before acquire")
	}
	if err := l.Acquire("ndt7", 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	for _, p := range l.Paths {
		active, info, err := LockActive(p, now, time.Hour)
		if !active || err != nil || info.Holder != "ndt7" {
			t.Fatalf("%s: active=%v info=%+v err=%v", p, active, info, err)
		}
	}
	if err := l.Acquire("ookla", 5*time.Minute); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if _, info, _ := LockActive(dataLock, now, time.Hour); info.Holder != "ookla" {
		t.Fatalf("refresh did not update holder: %+v", info)
	}
	if active, _, _ := LockActive(dataLock, now.Add(6*time.Minute), time.Hour); active {
		t.Fatal("expired lock still active")
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(balena); !os.IsNotExist(err) {
		t.Fatalf("balena lock not removed: %v", err)
	}
	// A leftover of a crashed agent is taken over, not an error.
	os.WriteFile(dataLock, []byte(`{"pid":1}`), 0o644)
	l2 := &TestLock{Paths: []string{dataLock}}
	if err := l2.Acquire("ndt7", time.Minute); err != nil {
		t.Fatalf("take over stale lock: %v", err)
	}
	// A torn lock counts as active while young.
	os.WriteFile(dataLock, []byte(`{"pid":`), 0o644)
	if active, _, _ := LockActive(dataLock, wallclock.Now(), time.Hour); !active {
		t.Fatal("unreadable young lock treated as inactive")
	}
	if active, _, _ := LockActive(dataLock, wallclock.Now().Add(2*time.Hour), time.Hour); active {
		t.Fatal("unreadable old lock still active")
	}
}

// A lock taken before NTP steps the clock (a test the service asked for
// right after boot, at 1970) stays active after the step until it expires
// on the boot clock; a lock of an older agent, without boot data, and one
// of another boot are judged by the wall clock.
func TestTestLockSurvivesAClockStep(t *testing.T) {
	path := filepath.Join(t.TempDir(), TestLockFile)
	l := &TestLock{Paths: []string{path}}
	if err := l.Acquire("ndt7", 3*time.Minute); err != nil {
		t.Fatal(err)
	}
	_, info, _ := LockActive(path, wallclock.Now(), time.Hour)
	now := wallclock.Now()
	if info.BootID != now.BootID || info.BootExpires <= now.Boot || info.BootExpires > now.Boot+3*time.Minute {
		t.Fatalf("lock not on the boot clock: %+v (now %+v)", info, now)
	}
	stepped := now
	stepped.Wall = now.Wall.AddDate(56, 0, 0) // 1970 → 2026
	if active, _, _ := LockActive(path, stepped, time.Hour); !active {
		t.Fatal("a running test's lock counted stale after the wall clock was stepped")
	}
	if active, _, _ := LockActive(path, now.Add(4*time.Minute), time.Hour); active {
		t.Fatal("lock still active after its expiry on the boot clock")
	}
	stepped.BootID = "another-boot"
	if active, _, _ := LockActive(path, stepped, time.Hour); active {
		t.Fatal("a lock of another boot was judged by the boot clock")
	}
	old, _ := json.Marshal(LockInfo{PID: 1, Holder: "ookla", Since: now.Wall, ExpiresAt: now.Wall.Add(time.Minute)})
	if err := os.WriteFile(path, old, 0o644); err != nil {
		t.Fatal(err)
	}
	if active, _, _ := LockActive(path, now, time.Hour); !active {
		t.Fatal("an older agent's lock not active")
	}
	if active, _, _ := LockActive(path, now.Add(2*time.Minute), time.Hour); active {
		t.Fatal("an older agent's lock active after its expiry")
	}
}
