package main

import (
	"os"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/radartest"
)

// The buffered results must be real Ookla results the service parses, told
// apart by their result id, and as large as the real one.
func TestOutboxPayloadsAreDistinctRealResults(t *testing.T) {
	seen := map[string]bool{}
	for _, i := range []int{0, 1, 9999} {
		p := obPayload(obOokla, i)
		if len(p) != len(obOokla) {
			t.Fatalf("payload %d is %d bytes, the real result %d", i, len(p), len(obOokla))
		}
		r, err := radartest.ParseOokla(p)
		if err != nil {
			t.Fatalf("payload %d: %v", i, err)
		}
		if r.ResultID != obResultID(i) || seen[r.ResultID] {
			t.Fatalf("payload %d has result id %q", i, r.ResultID)
		}
		seen[r.ResultID] = true
	}
	if _, err := radartest.ParseNDT7(obNDT7); err != nil {
		t.Fatalf("embedded NDT7 result: %v", err)
	}
}

func TestMemoryOfThisProcess(t *testing.T) {
	rss, hwm, err := fpMemory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 0 || hwm < rss {
		t.Fatalf("VmRSS %d, VmHWM %d", rss, hwm)
	}
}

// The phases of an update come from the updater's own status log lines.
func TestUpdatePhasesFromTheUpdaterLog(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var l upStatusLog
	for _, line := range []string{
		`{"time":"2026-01-01T00:00:00.5Z","level":"INFO","msg":"update status","state":"verifying","to":"2.0.0"}`,
		`{"time":"2026-01-01T00:00:00.6Z","level":"INFO","msg":"something else","state":"pulling","to":"2.0.0"}`,
		`not json`,
		`{"time":"2026-01-01T00:00:00.75Z","level":"INFO","msg":"update status","state":"pulling","to":"2.0.0"}`,
		`{"time":"2026-01-01T00:00:01Z","level":"INFO","msg":"update status","state":"replacing","to":"2.0.0"}`,
		`{"time":"2026-01-01T00:00:01.5Z","level":"INFO","msg":"update status","state":"health_check","to":"2.0.0"}`,
		`{"time":"2026-01-01T00:00:04Z","level":"INFO","msg":"update status","state":"succeeded","to":"2.0.0"}`,
		`{"time":"2026-01-01T00:00:09Z","level":"INFO","msg":"update status","state":"verifying","to":"3.0.0"}`,
	} {
		l.line(line)
	}
	if st, ok := l.final("2.0.0"); !ok || st != handoff.StateSucceeded {
		t.Fatalf("final = %s, %v", st, ok)
	}
	if _, ok := l.final("3.0.0"); ok {
		t.Fatal("3.0.0 has no outcome yet")
	}
	got := upPhaseString(l.phases("2.0.0", t0))
	want := "noticed 0.50s, verifying 0.25s, pulling 0.25s, replacing 0.50s, health_check 2.50s"
	if got != want {
		t.Fatalf("phases = %q, want %q", got, want)
	}
}
