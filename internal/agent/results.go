package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/radarpod/radarpod/internal/atomicfile"
	"github.com/radarpod/radarpod/internal/wallclock"
)

// ResultsFile is the local record of every test, in the data dir: one JSON
// object per line. In standalone mode it is where results go (with the raw
// result); otherwise it is the pod's own history, including failures.
const ResultsFile = "results.jsonl"

// resultsMaxBytes bounds results.jsonl on an SD card. The retention rule:
// when the next entry would take the file past this size, it becomes
// results.jsonl.1 and a new file starts; the previous results.jsonl.1, if
// any, is deleted. So the pod keeps between 16 and 32 MiB of history, and
// what a rotation deletes is counted and reported (resultLog.onDrop): in
// standalone mode this file is the only copy of the results.
const resultsMaxBytes = 16 << 20

// rotatedSuffix names the one older generation kept.
const rotatedSuffix = ".1"

// ResultEntry is one line of results.jsonl.
type ResultEntry struct {
	// Time is when the test started (its measured_at): the best estimate
	// of the real time, absent when none was known (a Pi without RTC
	// before its clock synced: clock_synced false). Such an entry carries
	// its place on the boot clock instead, and is dated in place once the
	// time is known in the same boot (clock_source "boot-clock"); one whose
	// boot ended first stays undated for good. Lines written before the
	// clock was tracked have a time and no clock_source.
	Time time.Time `json:"time,omitzero"`
	wallclock.Stamp
	Runner          string   `json:"runner"`
	Interface       string   `json:"interface"`
	DownloadMbps    *float64 `json:"download_mbps,omitempty"`
	UploadMbps      *float64 `json:"upload_mbps,omitempty"`
	LatencyMs       *float64 `json:"latency_ms,omitempty"`
	DurationSeconds float64  `json:"duration_seconds"`
	// BytesSent and BytesReceived are what the test moved (failed tests
	// too, when the runner measured it): the data budget's input.
	BytesSent     int64           `json:"bytes_sent,omitempty"`
	BytesReceived int64           `json:"bytes_received,omitempty"`
	ErrorClass    string          `json:"error_class,omitempty"`
	Error         string          `json:"error,omitempty"`
	OutboxID      string          `json:"outbox_id,omitempty"`
	Raw           json.RawMessage `json:"raw,omitempty"`
}

// resultLog appends entries durably. A crash can leave a torn last line;
// opening the log terminates it so the next entry starts on its own line
// (readers skip the torn one).
type resultLog struct {
	mu   sync.Mutex
	path string
	max  int64
	// onDrop, when set, is told what a rotation deleted.
	onDrop func(droppedResults)
}

// droppedResults describes the generation a rotation deleted.
type droppedResults struct {
	// Entries is how many entries it held (torn lines are not counted).
	Entries int
	// First and Last are the times of its oldest and newest entries.
	First, Last time.Time
	// Err says the old copy could not be read to the end: Entries is then
	// what was counted before the error.
	Err error
}

func openResultLog(dir string) (*resultLog, error) {
	l := &resultLog{path: filepath.Join(dir, ResultsFile), max: resultsMaxBytes}
	// Leftovers of a dating rewrite (correct) cut short by a crash; only
	// ours: the updater writes its own temp files in this directory.
	if tmps, err := filepath.Glob(filepath.Join(dir, atomicfile.TempPrefix+ResultsFile+"*")); err == nil {
		for _, tmp := range tmps {
			os.Remove(tmp)
		}
	}
	f, err := os.OpenFile(l.path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", ResultsFile, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", ResultsFile, err)
	}
	if st.Size() > 0 {
		last := make([]byte, 1)
		if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
			if _, err := f.WriteAt([]byte("\n"), st.Size()); err != nil {
				return nil, fmt.Errorf("repair %s: %w", ResultsFile, err)
			}
		}
	}
	return l, nil
}

func (l *resultLog) append(e ResultEntry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode result entry: %w", err)
	}
	line = append(line, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if st, err := os.Stat(l.path); err == nil && st.Size()+int64(len(line)) > l.max {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("append %s: %w", ResultsFile, err)
	}
	before, statErr := f.Stat()
	_, werr := f.Write(line)
	if werr != nil && statErr == nil {
		// A short write (a full disk) leaves a fragment that the next entry,
		// once space returns, would be glued to: both would be unreadable.
		// Cutting it off also frees what it took.
		f.Truncate(before.Size())
	}
	serr := f.Sync()
	cerr := f.Close()
	if werr != nil || serr != nil || cerr != nil {
		return fmt.Errorf("append %s: %w", ResultsFile, firstErr(werr, serr, cerr))
	}
	return nil
}

// rotate moves the current file to the rotated name, deleting the older
// generation there; what that deletes is counted first and handed to
// onDrop, never lost silently.
func (l *resultLog) rotate() error {
	old := l.path + rotatedSuffix
	dropped, exists := countResults(old)
	if err := os.Rename(l.path, old); err != nil {
		return fmt.Errorf("rotate %s: %w", ResultsFile, err)
	}
	if exists && l.onDrop != nil {
		l.onDrop(dropped)
	}
	return nil
}

// countResults counts the entries of a results file and the times of its
// first and last, reading one line at a time (the file may be 16 MiB; a
// Pi has little memory to spare). exists is false when there is no file.
func countResults(path string) (d droppedResults, exists bool) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return d, false
	}
	if err != nil {
		d.Err = fmt.Errorf("count the entries of %s: %w", filepath.Base(path), err)
		return d, true
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxResultLine)
	for sc.Scan() {
		var e struct {
			Time time.Time `json:"time"`
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue
		}
		// Undated entries count, but bound no time span.
		if !e.Time.IsZero() {
			if d.First.IsZero() {
				d.First = e.Time
			}
			d.Last = e.Time
		}
		d.Entries++
	}
	if err := sc.Err(); err != nil {
		d.Err = fmt.Errorf("count the entries of %s: %w", filepath.Base(path), err)
	}
	return d, true
}

// maxResultLine bounds one line of results.jsonl when reading it back (a
// raw NDT7 result is a few hundred KiB).
const maxResultLine = 8 << 20

// correct dates the entries written before the time was known in the boot
// named bootID, in both generations of the file: date gives an entry's
// stamp its time, or false to leave it (wallclock.Clock.Correct). A file
// that holds any such entry is rewritten whole, atomically, so a reader or
// a crash sees it either before or after; appends wait meanwhile. It
// returns how many entries were dated.
//
// Rewriting beats appending a correction: readers (jq, the pod's own
// history) see one line per test with its real time. It happens at most
// once per boot and file in practice: the first time the clock is trusted.
func (l *resultLog) correct(bootID string, date func(wallclock.Stamp) (time.Time, wallclock.Stamp, bool)) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Cheap filters on the raw line before any decoding: a 16 MiB file of
	// dated entries is only scanned.
	undated := []byte(`"clock_synced":false`)
	thisBoot := []byte(`"boot_id":` + strconv.Quote(bootID))
	candidate := func(line []byte) bool {
		return bytes.Contains(line, undated) && bytes.Contains(line, thisBoot)
	}
	total := 0
	for _, path := range []string{l.path + rotatedSuffix, l.path} {
		n, err := scanLines(path, func(line []byte) error {
			if candidate(line) {
				return errFound
			}
			return nil
		})
		if errors.Is(err, fs.ErrNotExist) || (err == nil && n >= 0) {
			continue // no such file, or nothing to date in it
		}
		if !errors.Is(err, errFound) {
			return total, fmt.Errorf("date the entries of %s: %w", filepath.Base(path), err)
		}
		dated := 0
		err = atomicfile.WriteFunc(path, 0o644, func(w io.Writer) error {
			bw := bufio.NewWriterSize(w, 64<<10)
			_, err := scanLines(path, func(line []byte) error {
				if candidate(line) {
					var e ResultEntry
					if json.Unmarshal(line, &e) == nil && e.Time.IsZero() {
						if at, s, ok := date(e.Stamp); ok {
							e.Time, e.Stamp = at.UTC(), s
							if b, err := json.Marshal(e); err == nil {
								line = b
								dated++
							}
						}
					}
				}
				if _, err := bw.Write(line); err != nil {
					return err
				}
				return bw.WriteByte('\n')
			})
			if err != nil {
				return err
			}
			return bw.Flush()
		})
		if err != nil {
			return total, fmt.Errorf("date the entries of %s: %w", filepath.Base(path), err)
		}
		total += dated
	}
	return total, nil
}

var errFound = errors.New("found")

// scanLines calls fn with every line of the file at path (without its
// newline; torn lines included, so a rewrite keeps them) and returns how
// many lines it read, or fn's first error.
func scanLines(path string, fn func(line []byte) error) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxResultLine+1)
	n := 0
	for sc.Scan() {
		if err := fn(sc.Bytes()); err != nil {
			return n, err
		}
		n++
	}
	return n, sc.Err()
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// ReadResults parses results.jsonl, skipping lines that do not parse (a torn
// last line after a crash).
func ReadResults(r io.Reader) ([]ResultEntry, error) {
	var out []ResultEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxResultLine)
	for sc.Scan() {
		var e ResultEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out, sc.Err()
}

// rawAsJSON embeds a raw result in a JSON document: a JSON value as is, and
// NDJSON (the NDT7 result) as an array of its lines, so results.jsonl stays
// one valid JSON object per line and jq can read every measurement.
func rawAsJSON(raw []byte) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	if json.Valid(raw) {
		return raw
	}
	var buf bytes.Buffer
	buf.WriteByte('[')
	n := 0
	for _, line := range bytes.Split(raw, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || !json.Valid(line) {
			continue
		}
		if n > 0 {
			buf.WriteByte(',')
		}
		buf.Write(line)
		n++
	}
	buf.WriteByte(']')
	return buf.Bytes()
}
