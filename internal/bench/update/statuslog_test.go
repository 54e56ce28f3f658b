package update

import (
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/handoff"
)

// The phases of an update come from the updater's own status log lines.
func TestPhasesFromTheUpdaterLog(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var l statusLog
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
	got := phaseString(l.phases("2.0.0", t0))
	want := "noticed 0.50s, verifying 0.25s, pulling 0.25s, replacing 0.50s, health_check 2.50s"
	if got != want {
		t.Fatalf("phases = %q, want %q", got, want)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		checks []string
		ok     bool
	}{
		{[]string{"compose", "fast"}, true},
		{[]string{"fast"}, true},
		{[]string{"compose", "slow"}, false},
		{[]string{""}, false}, // -healthchecks ''
		{nil, false},
	} {
		err := Options{Healthchecks: tc.checks}.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%q: %v, want ok %v", tc.checks, err, tc.ok)
		}
	}
}
