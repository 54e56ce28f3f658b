package outbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/wallclock"
)

func TestRoundTripEveryField(t *testing.T) {
	ndt7 := fixture(t, "ndt7-result.ndjson")
	ookla := fixture(t, "ookla-result.json")
	created := time.Date(2025, 3, 1, 12, 30, 45, 123456789, time.FixedZone("CET", 3600))
	cases := []struct {
		name string
		rec  Record
	}{
		{"ndt7 default route", Record{CreatedAt: created, Runner: "ndt7", Style: "NDT7", Result: ndt7}},
		{"ookla wireless", Record{CreatedAt: created, Runner: "ookla", Style: "OOKLA", Interface: "wlan0", Wireless: true,
			ConnectionInfo: json.RawMessage(`{"bssid":"aa:bb:cc:dd:ee:ff","signal":-61,"ssid":"café ☕"}`), Result: ookla}},
		{"failed test", Record{CreatedAt: created, Runner: "ookla", Style: "OOKLA", Interface: "eth1", ErrorClass: "timeout"}},
		{"binary payload", Record{CreatedAt: created, Runner: "x", Result: []byte{0, 1, 2, 0xff, 0, '\n', 0}}},
		{"undated: taken before the clock was trusted", Record{Runner: "ndt7", Style: "NDT7", Result: []byte("{}"),
			Clock: wallclock.Stamp{Source: wallclock.SourceUnsynced, BootID: "7c7b2d5e-0cf2-4a4f-9b57-1d3c2c1f0a55", Boot: 42 * time.Second}}},
		{"dated by the service's Date", Record{CreatedAt: created, Runner: "ookla", Style: "OOKLA", Result: ookla,
			Clock: wallclock.Stamp{Synced: true, Source: wallclock.SourceServiceDate}}},
		{"before 1970", Record{CreatedAt: time.Date(1960, 1, 1, 0, 0, 0, 1, time.UTC), Runner: "ndt7"}},
	}
	dir := t.TempDir()
	s := openStore(t, dir, 64<<20, nil)
	var stored []Record
	for _, c := range cases {
		got := mustPut(t, s, c.rec)
		want := c.rec
		want.ID = got.ID
		if c.rec.CreatedAt.IsZero() && !got.CreatedAt.IsZero() {
			t.Fatalf("%s: an undated record was stamped %v", c.name, got.CreatedAt)
		}
		checkEqual(t, got, want)
		r, err := s.Get(got.ID)
		if err != nil {
			t.Fatalf("%s: Get: %v", c.name, err)
		}
		checkEqual(t, r, want)
		stored = append(stored, want)
	}
	// Footprint: the file is the payload plus a compact header.
	for _, m := range s.List() {
		r, _ := s.Get(m.ID)
		if overhead := m.Bytes - int64(len(r.Result)+len(r.ConnectionInfo)); overhead > 128 {
			t.Errorf("record %s: %d bytes of overhead over its payload, want a compact header", m.ID, overhead)
		}
	}
	s.Close()

	s = openStore(t, dir, 64<<20, nil)
	if got := ids(s.List()); len(got) != len(stored) {
		t.Fatalf("after reopen: %d records, want %d", len(got), len(stored))
	}
	for i, want := range stored {
		r, err := s.Get(want.ID)
		if err != nil {
			t.Fatalf("after reopen %s: %v", cases[i].name, err)
		}
		checkEqual(t, r, want)
	}
	first, ok, err := s.Oldest()
	if err != nil || !ok {
		t.Fatalf("Oldest = %v, %v", ok, err)
	}
	checkEqual(t, first, stored[0])
}

func TestOrderIgnoresClockAndSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 64<<20, nil)
	// The clock jumps backwards between Puts (NTP sync on a Pi without RTC).
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var putOrder []string
	put := func(s *Store, n int) {
		r := mustPut(t, s, Record{CreatedAt: base.Add(-time.Duration(n) * time.Hour), Runner: "ndt7", Result: []byte(fmt.Sprint(n))})
		putOrder = append(putOrder, r.ID)
	}
	for n := range 5 {
		put(s, n)
	}
	s.Close()
	s = openStore(t, dir, 64<<20, nil)
	for n := 5; n < 8; n++ {
		put(s, n)
	}
	if got := ids(s.List()); !slices.Equal(got, putOrder) {
		t.Fatalf("List order = %v, want put order %v", got, putOrder)
	}
	if !slices.IsSorted(putOrder) {
		t.Fatalf("IDs do not sort in put order: %v", putOrder)
	}
	if len(slices.Compact(slices.Clone(putOrder))) != len(putOrder) {
		t.Fatalf("duplicate IDs: %v", putOrder)
	}
	// Delivering oldest first follows put order.
	for _, want := range putOrder {
		r, ok, err := s.Oldest()
		if err != nil || !ok || r.ID != want {
			t.Fatalf("Oldest = %q, %v, %v; want %q", r.ID, ok, err, want)
		}
		if err := s.Remove(r.ID); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok, err := s.Oldest(); ok || err != nil {
		t.Fatalf("Oldest on empty store = %v, %v", ok, err)
	}
	last := putOrder[len(putOrder)-1]
	s.Close()

	// Empty store after reopen: the persisted sequence keeps new IDs after
	// every ID ever handed out, not just after the records still on disk.
	s = openStore(t, dir, 64<<20, nil)
	r := mustPut(t, s, Record{Runner: "ndt7"})
	if r.ID <= last {
		t.Fatalf("ID after reopening an empty store = %s, not after %s", r.ID, last)
	}
	s.Close()

	// Even if state.json is lost, the files on disk keep the order.
	if err := os.Remove(filepath.Join(dir, stateName)); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, 64<<20, nil)
	r2 := mustPut(t, s, Record{Runner: "ndt7"})
	if r2.ID <= r.ID {
		t.Fatalf("ID after losing the state file = %s, not after %s", r2.ID, r.ID)
	}
}

func TestIDsUniqueUnderManyPuts(t *testing.T) {
	s := openStore(t, t.TempDir(), 64<<20, nil)
	seen := map[string]bool{}
	prev := ""
	for range 300 {
		r := mustPut(t, s, Record{Runner: "ookla", Result: []byte("x")})
		if seen[r.ID] || r.ID <= prev {
			t.Fatalf("ID %s repeats or is not after %s", r.ID, prev)
		}
		if _, ok := parseID(r.ID); !ok {
			t.Fatalf("ID %q is not in the store's format", r.ID)
		}
		seen[r.ID] = true
		prev = r.ID
	}
}

func TestCorruptRecordIsQuarantinedAndCounted(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(t *testing.T, path string, b []byte)
	}{
		{"truncated to half", func(t *testing.T, p string, b []byte) { write(t, p, b[:len(b)/2]) }},
		{"truncated to header", func(t *testing.T, p string, b []byte) { write(t, p, b[:headerLen]) }},
		{"one byte short", func(t *testing.T, p string, b []byte) { write(t, p, b[:len(b)-1]) }},
		{"empty", func(t *testing.T, p string, b []byte) { write(t, p, nil) }},
		{"payload byte flipped", func(t *testing.T, p string, b []byte) { b[len(b)-3] ^= 0x40; write(t, p, b) }},
		{"checksum flipped", func(t *testing.T, p string, b []byte) { b[7] ^= 1; write(t, p, b) }},
		{"flags flipped", func(t *testing.T, p string, b []byte) { b[5] ^= 0x80; write(t, p, b) }},
		{"bad magic", func(t *testing.T, p string, b []byte) { copy(b, "JUNK"); write(t, p, b) }},
		{"trailing garbage", func(t *testing.T, p string, b []byte) { write(t, p, append(b, "garbage"...)) }},
		{"zeroed block (power loss)", func(t *testing.T, p string, b []byte) { clear(b[headerLen:]); write(t, p, b) }},
		{"other record's content", func(t *testing.T, p string, b []byte) {
			// A valid record under the wrong name must not be uploaded twice.
			other := recordFiles(t, filepath.Dir(p))[0]
			ob, err := os.ReadFile(other)
			if err != nil {
				t.Fatal(err)
			}
			write(t, p, ob)
		}},
		{"unreadable (a directory)", func(t *testing.T, p string, b []byte) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(p, 0o700); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, 64<<20, nil)
			var recs []Record
			for n := range 3 {
				recs = append(recs, mustPut(t, s, Record{Runner: "ndt7", Style: "NDT7", Result: bytes.Repeat([]byte{byte('a' + n)}, 2000)}))
			}
			s.Close()
			victim := recs[1]
			path := filepath.Join(dir, victim.ID+recordExt)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			c.mutate(t, path, b)

			var log evictLog
			s = openStore(t, dir, 64<<20, &log)
			evs := log.all()
			if len(evs) != 1 || evs[0].ID != victim.ID || evs[0].Reason != ReasonCorrupt {
				t.Fatalf("evictions = %+v, want one corrupt eviction of %s", evs, victim.ID)
			}
			if got, want := ids(s.List()), []string{recs[0].ID, recs[2].ID}; !slices.Equal(got, want) {
				t.Fatalf("List = %v, want %v", got, want)
			}
			for _, r := range []Record{recs[0], recs[2]} {
				got, err := s.Get(r.ID)
				if err != nil {
					t.Fatal(err)
				}
				checkEqual(t, got, r)
			}
			if _, err := s.Get(victim.ID); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get(corrupt) = %v, want ErrNotFound", err)
			}
			if _, err := os.Lstat(filepath.Join(dir, quarantineSub, victim.ID+recordExt)); err != nil {
				t.Fatalf("corrupt file not in quarantine: %v", err)
			}
			if _, err := os.Lstat(path); err == nil {
				t.Fatalf("corrupt file still in the outbox")
			}
			if st := s.Stats(); st.Evictions != 1 || st.Records != 2 {
				t.Fatalf("Stats = %+v, want 1 eviction and 2 records", st)
			}
			s.Close()
			// Counted once, and the count survives a restart.
			var log2 evictLog
			s = openStore(t, dir, 64<<20, &log2)
			if st := s.Stats(); st.Evictions != 1 || len(log2.all()) != 0 {
				t.Fatalf("after reopen: Stats = %+v, new evictions %+v; want the one eviction, persisted", st, log2.all())
			}
		})
	}
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCorruptionWhileOpen(t *testing.T) {
	dir := t.TempDir()
	var log evictLog
	s := openStore(t, dir, 64<<20, &log)
	a := mustPut(t, s, Record{Runner: "ndt7", Result: []byte("first")})
	b := mustPut(t, s, Record{Runner: "ndt7", Result: []byte("second")})
	c := mustPut(t, s, Record{Runner: "ndt7", Result: []byte("third")})
	write(t, filepath.Join(dir, a.ID+recordExt), []byte("rotten"))
	if err := os.Remove(filepath.Join(dir, c.ID+recordExt)); err != nil {
		t.Fatal(err)
	}
	// Oldest skips (and counts) the rotten record and delivers the next.
	r, ok, err := s.Oldest()
	if err != nil || !ok {
		t.Fatalf("Oldest = %v, %v", ok, err)
	}
	checkEqual(t, r, b)
	// A vanished file is a lost record too: reported, not silent.
	if _, err := s.Get(c.ID); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get(vanished) = %v, want ErrCorrupt", err)
	}
	if got := log.reasons(); !slices.Equal(got, []string{ReasonCorrupt, ReasonCorrupt}) {
		t.Fatalf("evictions = %+v, want two corrupt", log.all())
	}
	if st := s.Stats(); st.Records != 1 || st.Evictions != 2 {
		t.Fatalf("Stats = %+v, want 1 record and 2 evictions", st)
	}
}

func TestQuarantineIsBounded(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 64<<20, nil)
	for range quarantineMaxFiles + 9 {
		mustPut(t, s, Record{Runner: "ookla", Result: []byte("payload")})
	}
	s.Close()
	for _, p := range recordFiles(t, dir) {
		write(t, p, []byte("junk"))
	}
	var log evictLog
	s = openStore(t, dir, 64<<20, &log)
	if n := len(log.all()); n != quarantineMaxFiles+9 {
		t.Fatalf("%d corrupt evictions, want %d", n, quarantineMaxFiles+9)
	}
	q, err := os.ReadDir(filepath.Join(dir, quarantineSub))
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != quarantineMaxFiles {
		t.Fatalf("quarantine holds %d files, want the bound %d", len(q), quarantineMaxFiles)
	}
	if st := s.Stats(); st.Records != 0 || st.Evictions != int64(quarantineMaxFiles+9) {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestGarbledStateFile(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 64<<20, nil)
	a := mustPut(t, s, Record{Runner: "ndt7", Result: []byte("a")})
	s.Close()
	write(t, filepath.Join(dir, stateName), []byte("{not json"))
	s = openStore(t, dir, 64<<20, nil)
	if got := ids(s.List()); !slices.Equal(got, []string{a.ID}) {
		t.Fatalf("records after a garbled state file: %v", got)
	}
	b := mustPut(t, s, Record{Runner: "ndt7"})
	if b.ID <= a.ID {
		t.Fatalf("new ID %s not after %s", b.ID, a.ID)
	}
	q, _ := os.ReadDir(filepath.Join(dir, quarantineSub))
	if len(q) != 1 || !strings.HasPrefix(q[0].Name(), stateName) {
		t.Fatalf("garbled state file not quarantined: %v", q)
	}
}

func TestByteBoundEvictsOldestAndPersistsCounters(t *testing.T) {
	dir := t.TempDir()
	mk := func(n int) Record {
		return Record{CreatedAt: time.Unix(int64(1e9+n), 0), Runner: fmt.Sprintf("r%d", n), Result: bytes.Repeat([]byte{'x'}, 10_000)}
	}
	size := encodedLen(&Record{ID: formatID(1, 1), Runner: "r0", Result: mk(0).Result})
	max := 3*size + size/2
	var log evictLog
	s := openStore(t, dir, max, &log)
	var recs []Record
	for n := range 6 {
		recs = append(recs, mustPut(t, s, mk(n)))
		if st := s.Stats(); st.Bytes > max {
			t.Fatalf("after Put %d: %d bytes stored, bound %d", n, st.Bytes, max)
		}
	}
	var want []Eviction
	for _, r := range recs[:3] {
		want = append(want, Eviction{ID: r.ID, CreatedAt: r.CreatedAt, Runner: r.Runner, Bytes: size, Reason: ReasonOverLimit})
	}
	got := log.all()
	if len(got) != len(want) {
		t.Fatalf("evictions = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i].ID != want[i].ID || !got[i].CreatedAt.Equal(want[i].CreatedAt) || got[i].Runner != want[i].Runner ||
			got[i].Bytes != want[i].Bytes || got[i].Reason != want[i].Reason {
			t.Fatalf("eviction %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	wantStats := Stats{Records: 3, Bytes: 3 * size, Evictions: 3, EvictedBytes: 3 * size}
	if st := s.Stats(); st != wantStats {
		t.Fatalf("Stats = %+v, want %+v", st, wantStats)
	}
	if n := len(recordFiles(t, dir)); n != 3 {
		t.Fatalf("%d record files on disk, want 3", n)
	}

	// too_large: refused, counted, nothing else touched.
	big := Record{Runner: "ndt7", Result: make([]byte, max)}
	if _, err := s.Put(big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Put(too large) = %v, want ErrTooLarge", err)
	}
	if last := log.all()[3]; last.Reason != ReasonTooLarge || last.Runner != "ndt7" || last.Bytes <= max {
		t.Fatalf("too-large eviction = %+v", last)
	}
	wantStats = Stats{Records: 3, Bytes: 3 * size, Evictions: 4, EvictedBytes: 3*size + encodedLen(&Record{ID: formatID(1, 1), Runner: "ndt7", Result: big.Result})}
	if st := s.Stats(); st != wantStats {
		t.Fatalf("after too-large Put: Stats = %+v, want %+v", st, wantStats)
	}
	s.Close()

	s = openStore(t, dir, max, nil)
	if st := s.Stats(); st != wantStats {
		t.Fatalf("after reopen: Stats = %+v, want %+v (counters persisted)", st, wantStats)
	}
	r, ok, err := s.Oldest()
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	checkEqual(t, r, recs[3])
	s.Close()

	// A lower bound at the next start evicts oldest until it fits.
	var log2 evictLog
	s = openStore(t, dir, size+1, &log2)
	if got := log2.all(); len(got) != 2 || got[0].ID != recs[3].ID || got[1].ID != recs[4].ID || got[0].Reason != ReasonOverLimit {
		t.Fatalf("evictions on lowering the bound = %+v", got)
	}
	if got := ids(s.List()); !slices.Equal(got, []string{recs[5].ID}) {
		t.Fatalf("List = %v, want only the newest", got)
	}
	s.Close()

	// A record bigger than the bound found on disk is too large.
	var log3 evictLog
	s = openStore(t, dir, size/2, &log3)
	if got := log3.all(); len(got) != 1 || got[0].Reason != ReasonTooLarge || got[0].ID != recs[5].ID {
		t.Fatalf("evictions = %+v, want one too_large", got)
	}
	if st := s.Stats(); st.Records != 0 || st.Evictions != 7 {
		t.Fatalf("Stats = %+v, want empty with 7 evictions", st)
	}
}

func TestInterruptedEvictionIsFinishedNotRecounted(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 64<<20, nil)
	a := mustPut(t, s, Record{Runner: "ndt7", Result: []byte("a")})
	b := mustPut(t, s, Record{Runner: "ndt7", Result: []byte("b")})
	s.Close()
	// The state a crash leaves between journaling an eviction and removing
	// the file: counted, file still there.
	var st state
	b0, err := os.ReadFile(filepath.Join(dir, stateName))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b0, &st); err != nil {
		t.Fatal(err)
	}
	st.Evictions, st.EvictedBytes, st.Evicting = 1, 100, []string{a.ID}
	b1, _ := json.Marshal(st)
	write(t, filepath.Join(dir, stateName), b1)

	var log evictLog
	s = openStore(t, dir, 64<<20, &log)
	if got := ids(s.List()); !slices.Equal(got, []string{b.ID}) {
		t.Fatalf("List = %v, want the journaled eviction finished", got)
	}
	if stt := s.Stats(); stt.Evictions != 1 || len(log.all()) != 0 {
		t.Fatalf("Stats = %+v, callbacks %+v; want the eviction counted exactly once", stt, log.all())
	}
}

func TestOpenCleansTempLeftoversAndIgnoresStrangers(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 64<<20, nil)
	a := mustPut(t, s, Record{Runner: "ndt7"})
	s.Close()
	write(t, filepath.Join(dir, ".tmp-"+a.ID+recordExt+"-123456"), []byte("torn half of a record"))
	write(t, filepath.Join(dir, "README"), []byte("not ours"))
	write(t, filepath.Join(dir, "notanid.rec"), []byte("not ours either"))
	var log evictLog
	s = openStore(t, dir, 64<<20, &log)
	if left := tempLeftovers(t, dir); len(left) != 0 {
		t.Fatalf("temp leftovers after Open: %v", left)
	}
	for _, name := range []string{"README", "notanid.rec"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Fatalf("Open touched a file that is not a record: %v", err)
		}
	}
	if got := ids(s.List()); !slices.Equal(got, []string{a.ID}) || len(log.all()) != 0 {
		t.Fatalf("List = %v, evictions %+v", got, log.all())
	}
}

func TestLockedAndClosed(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 1<<20, nil)
	if _, err := Open(Options{Dir: dir, MaxBytes: 1 << 20}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(Record{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close = %v", err)
	}
	if _, _, err := s.Oldest(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Oldest after Close = %v", err)
	}
	s2 := openStore(t, dir, 1<<20, nil)
	mustPut(t, s2, Record{})

	for _, o := range []Options{{Dir: "", MaxBytes: 1}, {Dir: dir, MaxBytes: 0}, {Dir: dir, MaxBytes: -5}} {
		if _, err := Open(o); err == nil {
			t.Fatalf("Open(%+v) succeeded", o)
		}
	}
}

func TestRemoveIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 1<<20, nil)
	a := mustPut(t, s, Record{Runner: "ndt7"})
	for _, id := range []string{a.ID, a.ID, "no-such-id", "../../etc/passwd", formatID(99, 1)} {
		if err := s.Remove(id); err != nil {
			t.Fatalf("Remove(%q) = %v", id, err)
		}
	}
	if _, err := s.Get(a.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Remove = %v", err)
	}
	s.Close()
	s = openStore(t, dir, 1<<20, nil)
	if st := s.Stats(); st.Records != 0 || st.Bytes != 0 || st.Evictions != 0 {
		t.Fatalf("after Remove and reopen: %+v", st)
	}
}

func TestNotifyCoalesces(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, 1<<20, nil)
	pending := func() int {
		n := 0
		for {
			select {
			case <-s.Notify():
				n++
			default:
				return n
			}
		}
	}
	if n := pending(); n != 0 {
		t.Fatalf("empty store signalled %d times", n)
	}
	for range 5 {
		mustPut(t, s, Record{Runner: "ndt7"})
	}
	if n := pending(); n != 1 {
		t.Fatalf("5 Puts left %d signals, want 1 (coalesced)", n)
	}
	if n := pending(); n != 0 {
		t.Fatalf("drained channel still signals")
	}
	mustPut(t, s, Record{Runner: "ndt7"})
	if n := pending(); n != 1 {
		t.Fatalf("Put after drain left %d signals, want 1", n)
	}
	s.Close()
	s = openStore(t, dir, 1<<20, nil)
	if n := pending(); n != 1 {
		t.Fatalf("reopened store with records signalled %d times, want 1", n)
	}
}

func TestConcurrentPutAndDeliver(t *testing.T) {
	s := openStore(t, t.TempDir(), 1<<20, nil)
	const n = 200
	var put []string
	var delivered []string
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // the measurements
		defer wg.Done()
		defer close(done)
		for i := range n {
			r, err := s.Put(Record{Runner: "ookla", Result: []byte(fmt.Sprint(i))})
			if err != nil {
				t.Error(err)
				return
			}
			put = append(put, r.ID)
		}
	}()
	go func() { // the uploader
		defer wg.Done()
		deadline := time.After(2 * time.Minute)
		for len(delivered) < n {
			r, ok, err := s.Oldest()
			if err != nil {
				t.Error(err)
				return
			}
			if !ok {
				select {
				case <-s.Notify():
				case <-deadline:
					t.Error("uploader starved")
					return
				}
				continue
			}
			delivered = append(delivered, r.ID)
			if err := s.Remove(r.ID); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() { // metrics scrapes
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			st := s.Stats()
			if len(s.List()) > n || st.Evictions != 0 {
				t.Errorf("Stats = %+v", st)
			}
		}
	}()
	wg.Wait()
	if !slices.Equal(put, delivered) {
		t.Fatalf("delivered %d records, put %d; order or set differs", len(delivered), len(put))
	}
	if st := s.Stats(); st.Records != 0 || st.Bytes != 0 {
		t.Fatalf("Stats after delivering everything = %+v", st)
	}
}
