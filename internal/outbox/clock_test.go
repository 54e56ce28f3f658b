package outbox

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/wallclock"
)

// v1Record is a record file written by the agent before the clock was
// tracked (format version 1).
const v1Record = "v1-0000000000000007-abcdef01.rec"

// A record the previous version left in the outbox loads, uploads and is
// removed like any other; its clock is unknown, not claimed synced.
func TestVersion1RecordsStillLoad(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "0000000000000007-abcdef01"+recordExt), fixture(t, v1Record), 0o600); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, dir, 1<<20, nil)
	r, ok, err := s.Oldest()
	if err != nil || !ok {
		t.Fatalf("Oldest = %v, %v", ok, err)
	}
	want := Record{ID: "0000000000000007-abcdef01", CreatedAt: time.Date(2025, 3, 1, 12, 30, 45, 123456789, time.UTC),
		Runner: "ookla", Style: "OOKLA", Interface: "wlan0", Wireless: true,
		ConnectionInfo: []byte(`{"ssid":"pod"}`), Result: []byte(`{"type":"result"}`)}
	checkEqual(t, r, want)
	// New records continue the sequence after it.
	next := mustPut(t, s, Record{Runner: "ndt7", Clock: wallclock.Stamp{Synced: true, Source: wallclock.SourceKernel}, CreatedAt: time.Now()})
	if next.ID <= r.ID {
		t.Errorf("new record %s sorts before the old %s", next.ID, r.ID)
	}
	if err := s.Remove(r.ID); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Records != 1 || st.Evictions != 0 {
		t.Errorf("stats after removing the old record: %+v", st)
	}
}

// Records stored before the time was known are dated once it is, in the
// same boot; others are left alone, and a record delivered meanwhile is
// not brought back.
func TestRestamp(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 1<<20, nil)
	known := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	synced := mustPut(t, s, Record{Runner: "ndt7", CreatedAt: known, Clock: wallclock.Stamp{Synced: true, Source: wallclock.SourceKernel}})
	early := mustPut(t, s, Record{Runner: "ndt7", Result: []byte("a"), Clock: wallclock.Stamp{Source: wallclock.SourceUnsynced, BootID: "this", Boot: 30 * time.Second}})
	delivered := mustPut(t, s, Record{Runner: "ookla", Clock: wallclock.Stamp{Source: wallclock.SourceUnsynced, BootID: "this", Boot: 40 * time.Second}})
	lastBoot := mustPut(t, s, Record{Runner: "ookla", Clock: wallclock.Stamp{Source: wallclock.SourceUnsynced, BootID: "before", Boot: time.Minute}})
	legacy := mustPut(t, s, Record{Runner: "ookla", CreatedAt: known})

	// The time became known when the boot clock read 100 s.
	now := known.Add(time.Hour)
	removed := false
	date := func(_ time.Time, c wallclock.Stamp) (time.Time, wallclock.Stamp, bool) {
		if c.Synced || c.BootID != "this" {
			return time.Time{}, c, false
		}
		if c.Boot == 40*time.Second && !removed {
			removed = true
			// Its upload succeeds between the scan and the rewrite.
			if err := s.Remove(delivered.ID); err != nil {
				t.Fatal(err)
			}
		}
		c.Synced, c.Source = true, wallclock.SourceBootClock
		return now.Add(-(100*time.Second - c.Boot)), c, true
	}
	n, err := s.Restamp(date)
	if err != nil || n != 1 {
		t.Fatalf("Restamp = %d, %v; want the one undated record of this boot still stored", n, err)
	}
	if _, err := s.Get(delivered.ID); err == nil {
		t.Fatal("a record delivered during Restamp was brought back")
	}
	check := func(s *Store) {
		t.Helper()
		got, err := s.Get(early.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := now.Add(-70 * time.Second); !got.CreatedAt.Equal(want) || !got.Clock.Synced || got.Clock.Source != wallclock.SourceBootClock || string(got.Result) != "a" {
			t.Fatalf("dated record: %+v, want %s from the boot clock", brief(got), want)
		}
		for _, id := range []string{synced.ID, lastBoot.ID, legacy.ID} {
			r, err := s.Get(id)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]Record{synced.ID: synced, lastBoot.ID: lastBoot, legacy.ID: legacy}[id]
			checkEqual(t, r, want)
		}
		var total int64
		for _, m := range s.List() {
			total += m.Bytes
			if m.ID == early.ID && (!m.Clock.Synced || !m.CreatedAt.Equal(now.Add(-70*time.Second))) {
				t.Errorf("index not updated: %+v", m)
			}
		}
		if st := s.Stats(); st.Bytes != total || st.Records != 4 {
			t.Errorf("stats %+v, files total %d", st, total)
		}
	}
	check(s)
	s.Close()
	check(openStore(t, dir, 1<<20, nil))
}
