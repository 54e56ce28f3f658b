// Package handoff owns the files through which the agent and the updater
// meet in the shared data volume: the update request (agent → updater), the
// update status (updater → agent) and the test lock (agent → updater and the
// balena supervisor: "a measurement is running, do not stop me"). Every
// write is atomic (a temporary file created exclusively and renamed over
// the name, so a link planted there is replaced, not followed); every read
// tolerates a missing file and refuses links, special files and anything
// over 64 KiB (ReadFile): to the updater, the agent's side of the volume is
// hostile input.
package handoff

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/radarpod/radarpod/internal/atomicfile"
)

// File names inside the data directory.
const (
	RequestFile  = "update-request.json"
	StatusFile   = "update-status.json"
	TestLockFile = "test.lock"
)

// maxFileSize bounds what either side reads: the files are tiny, and a
// corrupted or hostile file must not exhaust memory.
const maxFileSize = 64 << 10

// Request asks the updater to install an announced agent version.
type Request struct {
	// Version is the announced version; it names the image tag.
	Version string `json:"version"`
	// BinaryURL is what the service announced, kept for the record; a
	// container pod never downloads it.
	BinaryURL   string    `json:"binary_url,omitempty"`
	Source      string    `json:"source"` // "channel" or "status"
	RequestedAt time.Time `json:"requested_at"`
}

// Validate rejects requests the updater cannot act on.
func (r Request) Validate() error {
	v := strings.TrimPrefix(r.Version, "v")
	if v == "" {
		return errors.New("update request: empty version")
	}
	if len(v) > 128 || strings.ContainsAny(v, "/:@ \t\n") {
		return fmt.Errorf("update request: version %q is not a valid image tag", r.Version)
	}
	return nil
}

// WriteRequest atomically replaces the pending request: a newer announcement
// supersedes an older one that was not installed yet.
func WriteRequest(dir string, r Request) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if err := atomicfile.WriteJSON(filepath.Join(dir, RequestFile), r, 0o644); err != nil {
		return fmt.Errorf("write update request: %w", err)
	}
	return nil
}

// ReadRequest returns the pending request; ok is false when there is none.
func ReadRequest(dir string) (r Request, ok bool, err error) {
	ok, err = readJSON(filepath.Join(dir, RequestFile), &r)
	if err != nil || !ok {
		return Request{}, ok, err
	}
	if err := r.Validate(); err != nil {
		return r, true, err
	}
	return r, true, nil
}

// State is where the updater is with the current request.
type State string

// States the updater reports. Refused, RolledBack, RollbackFailed and Failed
// are failures the agent reports to Sentry.
const (
	StateIdle      State = "idle"
	StateVerifying State = "verifying"
	// StateWaitingClock: the clock cannot be trusted, so nothing that
	// depends on the time was decided; Reason starts with the code
	// "clock_untrusted: " and says what the clock read and what it was
	// compared with. Not a failure: the same request is retried once the
	// clock syncs.
	StateWaitingClock State = "waiting_for_clock"
	StatePulling      State = "pulling"
	StateWaitingTest  State = "waiting_for_test"
	StateReplacing    State = "replacing"
	StateHealthCheck  State = "health_check"
	StateSucceeded    State = "succeeded"
	StateRefused      State = "refused"
	StateRolledBack   State = "rolled_back"
	// StateRollbackFailed: the new agent was not proven healthy and the old
	// one could not be restored (it disappeared), so the new one was kept
	// running rather than leave the pod without an agent — or, when no
	// container was left at all, the pod has no agent. Needs an operator.
	StateRollbackFailed State = "rollback_failed"
	StateFailed         State = "failed"
)

// Failure reports whether s ends an attempt without installing the update.
func (s State) Failure() bool {
	return s == StateRefused || s == StateRolledBack || s == StateRollbackFailed || s == StateFailed
}

// Status is the updater's account of the latest request.
type Status struct {
	State       State      `json:"state"`
	FromVersion string     `json:"from_version,omitempty"`
	ToVersion   string     `json:"to_version,omitempty"`
	Digest      string     `json:"digest,omitempty"`
	Reason      string     `json:"reason,omitempty"`
	Attempt     int        `json:"attempt,omitempty"`
	RequestedAt time.Time  `json:"requested_at,omitzero"`
	StartedAt   time.Time  `json:"started_at,omitzero"`
	UpdatedAt   time.Time  `json:"updated_at"`
	NextRetryAt *time.Time `json:"next_retry_at,omitempty"`
}

// WriteStatus atomically replaces the status file.
func WriteStatus(dir string, s Status) error {
	if err := atomicfile.WriteJSON(filepath.Join(dir, StatusFile), s, 0o644); err != nil {
		return fmt.Errorf("write update status: %w", err)
	}
	return nil
}

// ReadStatus returns the updater's latest status; ok is false when there is none.
func ReadStatus(dir string) (s Status, ok bool, err error) {
	ok, err = readJSON(filepath.Join(dir, StatusFile), &s)
	return s, ok, err
}

func readJSON(path string, v any) (bool, error) {
	b, err := ReadFile(filepath.Dir(path), filepath.Base(path), maxFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	// The first JSON value is the content; what follows it (a torn
	// rewrite's leftovers) is ignored.
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(v); err != nil {
		return true, fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	return true, nil
}

// ReadFile reads name, a slash-separated path relative to the shared data
// directory dir, the way the updater reads everything the agent can write
// there (the agent is the less trusted side: it faces the network and runs
// a proprietary binary). No symbolic link is followed at any component of
// name; only a regular file is read, and a FIFO, socket, device or
// directory is refused without blocking (a FIFO opened for reading would
// otherwise wait forever for a writer, hanging the updater's loop); a file
// larger than max is refused without being read. dir itself is
// configuration and is opened as given. A missing file is an error
// satisfying errors.Is(err, fs.ErrNotExist).
func ReadFile(dir, name string, max int64) ([]byte, error) {
	parts := strings.Split(name, "/")
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return nil, fmt.Errorf("read %s: not a plain relative path", name)
		}
	}
	dfd, err := openat(unix.AT_FDCWD, dir, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	for _, p := range parts[:len(parts)-1] {
		next, err := openat(dfd, p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
		unix.Close(dfd)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: filepath.Join(dir, name), Err: describe(err)}
		}
		dfd = next
	}
	path := filepath.Join(dir, name)
	fd, err := openat(dfd, parts[len(parts)-1], unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY)
	unix.Close(dfd)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: describe(err)}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: %s; not reading it", path, ErrNotRegular, fileType(st.Mode()))
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s: %w (%d bytes, at most %d)", path, ErrTooLarge, st.Size(), max)
	}
	// The size can grow after the fstat: read one byte more than allowed
	// to notice.
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: %w (more than %d bytes)", path, ErrTooLarge, max)
	}
	return b, nil
}

// Errors of ReadFile for files it refuses to read.
var (
	// ErrNotRegular: a symbolic link, FIFO, socket, device or directory.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge: more than the size allowed.
	ErrTooLarge = errors.New("file too large")
)

func openat(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// describe names what the kernel's refusals mean here.
func describe(err error) error {
	switch err {
	case unix.ELOOP:
		return fmt.Errorf("%w: a symbolic link, which is not followed", ErrNotRegular)
	case unix.ENXIO:
		return fmt.Errorf("%w: a socket or a device without a driver", ErrNotRegular)
	case unix.ENOTDIR:
		return fmt.Errorf("%w: a component is not a directory (or is a symbolic link, which is not followed)", ErrNotRegular)
	}
	return err
}

func fileType(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "a special file"
}
