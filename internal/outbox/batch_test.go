package outbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// TestNextWalksPastRecordsInFlight: an uploader with several uploads in
// flight walks the store with Next, oldest first, whether the record it
// walks from is still there, already removed, or went corrupt meanwhile.
func TestNextWalksPastRecordsInFlight(t *testing.T) {
	dir := t.TempDir()
	var log evictLog
	s := openStore(t, dir, 64<<20, &log)
	var recs []Record
	for i := range 6 {
		recs = append(recs, mustPut(t, s, Record{Runner: "ookla", Result: fmt.Appendf(nil, "result %d", i)}))
	}
	next := func(after string) (string, bool) {
		t.Helper()
		r, ok, err := s.Next(after)
		if err != nil {
			t.Fatalf("Next(%q): %v", after, err)
		}
		return r.ID, ok
	}
	// The walk visits every record in order.
	var walked []string
	for id, ok := next(""); ok; id, ok = next(id) {
		walked = append(walked, id)
	}
	if want := ids(s.List()); !slices.Equal(walked, want) {
		t.Fatalf("walk = %v, want %v", walked, want)
	}
	// From a record removed meanwhile, the walk goes on after its place.
	if err := s.Remove(recs[1].ID); err != nil {
		t.Fatal(err)
	}
	if id, _ := next(recs[1].ID); id != recs[2].ID {
		t.Fatalf("Next(removed %s) = %s, want %s", recs[1].ID, id, recs[2].ID)
	}
	// A corrupt record on the way is quarantined, counted and skipped.
	write(t, filepath.Join(dir, recs[3].ID+recordExt), []byte("rotten"))
	if id, _ := next(recs[2].ID); id != recs[4].ID {
		t.Fatalf("Next past a corrupt record = %s, want %s", id, recs[4].ID)
	}
	if evs := log.all(); len(evs) != 1 || evs[0].ID != recs[3].ID || evs[0].Reason != ReasonCorrupt {
		t.Fatalf("evictions = %+v, want the corrupt record", evs)
	}
	// Past the newest: nothing; an empty "after" is Oldest.
	if _, ok := next(recs[5].ID); ok {
		t.Fatal("Next after the newest record returned one")
	}
	if id, _ := next(""); id != recs[0].ID {
		t.Fatalf(`Next("") = %s, want the oldest %s`, id, recs[0].ID)
	}
	s.Close()
	if _, _, err := s.Next(""); !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close = %v", err)
	}
}

// TestRemoveBatchIsDurableAndPartial: a batch removal survives a reopen,
// ignores what is not there, and on a failure keeps exactly the records it
// could not delete.
func TestRemoveBatchIsDurableAndPartial(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 64<<20, nil)
	var recs []Record
	for i := range 5 {
		recs = append(recs, mustPut(t, s, Record{Runner: "ndt7", Result: fmt.Appendf(nil, "result %d", i)}))
	}
	if err := s.RemoveBatch([]string{recs[0].ID, recs[2].ID, "0000000000000099-00000000", "not-an-id"}); err != nil {
		t.Fatalf("RemoveBatch: %v", err)
	}
	if err := s.RemoveBatch(nil); err != nil {
		t.Fatalf("RemoveBatch(nil): %v", err)
	}
	// A file that cannot be deleted (here: its name is a non-empty
	// directory) fails the batch for that record only.
	path := filepath.Join(dir, recs[3].ID+recordExt)
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(path, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	err := s.RemoveBatch([]string{recs[3].ID, recs[4].ID})
	if !errors.Is(err, syscall.ENOTEMPTY) {
		t.Fatalf("RemoveBatch with an undeletable file = %v", err)
	}
	if got, want := ids(s.List()), []string{recs[1].ID, recs[3].ID}; !slices.Equal(got, want) {
		t.Fatalf("left = %v, want %v", got, want)
	}
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openStore(t, dir, 64<<20, nil)
	if got, want := ids(s.List()), []string{recs[1].ID}; !slices.Equal(got, want) {
		t.Fatalf("after reopen = %v, want %v", got, want)
	}
}
