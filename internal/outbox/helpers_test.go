package outbox

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/radarpod/radarpod/internal/atomicfile"
)

// evictLog collects OnEvict calls.
type evictLog struct {
	mu  sync.Mutex
	evs []Eviction
}

func (l *evictLog) add(e Eviction) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append(l.evs, e)
}

func (l *evictLog) all() []Eviction {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Eviction(nil), l.evs...)
}

func (l *evictLog) reasons() []string {
	var out []string
	for _, e := range l.all() {
		out = append(out, e.Reason)
	}
	return out
}

// openStore opens a store whose logs go to the test output and which is
// closed when the test ends (Close is idempotent, so tests may close early).
func openStore(t testing.TB, dir string, max int64, log *evictLog) *Store {
	t.Helper()
	o := Options{Dir: dir, MaxBytes: max, Logger: slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if log != nil {
		o.OnEvict = log.add
	}
	s, err := Open(o)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func mustPut(t testing.TB, s *Store, r Record) Record {
	t.Helper()
	got, err := s.Put(r)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	return got
}

func checkEqual(t testing.TB, got, want Record) {
	t.Helper()
	var diffs []string
	if got.ID != want.ID {
		diffs = append(diffs, "ID "+got.ID+" != "+want.ID)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		diffs = append(diffs, "CreatedAt "+got.CreatedAt.String()+" != "+want.CreatedAt.String())
	}
	if got.Clock != want.Clock {
		diffs = append(diffs, fmt.Sprintf("Clock %+v != %+v", got.Clock, want.Clock))
	}
	if got.Runner != want.Runner || got.Style != want.Style || got.Interface != want.Interface ||
		got.Wireless != want.Wireless || got.ErrorClass != want.ErrorClass {
		diffs = append(diffs, "fields differ")
	}
	if !bytes.Equal(got.ConnectionInfo, want.ConnectionInfo) {
		diffs = append(diffs, "ConnectionInfo differs")
	}
	if !bytes.Equal(got.Result, want.Result) {
		diffs = append(diffs, "Result differs")
	}
	if len(diffs) > 0 {
		t.Fatalf("record mismatch (%s):\n got  %+v\n want %+v", strings.Join(diffs, "; "), brief(got), brief(want))
	}
}

// brief prints a record without its (large) payload.
func brief(r Record) Record {
	if len(r.Result) > 64 {
		r.Result = append(r.Result[:64:64], "..."...)
	}
	return r
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tempLeftovers lists atomicfile temp files in dir.
func tempLeftovers(t testing.TB, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if strings.HasPrefix(de.Name(), atomicfile.TempPrefix) {
			out = append(out, de.Name())
		}
	}
	return out
}

// recordFiles lists the record files in dir.
func recordFiles(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+recordExt))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func ids(ms []Meta) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}
