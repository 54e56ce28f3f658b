package update

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/reference"

	"github.com/radarpod/radarpod/internal/backoff"
	"github.com/radarpod/radarpod/internal/container"
	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/telemetry"
	"github.com/radarpod/radarpod/internal/update/verify"
	"github.com/radarpod/radarpod/internal/wallclock"
)

const (
	testRepo  = "registry.test/radar/radar-agent"
	agentName = "radar-agent"
)

func digestOf(version string) string {
	return fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(version)))
}

func refOf(version string) string { return testRepo + "@" + digestOf(version) }

// acceptNewer is the verifier's happy path: any version newer than the
// running one verifies (the real checks are verify's own tests).
func acceptNewer(version, running string) (verify.Verified, error) {
	if normVersion(version) <= normVersion(running) {
		return verify.Verified{}, &verify.Refusal{Code: verify.CodeDowngrade, Err: errors.New("not newer")}
	}
	return verify.Verified{Reference: refOf(version), Digest: digestOf(version), Version: version, Title: "radar-agent"}, nil
}

// runner runs Updaters one after the other on one data dir, as restarts
// of the updater process would, and records every status they write.
type runner struct {
	t        *testing.T
	dir      string // the data dir shared with the agent
	stateDir string // the updater's own
	opts     Options
	engine   Docker
	verifier Verifier

	// setup, when set, is applied to every Updater before it runs (test hooks).
	setup func(*Updater)

	mu       sync.Mutex
	statuses []handoff.Status
	cancel   context.CancelFunc
	done     chan error
	u        *Updater
}

// harness is a runner on the fake engine with agent 1.0.0 running and
// 2.0.0 to 4.0.0 published.
type harness struct {
	*runner
	docker *fakeDocker
	ver    *fakeVerifier
	oldID  string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{docker: newFakeDocker(), ver: &fakeVerifier{fn: acceptNewer}}
	h.docker.addImage(refOf("1.0.0"), "1.0.0")
	h.oldID = h.docker.run(agentName, refOf("1.0.0"), true)
	for _, v := range []string{"2.0.0", "3.0.0", "4.0.0"} {
		h.docker.publish(refOf(v), v)
	}
	slow := backoff.Backoff{Initial: time.Hour, Max: 2 * time.Hour}
	h.runner = &runner{t: t, dir: t.TempDir(), stateDir: t.TempDir(), engine: h.docker, verifier: h.ver}
	h.opts = Options{
		DataDir: h.dir, StateDir: h.stateDir, AgentName: agentName, Repository: testRepo,
		HealthTimeout: time.Second, TestTimeout: 200 * time.Millisecond,
		Poll:  10 * time.Millisecond,
		Retry: slow, TransientRetry: slow,
		ClockRetry: backoff.Backoff{Initial: 20 * time.Millisecond, Max: 40 * time.Millisecond},
		Logger:     testLogger(t),
	}
	return h
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// start runs a fresh Updater (a new process, as far as state goes).
func (h *runner) start(crash func(Phase, bool) error) {
	h.t.Helper()
	u, err := New(h.opts, h.engine, h.verifier)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	u.onStatus = func(s handoff.Status) {
		h.mu.Lock()
		h.statuses = append(h.statuses, s)
		h.mu.Unlock()
	}
	if crash != nil {
		// A crash stops the process on the spot: nothing after it runs.
		u.crash = func(p Phase, after bool) error {
			if err := crash(p, after); err != nil {
				cancel()
				return err
			}
			return nil
		}
	}
	if h.setup != nil {
		h.setup(u)
	}
	h.u, h.cancel, h.done = u, cancel, make(chan error, 1)
	go func() { h.done <- u.Run(ctx) }()
	h.t.Cleanup(func() { h.stop() })
}

func (h *runner) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(2 * time.Minute):
		h.t.Fatal("Run did not return after cancel")
	}
	h.cancel = nil
}

// waitStopped waits for a crashed Run to return.
func (h *runner) waitStopped() {
	h.t.Helper()
	select {
	case <-h.done:
		h.cancel = nil
	case <-time.After(2 * time.Minute):
		h.t.Fatal("Run did not stop after the injected crash")
	}
}

func (h *runner) request(version string) {
	h.t.Helper()
	if err := handoff.WriteRequest(h.dir, handoff.Request{Version: version, Source: "channel", RequestedAt: time.Now().UTC()}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *runner) recorded() []handoff.Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.statuses)
}

func (h *runner) forget() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.statuses = nil
}

func (h *runner) states() []handoff.State {
	var out []handoff.State
	for _, s := range h.recorded() {
		if len(out) == 0 || out[len(out)-1] != s.State {
			out = append(out, s.State)
		}
	}
	return out
}

// waitStatus waits (generously) for a recorded status matching pred.
func (h *runner) waitStatus(what string, pred func(handoff.Status) bool) handoff.Status {
	h.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		for _, s := range h.recorded() {
			if pred(s) {
				return s
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("no status %s; states so far: %v", what, h.states())
	return handoff.Status{}
}

func (h *runner) waitState(st handoff.State) handoff.Status {
	h.t.Helper()
	return h.waitStatus(string(st), func(s handoff.Status) bool { return s.State == st })
}

func (h *runner) journal() *Journal {
	h.t.Helper()
	j, err := h.journalOrNil()
	if err != nil {
		h.t.Fatal(err)
	}
	return j
}

// journalOrNil reads the journal as recovery would (validated).
func (h *runner) journalOrNil() (*Journal, error) {
	h.t.Helper()
	named, err := reference.ParseNormalizedNamed(h.opts.Repository)
	if err != nil {
		h.t.Fatal(err)
	}
	return readJournal(openState(h.t, h.stateDir), h.opts.AgentName, named.Name())
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runOldAgentFrom has the running agent started from ref (as compose
// starts it from a tag), ref naming the image it runs.
func (h *harness) runOldAgentFrom(ref string) {
	h.docker.mu.Lock()
	defer h.docker.mu.Unlock()
	old := h.docker.containers[h.oldID]
	old.ImageRef = ref
	h.docker.refs[ref] = old.Image
}

// onlyAgent asserts the pod converged: exactly one agent container, under
// the agent name, running the given version; no journal left.
func (h *harness) onlyAgent(version string) {
	h.t.Helper()
	as := h.docker.agents()
	if len(as) != 1 {
		h.t.Fatalf("want exactly one agent container, have %v", h.docker.state())
	}
	a := as[0]
	if a.Name != agentName || !a.Running || a.ImageRef != refOf(version) {
		h.t.Fatalf("agent = %s %s running=%v, want %s running %s (all: %v)", a.Name, a.ImageRef, a.Running, agentName, refOf(version), h.docker.state())
	}
	if _, err := os.Stat(filepath.Join(h.stateDir, JournalFile)); !errors.Is(err, os.ErrNotExist) {
		h.t.Fatalf("journal still present (err %v)", err)
	}
}

func TestSuccessfulUpdateReplacesTheAgentAndPrunesTheOldImage(t *testing.T) {
	h := newHarness(t)
	h.start(nil)
	h.request("2.0.0")
	st := h.waitState(handoff.StateSucceeded)
	h.onlyAgent("2.0.0")
	if st.FromVersion != "1.0.0" || st.ToVersion != "2.0.0" || st.Digest != digestOf("2.0.0") || st.Attempt != 1 {
		t.Errorf("status = %+v", st)
	}
	want := []handoff.State{handoff.StateVerifying, handoff.StatePulling, handoff.StateReplacing, handoff.StateHealthCheck, handoff.StateSucceeded}
	if got := h.states(); !slices.Equal(got, want) {
		t.Errorf("states = %v, want %v", got, want)
	}
	file, ok, err := handoff.ReadStatus(h.dir)
	if err != nil || !ok || file.State != handoff.StateSucceeded {
		t.Errorf("status file = %+v %v %v", file, ok, err)
	}
	if h.docker.hasImage(refOf("1.0.0")) {
		t.Error("old image not pruned")
	}
	// The request stays (the agent owns it); it must not trigger anything more.
	calls := h.ver.count()
	time.Sleep(20 * h.opts.Poll)
	if h.ver.count() != calls {
		t.Errorf("verifier called again for an installed version")
	}
}

// Compose runs the agent from a tag; after an update that tag must name the
// installed image, or a later `compose up` would recreate the old agent.
func TestSuccessfulUpdateRepointsTheTagTheAgentRanFrom(t *testing.T) {
	h := newHarness(t)
	const tag = testRepo + ":latest"
	h.runOldAgentFrom(tag)
	h.start(nil)
	h.request("2.0.0")
	h.waitState(handoff.StateSucceeded)
	h.docker.mu.Lock()
	tagged, installed := h.docker.refs[tag], h.docker.refs[refOf("2.0.0")]
	h.docker.mu.Unlock()
	if tagged == "" || tagged != installed {
		t.Fatalf("%s names image %q after the update, want the installed %q", tag, tagged, installed)
	}
	if !slices.Contains(h.docker.mutationLog(), "Tag "+tag) {
		t.Fatalf("no Tag in %v", h.docker.mutationLog())
	}
}

func TestRefusalLeavesTheAgentUntouchedAndSchedulesARetry(t *testing.T) {
	h := newHarness(t)
	h.ver.set(func(version, running string) (verify.Verified, error) {
		return verify.Verified{}, &verify.Refusal{Code: verify.CodeRevoked, Err: errors.New("signer 1f revoked")}
	})
	h.start(nil)
	h.request("2.0.0")
	st := h.waitState(handoff.StateRefused)
	if !strings.HasPrefix(st.Reason, "revoked: ") || st.NextRetryAt == nil {
		t.Fatalf("status = %+v", st)
	}
	delay := st.NextRetryAt.Sub(st.UpdatedAt)
	if delay < 40*time.Minute || delay > 2*time.Hour {
		t.Errorf("next retry in %s, want about Retry.Initial (1h)", delay)
	}
	time.Sleep(20 * h.opts.Poll)
	if h.docker.changedAnything() {
		t.Fatalf("refused update touched Docker: %v", h.docker.mutationLog())
	}
	if n := h.ver.count(); n != 1 {
		t.Errorf("verifier called %d times before the retry was due", n)
	}
	h.onlyAgent("1.0.0")
}

func TestRetryScheduleSurvivesARestart(t *testing.T) {
	h := newHarness(t)
	h.ver.set(func(version, running string) (verify.Verified, error) {
		return verify.Verified{}, &verify.Refusal{Code: verify.CodeCRLExpired, Err: errors.New("nextUpdate passed")}
	})
	h.start(nil)
	h.request("2.0.0")
	refused := h.waitState(handoff.StateRefused)
	h.stop()
	h.start(nil) // the updater container restarted
	time.Sleep(30 * h.opts.Poll)
	h.stop()
	if n := h.ver.count(); n != 1 {
		t.Fatalf("verifier called %d times: the restart retried at once", n)
	}
	file, _, _ := handoff.ReadStatus(h.dir)
	if file.State != handoff.StateRefused || !file.NextRetryAt.Equal(*refused.NextRetryAt) {
		t.Errorf("status after restart = %+v", file)
	}
	h.onlyAgent("1.0.0")
}

func TestDigestMismatchIsRefusedAndTheImageRemoved(t *testing.T) {
	h := newHarness(t)
	h.docker.pullDigests = []string{testRepo + "@" + digestOf("evil")}
	h.start(nil)
	h.request("2.0.0")
	st := h.waitState(handoff.StateRefused)
	if !strings.HasPrefix(st.Reason, verify.CodeDigestMismatch) {
		t.Fatalf("reason = %q", st.Reason)
	}
	if h.docker.hasImage(refOf("2.0.0")) {
		t.Error("mismatching image kept")
	}
	for _, m := range h.docker.mutationLog() {
		if !strings.HasPrefix(m, "RemoveImage") {
			t.Errorf("agent touched: %s", m)
		}
	}
	h.onlyAgent("1.0.0")
}

func TestUnsyncedClockWaitsThenProceeds(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex
	unsynced := 3
	h.ver.set(func(version, running string) (verify.Verified, error) {
		mu.Lock()
		defer mu.Unlock()
		if unsynced > 0 {
			unsynced--
			return verify.Verified{}, &wallclock.UntrustedError{
				Read: time.Unix(20, 0), Against: "this build's time", Detail: "before this build"}
		}
		return acceptNewer(version, running)
	})
	h.start(nil)
	h.request("2.0.0")
	wait := h.waitState(handoff.StateWaitingClock)
	if wait.NextRetryAt == nil || !strings.HasPrefix(wait.Reason, verify.CodeClockUntrusted+": clock not trusted: it reads 1970-01-01T00:00:20Z, before this build") {
		t.Errorf("waiting status = %+v", wait)
	}
	st := h.waitState(handoff.StateSucceeded)
	if st.Attempt != 1 {
		t.Errorf("attempt = %d: clock waits must not count as attempts", st.Attempt)
	}
	if h.ver.count() != 4 {
		t.Errorf("verifier calls = %d, want 4", h.ver.count())
	}
	h.onlyAgent("2.0.0")
}

func TestTransientVerifyFailureIsRetried(t *testing.T) {
	h := newHarness(t)
	h.opts.TransientRetry = backoff.Backoff{Initial: 20 * time.Millisecond, Max: 40 * time.Millisecond}
	var mu sync.Mutex
	fails := 1
	h.ver.set(func(version, running string) (verify.Verified, error) {
		mu.Lock()
		defer mu.Unlock()
		if fails > 0 {
			fails--
			return verify.Verified{}, errors.New("registry: connection refused")
		}
		return acceptNewer(version, running)
	})
	h.start(nil)
	h.request("2.0.0")
	f := h.waitState(handoff.StateFailed)
	if !strings.Contains(f.Reason, "connection refused") || f.NextRetryAt == nil {
		t.Errorf("failed status = %+v", f)
	}
	h.waitState(handoff.StateSucceeded)
	h.onlyAgent("2.0.0")
}

func TestRunningTestDefersTheReplacement(t *testing.T) {
	h := newHarness(t)
	h.opts.TestTimeout = time.Hour // the lock must be what ends the wait
	lock := &handoff.TestLock{Paths: []string{filepath.Join(h.dir, handoff.TestLockFile)}}
	if err := lock.Acquire("ndt7", time.Hour); err != nil {
		t.Fatal(err)
	}
	h.start(nil)
	h.request("2.0.0")
	st := h.waitState(handoff.StateWaitingTest)
	if st.Digest != digestOf("2.0.0") {
		t.Errorf("status = %+v", st)
	}
	time.Sleep(20 * h.opts.Poll)
	for _, m := range h.docker.mutationLog() {
		t.Errorf("agent touched while the test lock is held: %s", m)
	}
	if err := lock.Release(); err != nil {
		t.Fatal(err)
	}
	h.waitState(handoff.StateSucceeded)
	h.onlyAgent("2.0.0")
}

// lockWaits records how every wait on the test lock ended.
type lockWaits struct {
	mu  sync.Mutex
	all []lockWaitResult
}

func (w *lockWaits) hook(u *Updater) {
	u.onLockWait = func(r lockWaitResult) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.all = append(w.all, r)
	}
}

func (w *lockWaits) get() []lockWaitResult {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.all)
}

// A lock that never clears delays the replacement by at most twice the
// test timeout: both checks (before the replacement, and again just before
// the old agent stops) end because that one budget ran out, not because the
// lock cleared, and the budget is exactly twice the test timeout. Only the
// lower bound is measured on the clock; on a busy machine an upper bound on
// the clock would only measure the machine.
func TestStuckTestLockDelaysAtMostTwiceTheTestTimeout(t *testing.T) {
	h := newHarness(t)
	h.opts.TestTimeout = 100 * time.Millisecond
	lock := &handoff.TestLock{Paths: []string{filepath.Join(h.dir, handoff.TestLockFile)}}
	if err := lock.Acquire("ookla", 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	var waits lockWaits
	h.setup = waits.hook
	h.start(nil)
	h.request("2.0.0")
	h.waitState(handoff.StateWaitingTest)
	pulled := h.waitState(handoff.StatePulling) // written before the wait began
	done := h.waitState(handoff.StateSucceeded)
	h.onlyAgent("2.0.0")
	got := waits.get()
	want := []string{"before the replacement", "before stopping the old agent"}
	if len(got) != len(want) {
		t.Fatalf("lock waits = %+v, want %v", got, want)
	}
	for i, w := range got {
		if w.Point != want[i] || w.End != lockBoundPassed {
			t.Errorf("wait %d = %s ended %s, want %s ended %s", i, w.Point, w.End, want[i], lockBoundPassed)
		}
		if w.Budget != got[0].Budget {
			t.Errorf("wait %d has its own budget %+v; the attempt has one (%+v)", i, w.Budget, got[0].Budget)
		}
	}
	if b := got[0].Budget; b.deadline.Sub(b.began) != 2*h.opts.TestTimeout {
		t.Errorf("budget %s, want twice the test timeout (%s)", b.deadline.Sub(b.began), 2*h.opts.TestTimeout)
	}
	if d := done.UpdatedAt.Sub(pulled.UpdatedAt); d < 2*h.opts.TestTimeout {
		t.Errorf("proceeded after %s, before twice the test timeout", d)
	}
	if active, _, _ := handoff.LockActive(lock.Paths[0], wallclock.Now(), time.Hour); !active {
		t.Error("test setup: the lock cleared, so the bound was not what ended the wait")
	}
}

// A test that starts after the first look at the lock, while the old agent
// is renamed and the new one created, is not killed: the lock is checked
// again right before the old agent is stopped.
func TestTestStartedDuringTheReplacementIsNotInterrupted(t *testing.T) {
	h := newHarness(t)
	h.opts.TestTimeout = time.Hour // only the lock may end the wait
	lock := &handoff.TestLock{Paths: []string{filepath.Join(h.dir, handoff.TestLockFile)}}
	var waits lockWaits
	h.setup = waits.hook
	h.start(func(p Phase, after bool) error {
		if p == PhaseCreate && after {
			// The agent's scheduler starts a measurement now.
			if err := lock.Acquire("ndt7", time.Hour); err != nil {
				t.Error(err)
			}
		}
		return nil
	})
	h.request("2.0.0")
	st := h.waitStatus("waiting for the test after the create", func(s handoff.Status) bool {
		return s.State == handoff.StateWaitingTest
	})
	if st.Digest != digestOf("2.0.0") || st.ToVersion != "2.0.0" {
		t.Errorf("status = %+v", st)
	}
	// The updater is now waiting: the old agent still runs (under its
	// temporary name) and the new one is created, not started.
	state := h.docker.state()
	if got := state[tempName(agentName, h.oldID)]; got != refOf("1.0.0")+" running" {
		t.Errorf("old agent = %q while the test runs; all: %v", got, state)
	}
	if got := state[agentName]; got != refOf("2.0.0")+" stopped" {
		t.Errorf("new agent = %q while the test runs; all: %v", got, state)
	}
	if err := lock.Release(); err != nil {
		t.Fatal(err)
	}
	h.waitState(handoff.StateSucceeded)
	h.onlyAgent("2.0.0")
	got := waits.get()
	if len(got) != 2 || got[0].End != lockFree || got[1].End != lockReleased || got[1].Point != "before stopping the old agent" {
		t.Errorf("lock waits = %+v", got)
	}
}

func TestNewerRequestSupersedesARefusedOne(t *testing.T) {
	h := newHarness(t)
	h.ver.set(func(version, running string) (verify.Verified, error) {
		if version == "2.0.0" {
			return verify.Verified{}, &verify.Refusal{Code: verify.CodeUnsigned, Err: errors.New("no signature")}
		}
		return acceptNewer(version, running)
	})
	h.start(nil)
	h.request("2.0.0")
	h.waitState(handoff.StateRefused)
	// The retry of 2.0.0 is an hour away; 3.0.0 must not wait for it.
	h.request("3.0.0")
	st := h.waitState(handoff.StateSucceeded)
	if st.ToVersion != "3.0.0" || st.Attempt != 1 {
		t.Errorf("status = %+v", st)
	}
	h.onlyAgent("3.0.0")
}

func TestNewerRequestSupersedesWhileWaitingForATest(t *testing.T) {
	h := newHarness(t)
	h.opts.TestTimeout = time.Hour
	lock := &handoff.TestLock{Paths: []string{filepath.Join(h.dir, handoff.TestLockFile)}}
	if err := lock.Acquire("ndt7", time.Hour); err != nil {
		t.Fatal(err)
	}
	h.start(nil)
	h.request("2.0.0")
	h.waitState(handoff.StateWaitingTest)
	h.request("3.0.0")
	h.waitStatus("waiting for the test with 3.0.0", func(s handoff.Status) bool {
		return s.State == handoff.StateWaitingTest && s.ToVersion == "3.0.0"
	})
	if h.docker.hasImage(refOf("2.0.0")) {
		t.Error("superseded image kept")
	}
	lock.Release()
	h.waitState(handoff.StateSucceeded)
	h.onlyAgent("3.0.0")
}

func TestRetriesBackOffUpToTheCap(t *testing.T) {
	h := newHarness(t)
	h.opts.Retry = backoff.Backoff{Initial: 10 * time.Millisecond, Max: 80 * time.Millisecond, Jitter: 0.2}
	h.ver.set(func(version, running string) (verify.Verified, error) {
		return verify.Verified{}, &verify.Refusal{Code: verify.CodeCRLUnreachable, Err: errors.New("bucket down")}
	})
	h.start(nil)
	h.request("2.0.0")
	waitFor(t, "eight refusals", func() bool { return h.ver.count() >= 8 })
	h.stop()
	var delays []time.Duration
	for _, s := range h.recorded() {
		if s.State == handoff.StateRefused {
			delays = append(delays, s.NextRetryAt.Sub(s.UpdatedAt))
		}
	}
	if len(delays) < 8 {
		t.Fatalf("only %d refusals recorded", len(delays))
	}
	max := time.Duration(float64(h.opts.Retry.Max) * (1 + h.opts.Retry.Jitter))
	for i, d := range delays {
		if d > max+time.Millisecond {
			t.Errorf("retry %d scheduled %s later, above the cap %s", i, d, max)
		}
	}
	if last := delays[len(delays)-1]; last < h.opts.Retry.Max*7/10 {
		t.Errorf("retry delays did not grow to the cap: %v", delays)
	}
	h.onlyAgent("1.0.0")
}

func TestUnhealthyNewAgentIsRolledBack(t *testing.T) {
	h := newHarness(t)
	h.docker.unhealthy[refOf("2.0.0")] = &container.UnhealthyError{ID: "x", Reason: "unhealthy", Output: "exit 1: main loop has not started"}
	h.start(nil)
	h.request("2.0.0")
	st := h.waitState(handoff.StateRolledBack)
	if !strings.Contains(st.Reason, "main loop has not started") || st.NextRetryAt == nil {
		t.Errorf("status = %+v", st)
	}
	h.onlyAgent("1.0.0")
	if h.docker.agents()[0].ID != h.oldID {
		t.Error("the old container was not the one restored")
	}
	if h.docker.hasImage(refOf("2.0.0")) {
		t.Error("failed release's image kept")
	}
	if !h.docker.hasImage(refOf("1.0.0")) {
		t.Error("running agent's image removed")
	}
}

func TestFailedCreateRollsBackWithTheOldConfiguration(t *testing.T) {
	h := newHarness(t)
	h.docker.failOn["CreateLike"] = errors.New("engine: invalid mount config")
	h.start(nil)
	h.request("2.0.0")
	st := h.waitState(handoff.StateRolledBack)
	if !strings.Contains(st.Reason, "invalid mount config") {
		t.Errorf("reason = %q", st.Reason)
	}
	h.onlyAgent("1.0.0")
}

func TestNonAgentContainerIsNeverTouched(t *testing.T) {
	cases := map[string]func(h *harness){
		"same name without the label": func(h *harness) {
			h.docker.Remove(context.Background(), h.oldID)
			h.docker.mutations = nil
			h.docker.run(agentName, refOf("1.0.0"), false)
		},
		"no container of that name": func(h *harness) {
			h.docker.Remove(context.Background(), h.oldID)
			h.docker.mutations = nil
		},
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			setup(h)
			other := h.docker.run("postgres", refOf("1.0.0"), false)
			h.start(nil)
			h.request("2.0.0")
			st := h.waitState(handoff.StateFailed)
			if !strings.Contains(st.Reason, "agent container") {
				t.Errorf("reason = %q", st.Reason)
			}
			time.Sleep(20 * h.opts.Poll)
			if h.docker.changedAnything() || h.ver.count() != 0 {
				t.Fatalf("touched: %v, verifier calls %d", h.docker.mutationLog(), h.ver.count())
			}
			if _, err := h.docker.Inspect(context.Background(), other); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestStoppedAgentIsNotUpdated(t *testing.T) {
	h := newHarness(t)
	h.docker.Stop(context.Background(), h.oldID) // docker stop by the operator
	h.docker.mutations = nil
	h.start(nil)
	h.request("2.0.0")
	st := h.waitState(handoff.StateFailed)
	if !strings.Contains(st.Reason, "stopped agent") {
		t.Errorf("reason = %q", st.Reason)
	}
	time.Sleep(10 * h.opts.Poll)
	if h.docker.changedAnything() || h.ver.count() != 0 {
		t.Fatalf("a stopped agent was touched: %v", h.docker.mutationLog())
	}
}

func TestInvalidRequestFilesAreIgnored(t *testing.T) {
	h := newHarness(t)
	h.start(nil)
	for _, body := range []string{`{"version": "2.0`, `{"version": ""}`, `{"version": "../../etc"}`, strings.Repeat("x", 100<<10)} {
		if err := os.WriteFile(filepath.Join(h.dir, handoff.RequestFile), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * h.opts.Poll)
	}
	if h.ver.count() != 0 || len(h.recorded()) != 0 {
		t.Fatalf("acted on an invalid request: verifier %d, statuses %v", h.ver.count(), h.states())
	}
	h.request("2.0.0")
	h.waitState(handoff.StateSucceeded)
	h.onlyAgent("2.0.0")
}

// TestCrashAtEveryStepConverges kills the updater (no deferred cleanup, no
// rollback) before and after each journaled step, starts a new one on the
// same data dir and engine, and checks the pod ends with exactly one agent.
func TestCrashAtEveryStepConverges(t *testing.T) {
	for _, phase := range Phases {
		for _, after := range []bool{false, true} {
			name := fmt.Sprintf("%s/before", phase)
			if after {
				name = fmt.Sprintf("%s/after", phase)
			}
			t.Run(name, func(t *testing.T) {
				h := newHarness(t)
				want := "2.0.0"
				switch phase {
				case PhaseRename, PhaseCreate, PhaseStopOld, PhaseStartNew:
					want = "1.0.0"
				case PhaseRollback:
					want = "1.0.0"
					h.docker.unhealthy[refOf("2.0.0")] = errors.New("unhealthy")
				}
				crashed := false
				h.start(func(p Phase, a bool) error {
					if p == phase && a == after && !crashed {
						crashed = true
						return errors.New("kill -9")
					}
					return nil
				})
				h.request("2.0.0")
				h.waitStopped()
				j, err := h.journalOrNil()
				if err != nil || j == nil || j.Phase != phase {
					t.Fatalf("journal after the crash = %+v, %v; want phase %s", j, err, phase)
				}
				if after && phase == PhaseCreate && j.NewID != "" {
					t.Fatal("test setup: the crash after create should leave the new ID unrecorded")
				}
				if phase == PhaseRollback {
					delete(h.docker.unhealthy, refOf("2.0.0"))
				}
				h.forget()
				h.start(nil)
				waitFor(t, "the journal to be resolved", func() bool {
					j, _ := h.journalOrNil()
					return j == nil && len(h.recorded()) > 0
				})
				h.stop()
				h.onlyAgent(want)
				last := h.recorded()[len(h.recorded())-1]
				wantState := handoff.StateSucceeded
				if want == "1.0.0" {
					wantState = handoff.StateRolledBack
				}
				if last.State != wantState {
					t.Errorf("final status %s (%s), want %s", last.State, last.Reason, wantState)
				}
				if wantState == handoff.StateRolledBack && (last.NextRetryAt == nil || time.Until(*last.NextRetryAt) < 30*time.Minute) {
					t.Errorf("rolled back without a backed-off retry: %+v", last)
				}
				if h.ver.count() != 1 {
					t.Errorf("verifier called %d times; recovery must not retry at once", h.ver.count())
				}
			})
		}
	}
}

func TestShutdownDuringHealthWaitKeepsTheJournal(t *testing.T) {
	h := newHarness(t)
	h.docker.blockHealth = true
	h.opts.HealthTimeout = time.Hour
	h.start(nil)
	h.request("2.0.0")
	h.waitState(handoff.StateHealthCheck)
	h.stop() // SIGTERM
	j, err := h.journalOrNil()
	if err != nil || j == nil || j.Phase != PhaseHealth {
		t.Fatalf("journal after shutdown = %+v, %v", j, err)
	}
	h.docker.mu.Lock()
	h.docker.blockHealth = false
	h.docker.mu.Unlock()
	h.start(nil)
	h.waitState(handoff.StateSucceeded)
	h.stop()
	h.onlyAgent("2.0.0")
}

func TestRecoveryKeepsTheNewAgentWhenTheOldOneVanished(t *testing.T) {
	h := newHarness(t)
	h.docker.unhealthy[refOf("2.0.0")] = errors.New("unhealthy")
	h.start(func(p Phase, after bool) error {
		if p == PhaseHealth && !after {
			return errors.New("kill -9")
		}
		return nil
	})
	h.request("2.0.0")
	h.waitStopped()
	// Someone removed the old agent by hand meanwhile.
	h.docker.mu.Lock()
	delete(h.docker.containers, h.oldID)
	h.docker.mu.Unlock()
	h.start(nil)
	// Not "rolled back": nothing was. The status says what happened.
	st := h.waitState(handoff.StateRollbackFailed)
	if !strings.Contains(st.Reason, "disappeared") || !strings.Contains(st.Reason, "kept running") || st.NextRetryAt != nil {
		t.Errorf("status = %+v", st)
	}
	h.stop()
	h.onlyAgent("2.0.0")

	// The kept agent runs the requested version but was never proven
	// healthy: a restarted updater (which compares the request with the
	// running agent at once) must not turn that into "succeeded"...
	h.docker.mu.Lock()
	h.docker.health[refOf("2.0.0")] = "unhealthy"
	h.docker.mu.Unlock()
	h.forget()
	before := h.docker.polls()
	h.start(nil)
	waitFor(t, "a poll to compare the request with the agent", func() bool { return h.docker.polls() > before })
	h.stop() // Run returns only after that poll finished
	if got := h.recorded(); len(got) != 0 {
		t.Fatalf("statuses written for an unproven kept agent: %+v", got)
	}
	// ...until Docker calls it healthy.
	h.docker.mu.Lock()
	h.docker.health[refOf("2.0.0")] = "healthy"
	h.docker.mu.Unlock()
	h.start(nil)
	if st := h.waitState(handoff.StateSucceeded); st.ToVersion != "2.0.0" || st.Reason != "already running" {
		t.Errorf("status = %+v", st)
	}
	if h.ver.count() != 1 {
		t.Errorf("verifier called %d times", h.ver.count())
	}
}

func TestCheckAlive(t *testing.T) {
	dir := t.TempDir()
	if err := CheckAlive(dir, time.Now(), MaxSilence); err == nil {
		t.Fatal("healthy without a heartbeat")
	}
	hb := newHeartbeat(openState(t, dir))
	hb.beat()
	if err := CheckAlive(dir, time.Now(), MaxSilence); err != nil {
		t.Fatal(err)
	}
	if err := CheckAlive(dir, time.Now().Add(2*MaxSilence), MaxSilence); err == nil || !strings.Contains(err.Error(), "silent") {
		t.Fatalf("stale heartbeat: err = %v", err)
	}
	hb.every = 5 * time.Millisecond
	past := time.Now().Add(-time.Hour)
	hf := telemetry.HealthFile(dir, Component)
	os.Chtimes(hf, past, past)
	// The step lasts until a beat lands (a fixed sleep could end before a
	// starved ticker goroutine ran): during must beat while it runs.
	beaten := hb.during(func() error {
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			if st, err := os.Stat(hf); err == nil && st.ModTime().After(past) {
				return nil
			}
		}
		return errors.New("no beat in 30 s")
	})
	if beaten != nil {
		t.Fatalf("long step did not beat: %v", beaten)
	}
	if err := CheckAlive(dir, time.Now(), time.Second); err != nil {
		t.Fatalf("long step's beat not seen by the healthcheck: %v", err)
	}
}
