// Package outbox owns the durable, ordered store of results waiting for
// upload. A result is written to disk (one file per record, checksummed,
// written atomically and fsynced) before any upload is attempted and is
// removed only when the caller says the service stored it. The store is
// bounded in bytes; whatever it ever drops — to stay within the bound, to
// survive a full disk, or because a file was corrupt — is counted in
// counters that survive restarts and is reported through the logger and the
// OnEvict callback, never dropped silently.
//
// Eviction rule: the oldest records (by ID, i.e. by the order they were Put)
// are evicted first, whether the reason is the byte bound or a full disk.
//
// Layout of Dir: one "<id>.rec" file per record, "state.json" (eviction
// counters and the ID sequence reservation), "lock" (held with flock by the
// open Store), "quarantine/" (a few corrupt files kept for diagnosis), and
// transient atomicfile temp files that Open cleans up.
package outbox

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/radarpod/radarpod/internal/atomicfile"
	"github.com/radarpod/radarpod/internal/wallclock"
)

// Eviction reasons.
const (
	// ReasonOverLimit: evicted (oldest first) to keep the store within MaxBytes.
	ReasonOverLimit = "over_limit"
	// ReasonDiskFull: evicted (oldest first) because the disk was full, or a
	// new record that could not be stored even after evicting everything.
	ReasonDiskFull = "disk_full"
	// ReasonCorrupt: a record file failed verification (checksum, format,
	// vanished); it is moved to the quarantine directory. A file that
	// cannot be read for now (permission, I/O) is not corrupt: it is kept
	// (ErrUnreadable).
	ReasonCorrupt = "corrupt"
	// ReasonTooLarge: a record larger than MaxBytes on its own (refused by
	// Put, or found on disk after MaxBytes was lowered).
	ReasonTooLarge = "too_large"
	// ReasonWriteError: a new record that could not be written for a reason
	// other than a full disk (I/O error, read-only filesystem...).
	ReasonWriteError = "write_error"
)

var (
	// ErrDiskFull: the record was not stored because the disk stayed full
	// after evicting every older record. It has been counted as evicted.
	ErrDiskFull = errors.New("outbox: disk full")
	// ErrTooLarge: the record alone exceeds MaxBytes. It has been counted as evicted.
	ErrTooLarge = errors.New("outbox: record larger than the outbox bound")
	// ErrNotFound: no record with that ID (never stored, removed or evicted).
	ErrNotFound = errors.New("outbox: no such record")
	// ErrCorrupt: the record's file failed verification; it has been
	// quarantined and counted as evicted.
	ErrCorrupt = errors.New("outbox: corrupt record")
	// ErrLocked: another Store (in this or another process) has Dir open.
	ErrLocked = errors.New("outbox: directory in use by another store")
	// ErrClosed: the Store was closed.
	ErrClosed = errors.New("outbox: store closed")
	// ErrUnreadable: the record's file could not be read for now
	// (permission denied, an I/O error, out of file descriptors). It says
	// nothing about the record, which stays in the store, counted in
	// Stats.Unreadable, and is read again on a later call.
	ErrUnreadable = errors.New("outbox: record unreadable for now")
)

const (
	recordExt     = ".rec"
	stateName     = "state.json"
	lockName      = "lock"
	quarantineSub = "quarantine"
	// seqBlock IDs are reserved per state write, so the sequence costs one
	// small atomic write per 1024 Puts rather than one per Put, and IDs are
	// never reused after a crash while the state file is writable.
	seqBlock = 1024
	// Quarantine keeps at most this many files (and at most MaxBytes/4
	// bytes, but always the newest file): enough to diagnose, bounded.
	quarantineMaxFiles = 16
	idLen              = 16 + 1 + 8
)

// Record is one result waiting for upload.
type Record struct {
	// ID is assigned by Put; any value given to Put is ignored. IDs sort
	// (as strings) in the order the records were Put, across restarts and
	// regardless of the wall clock.
	ID string
	// CreatedAt is when the measurement was taken (its measured_at), as
	// the pod's wallclock knew it; zero when the time was not known then
	// (Clock.Synced false): a Pi without RTC stores no 1970 dates. It is
	// informational: ordering never uses it, and the service stamps a
	// measurement with its own arrival time.
	CreatedAt time.Time
	// Clock says where CreatedAt came from; an undated record carries its
	// place on the boot clock, so Restamp can date it once the time is
	// known in the same boot. Zero in records of older agents (unknown).
	Clock     wallclock.Stamp
	Runner    string // ndt7, ookla
	Style     string // NDT7, OOKLA (the service's measurement[style])
	Interface string // interface name, empty for the default route
	Wireless  bool
	// ErrorClass is empty for a completed measurement; for a failed one it
	// says why (timeout, unreachable, cli_error...). design.md keeps failed
	// results as records too; the uploader decides what to send.
	ErrorClass     string
	ConnectionInfo json.RawMessage // optional, wireless only
	// Result is the raw file the service parses (NDT7 NDJSON, Ookla JSON).
	Result []byte
}

// Meta describes a stored record without its payload.
type Meta struct {
	ID        string
	CreatedAt time.Time
	Clock     wallclock.Stamp
	Runner    string
	Bytes     int64 // size of the record file
}

// Eviction reports one record the store dropped without an upload.
type Eviction struct {
	ID        string // for a record Put refused, the ID it would have had
	CreatedAt time.Time
	Runner    string
	Bytes     int64
	Reason    string // one of the Reason constants
}

// Stats are the store's current size and its eviction counters since the
// outbox directory was created (persisted across restarts).
type Stats struct {
	Records      int
	Bytes        int64
	Evictions    int64
	EvictedBytes int64
	// Unreadable counts the records whose last read failed with
	// ErrUnreadable: kept, and read again later.
	Unreadable int
}

// Options configure Open.
type Options struct {
	// Dir holds the outbox and nothing else; created (0700) if missing.
	Dir string
	// MaxBytes bounds the sum of record file sizes. A Put may exceed it by
	// the record being written until the oldest records are evicted, so that
	// a failing write never costs older records.
	MaxBytes int64
	// Logger receives evictions (Error: each is a lost measurement) and
	// recoveries; nil discards.
	Logger *slog.Logger
	// OnEvict, if set, is called once per eviction, never with the store's
	// lock held (it may call Stats), serialised across goroutines.
	OnEvict func(Eviction)
	// OnUnreadable, if set, is called for every failed read of a record
	// that is kept for a later attempt (err wraps ErrUnreadable), under the
	// same rules as OnEvict.
	OnUnreadable func(id string, err error)
}

// Store is an open outbox. It is safe for concurrent use.
type Store struct {
	dir      string
	max      int64
	log      *slog.Logger
	onEvict  func(Eviction)
	onUnread func(id string, err error)
	notify   chan struct{}
	cbMu     sync.Mutex // serialises OnEvict and OnUnreadable calls

	mu          sync.Mutex
	closed      bool
	lock        *os.File
	index       []entry // ascending seq (= ascending ID)
	bytes       int64
	nextSeq     uint64
	st          state
	dirty       bool // st differs from state.json (a write failed)
	dirUnsynced bool // a removal's directory fsync failed; retry it
}

type entry struct {
	seq  uint64
	meta Meta
	// unreadable: the last read of the file failed with a permission or
	// I/O error. partial: it has never been read, so meta holds only the
	// ID and the file's size (Open could not read it).
	unreadable, partial bool
}

// unreadRead is a failed read of a kept record, for OnUnreadable.
type unreadRead struct {
	id  string
	err error
}

// state is state.json. Evicting lists the records of the last eviction
// batch: it is written (with the counters already incremented) before their
// files are removed, so a crash in between neither loses the count nor
// counts them twice — Open finishes removing any that are still there.
type state struct {
	Version      int      `json:"version"`
	SeqReserved  uint64   `json:"seq_reserved"`
	Evictions    int64    `json:"evictions"`
	EvictedBytes int64    `json:"evicted_bytes"`
	Evicting     []string `json:"evicting,omitempty"`
}

// victim is a record about to be evicted.
type victim struct {
	Eviction
	path       string // file to remove or quarantine; "" if never stored
	quarantine bool
}

// Open opens (creating if needed) the outbox in o.Dir: it takes the
// directory's lock, removes leftovers of interrupted writes, verifies every
// record (quarantining and counting corrupt ones) and evicts oldest records
// if the store exceeds MaxBytes (e.g. after the bound was lowered).
func Open(o Options) (*Store, error) {
	if o.Dir == "" {
		return nil, errors.New("outbox: no directory")
	}
	if o.MaxBytes <= 0 {
		return nil, fmt.Errorf("outbox: MaxBytes must be positive, got %d", o.MaxBytes)
	}
	s := &Store{
		dir:      o.Dir,
		max:      o.MaxBytes,
		log:      o.Logger,
		onEvict:  o.OnEvict,
		onUnread: o.OnUnreadable,
		notify:   make(chan struct{}, 1),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "outbox")
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("outbox: create %s: %w", s.dir, err)
	}
	lock, err := acquireLock(filepath.Join(s.dir, lockName), s.log)
	if err != nil {
		return nil, err
	}
	s.lock = lock
	evs, unread, err := s.load()
	if err != nil {
		releaseLock(lock)
		return nil, err
	}
	if len(s.index) > 0 {
		s.signal()
	}
	s.report(evs)
	s.reportUnreadable(unread)
	s.log.Info("outbox opened", "dir", s.dir, "records", len(s.index), "bytes", s.bytes,
		"max_bytes", s.max, "evictions_total", s.st.Evictions)
	return s, nil
}

// acquireLock keeps a second Store (a second agent on the same volume)
// from interleaving sequences and evictions with ours. flock is released by
// the kernel when the process dies, so a kill -9 leaves no stale lock.
func acquireLock(path string, log *slog.Logger) (*os.File, error) {
	// Read-only: flock needs no write access, and the file is never written.
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("outbox: lock: %w", err)
	}
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	switch {
	case err == nil:
	case errors.Is(err, unix.EWOULDBLOCK):
		f.Close()
		return nil, fmt.Errorf("%w: %s", ErrLocked, filepath.Dir(path))
	case errors.Is(err, unix.ENOLCK), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOSYS):
		// A filesystem without locks must not stop the pod from keeping results.
		log.Warn("outbox directory does not support locks; make sure one agent uses it", "path", path, "err", err)
	default:
		f.Close()
		return nil, fmt.Errorf("outbox: lock %s: %w", path, err)
	}
	return f, nil
}

func releaseLock(f *os.File) {
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	f.Close()
}

// load rebuilds the index from disk. Called once, from Open. A record
// that cannot be read for now (permission, I/O) is indexed from its name
// and size, and read when its turn comes.
func (s *Store) load() (evs []Eviction, unread []unreadRead, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n, err := atomicfile.CleanTemp(s.dir); err != nil {
		return nil, nil, fmt.Errorf("outbox: clean %s: %w", s.dir, err)
	} else if n > 0 {
		s.log.Info("outbox removed leftovers of interrupted writes", "files", n)
	}
	s.loadState()
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, nil, fmt.Errorf("outbox: scan %s: %w", s.dir, err)
	}
	hadJournal := len(s.st.Evicting) > 0
	evicting := make(map[string]bool, len(s.st.Evicting))
	for _, id := range s.st.Evicting {
		evicting[id] = true
	}
	var victims []victim
	var maxSeq uint64
	finished := 0
	for _, de := range entries {
		name := de.Name()
		id, ok := strings.CutSuffix(name, recordExt)
		if !ok {
			continue
		}
		seq, ok := parseID(id)
		if !ok {
			continue
		}
		maxSeq = max(maxSeq, seq)
		path := filepath.Join(s.dir, name)
		if evicting[id] {
			// Counted before a crash interrupted its removal.
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.log.Error("outbox could not finish an eviction", "id", id, "err", err)
			}
			finished++
			continue
		}
		info, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		var size int64
		if err == nil {
			size = info.Size()
		}
		if err == nil && size > s.max {
			victims = append(victims, victim{Eviction: Eviction{ID: id, Bytes: size, Reason: ReasonTooLarge}, path: path})
			continue
		}
		var r Record
		if err == nil {
			var b []byte
			b, err = os.ReadFile(path)
			if err == nil {
				r, err = decode(b)
				if err == nil && r.ID != id {
					err = fmt.Errorf("%w: file %s holds record %q", errFormat, name, r.ID)
				}
			}
		}
		if err != nil {
			if retryable(err) {
				err = fmt.Errorf("%w: %s: %w", ErrUnreadable, id, err)
				s.log.Error("outbox cannot read a record; keeping it and trying again later", "id", id, "err", err)
				s.index = append(s.index, entry{seq: seq, meta: Meta{ID: id, Bytes: size}, unreadable: true, partial: true})
				s.bytes += size
				unread = append(unread, unreadRead{id, err})
				continue
			}
			s.log.Warn("outbox found a corrupt record", "id", id, "err", err)
			victims = append(victims, victim{Eviction: Eviction{ID: id, Bytes: size, Reason: ReasonCorrupt}, path: path, quarantine: true})
			continue
		}
		s.index = append(s.index, entry{seq: seq, meta: Meta{ID: id, CreatedAt: r.CreatedAt, Clock: r.Clock, Runner: r.Runner, Bytes: size}})
		s.bytes += size
	}
	if finished > 0 {
		s.log.Info("outbox finished evictions interrupted by a crash", "records", finished)
		if err := atomicfile.SyncDir(s.dir); err != nil {
			s.dirUnsynced = true
		}
	}
	slices.SortFunc(s.index, func(a, b entry) int { return cmp.Compare(a.seq, b.seq) })
	slices.SortFunc(victims, func(a, b victim) int { return strings.Compare(a.ID, b.ID) })
	s.nextSeq = max(s.st.SeqReserved, maxSeq) + 1
	over := s.bytes
	for _, e := range s.index {
		if over <= s.max {
			break
		}
		victims = append(victims, victim{Eviction: Eviction{ID: e.meta.ID, CreatedAt: e.meta.CreatedAt, Runner: e.meta.Runner, Bytes: e.meta.Bytes, Reason: ReasonOverLimit}, path: s.path(e.meta.ID)})
		over -= e.meta.Bytes
	}
	if len(victims) > 0 {
		evs = s.evictLocked(victims)
	}
	if s.dirty || hadJournal {
		s.persistLocked()
	}
	return evs, unread, nil
}

// loadState reads state.json. A garbled one is quarantined and replaced:
// losing the counters is reported loudly rather than stopping the pod.
func (s *Store) loadState() {
	path := filepath.Join(s.dir, stateName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err == nil {
		err = json.Unmarshal(b, &s.st)
	}
	if err != nil {
		s.st = state{}
		s.log.Error("outbox state unreadable, eviction counters restart from zero", "path", path, "err", err)
		s.quarantineLocked(path, stateName+"-"+strconv.FormatInt(time.Now().UnixNano(), 10))
		s.dirty = true
	}
}

func (s *Store) path(id string) string { return filepath.Join(s.dir, id+recordExt) }

func formatID(seq uint64, rnd uint32) string {
	return fmt.Sprintf("%016x-%08x", seq, rnd)
}

// parseID accepts exactly the IDs formatID produces and returns the sequence.
func parseID(id string) (uint64, bool) {
	if len(id) != idLen || id[16] != '-' {
		return 0, false
	}
	for i := 0; i < idLen; i++ {
		c := id[i]
		if i != 16 && !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return 0, false
		}
	}
	seq, err := strconv.ParseUint(id[:16], 16, 64)
	return seq, err == nil
}

// Put stores r durably and returns it with its ID filled in. A zero
// CreatedAt stays zero: the time was not known (the store never stamps a
// record with a clock it cannot vouch for). When Put returns nil the record
// is on disk and survives a crash or power loss. On any error the record is
// not stored and has already been counted as evicted (reason too_large,
// disk_full or write_error): Put is final, callers must not retry it.
func (s *Store) Put(r Record) (Record, error) {
	var evs []Eviction
	defer func() { s.report(evs) }()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Record{}, ErrClosed
	}
	if !r.CreatedAt.IsZero() {
		r.CreatedAt = r.CreatedAt.Round(0).UTC()
	}
	seq := s.nextSeq
	s.nextSeq++
	if seq > s.st.SeqReserved {
		s.st.SeqReserved = seq + seqBlock - 1
		s.persistLocked() // on failure IDs stay ordered (Open also looks at the files) and unique by their random half
	}
	r.ID = formatID(seq, rand.Uint32())
	size := encodedLen(&r)
	lost := victim{Eviction: Eviction{ID: r.ID, CreatedAt: r.CreatedAt, Runner: r.Runner, Bytes: size}}
	if size > s.max {
		lost.Reason = ReasonTooLarge
		evs = s.evictLocked([]victim{lost})
		return Record{}, fmt.Errorf("%w: %d bytes, bound %d", ErrTooLarge, size, s.max)
	}
	data := encode(&r)
	path := s.path(r.ID)
	for {
		err := atomicfile.Write(path, data, 0o600)
		if err == nil {
			break
		}
		// Write may fail after its rename (directory fsync): the record must
		// then not survive as a ghost of a Put reported as failed.
		os.Remove(path)
		if !isNoSpace(err) {
			lost.Reason = ReasonWriteError
			evs = append(evs, s.evictLocked([]victim{lost})...)
			return Record{}, fmt.Errorf("outbox: store %s: %w", r.ID, err)
		}
		if len(s.index) == 0 {
			lost.Reason = ReasonDiskFull
			evs = append(evs, s.evictLocked([]victim{lost})...)
			return Record{}, fmt.Errorf("outbox: store %s (%d bytes): %w: %w", r.ID, size, ErrDiskFull, err)
		}
		// Free at least as much as the new record needs before retrying,
		// so a big record behind many small ones costs few retries.
		evs = append(evs, s.evictLocked(s.oldestLocked(size, ReasonDiskFull))...)
	}
	s.index = append(s.index, entry{seq: seq, meta: Meta{ID: r.ID, CreatedAt: r.CreatedAt, Clock: r.Clock, Runner: r.Runner, Bytes: size}})
	s.bytes += size
	if s.bytes > s.max {
		evs = append(evs, s.evictLocked(s.oldestLocked(s.bytes-s.max, ReasonOverLimit))...)
	}
	if s.dirty {
		s.persistLocked()
	}
	s.signal()
	return r, nil
}

// oldestLocked picks the oldest records totalling at least need bytes (at
// least one record).
func (s *Store) oldestLocked(need int64, reason string) []victim {
	var vs []victim
	var freed int64
	for _, e := range s.index {
		if len(vs) > 0 && freed >= need {
			break
		}
		vs = append(vs, victim{Eviction: Eviction{ID: e.meta.ID, CreatedAt: e.meta.CreatedAt, Runner: e.meta.Runner, Bytes: e.meta.Bytes, Reason: reason}, path: s.path(e.meta.ID)})
		freed += e.meta.Bytes
	}
	return vs
}

// evictLocked counts vs, persists the counters (with the files to remove as
// a journal), then removes or quarantines the files and drops them from the
// index. If the counters cannot be persisted (disk full) the eviction still
// happens; the counts stay in memory and are persisted by a later write.
func (s *Store) evictLocked(vs []victim) []Eviction {
	var ids []string
	for _, v := range vs {
		s.st.Evictions++
		s.st.EvictedBytes += v.Bytes
		if v.path != "" {
			ids = append(ids, v.ID)
		}
	}
	s.st.Evicting = ids
	s.persistLocked()
	evs := make([]Eviction, 0, len(vs))
	for _, v := range vs {
		if v.path != "" {
			if v.quarantine {
				s.quarantineLocked(v.path, filepath.Base(v.path))
			} else if err := os.Remove(v.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				s.log.Error("outbox could not remove an evicted record", "id", v.ID, "err", err)
			}
		}
		s.dropLocked(v.ID)
		s.log.Debug("outbox evicted a result", "id", v.ID, "runner", v.Runner,
			"created_at", CreatedAttr(v.CreatedAt), "bytes", v.Bytes, "reason", v.Reason)
		evs = append(evs, v.Eviction)
	}
	s.logEvictions(evs)
	if len(ids) > 0 {
		if err := atomicfile.SyncDir(s.dir); err != nil {
			s.dirUnsynced = true
		}
	}
	// The journal is cleared by the next state write; Open ignores entries
	// whose files are gone, and IDs are never reused.
	s.st.Evicting = nil
	return evs
}

// logEvictions reports a batch at Error level (each eviction is a lost
// measurement, worth a Sentry event) but once per reason, so that lowering
// the bound on a full outbox does not flood the logs.
func (s *Store) logEvictions(evs []Eviction) {
	for i := 0; i < len(evs); {
		j := i + 1
		for j < len(evs) && evs[j].Reason == evs[i].Reason {
			j++
		}
		var bytes int64
		for _, e := range evs[i:j] {
			bytes += e.Bytes
		}
		s.log.Error("outbox evicted results without uploading them", "reason", evs[i].Reason,
			"records", j-i, "bytes", bytes, "oldest_id", evs[i].ID, "oldest_runner", evs[i].Runner,
			"oldest_created_at", CreatedAttr(evs[i].CreatedAt), "newest_id", evs[j-1].ID, "evictions_total", s.st.Evictions)
		i = j
	}
}

// quarantineLocked moves a file into the bounded quarantine directory; if
// it cannot be moved it is deleted (it has been counted either way).
func (s *Store) quarantineLocked(path, name string) {
	qdir := filepath.Join(s.dir, quarantineSub)
	err := os.MkdirAll(qdir, 0o700)
	if err == nil {
		err = os.Rename(path, filepath.Join(qdir, name))
	}
	if errors.Is(err, fs.ErrNotExist) {
		return // vanished: nothing left to keep
	}
	if err != nil {
		s.log.Error("outbox could not quarantine a corrupt file, deleting it", "path", path, "err", err)
		os.Remove(path)
		return
	}
	s.pruneQuarantine(qdir)
	atomicfile.SyncDir(qdir)
}

func (s *Store) pruneQuarantine(qdir string) {
	des, err := os.ReadDir(qdir)
	if err != nil {
		return
	}
	type qf struct {
		name string
		size int64
		mod  time.Time
	}
	var files []qf
	var total int64
	for _, de := range des {
		if info, err := de.Info(); err == nil && info.Mode().IsRegular() {
			files = append(files, qf{de.Name(), info.Size(), info.ModTime()})
			total += info.Size()
		}
	}
	slices.SortFunc(files, func(a, b qf) int {
		if c := a.mod.Compare(b.mod); c != 0 {
			return c
		}
		return strings.Compare(a.name, b.name)
	})
	for len(files) > 1 && (len(files) > quarantineMaxFiles || total > s.max/4) {
		if err := os.Remove(filepath.Join(qdir, files[0].name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return
		}
		total -= files[0].size
		files = files[1:]
	}
}

func (s *Store) dropLocked(id string) {
	i, ok := s.findLocked(id)
	if !ok {
		return
	}
	s.bytes -= s.index[i].meta.Bytes
	if i == 0 {
		// Oldest-first delivery removes from the front: reslice, no copy.
		s.index[0] = entry{}
		s.index = s.index[1:]
		return
	}
	s.index = slices.Delete(s.index, i, i+1)
}

func (s *Store) findLocked(id string) (int, bool) {
	seq, ok := parseID(id)
	if !ok {
		return 0, false
	}
	i, found := slices.BinarySearchFunc(s.index, seq, func(e entry, seq uint64) int { return cmp.Compare(e.seq, seq) })
	return i, found && s.index[i].meta.ID == id
}

// persistLocked writes state.json. Failures (typically a full disk) leave
// the state dirty for the next write; the first is logged.
func (s *Store) persistLocked() {
	s.st.Version = 1
	err := atomicfile.WriteJSON(filepath.Join(s.dir, stateName), s.st, 0o600)
	switch {
	case err != nil && !s.dirty:
		s.log.Warn("outbox could not persist its counters, keeping them in memory", "err", err)
		s.dirty = true
	case err == nil && s.dirty:
		s.log.Info("outbox persisted its counters again")
		s.dirty = false
	}
}

// CreatedAttr is how logs show a record's CreatedAt: an undated record
// says so rather than print the zero time as if it were a date.
func CreatedAttr(t time.Time) any {
	if t.IsZero() {
		return "unknown (clock not synchronized)"
	}
	return t
}

// Restamp dates records that were stored before the time was known. date
// is asked about each record whose clock is not synced and returns its new
// CreatedAt and stamp, or false to leave it as it is (typically
// wallclock.Clock.Correct). Each dated record is rewritten atomically; one
// delivered meanwhile is not brought back. It returns how many records it
// rewrote, and stops at the first error (the rest keep their stamps and
// are dated by a later call).
func (s *Store) Restamp(date func(createdAt time.Time, c wallclock.Stamp) (time.Time, wallclock.Stamp, bool)) (int, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, ErrClosed
	}
	var todo []Meta
	for _, e := range s.index {
		if !e.meta.Clock.Synced {
			todo = append(todo, e.meta)
		}
	}
	s.mu.Unlock()
	n := 0
	for _, m := range todo {
		if _, _, ok := date(m.CreatedAt, m.Clock); !ok {
			continue
		}
		done, err := s.restamp(m.ID, date)
		if err != nil {
			return n, err
		}
		if done {
			n++
		}
	}
	return n, nil
}

// restamp rewrites one record with the time date gives it, under the
// store's lock so that a removal cannot race the rewrite.
func (s *Store) restamp(id string, date func(time.Time, wallclock.Stamp) (time.Time, wallclock.Stamp, bool)) (bool, error) {
	var evs []Eviction
	defer func() { s.report(evs) }()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, ErrClosed
	}
	var unread []unreadRead
	defer func() { s.reportUnreadable(unread) }()
	i, ok := s.findLocked(id)
	if !ok {
		return false, nil // delivered (or evicted) meanwhile
	}
	r, ev, err := s.readLocked(i)
	if ev != nil {
		evs = append(evs, *ev)
		return false, nil // quarantined and counted: nothing left to date
	}
	if errors.Is(err, ErrUnreadable) {
		// Kept; dating it waits for a read that works, and must not hold
		// back the records after it.
		unread = append(unread, unreadRead{id, err})
		return false, nil
	}
	if err != nil {
		return false, err
	}
	at, c, ok := date(r.CreatedAt, r.Clock)
	if !ok {
		return false, nil
	}
	r.CreatedAt, r.Clock = at.Round(0).UTC(), c
	data := encode(&r)
	if err := atomicfile.Write(s.path(id), data, 0o600); err != nil {
		// Before the rename the old file stands; after it (a failed
		// directory fsync) the new one does: either is a valid record.
		return false, fmt.Errorf("outbox: restamp %s: %w", id, err)
	}
	m := &s.index[i].meta
	s.bytes += int64(len(data)) - m.Bytes
	m.CreatedAt, m.Clock, m.Bytes = r.CreatedAt, r.Clock, int64(len(data))
	return true, nil
}

// Oldest returns the oldest stored record. ok is false when the store is
// empty. Corrupt records met on the way are quarantined, counted and
// skipped; unreadable ones are kept and skipped (see Next).
func (s *Store) Oldest() (r Record, ok bool, err error) { return s.Next("") }

// Next returns the oldest stored record whose ID sorts after the given one
// ("" means the oldest of all): an uploader with several uploads in flight
// walks the store with it, oldest first, without waiting for each removal.
// ok is false when there is no such record. Corrupt records met on the way
// are quarantined, counted and skipped. Records that cannot be read for now
// (ErrUnreadable: permission, I/O) are kept and skipped, so one bad file
// does not hold back every result behind it; each walk from the oldest
// tries them again.
func (s *Store) Next(after string) (r Record, ok bool, err error) {
	var evs []Eviction
	var unread []unreadRead
	defer func() {
		s.report(evs)
		s.reportUnreadable(unread)
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Record{}, false, ErrClosed
	}
	for {
		i := 0
		if after != "" {
			// IDs sort like their sequence numbers: search by ID, so an
			// "after" that was removed meanwhile still finds its place.
			i, _ = slices.BinarySearchFunc(s.index, after, func(e entry, id string) int { return strings.Compare(e.meta.ID, id) })
			if i < len(s.index) && s.index[i].meta.ID == after {
				i++
			}
		}
		if i >= len(s.index) {
			return Record{}, false, nil
		}
		r, ev, err := s.readLocked(i)
		if ev != nil {
			evs = append(evs, *ev)
			continue // dropped from the index: search again
		}
		if errors.Is(err, ErrUnreadable) {
			unread = append(unread, unreadRead{s.index[i].meta.ID, err})
			after = s.index[i].meta.ID
			continue
		}
		if err != nil {
			return Record{}, false, err
		}
		return r, true, nil
	}
}

// Get returns the record with the given ID: ErrNotFound if there is none,
// ErrCorrupt if its file failed verification (it is then quarantined and
// counted), ErrUnreadable if it cannot be read for now (it is kept).
func (s *Store) Get(id string) (Record, error) {
	var evs []Eviction
	var unread []unreadRead
	defer func() {
		s.report(evs)
		s.reportUnreadable(unread)
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Record{}, ErrClosed
	}
	i, ok := s.findLocked(id)
	if !ok {
		return Record{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	r, ev, err := s.readLocked(i)
	if ev != nil {
		evs = append(evs, *ev)
	}
	if errors.Is(err, ErrUnreadable) {
		unread = append(unread, unreadRead{id, err})
	}
	return r, err
}

// readLocked reads and verifies the record at index i. A file that fails
// verification is evicted (returned as ev, with an ErrCorrupt error). A
// read that fails for a reason that says nothing about the file
// (permission, I/O, out of file descriptors or memory) returns an error
// wrapping ErrUnreadable and keeps the record: it is logged at Error the
// first time (a result the pod cannot deliver until someone looks) and
// when it can be read again.
func (s *Store) readLocked(i int) (Record, *Eviction, error) {
	e := &s.index[i]
	path := s.path(e.meta.ID)
	b, err := os.ReadFile(path)
	var r Record
	if err == nil {
		r, err = decode(b)
		if err == nil && r.ID != e.meta.ID {
			err = fmt.Errorf("%w: holds record %q", errFormat, r.ID)
		}
	}
	if err == nil {
		if e.unreadable {
			s.log.Info("outbox can read a record again", "id", e.meta.ID)
			e.unreadable = false
		}
		if e.partial {
			// First read since Open: what the index could not know.
			e.partial = false
			s.bytes += int64(len(b)) - e.meta.Bytes
			e.meta = Meta{ID: e.meta.ID, CreatedAt: r.CreatedAt, Clock: r.Clock, Runner: r.Runner, Bytes: int64(len(b))}
		}
		return r, nil, nil
	}
	if retryable(err) {
		err = fmt.Errorf("%w: %s: %w", ErrUnreadable, e.meta.ID, err)
		if !e.unreadable {
			s.log.Error("outbox cannot read a record; keeping it and trying again later", "id", e.meta.ID, "err", err)
			e.unreadable = true
		} else {
			s.log.Debug("outbox still cannot read a record", "id", e.meta.ID, "err", err)
		}
		return Record{}, nil, err
	}
	s.log.Warn("outbox found a corrupt record", "id", e.meta.ID, "err", err)
	evs := s.evictLocked([]victim{{Eviction: Eviction{ID: e.meta.ID, CreatedAt: e.meta.CreatedAt, Runner: e.meta.Runner, Bytes: e.meta.Bytes, Reason: ReasonCorrupt}, path: path, quarantine: true}})
	return Record{}, &evs[0], fmt.Errorf("%w: %s: %w", ErrCorrupt, e.meta.ID, err)
}

// Remove deletes the record durably (after the service stored it). Removing
// an ID that is not there is not an error, so an error is always worth
// retrying later: the record may still be on disk (it would be uploaded
// again, a duplicate rather than a loss).
func (s *Store) Remove(id string) error { return s.RemoveBatch([]string{id}) }

// RemoveBatch deletes several records with one directory fsync for all of
// them, where Remove would pay one per record: delivering a backlog is
// bounded by that fsync (about a millisecond here, more on an SD card).
// Durability is unchanged for each record: RemoveBatch returns nil only
// once every removal is on disk. What batching widens is the window in
// which a power cut can bring back records the service already has — all
// of the batch rather than one — and such a record is uploaded again: a
// duplicate, never a loss. IDs that are not there are ignored. On error
// the records whose files could not be deleted stay in the store; those
// deleted are gone from it even if the fsync failed (it is retried by the
// next removal).
func (s *Store) RemoveBatch(ids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	var errs []error
	for _, id := range ids {
		if _, ok := s.findLocked(id); !ok {
			continue
		}
		if err := os.Remove(s.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("outbox: remove %s: %w", id, err))
			continue
		}
		s.dropLocked(id)
		s.dirUnsynced = true
	}
	if s.dirUnsynced {
		if err := atomicfile.SyncDir(s.dir); err != nil {
			errs = append(errs, fmt.Errorf("outbox: remove %d records: %w", len(ids), err))
		} else {
			s.dirUnsynced = false
		}
	}
	if s.dirty {
		s.persistLocked()
	}
	return errors.Join(errs...)
}

// List describes the stored records, oldest first, without payloads.
func (s *Store) List() []Meta {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Meta, len(s.index))
	for i, e := range s.index {
		out[i] = e.meta
	}
	return out
}

// Stats returns the store's size and its persisted eviction counters.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Records: len(s.index), Bytes: s.bytes, Evictions: s.st.Evictions, EvictedBytes: s.st.EvictedBytes}
	for _, e := range s.index {
		if e.unreadable {
			st.Unreadable++
		}
	}
	return st
}

// Notify is signalled after every successful Put (and by Open when records
// are waiting). Signals coalesce: one pending signal stands for any number
// of Puts, so a consumer drains with Oldest until the store is empty.
func (s *Store) Notify() <-chan struct{} { return s.notify }

func (s *Store) signal() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Close persists pending counters and releases the directory lock. Other
// methods return ErrClosed afterwards.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.dirty {
		s.persistLocked()
		if s.dirty {
			err = errors.New("outbox: close: eviction counters not persisted (disk full?)")
		}
	}
	releaseLock(s.lock)
	return err
}

func (s *Store) report(evs []Eviction) {
	if s.onEvict == nil || len(evs) == 0 {
		return
	}
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	for _, ev := range evs {
		s.onEvict(ev)
	}
}

func (s *Store) reportUnreadable(rs []unreadRead) {
	if s.onUnread == nil || len(rs) == 0 {
		return
	}
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	for _, r := range rs {
		s.onUnread(r.id, r.err)
	}
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// retryable errors say nothing about what the file holds: the process is
// short of descriptors or memory, or the file cannot be read for now —
// permission denied (EACCES, EPERM: a mode, owner or mount changed by hand
// or by a restore) or an I/O error (EIO: a failing SD card, a network
// filesystem away). Quarantining would count a good result as lost; it is
// kept and read again later instead.
func retryable(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM, syscall.EINTR, syscall.EAGAIN,
		syscall.EACCES, syscall.EPERM, syscall.EIO} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
