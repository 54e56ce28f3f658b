package agent

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// ResultsFile is the local record of every test, in the data dir: one JSON
// object per line. In standalone mode it is where results go (with the raw
// result); otherwise it is the pod's own history, including failures.
const ResultsFile = "results.jsonl"

// resultsMaxBytes bounds results.jsonl on an SD card; one rotated generation
// (results.jsonl.1) is kept.
const resultsMaxBytes = 16 << 20

// ResultEntry is one line of results.jsonl.
type ResultEntry struct {
	Time            time.Time       `json:"time"`
	Runner          string          `json:"runner"`
	Interface       string          `json:"interface"`
	DownloadMbps    *float64        `json:"download_mbps,omitempty"`
	UploadMbps      *float64        `json:"upload_mbps,omitempty"`
	LatencyMs       *float64        `json:"latency_ms,omitempty"`
	DurationSeconds float64         `json:"duration_seconds"`
	ErrorClass      string          `json:"error_class,omitempty"`
	Error           string          `json:"error,omitempty"`
	OutboxID        string          `json:"outbox_id,omitempty"`
	Raw             json.RawMessage `json:"raw,omitempty"`
}

// resultLog appends entries durably. A crash can leave a torn last line;
// opening the log terminates it so the next entry starts on its own line
// (readers skip the torn one).
type resultLog struct {
	mu   sync.Mutex
	path string
	max  int64
}

func openResultLog(dir string) (*resultLog, error) {
	l := &resultLog{path: filepath.Join(dir, ResultsFile), max: resultsMaxBytes}
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
		if err := os.Rename(l.path, l.path+".1"); err != nil {
			return fmt.Errorf("rotate %s: %w", ResultsFile, err)
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
	sc.Buffer(make([]byte, 64<<10), 8<<20)
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
