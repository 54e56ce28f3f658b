package update

import (
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/telemetry"
	"github.com/radarpod/radarpod/internal/update/verify"
)

// The agent owns the data volume. A dangling link it plants where the
// updater's heartbeat used to be (or anywhere else in the volume) is never
// written through: the heartbeat lives in the updater's own state
// directory now. Before, os.WriteFile followed such a link when the file
// was missing, and a link to the CRL state corrupted it
// (crl_state_corrupt, every install refused until an operator reset it).
func TestHeartbeatNeverWritesThroughALinkInTheDataDir(t *testing.T) {
	h := newHarness(t)
	target := filepath.Join(h.stateDir, verify.CRLStateFile)
	link := telemetry.HealthFile(h.dir, Component)
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	h.start(nil)
	h.request("2.0.0")
	h.waitState(handoff.StateSucceeded)
	h.stop()
	if b, err := os.ReadFile(target); !os.IsNotExist(err) {
		t.Fatalf("the link was written through: %s holds %q (%v)", target, b, err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the planted link was touched: %v %v", st, err)
	}
	if err := CheckAlive(h.stateDir, time.Now(), MaxSilence); err != nil {
		t.Fatalf("no heartbeat in the state directory: %v", err)
	}
}

// syncBuffer is a log sink safe for the updater's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// When the state directory's path stops leading to the directory opened
// at start-up (its mount removed or replaced: what the agent could do on
// the old compose layout), the updater reads and writes nothing there,
// installs nothing, and says so: an error log (Sentry), a failed status
// with the reason (which the agent reports too), and no heartbeat (Docker
// marks it unhealthy). It never falls back to whatever is at the path now.
func TestReplacedStateDirIsRefusedAndReported(t *testing.T) {
	h := newHarness(t)
	logs := &syncBuffer{}
	h.opts.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h.start(nil)
	waitFor(t, "the first heartbeat", func() bool { return CheckAlive(h.stateDir, time.Now(), MaxSilence) == nil })

	// The mount goes; a directory of the attacker's takes its place, with
	// a forged CRL state and journal.
	if err := os.Rename(h.stateDir, h.stateDir+".real"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(h.stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	forged := map[string]string{verify.CRLStateFile: `{"url":"x","highest_number":"0"}`, JournalFile: `{"phase":"commit"}`}
	for name, content := range forged {
		if err := os.WriteFile(filepath.Join(h.stateDir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	h.request("2.0.0")
	// A poll may notice the change before the request lands (its status
	// then names no version); the refusal of the request follows on a
	// later poll.
	st := h.waitStatus("the refusal", func(s handoff.Status) bool { return s.State == handoff.StateFailed && s.ToVersion == "2.0.0" })
	time.Sleep(20 * h.opts.Poll)
	h.stop()
	if !strings.HasPrefix(st.Reason, verify.CodeStateDirChanged+": ") || !strings.Contains(st.Reason, "RADAR_UPDATER_STATE_DIR") || st.ToVersion != "2.0.0" {
		t.Errorf("status = %+v, want failed with %s naming the variable", st, verify.CodeStateDirChanged)
	}
	if n := h.ver.count(); n != 0 {
		t.Errorf("the verifier was asked %d times", n)
	}
	if m := h.docker.mutationLog(); len(m) != 0 {
		t.Errorf("the engine was changed: %v", m)
	}
	entries, _ := os.ReadDir(h.stateDir)
	if len(entries) != len(forged) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the replacement directory holds %v: the updater wrote there", names)
	}
	if !strings.Contains(logs.String(), `"level":"ERROR","msg":"updater state directory changed`) {
		t.Errorf("no error logged (the Sentry report):\n%s", logs.String())
	}
	if err := CheckAlive(h.stateDir, time.Now(), MaxSilence); err == nil {
		t.Error("the replacement directory got a heartbeat")
	}
}

// recordingMerger stands in for the verifier's MergeLegacyCRLState (whose
// rules verify's own tests check): it records what it was given.
type recordingMerger struct {
	mu   sync.Mutex
	raws [][]byte
}

func (m *recordingMerger) MergeLegacyCRLState(raw []byte) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.raws = append(m.raws, raw)
	return "merged", nil
}

func (m *recordingMerger) calls() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([][]byte(nil), m.raws...)
}

const legacyDir = "updater-state"

// An older updater's state in the legacy location is taken over on the
// first start, with no operator action: an interrupted replacement is
// recovered from its journal (validated against the engine as always),
// and the CRL state is handed to the verifier. Once only: what appears
// there later is the agent's.
func TestLegacyStateIsTakenOverOnFirstStart(t *testing.T) {
	h := newHarness(t)
	merger := &recordingMerger{}
	h.opts.LegacyStateDir, h.opts.CRLState = legacyDir, merger

	// An old updater (state still at the legacy place, as the old compose
	// file mounted it) was killed mid-replacement.
	old := filepath.Join(h.dir, legacyDir)
	h.stateDir, h.opts.StateDir = old, old
	h.opts.LegacyStateDir = ""
	h.start(func(p Phase, after bool) error {
		if p == PhaseStartNew && after {
			return errors.New("kill -9")
		}
		return nil
	})
	h.request("2.0.0")
	h.waitStopped()
	crlState := []byte(`{"url":"https://crl.example/root.crl","highest_number":"3"}`)
	if err := os.WriteFile(filepath.Join(old, verify.CRLStateFile), crlState, 0o600); err != nil {
		t.Fatal(err)
	}

	// The new updater, its state in a fresh volume elsewhere.
	fresh := t.TempDir()
	h.stateDir, h.opts.StateDir, h.opts.LegacyStateDir = fresh, fresh, legacyDir
	h.forget()
	h.start(nil)
	st := h.waitStatus("the recovery", func(s handoff.Status) bool { return s.ToVersion == "2.0.0" && s.State.Failure() })
	h.stop()
	if st.State != handoff.StateRolledBack {
		t.Errorf("status after the recovery = %+v, want rolled_back (the journal said start_new)", st)
	}
	h.onlyAgent("1.0.0")
	if j, _ := h.journalOrNil(); j != nil {
		t.Errorf("journal left: %+v", j)
	}
	if got := merger.calls(); len(got) != 1 || string(got[0]) != string(crlState) {
		t.Errorf("CRL state handed to the verifier: %q", got)
	}
	var rec legacyMigration
	b, err := os.ReadFile(filepath.Join(fresh, LegacyMigrationFile))
	if err == nil {
		err = json.Unmarshal(b, &rec)
	}
	if err != nil || !strings.Contains(strings.Join(rec.Notes, "; "), "journal taken over") {
		t.Fatalf("migration record: %+v (%v)", rec, err)
	}

	// The agent writes a journal there afterwards: never read again.
	if err := os.WriteFile(filepath.Join(old, JournalFile), []byte(`{"phase":"commit","agent_name":"postgres"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	h.forget()
	h.start(nil)
	time.Sleep(50 * h.opts.Poll)
	h.stop()
	for _, s := range h.recorded() {
		if strings.Contains(s.Reason, "journal rejected") {
			t.Errorf("a journal planted after the migration was read: %+v", s)
		}
	}
	if len(merger.calls()) != 1 {
		t.Errorf("the legacy CRL state was merged again")
	}
}

// What the agent plants in the legacy location is read as hostile input:
// a forged journal is validated against the engine and rejected without a
// container touched; a FIFO, a link or a huge file is refused without
// blocking the start or being followed.
func TestHostileLegacyStateIsRefused(t *testing.T) {
	victim := filepath.Join(t.TempDir(), "victim.json")
	if err := os.WriteFile(victim, []byte(`{"url":"v","highest_number":"1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, dir string)
		// rejected: the journal is taken and rejected by validation.
		rejected bool
	}{
		{"forged journal", func(t *testing.T, dir string) {
			raw := `{"phase":"commit","agent_name":"radar-agent","temp_name":"x","old_id":"` + strings.Repeat("a", 64) + `","new_image":"registry.test/radar/radar-updater@sha256:` + strings.Repeat("b", 64) + `"}`
			must(t, os.WriteFile(filepath.Join(dir, JournalFile), []byte(raw), 0o600))
		}, true},
		{"FIFOs", func(t *testing.T, dir string) {
			must(t, syscall.Mkfifo(filepath.Join(dir, JournalFile), 0o600))
			must(t, syscall.Mkfifo(filepath.Join(dir, verify.CRLStateFile), 0o600))
		}, false},
		{"links", func(t *testing.T, dir string) {
			must(t, os.Symlink(victim, filepath.Join(dir, JournalFile)))
			must(t, os.Symlink(victim, filepath.Join(dir, verify.CRLStateFile)))
		}, false},
		{"huge files", func(t *testing.T, dir string) {
			for _, name := range []string{JournalFile, verify.CRLStateFile} {
				f, err := os.Create(filepath.Join(dir, name))
				must(t, err)
				must(t, f.Truncate(1<<30))
				must(t, f.Close())
			}
		}, false},
		{"a linked directory", func(t *testing.T, dir string) {
			must(t, os.Remove(dir))
			must(t, os.Symlink(filepath.Dir(victim), dir))
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			merger := &recordingMerger{}
			h.opts.LegacyStateDir, h.opts.CRLState = legacyDir, merger
			dir := filepath.Join(h.dir, legacyDir)
			must(t, os.Mkdir(dir, 0o755))
			tc.plant(t, dir)
			h.start(nil)
			if tc.rejected {
				st := h.waitStatus("the rejection", func(s handoff.Status) bool { return s.State == handoff.StateFailed })
				if !strings.Contains(st.Reason, "journal rejected") {
					t.Errorf("status = %+v", st)
				}
			}
			h.request("2.0.0")
			h.waitStatus("the update", func(s handoff.Status) bool { return s.ToVersion == "2.0.0" && s.State == handoff.StateSucceeded })
			h.stop()
			if got := merger.calls(); len(got) != 0 {
				t.Errorf("a refused file was handed to the verifier: %q", got)
			}
			b, err := os.ReadFile(filepath.Join(h.stateDir, LegacyMigrationFile))
			if err != nil {
				t.Fatalf("no migration record: %v", err)
			}
			t.Logf("migration record: %s", b)
			if !tc.rejected && !strings.Contains(string(b), "ignored") {
				t.Errorf("the record does not say what was ignored: %s", b)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
