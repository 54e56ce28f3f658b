// Package handoff owns the files through which the agent and the updater
// meet in the shared data volume: the update request (agent → updater), the
// update status (updater → agent) and the test lock (agent → updater and the
// balena supervisor: "a measurement is running, do not stop me"). Every
// write is atomic; every read tolerates a missing file.
package handoff

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

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
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	dec := json.NewDecoder(&limitedReader{f: f, n: maxFileSize})
	if err := dec.Decode(v); err != nil {
		return true, fmt.Errorf("read %s: %w", filepath.Base(path), err)
	}
	return true, nil
}

type limitedReader struct {
	f *os.File
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("file too large")
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.f.Read(p)
	l.n -= int64(n)
	return n, err
}
