// Package update owns the updater's policy: it watches the agent's update
// request in the shared data directory, has the announced image verified,
// pulls it by digest, waits for a running measurement to end, replaces the
// agent container (rename, create like the old one, start, wait healthy,
// then remove the old one — or roll back), and reports every state change
// in the update-status file. A journal written before each step makes a
// crash at any point recoverable: on restart the updater converges to
// exactly one agent container.
//
// Signature and CRL checks live in update/verify; every Docker call lives
// in container. Both are consumed here through small interfaces, so the
// policy is tested against fakes and the whole against the real engine.
package update

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/distribution/reference"

	"github.com/radarpod/radarpod/internal/backoff"
	"github.com/radarpod/radarpod/internal/container"
	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/update/statedir"
	"github.com/radarpod/radarpod/internal/update/verify"
	"github.com/radarpod/radarpod/internal/wallclock"
)

// Verifier decides whether an announced version may be installed and
// names the digest to pull. *verify.Verifier implements it.
type Verifier interface {
	Verify(ctx context.Context, version, runningVersion string) (verify.Verified, error)
}

// Docker is what the updater does with the engine. *container.Client
// implements it; mutating calls refuse containers without the agent label.
type Docker interface {
	Agent(ctx context.Context, name string) (container.Container, error)
	Agents(ctx context.Context) ([]container.Container, error)
	Inspect(ctx context.Context, idOrName string) (container.Container, error)
	Pull(ctx context.Context, ref string) (container.Image, error)
	Rename(ctx context.Context, id, name string) error
	CreateLike(ctx context.Context, templateID, name, image string) (string, error)
	Start(ctx context.Context, id string) error
	Stop(ctx context.Context, id string) error
	Remove(ctx context.Context, id string) error
	RemoveImage(ctx context.Context, id string) error
	Tag(ctx context.Context, source, target string) error
	WaitHealthy(ctx context.Context, id string, timeout time.Duration) error
}

// Options configure an Updater. Zero durations take the defaults noted.
type Options struct {
	// DataDir is the volume shared with the agent (RADAR_DATA_DIR): the
	// update request, the status file, the test lock. Everything in it is
	// read as hostile input (handoff.ReadFile).
	DataDir string
	// StateDir is the updater's own (RADAR_UPDATER_STATE_DIR): the journal
	// and the heartbeat (and the verifier's CRL state). Nothing the agent
	// can write is trusted to say which containers to touch; see
	// JournalFile.
	StateDir string
	// State is StateDir opened (statedir.Open), shared with the verifier
	// so that both use the one directory pinned at start-up; nil opens
	// StateDir.
	State *statedir.Dir
	// LegacyStateDir is where an older updater kept its state, relative to
	// DataDir ("updater-state"); on the first start its journal and CRL
	// state are taken over as far as they can be trusted (see
	// migrateLegacyState). Empty: nothing to migrate.
	LegacyStateDir string
	// CRLState takes over the legacy CRL state (*verify.Verifier); nil
	// leaves it behind.
	CRLState      CRLStateMerger
	AgentName     string        // RADAR_AGENT_CONTAINER
	Repository    string        // RADAR_AGENT_IMAGE: the only repository journaled images may come from
	HealthTimeout time.Duration // RADAR_HEALTH_TIMEOUT (90 s)
	TestTimeout   time.Duration // RADAR_TEST_TIMEOUT (2 min): the lock wait is bounded by twice this

	// Poll is how often the request file is read (1 s: the agent expects a
	// reaction within 5 s).
	Poll time.Duration
	// Retry paces a version that was refused or rolled back (10 min
	// doubling to 6 h): retried, never hammered.
	Retry backoff.Backoff
	// TransientRetry paces engine, registry and network failures (15 s
	// doubling to 10 min).
	TransientRetry backoff.Backoff
	// ClockRetry paces waiting for time sync (10 s doubling to 1 min).
	ClockRetry backoff.Backoff

	// VerifyTimeout and PullTimeout bound those steps (5 min, 30 min).
	VerifyTimeout time.Duration
	PullTimeout   time.Duration

	Logger *slog.Logger
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.HealthTimeout, 90*time.Second)
	def(&o.TestTimeout, 2*time.Minute)
	def(&o.Poll, time.Second)
	def(&o.VerifyTimeout, 5*time.Minute)
	def(&o.PullTimeout, 30*time.Minute)
	if o.Retry.Initial <= 0 {
		o.Retry = backoff.Backoff{Initial: 10 * time.Minute, Max: 6 * time.Hour, Jitter: 0.2}
	}
	if o.TransientRetry.Initial <= 0 {
		o.TransientRetry = backoff.Backoff{Initial: 15 * time.Second, Max: 10 * time.Minute, Jitter: 0.2}
	}
	if o.ClockRetry.Initial <= 0 {
		o.ClockRetry = backoff.Backoff{Initial: 10 * time.Second, Max: time.Minute, Jitter: 0.1}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Updater is the sidecar's main loop.
type Updater struct {
	o      Options
	docker Docker
	verify Verifier
	log    *slog.Logger
	// repo is Options.Repository in canonical form.
	repo string

	// target is the request being worked on; retry state belongs to it and
	// is reset when a different version is requested.
	target     *target
	lastStatus handoff.Status
	// lastBadRequest avoids logging the same unreadable request every poll.
	lastBadRequest string
	// lastBadLock does the same for an unreadable test lock.
	lastBadLock string

	// state is the private state directory, held open; ownState says New
	// opened it (and Run closes it).
	state     *statedir.Dir
	ownState  bool
	stateDown string // the last state directory change reported

	// crash, set by tests, is called before (after=false) and after each
	// journaled step; a non-nil error stops the replacement on the spot, as
	// kill -9 would.
	crash func(p Phase, after bool) error
	// onStatus, set by tests, sees every status written.
	onStatus func(handoff.Status)
	// onLockWait, set by tests, sees how every test-lock check ended.
	onLockWait func(lockWaitResult)
}

type target struct {
	req       handoff.Request
	attempt   int
	nextTry   time.Time
	retry     backoff.Backoff
	transient backoff.Backoff
	clock     backoff.Backoff
}

// New returns an Updater.
func New(o Options, docker Docker, v Verifier) (*Updater, error) {
	if o.DataDir == "" || o.StateDir == "" || o.AgentName == "" {
		return nil, errors.New("update: data dir, state dir and agent container name are required")
	}
	named, err := reference.ParseNormalizedNamed(o.Repository)
	if err != nil || !reference.IsNameOnly(named) {
		return nil, fmt.Errorf("update: agent repository %q is not a repository name", o.Repository)
	}
	// Private: the journal says which containers to remove and start.
	state, own := o.State, false
	if state == nil {
		if state, err = statedir.Open(o.StateDir); err != nil {
			return nil, fmt.Errorf("update: %w", err)
		}
		own = true
	}
	o.defaults()
	return &Updater{o: o, docker: docker, verify: v, log: o.Logger, repo: named.Name(), state: state, ownState: own}, nil
}

// installedRecheck is how often an installed request is compared with the
// running agent again; a new request is seen at the next poll regardless.
const installedRecheck = time.Minute

// errInterrupted stops a replacement without rolling back: the process is
// shutting down (or a test simulates a crash) and the journal stays for
// the next start to finish the job.
var errInterrupted = errors.New("replacement interrupted; the journal is kept for recovery")

// errSuperseded abandons an attempt because a different version was requested.
var errSuperseded = errors.New("superseded by a newer request")

// Run recovers an interrupted replacement, then serves requests until ctx
// is done. It returns nil on a clean shutdown.
func (u *Updater) Run(ctx context.Context) error {
	if u.ownState {
		defer u.state.Close()
	}
	hb := newHeartbeat(u.state)
	hb.beat()
	u.log.Info("updater started", "agent_container", u.o.AgentName, "data_dir", u.o.DataDir, "state_dir", u.state.Path(),
		"state_dir_identity", u.state.Identity(), "health_timeout", u.o.HealthTimeout, "test_timeout", u.o.TestTimeout)
	u.migrateLegacyState()
	u.restoreRetry()
	tick := time.NewTicker(u.o.Poll)
	defer tick.Stop()
	var recoverRetry = u.o.TransientRetry
	var recoverAt time.Time
	for {
		if ctx.Err() != nil {
			u.log.Info("updater stopping")
			return nil
		}
		hb.beat()
		if err := u.state.Check(); err != nil {
			// Nothing is read or written there (statedir refuses it too),
			// and nothing is installed without the journal and the CRL
			// state: report it and wait for an operator.
			u.stateDirChanged(err)
		} else if time.Now().After(recoverAt) {
			var done bool
			err := hb.during(func() (err error) { done, err = u.recoverJournal(ctx, hb); return err })
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				d := recoverRetry.Next()
				recoverAt = time.Now().Add(d)
				u.log.Error("recovery from the journal failed; retrying", "err", err, "retry_in", d.Round(time.Second))
			} else if done {
				recoverRetry.Reset()
				u.poll(ctx, hb)
			}
		}
		select {
		case <-ctx.Done():
			u.log.Info("updater stopping")
			return nil
		case <-tick.C:
		}
	}
}

// stateDirChanged reports that the state directory's path no longer leads
// to the directory opened at start-up: an error log (and so a Sentry
// event) and a failed status (which the agent reports too), once per
// change. The heartbeat stops with it (it lives there), so Docker marks
// the updater unhealthy. Never falls back to another directory.
func (u *Updater) stateDirChanged(err error) {
	if msg := err.Error(); msg != u.stateDown {
		u.stateDown = msg
		u.log.Error("updater state directory changed; refusing to install anything until it is restored and the updater restarted", "err", err)
	}
	st := handoff.Status{State: handoff.StateFailed, Reason: verify.CodeStateDirChanged + ": " + err.Error()}
	if u.target != nil {
		st.ToVersion, st.RequestedAt = u.target.req.Version, u.target.req.RequestedAt
	} else if req, ok := u.readRequest(); ok {
		st.ToVersion, st.RequestedAt = req.Version, req.RequestedAt
	}
	u.setStatus(st)
}

// restoreRetry picks up the retry schedule a previous run wrote to the
// status file, so a restarted updater (crash loop, reboot) does not retry a
// refused or rolled-back release at once.
func (u *Updater) restoreRetry() {
	s, ok, err := handoff.ReadStatus(u.o.DataDir)
	if err != nil || !ok {
		return
	}
	u.lastStatus = s
	if s.NextRetryAt == nil || s.ToVersion == "" {
		return
	}
	t := &target{req: handoff.Request{Version: s.ToVersion, RequestedAt: s.RequestedAt}, attempt: s.Attempt,
		retry: u.o.Retry, transient: u.o.TransientRetry, clock: u.o.ClockRetry}
	b := &t.transient
	switch s.State {
	case handoff.StateRefused, handoff.StateRolledBack:
		b = &t.retry
	case handoff.StateWaitingClock:
		b = &t.clock
	}
	for i := 1; i < s.Attempt; i++ {
		b.Next()
	}
	// A clock that jumped (a Pi syncing after boot) must not postpone the
	// retry beyond the longest backoff.
	t.nextTry = *s.NextRetryAt
	if limit := time.Now().Add(b.Max); b.Max > 0 && t.nextTry.After(limit) {
		t.nextTry = limit
	}
	u.target = t
	u.log.Info("resuming the retry schedule", "version", s.ToVersion, "state", s.State, "next_retry_at", t.nextTry)
}

// poll reads the request and works on it when it is due.
func (u *Updater) poll(ctx context.Context, hb *heartbeat) {
	req, ok := u.readRequest()
	if !ok {
		return
	}
	if u.target == nil || normVersion(u.target.req.Version) != normVersion(req.Version) {
		if u.target != nil {
			u.log.Info("update request superseded", "old", u.target.req.Version, "new", req.Version)
		}
		u.target = &target{req: req, retry: u.o.Retry, transient: u.o.TransientRetry, clock: u.o.ClockRetry}
	}
	t := u.target
	if time.Now().Before(t.nextTry) {
		return
	}
	agent, err := u.docker.Agent(ctx, u.o.AgentName)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		// Not the agent (an operator's mistake) waits long; an engine
		// that is not answering yet, briefly.
		b := &t.transient
		if errors.Is(err, container.ErrNotAgent) {
			b = &t.retry
		}
		u.fail(t, handoff.StateFailed, "", fmt.Sprintf("agent container: %v", err), b)
		return
	}
	if normVersion(agent.Version) == normVersion(req.Version) {
		// Installed (by us, or by whoever recreated the agent): say so once.
		// An agent kept only because a rollback had nothing to go back to
		// is not called a success until Docker calls it healthy.
		sameVersion := normVersion(u.lastStatus.ToVersion) == normVersion(req.Version)
		keptUnproven := sameVersion && u.lastStatus.State == handoff.StateRollbackFailed && agent.Health != "healthy"
		if !keptUnproven && (u.lastStatus.State != handoff.StateSucceeded || !sameVersion) {
			u.setStatus(handoff.Status{State: handoff.StateSucceeded, FromVersion: u.lastStatus.FromVersion, ToVersion: req.Version,
				Reason: "already running", RequestedAt: req.RequestedAt})
		}
		// Look again now and then: a hand-made downgrade of the agent is
		// brought back to the requested version.
		t.nextTry = time.Now().Add(installedRecheck)
		return
	}
	if !agent.Running && agent.State != "restarting" {
		// Someone stopped the agent on purpose; replacing it would start
		// it again behind their back.
		u.fail(t, handoff.StateFailed, "", fmt.Sprintf("agent container %s is %s; not updating a stopped agent", agent.Name, agent.State), &t.transient)
		return
	}
	u.attempt(ctx, hb, t, agent)
}

func (u *Updater) readRequest() (handoff.Request, bool) {
	req, ok, err := handoff.ReadRequest(u.o.DataDir)
	if err != nil {
		// A hand-edited or truncated file: wait for the agent to rewrite it.
		if msg := err.Error(); msg != u.lastBadRequest {
			u.lastBadRequest = msg
			u.log.Warn("ignoring unreadable update request", "err", err)
		}
		return handoff.Request{}, false
	}
	u.lastBadRequest = ""
	return req, ok
}

// attempt runs one try at installing t.req over the running agent.
func (u *Updater) attempt(ctx context.Context, hb *heartbeat, t *target, agent container.Container) {
	t.attempt++
	started := time.Now().UTC()
	base := handoff.Status{FromVersion: agent.Version, ToVersion: t.req.Version, Attempt: t.attempt,
		RequestedAt: t.req.RequestedAt, StartedAt: started}
	st := func(s handoff.State, digest string) handoff.Status {
		b := base
		b.State, b.Digest = s, digest
		return b
	}
	log := u.log.With("from", agent.Version, "to", t.req.Version, "attempt", t.attempt)

	u.setStatus(st(handoff.StateVerifying, ""))
	var v verify.Verified
	err := hb.during(func() error {
		vctx, cancel := context.WithTimeout(ctx, u.o.VerifyTimeout)
		defer cancel()
		var err error
		v, err = u.verify.Verify(vctx, t.req.Version, agent.Version)
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		var r *verify.Refusal
		switch {
		case errors.As(err, &r):
			log.Warn("update refused", "code", r.Code, "err", err)
			u.failWith(t, base, handoff.StateRefused, "", r.Code+": "+r.Err.Error(), &t.retry)
		case errors.Is(err, wallclock.ErrUntrusted):
			t.attempt-- // not a try at the image
			b := base
			b.Attempt = t.attempt
			u.failWith(t, b, handoff.StateWaitingClock, "", verify.CodeClockUntrusted+": "+err.Error()+"; no decision until the clock is synchronized, retrying", &t.clock)
			attrs := []any{"code", verify.CodeClockUntrusted, "retry_in", time.Until(t.nextTry).Round(time.Second).String(), "err", err}
			var ue *wallclock.UntrustedError
			if errors.As(err, &ue) {
				attrs = append(attrs, "clock_reads", ue.Read.UTC().Format(time.RFC3339), "compared_with", ue.Against)
				if !ue.Reference.IsZero() {
					attrs = append(attrs, "reference_time", ue.Reference.UTC().Format(time.RFC3339))
				}
			}
			log.Warn("clock not trusted: no certificate or CRL is judged by it; waiting for time sync, then retrying", attrs...)
		default:
			log.Warn("verification could not complete; retrying", "err", err)
			u.failWith(t, base, handoff.StateFailed, "", "verify: "+err.Error(), &t.transient)
		}
		return
	}
	t.clock.Reset()

	u.setStatus(st(handoff.StatePulling, v.Digest))
	var img container.Image
	err = hb.during(func() error {
		pctx, cancel := context.WithTimeout(ctx, u.o.PullTimeout)
		defer cancel()
		var err error
		img, err = u.docker.Pull(pctx, v.Reference)
		return err
	})
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		log.Warn("pull failed; retrying", "ref", v.Reference, "err", err)
		u.failWith(t, base, handoff.StateFailed, v.Digest, "pull: "+err.Error(), &t.transient)
		return
	}
	if err := verify.CheckPulled(v, img.RepoDigests); err != nil {
		code := verify.CodeDigestMismatch
		var r *verify.Refusal
		if errors.As(err, &r) {
			code = r.Code
		}
		log.Error("pulled image is not the verified one; removing it", "ref", v.Reference, "repo_digests", img.RepoDigests)
		if rerr := u.docker.RemoveImage(context.WithoutCancel(ctx), img.ID); rerr != nil {
			log.Warn("could not remove the mismatching image", "err", rerr)
		}
		u.failWith(t, base, handoff.StateRefused, v.Digest, code+": "+err.Error(), &t.retry)
		return
	}

	// One budget for every wait on the test lock in this attempt: the one
	// before the replacement and the one just before the old agent stops.
	lockBudget := newLockBudget(time.Now(), u.o.TestTimeout)
	superseded := func() bool {
		req, ok := u.readRequest()
		return ok && normVersion(req.Version) != normVersion(t.req.Version)
	}
	if err := u.waitForTestLock(ctx, hb, lockBudget, "before the replacement", st(handoff.StateWaitingTest, v.Digest), superseded); err != nil {
		if errors.Is(err, errSuperseded) {
			t.attempt--
			if rerr := u.docker.RemoveImage(context.WithoutCancel(ctx), img.ID); rerr != nil && !errors.Is(rerr, container.ErrImageInUse) {
				log.Warn("could not remove the superseded image", "err", rerr)
			}
		}
		return
	}

	// Re-read the agent: it may have been recreated while we waited.
	cur, err := u.docker.Agent(ctx, u.o.AgentName)
	if err != nil || cur.ID != agent.ID {
		if ctx.Err() != nil {
			return
		}
		u.failWith(t, base, handoff.StateFailed, v.Digest, "agent container changed while waiting; starting over", &t.transient)
		return
	}

	j := &Journal{
		AgentName:   u.o.AgentName,
		TempName:    tempName(u.o.AgentName, agent.ID),
		OldID:       agent.ID,
		OldImage:    agent.Image,
		OldImageRef: agent.ImageRef,
		OldVersion:  agent.Version,
		NewImage:    v.Reference,
		NewVersion:  v.Version,
		Digest:      v.Digest,
		Attempt:     t.attempt,
		RequestedAt: t.req.RequestedAt,
		StartedAt:   started,
	}
	var res replaceResult
	hb.during(func() error { res = u.replace(ctx, hb, j, lockBudget); return nil })
	switch {
	case res.interrupted:
		return
	case res.err == nil:
		t.retry.Reset()
		t.transient.Reset()
		t.nextTry = time.Now().Add(u.o.Poll)
	case res.rolledBack && res.outcome != restoredOld:
		// Nothing to retry: the requested version runs (unproven) or no
		// agent is left to replace. Pace the next look all the same.
		u.scheduleRetry(t, &t.retry)
		u.setStatus(u.journalStatus(j, handoff.StateRollbackFailed, j.Reason, nil))
	case res.rolledBack:
		u.scheduleRetry(t, &t.retry)
		u.setStatus(u.journalStatus(j, handoff.StateRolledBack, j.Reason, &t.nextTry))
	default:
		u.scheduleRetry(t, &t.transient)
		u.setStatus(u.journalStatus(j, handoff.StateFailed, res.err.Error(), &t.nextTry))
	}
}

// lockBudget bounds every wait on the test lock within one attempt to
// twice the test timeout in total: a lock that outlives that is stuck, and
// an update must not be blocked forever by it.
type lockBudget struct {
	began, deadline time.Time
}

func newLockBudget(now time.Time, testTimeout time.Duration) lockBudget {
	return lockBudget{began: now, deadline: now.Add(2 * testTimeout)}
}

// lockWaitEnd says why a wait on the test lock ended.
type lockWaitEnd string

const (
	lockFree        lockWaitEnd = "free"         // no test was running
	lockReleased    lockWaitEnd = "released"     // the test ended (or its lock went stale)
	lockBoundPassed lockWaitEnd = "bound_passed" // still held when the budget ran out; proceeding
	lockAbandoned   lockWaitEnd = "abandoned"    // superseded or shutting down
)

// lockWaitResult is what the onLockWait test hook sees.
type lockWaitResult struct {
	Point  string // which check: "before the replacement", "before stopping the old agent"
	End    lockWaitEnd
	Budget lockBudget
}

// waitForTestLock waits while a measurement holds the test lock, until
// budget's deadline at most. status is written once if it has to wait;
// superseded (may be nil) is asked every poll and abandons the wait with
// errSuperseded.
func (u *Updater) waitForTestLock(ctx context.Context, hb *heartbeat, budget lockBudget, point string, status handoff.Status, superseded func() bool) (err error) {
	path := filepath.Join(u.o.DataDir, handoff.TestLockFile)
	maxAge := u.o.TestTimeout + time.Minute
	end := lockFree
	defer func() {
		if err != nil {
			end = lockAbandoned
		}
		if u.onLockWait != nil {
			u.onLockWait(lockWaitResult{Point: point, End: end, Budget: budget})
		}
	}()
	tick := time.NewTicker(u.o.Poll)
	defer tick.Stop()
	for {
		active, info, err := handoff.LockActive(path, wallclock.Now(), maxAge)
		if err != nil && err.Error() != u.lastBadLock {
			u.lastBadLock = err.Error()
			u.log.Warn("test lock unreadable; treating it as held while it is young", "err", err)
		}
		if !active {
			return nil
		}
		if !time.Now().Before(budget.deadline) {
			end = lockBoundPassed
			u.log.Warn("test lock still held after twice the test timeout; proceeding", "holder", info.Holder, "since", info.Since, "check", point)
			return nil
		}
		if end == lockFree {
			// Held: the wait ends released, unless the budget runs out or
			// it is abandoned first.
			end = lockReleased
			u.log.Info("a measurement is running; waiting before stopping the agent", "holder", info.Holder, "expires_at", info.ExpiresAt, "check", point)
			u.setStatus(status)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		hb.beat()
		if superseded != nil && superseded() {
			return errSuperseded
		}
	}
}

func (u *Updater) scheduleRetry(t *target, b *backoff.Backoff) {
	t.nextTry = time.Now().Add(b.Next())
}

// fail records a failure before anything was attempted on the image.
func (u *Updater) fail(t *target, state handoff.State, digest, reason string, b *backoff.Backoff) {
	base := handoff.Status{ToVersion: t.req.Version, Attempt: t.attempt, RequestedAt: t.req.RequestedAt}
	u.failWith(t, base, state, digest, reason, b)
}

func (u *Updater) failWith(t *target, base handoff.Status, state handoff.State, digest, reason string, b *backoff.Backoff) {
	u.scheduleRetry(t, b)
	next := t.nextTry.UTC()
	s := base
	s.State, s.Digest, s.Reason, s.NextRetryAt = state, digest, reason, &next
	u.setStatus(s)
}

func (u *Updater) journalStatus(j *Journal, state handoff.State, reason string, next *time.Time) handoff.Status {
	s := handoff.Status{State: state, FromVersion: j.OldVersion, ToVersion: j.NewVersion, Digest: j.Digest,
		Reason: reason, Attempt: j.Attempt, RequestedAt: j.RequestedAt, StartedAt: j.StartedAt}
	if next != nil && !next.IsZero() {
		n := next.UTC()
		s.NextRetryAt = &n
	}
	return s
}

// setStatus writes the status file when anything but the time changed.
func (u *Updater) setStatus(s handoff.Status) {
	if sameStatus(s, u.lastStatus) {
		return
	}
	s.UpdatedAt = time.Now().UTC()
	if err := handoff.WriteStatus(u.o.DataDir, s); err != nil {
		u.log.Error("cannot write the update status", "err", err)
		return
	}
	u.lastStatus = s
	if u.onStatus != nil {
		u.onStatus(s)
	}
	u.log.Info("update status", "state", s.State, "from", s.FromVersion, "to", s.ToVersion, "reason", s.Reason, "attempt", s.Attempt)
}

func sameStatus(a, b handoff.Status) bool {
	a.UpdatedAt, b.UpdatedAt = time.Time{}, time.Time{}
	if (a.NextRetryAt == nil) != (b.NextRetryAt == nil) || (a.NextRetryAt != nil && !a.NextRetryAt.Equal(*b.NextRetryAt)) {
		return false
	}
	a.NextRetryAt, b.NextRetryAt = nil, nil
	return a == b
}

func normVersion(v string) string { return strings.TrimPrefix(strings.TrimSpace(v), "v") }
