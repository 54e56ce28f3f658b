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
}

// TestLock is held by the agent while a measurement runs, on one or more
// paths (the data-dir lock for our updater, the balena lock on balena).
type TestLock struct {
	Paths []string
	held  bool
}

// Acquire creates the lock files exclusively, or refreshes their expiry if
// this lock already holds them. until is when a crashed holder's lock
// becomes stale (the test timeout plus a margin).
func (l *TestLock) Acquire(holder string, until time.Time) error {
	info := LockInfo{PID: os.Getpid(), Holder: holder, Since: time.Now(), ExpiresAt: until}
	b, _ := json.Marshal(info)
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

// LockActive reports whether a test holds the lock at path at time now. A
// lock past its expiry is stale (its holder crashed) and not active; an
// unreadable lock counts as active until it is older than maxAge by mtime,
// so a torn write never lets an update interrupt a test.
func LockActive(path string, now time.Time, maxAge time.Duration) (bool, LockInfo, error) {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, LockInfo{}, nil
	}
	if err != nil {
		return true, LockInfo{}, err
	}
	var info LockInfo
	if _, err := readJSON(path, &info); err != nil || info.ExpiresAt.IsZero() {
		return now.Sub(st.ModTime()) < maxAge, info, nil
	}
	return now.Before(info.ExpiresAt), info, nil
}
