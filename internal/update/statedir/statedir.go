// Package statedir owns the updater's private state directory
// (RADAR_UPDATER_STATE_DIR): the replacement journal, the CRL state and the
// heartbeat. The directory is opened once at start-up and every file
// operation goes through that open directory, so nothing mounted, renamed
// or linked at its path later can redirect a read or a write; before each
// use the path is also checked to still lead to that same directory
// (device and inode), and a change is refused, never worked around.
//
// Why both: on the old compose layout the state volume was mounted inside
// the agent's data volume, where the agent could rmdir the mount point
// (since Linux 3.18 that detaches the mount in every namespace) and
// recreate the directory with forged state. The open directory keeps the
// updater on its real state; the check makes the change loud (log, status,
// Sentry) instead of leaving an operator's `docker exec radar-updater
// radar-updater reset-crl-state` or the healthcheck looking at a
// different directory than the updater writes.
package statedir

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/radarpod/radarpod/internal/atomicfile"
)

// ErrChanged: the state directory's path no longer leads to the directory
// the updater opened at start-up.
var ErrChanged = errors.New("state directory changed")

// Dir is the state directory, held open.
type Dir struct {
	path string
	root *os.Root
	id   fs.FileInfo // of the directory as opened
}

// Open creates path (0700) if needed, opens it and records its identity.
func Open(path string) (*Dir, error) {
	if path == "" {
		return nil, errors.New("state directory: empty path")
	}
	path = filepath.Clean(path)
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	root, err := os.OpenRoot(path)
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	id, err := root.Stat(".")
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("state directory: %w", err)
	}
	d := &Dir{path: path, root: root, id: id}
	// The directory might have been swapped between the mkdir and the open
	// as well as later: the same check covers both.
	if err := d.Check(); err != nil {
		root.Close()
		return nil, err
	}
	return d, nil
}

// Path is the directory's configured path.
func (d *Dir) Path() string { return d.path }

// Close releases the directory.
func (d *Dir) Close() error { return d.root.Close() }

// Identity describes the directory as opened: "device D inode I".
func (d *Dir) Identity() string { return identity(d.id) }

func identity(fi fs.FileInfo) string {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return fmt.Sprintf("device %d:%d inode %d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), st.Ino)
	}
	return "unknown identity"
}

// Check reports (as an error wrapping ErrChanged) when the path no longer
// leads to the directory opened at start-up: its mount was removed or
// replaced, or the directory was renamed or deleted. The error says what
// the path leads to now.
func (d *Dir) Check() error {
	now, err := os.Stat(d.path)
	switch {
	case err != nil:
		return fmt.Errorf("%w: RADAR_UPDATER_STATE_DIR %s (%s at start-up) cannot be found any more (%v): its mount may have been removed; "+
			"refusing to read or write the updater's state there: check the updater container's mounts and restart it",
			ErrChanged, d.path, d.Identity(), err)
	case !os.SameFile(now, d.id):
		return fmt.Errorf("%w: RADAR_UPDATER_STATE_DIR %s is no longer the directory the updater started with (%s at start-up, %s now): "+
			"its mount may have been removed or replaced; refusing to read or write the updater's state there: check the updater container's mounts and restart it",
			ErrChanged, d.path, d.Identity(), identity(now))
	}
	return nil
}

// ReadFile returns the content of the regular file name (at most max
// bytes; larger is an error). A missing file is an error satisfying
// errors.Is(err, fs.ErrNotExist). Anything but a regular file is refused
// without being read, and a FIFO never blocks the caller.
func (d *Dir) ReadFile(name string, max int64) ([]byte, error) {
	if err := d.Check(); err != nil {
		return nil, err
	}
	f, err := d.root.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s in %s is not a regular file (%s)", name, d.path, st.Mode().Type())
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s in %s is %d bytes, more than %d", name, d.path, st.Size(), max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s in %s is larger than %d bytes", name, d.path, max)
	}
	return b, nil
}

// Exists reports whether name exists in the directory.
func (d *Dir) Exists(name string) (bool, error) {
	if err := d.Check(); err != nil {
		return false, err
	}
	_, err := d.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

// Write replaces name atomically and durably (atomicfile).
func (d *Dir) Write(name string, data []byte, perm fs.FileMode) error {
	if err := d.Check(); err != nil {
		return err
	}
	return atomicfile.WriteIn(d.root, name, data, perm)
}

// WriteJSON replaces name atomically and durably with v as indented JSON.
func (d *Dir) WriteJSON(name string, v any, perm fs.FileMode) error {
	if err := d.Check(); err != nil {
		return err
	}
	return atomicfile.WriteJSONIn(d.root, name, v, perm)
}

// Remove deletes name durably; a missing file is not an error.
func (d *Dir) Remove(name string) error {
	if err := d.Check(); err != nil {
		return err
	}
	return atomicfile.RemoveIn(d.root, name)
}

// MoveAside renames name to name+suffix durably and returns the new path,
// or "" when there was no file.
func (d *Dir) MoveAside(name, suffix string) (string, error) {
	if err := d.Check(); err != nil {
		return "", err
	}
	to, err := atomicfile.MoveAsideIn(d.root, name, suffix)
	if err != nil || to == "" {
		return "", err
	}
	return filepath.Join(d.path, to), nil
}

// Touch sets name's times to now, creating it with content when it does
// not exist (exclusively: never through a link).
func (d *Dir) Touch(name string, now time.Time, content []byte) error {
	if err := d.Check(); err != nil {
		return err
	}
	err := d.root.Chtimes(name, now, now)
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := d.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, werr := f.Write(content)
	return errors.Join(werr, f.Close())
}
