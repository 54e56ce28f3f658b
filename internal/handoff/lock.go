package handoff

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/radarpod/radarpod/internal/atomicfile"
	"github.com/radarpod/radarpod/internal/wallclock"
)

// BalenaLockFile is the balena supervisor's update lock: while it exists the
// supervisor does not restart the service for a new release.
const BalenaLockFile = "/tmp/balena/updates.lock"

// LockInfo is the content of a test lock.
type LockInfo struct {
	PID       int       `json:"pid"`
	Holder    string    `json:"holder"`
	Since     time.Time `json:"since"`
	ExpiresAt time.Time `json:"expires_at"`
	// BootID and BootExpires put the expiry on the boot clock, which is
	// what decides within the same boot: a Pi's clock is stepped by NTP
	// minutes after boot, often during the first test the service asks
	// for, and a lock written at 1970 would otherwise look decades stale
	// and let the updater stop the agent mid-measurement. Locks written by
	// older agents lack them and are judged by ExpiresAt.
	BootID      string        `json:"boot_id,omitempty"`
	BootExpires time.Duration `json:"boot_expires_ns,omitempty"`
}

// MaxLockTTL bounds how long a test lock lasts when its holder crashes:
// far beyond the longest test (RADAR_TEST_TIMEOUT is at most 30 minutes).
const MaxLockTTL = 24 * time.Hour

// TestLock is held by the agent while a measurement runs, on one or more
// paths (the data-dir lock for our updater, the balena lock on balena).
type TestLock struct {
	Paths []string
	held  bool
}

// Acquire creates the lock files exclusively, or refreshes their expiry if
// this lock already holds them. A crashed holder's lock becomes stale ttl
// from now (the test timeout plus a margin).
func (l *TestLock) Acquire(holder string, ttl time.Duration) error {
	if ttl <= 0 || ttl > MaxLockTTL {
		// A ttl that wrapped negative (a test timeout near the largest
		// duration plus the margin) would write a lock already expired, one
		// that overflows the boot clock too, and one past year 9999 an
		// expiry JSON cannot hold: a lock still holds, for at most this.
		ttl = MaxLockTTL
	}
	now := wallclock.Now()
	until := now.Add(ttl)
	info := LockInfo{PID: os.Getpid(), Holder: holder, Since: now.Wall, ExpiresAt: until.Wall, BootID: until.BootID, BootExpires: until.Boot}
	b, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("test lock: %w", err)
	}
	for _, p := range l.Paths {
		if l.held {
			if err := atomicfile.Write(p, b, 0o644); err != nil {
				return fmt.Errorf("refresh test lock: %w", err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("test lock: %w", err)
		}
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if errors.Is(err, fs.ErrExist) {
			// Only our own process ever takes this lock, so an existing file
			// is a leftover of a crash: take it over.
			if err := atomicfile.Write(p, b, 0o644); err != nil {
				return fmt.Errorf("take over test lock: %w", err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("test lock: %w", err)
		}
		_, werr := f.Write(b)
		serr := f.Sync()
		f.Close()
		if werr != nil || serr != nil {
			return fmt.Errorf("test lock: %w", errors.Join(werr, serr))
		}
		if err := atomicfile.SyncDir(filepath.Dir(p)); err != nil {
			return fmt.Errorf("test lock: %w", err)
		}
	}
	l.held = true
	return nil
}

// Release removes the lock files.
func (l *TestLock) Release() error {
	var errs []error
	for _, p := range l.Paths {
		if err := atomicfile.Remove(p); err != nil {
			errs = append(errs, err)
		}
	}
	l.held = false
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("release test lock: %w", err)
	}
	return nil
}

// LockActive reports whether a test holds the lock at path at the instant
// now (wallclock.Now()). A lock past its expiry is stale (its holder
// crashed) and not active: by the boot clock when it was written in this
// boot, else by the wall clock. An unreadable lock counts as active until
// it is older than maxAge by mtime, so a torn write never lets an update
// interrupt a test.
//
// The lock is read like every file of the shared volume (ReadFile): a
// symbolic link, FIFO, socket, directory or oversized file at its name is
// never followed or read, and counts as an unreadable lock (active while
// young by its own mtime; the updater bounds every wait on the lock
// anyway); err then says what was found.
func LockActive(path string, now wallclock.Instant, maxAge time.Duration) (bool, LockInfo, error) {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, LockInfo{}, nil
	}
	if err != nil {
		return true, LockInfo{}, err
	}
	young := now.Wall.Sub(st.ModTime()) < maxAge
	if !st.Mode().IsRegular() {
		return young, LockInfo{}, fmt.Errorf("test lock %s: %w: %s; not reading it", path, ErrNotRegular, fileType(st.Mode()))
	}
	var info LockInfo
	if _, err := readJSON(path, &info); err != nil || info.ExpiresAt.IsZero() {
		if errors.Is(err, ErrNotRegular) || errors.Is(err, ErrTooLarge) {
			return young, info, err
		}
		return young, info, nil
	}
	if info.BootID != "" && info.BootID == now.BootID {
		return now.Boot < info.BootExpires, info, nil
	}
	return now.Wall.Before(info.ExpiresAt), info, nil
}
