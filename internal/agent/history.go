package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// The pod's own history of results, in both modes, is results.jsonl and
// its one rotated generation (see resultsMaxBytes): standalone, it holds the
// raw results too; connected, only the summaries (the raw result went to
// the service through the outbox). Everything that shows or exports
// results reads it here:
//
//   - ReadHistory streams both files, oldest first, without the raw
//     results: `radar-agent results` and the status page's exports, which
//     give everything the pod still has.
//   - the agent keeps the recent part in memory (recentResults), so the
//     status page does not decode up to 32 MiB of JSON per view on a Pi.
//
// Retention of the in-memory part: the entries of the last RecentWindow
// (35 days: the page's 30-day chart, with margin), at most recentMax of
// them (the newest win), plus the undated ones among them (a Pi without
// RTC before its clock synced), which the page lists without a date.
const (
	RecentWindow = 35 * 24 * time.Hour
	recentMax    = 4000
)

// ReadHistory calls fn with every entry of results.jsonl.1 and then
// results.jsonl in dataDir, in the order they were written, with Raw
// dropped; an entry with a time before since is skipped (undated entries
// are always given: their time is unknown). A missing file is an empty
// history; a torn line is skipped. fn's error stops the read and is
// returned.
func ReadHistory(dataDir string, since time.Time, fn func(ResultEntry) error) error {
	for _, name := range []string{ResultsFile + rotatedSuffix, ResultsFile} {
		path := filepath.Join(dataDir, name)
		_, err := scanLines(path, func(line []byte) error {
			e, ok := decodeEntry(line)
			if !ok || (!e.Time.IsZero() && e.Time.Before(since)) {
				return nil
			}
			return fn(e)
		})
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read the results history (%s): %w", name, err)
		}
	}
	return nil
}

// decodeEntry parses one line of results.jsonl without keeping its raw
// result (standalone lines carry up to a few hundred KiB of it).
func decodeEntry(line []byte) (ResultEntry, bool) {
	var e ResultEntry
	if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
		return ResultEntry{}, false
	}
	e.Raw = nil
	return e, true
}

// recentResults is the in-memory tail of the history (see RecentWindow).
type recentResults struct {
	mu      sync.Mutex
	dataDir string
	entries []ResultEntry // in the order written
}

// loadRecent reads the recent part of the history from disk. A read error
// leaves what was read: the page shows less, the files stay as they are.
func loadRecent(dataDir string, now time.Time) (*recentResults, error) {
	r := &recentResults{dataDir: dataDir}
	return r, r.reload(now)
}

// reload replaces the memory with what the files hold now (after the
// entries were dated in place, see resultLog.correct).
func (r *recentResults) reload(now time.Time) error {
	var entries []ResultEntry
	err := ReadHistory(r.dataDir, now.Add(-RecentWindow), func(e ResultEntry) error {
		entries = append(entries, e)
		if len(entries) > 2*recentMax {
			entries = slices.Delete(entries, 0, len(entries)-recentMax)
		}
		return nil
	})
	r.mu.Lock()
	r.entries = trimRecent(entries, now)
	r.mu.Unlock()
	return err
}

// add appends one entry (its Raw is not kept).
func (r *recentResults) add(e ResultEntry, now time.Time) {
	e.Raw = nil
	r.mu.Lock()
	r.entries = trimRecent(append(r.entries, e), now)
	r.mu.Unlock()
}

// list returns a copy of the entries, in the order written.
func (r *recentResults) list(now time.Time) []ResultEntry {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = trimRecent(r.entries, now)
	return slices.Clone(r.entries)
}

// trimRecent drops what is older than RecentWindow and, beyond recentMax,
// the oldest entries.
func trimRecent(entries []ResultEntry, now time.Time) []ResultEntry {
	cutoff := now.Add(-RecentWindow)
	keep := entries[:0]
	for _, e := range entries {
		if e.Time.IsZero() || !e.Time.Before(cutoff) {
			keep = append(keep, e)
		}
	}
	if n := len(keep) - recentMax; n > 0 {
		keep = slices.Delete(keep, 0, n)
	}
	return keep
}
