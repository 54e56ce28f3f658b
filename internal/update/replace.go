package update

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/distribution/reference"

	"github.com/radarpod/radarpod/internal/container"
	"github.com/radarpod/radarpod/internal/handoff"
)

type replaceResult struct {
	err         error
	rolledBack  bool
	outcome     rollbackOutcome // when rolledBack
	interrupted bool
}

// rollbackOutcome is what a rollback could do.
type rollbackOutcome int

const (
	// restoredOld: the old agent runs again under its name.
	restoredOld rollbackOutcome = iota
	// keptNew: the old agent container disappeared, so the new one (not
	// proven healthy) was kept running rather than leave the pod without
	// an agent.
	keptNew
	// noAgentLeft: the old agent disappeared and no new one exists.
	noAgentLeft
)

// maxReason bounds a rollback reason kept in the journal and the status.
const maxReason = 2048

// replace swaps the agent container for one on j.NewImage. Docker calls run
// on a context that SIGTERM does not cancel (a half-sent rename helps no
// one); the process stops between steps or during the health wait, and the
// journal lets the next start finish the job.
func (u *Updater) replace(ctx context.Context, hb *heartbeat, j *Journal, budget lockBudget) replaceResult {
	dctx := context.WithoutCancel(ctx)
	log := u.log.With("from", j.OldVersion, "to", j.NewVersion, "old", container.ShortID(j.OldID))
	u.setStatus(u.journalStatus(j, handoff.StateReplacing, "", nil))
	log.Info("replacing the agent container", "image", j.NewImage)
	// Nothing has been touched yet: a state dir that refuses the journal
	// is a plain failure, with nothing to roll back.
	j.Phase = PhaseRename
	if err := writeJournal(u.state, j); err != nil {
		return replaceResult{err: err}
	}

	steps := []struct {
		phase Phase
		do    func() error
	}{
		{PhaseRename, func() error { return u.docker.Rename(dctx, j.OldID, j.TempName) }},
		{PhaseCreate, func() error {
			id, err := u.docker.CreateLike(dctx, j.OldID, j.AgentName, j.NewImage)
			j.NewID = id
			return err
		}},
		{PhaseStopOld, func() error {
			// A test may have started since the first look at the lock
			// (the rename and create took time): stopping the old agent
			// now would kill it. Look again, within the same budget. A
			// newer request does not abandon this wait: the replacement
			// is under way, and the newer version is taken up after it.
			if err := u.waitForTestLock(ctx, hb, budget, "before stopping the old agent",
				u.journalStatus(j, handoff.StateWaitingTest, "", nil), nil); err != nil {
				return fmt.Errorf("%w: %v", errInterrupted, err)
			}
			return u.docker.Stop(dctx, j.OldID)
		}},
		{PhaseStartNew, func() error { return u.docker.Start(dctx, j.NewID) }},
		{PhaseHealth, func() error {
			u.setStatus(u.journalStatus(j, handoff.StateHealthCheck, "", nil))
			start := time.Now()
			err := hb.during(func() error { return u.docker.WaitHealthy(ctx, j.NewID, u.o.HealthTimeout) })
			if err == nil {
				log.Info("new agent is healthy", "container", container.ShortID(j.NewID), "after", time.Since(start).Round(time.Millisecond))
			}
			return err
		}},
	}
	for _, s := range steps {
		if ctx.Err() != nil {
			return replaceResult{err: errInterrupted, interrupted: true}
		}
		err := u.step(j, s.phase, s.do)
		if err == nil {
			continue
		}
		if errors.Is(err, errInterrupted) || ctx.Err() != nil {
			log.Warn("replacement interrupted; the journal is kept", "phase", s.phase)
			return replaceResult{err: err, interrupted: true}
		}
		reason := fmt.Sprintf("%s: %v", s.phase, err)
		log.Error("replacement failed; rolling back", "phase", s.phase, "err", err)
		outcome, rerr := u.rollback(dctx, j, reason)
		if rerr != nil {
			if errors.Is(rerr, errInterrupted) {
				return replaceResult{err: rerr, interrupted: true}
			}
			log.Error("rollback failed; the journal is kept and recovery retries", "err", rerr)
			return replaceResult{err: fmt.Errorf("%s; rollback: %w", reason, rerr)}
		}
		return replaceResult{err: errors.New(reason), rolledBack: true, outcome: outcome}
	}
	if err := u.commit(dctx, j); err != nil {
		if errors.Is(err, errInterrupted) {
			return replaceResult{err: err, interrupted: true}
		}
		log.Error("could not finish the replacement; recovery retries", "err", err)
		return replaceResult{err: err}
	}
	return replaceResult{}
}

// step records phase p in the journal, then runs do. The journal is on disk
// before the engine is asked anything.
func (u *Updater) step(j *Journal, p Phase, do func() error) error {
	j.Phase = p
	if err := writeJournal(u.state, j); err != nil {
		return err
	}
	if err := u.crashPoint(p, false); err != nil {
		return err
	}
	if err := do(); err != nil {
		return err
	}
	return u.crashPoint(p, true)
}

func (u *Updater) crashPoint(p Phase, after bool) error {
	if u.crash == nil {
		return nil
	}
	if err := u.crash(p, after); err != nil {
		return fmt.Errorf("%w: %v", errInterrupted, err)
	}
	return nil
}

// commit removes the old agent and its image once the new one is healthy.
// The new agent must still be there: removing the old one otherwise would
// leave the pod without an agent (a crash recovered at commit, with the new
// container removed meanwhile, is rolled back instead).
func (u *Updater) commit(ctx context.Context, j *Journal) error {
	newID, err := u.findNew(ctx, j)
	if err != nil {
		return err
	}
	if newID == "" {
		return fmt.Errorf("%w: the new agent container is gone; not removing the old one", errNewGone)
	}
	// What is pruned is the image the old container really runs, as the
	// engine reports it, never an image the journal merely names.
	var oldImage string
	if err := u.step(j, PhaseCommit, func() error {
		old, err := u.docker.Inspect(ctx, j.OldID)
		switch {
		case errors.Is(err, container.ErrNotFound):
			return nil // removed already (a commit recovered after a crash)
		case err != nil:
			return fmt.Errorf("inspect the old agent: %w", err)
		}
		oldImage = old.Image
		if err := u.docker.Remove(ctx, j.OldID); err != nil && !errors.Is(err, container.ErrNotFound) {
			return fmt.Errorf("remove the old agent: %w", err)
		}
		return nil
	}); err != nil {
		return err
	}
	u.retagInstalled(ctx, j)
	u.pruneOldImage(ctx, j, oldImage)
	if err := removeJournal(u.state); err != nil {
		return err
	}
	u.setStatus(u.journalStatus(j, handoff.StateSucceeded, "", nil))
	u.log.Info("agent updated", "from", j.OldVersion, "to", j.NewVersion, "container", container.ShortID(j.NewID))
	return nil
}

// errNewGone: at commit the new agent no longer exists.
var errNewGone = errors.New("new agent gone before commit")

// retagInstalled points the reference the old agent was created from (the
// compose file's "repo:tag") at the verified new image. Otherwise a later
// `docker compose up` sees the agent's image differ from the one its file
// names and recreates the agent from the old image: a silent downgrade. A
// reference pinned by digest is left alone (it cannot name another image).
//
// Only a tag in the agent repository is re-pointed: a journal naming any
// other reference (say, the updater's own image) must not make the updater
// move it.
func (u *Updater) retagInstalled(ctx context.Context, j *Journal) {
	if j.OldImageRef == "" || strings.Contains(j.OldImageRef, "@") {
		return
	}
	if named, err := reference.ParseNormalizedNamed(j.OldImageRef); err != nil || named.Name() != u.repo {
		u.log.Warn("the agent ran from a reference outside RADAR_AGENT_IMAGE; not re-pointing it, so a later compose up may recreate the old version",
			"ref", j.OldImageRef, "repository", u.repo)
		return
	}
	if err := u.docker.Tag(ctx, j.NewImage, j.OldImageRef); err != nil {
		u.log.Warn("could not point the agent's image reference at the new version; a later compose up may recreate the old one",
			"ref", j.OldImageRef, "err", err)
		return
	}
	u.log.Info("image reference now names the installed agent", "ref", j.OldImageRef, "image", j.NewImage)
}

// pruneOldImage removes image, the one the old agent container ran (as the
// engine reported it before removing that container; "" when unknown).
func (u *Updater) pruneOldImage(ctx context.Context, j *Journal, image string) {
	if image == "" {
		if j.OldImage != "" {
			// A commit finished after a restart: the old container was
			// gone, so nothing the engine said confirms which image it
			// ran, and the journal alone is not enough to delete one.
			u.log.Info("old agent image not pruned: its container was already removed", "image", container.ShortID(j.OldImage))
		}
		return
	}
	if cur, err := u.docker.Inspect(ctx, j.NewID); err == nil && cur.Image == image {
		return // "new" is the same image (re-tagged release)
	}
	err := u.docker.RemoveImage(ctx, image)
	switch {
	case err == nil:
		u.log.Info("old agent image removed", "image", container.ShortID(image))
	case errors.Is(err, container.ErrImageInUse):
		u.log.Info("old agent image kept: another container uses it", "image", container.ShortID(image))
	default:
		u.log.Warn("could not remove the old agent image", "image", container.ShortID(image), "err", err)
	}
}

// rollback restores the old agent under its name and removes the new one.
// It is idempotent: recovery runs it again after a crash in the middle.
func (u *Updater) rollback(ctx context.Context, j *Journal, reason string) (rollbackOutcome, error) {
	if len(reason) > maxReason {
		reason = strings.ToValidUTF8(reason[:maxReason], "") + "…"
	}
	j.Reason = reason
	var outcome rollbackOutcome
	err := u.step(j, PhaseRollback, func() error {
		var err error
		outcome, err = u.restoreOld(ctx, j)
		return err
	})
	if err != nil {
		return outcome, err
	}
	return outcome, u.finishRollback(j, outcome)
}

// restoreOld is the rollback proper.
func (u *Updater) restoreOld(ctx context.Context, j *Journal) (rollbackOutcome, error) {
	newID, err := u.findNew(ctx, j)
	if err != nil {
		return restoredOld, err
	}
	old, err := u.docker.Inspect(ctx, j.OldID)
	if errors.Is(err, container.ErrNotFound) {
		// Never leave the pod without an agent: keep the new one, and
		// say so (rollback_failed), not that the old one is back.
		if newID == "" {
			return noAgentLeft, nil
		}
		if err := u.docker.Rename(ctx, newID, j.AgentName); err != nil {
			return restoredOld, err
		}
		if err := u.docker.Start(ctx, newID); err != nil {
			return restoredOld, err
		}
		return keptNew, nil
	}
	if err != nil {
		return restoredOld, err
	}
	if newID != "" {
		if err := u.docker.Remove(ctx, newID); err != nil && !errors.Is(err, container.ErrNotFound) {
			return restoredOld, fmt.Errorf("remove the new agent: %w", err)
		}
		// A failed release's image goes too (a retry pulls it again);
		// RemoveImage keeps it if any container still uses it. NewImage
		// was validated to be in the agent repository.
		if err := u.docker.RemoveImage(ctx, j.NewImage); err != nil && !errors.Is(err, container.ErrImageInUse) {
			u.log.Warn("could not remove the failed release's image", "image", j.NewImage, "err", err)
		}
	}
	if old.Name != j.AgentName {
		if err := u.docker.Rename(ctx, j.OldID, j.AgentName); err != nil {
			return restoredOld, fmt.Errorf("restore the old agent's name: %w", err)
		}
	}
	if err := u.docker.Start(ctx, j.OldID); err != nil {
		return restoredOld, fmt.Errorf("restart the old agent: %w", err)
	}
	return restoredOld, nil
}

func (u *Updater) finishRollback(j *Journal, outcome rollbackOutcome) error {
	switch outcome {
	case keptNew:
		j.Reason += fmt.Sprintf("; rollback impossible: the old agent container disappeared, so the new agent %s (not proven healthy) was kept running", j.NewVersion)
	case noAgentLeft:
		j.Reason += "; rollback impossible: the old agent container disappeared and no new one exists: the pod has no agent"
	}
	if err := removeJournal(u.state); err != nil {
		return err
	}
	if outcome != restoredOld {
		u.log.Error("rollback failed; an operator should look at the agent container", "reason", j.Reason,
			"old", container.ShortID(j.OldID), "new", container.ShortID(j.NewID))
		return nil
	}
	u.log.Warn("rolled back to the previous agent", "version", j.OldVersion, "reason", j.Reason)
	return nil
}

// findNew returns the ID of the container the replacement created, or ""
// when there is none. Before the create step returned, the journal has no
// ID: the container holding the agent name that is not the old one and was
// created from the new image is ours. A container the journal names that
// does not look like what this replacement created is an errJournalInvalid:
// it is never touched.
func (u *Updater) findNew(ctx context.Context, j *Journal) (string, error) {
	if j.NewID != "" {
		c, err := u.docker.Inspect(ctx, j.NewID)
		if errors.Is(err, container.ErrNotFound) {
			return "", nil
		} else if err != nil {
			return "", err
		}
		if !c.IsAgent() || c.ID != j.NewID || c.ImageRef != j.NewImage || c.Name != j.AgentName {
			return "", fmt.Errorf("%w: container %s (%s, image %q) is not the agent this update created from %s",
				errJournalInvalid, container.ShortID(c.ID), c.Name, c.ImageRef, j.NewImage)
		}
		return j.NewID, nil
	}
	c, err := u.docker.Inspect(ctx, j.AgentName)
	if errors.Is(err, container.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if c.ID == j.OldID || c.Name != j.AgentName {
		return "", nil
	}
	if !c.IsAgent() || c.ImageRef != j.NewImage {
		return "", fmt.Errorf("%w: container %s holds the agent name but was not created by this update (image %q); refusing to touch it",
			errJournalInvalid, container.ShortID(c.ID), c.ImageRef)
	}
	j.NewID = c.ID
	return c.ID, nil
}

// checkAgainstEngine refuses a journal whose old container is not what this
// updater renamed: an agent, running the image the journal recorded, under
// the agent name or the temporary name derived from its ID. (A missing old
// container is a real situation, handled by the rollback.)
func (u *Updater) checkAgainstEngine(ctx context.Context, j *Journal) error {
	old, err := u.docker.Inspect(ctx, j.OldID)
	switch {
	case errors.Is(err, container.ErrNotFound):
	case err != nil:
		return err
	case !old.IsAgent() || old.ID != j.OldID:
		return fmt.Errorf("%w: old container %s is not an agent container", errJournalInvalid, container.ShortID(j.OldID))
	case old.Name != j.AgentName && old.Name != j.TempName:
		return fmt.Errorf("%w: old container %s is named %q, neither %q nor %q", errJournalInvalid, container.ShortID(j.OldID), old.Name, j.AgentName, j.TempName)
	case j.OldImage != "" && old.Image != j.OldImage:
		return fmt.Errorf("%w: old container %s runs image %s, not the journal's %s", errJournalInvalid, container.ShortID(j.OldID), old.Image, j.OldImage)
	}
	_, err = u.findNew(ctx, j)
	return err
}

// recoverJournal finishes a replacement a previous run left behind. done is
// true when no journal is left.
func (u *Updater) recoverJournal(ctx context.Context, hb *heartbeat) (done bool, err error) {
	dctx := context.WithoutCancel(ctx)
	j, err := readJournal(u.state, u.o.AgentName, u.repo)
	if errors.Is(err, errJournalInvalid) {
		return u.rejectJournal(dctx, err)
	}
	if err != nil {
		return false, err
	}
	if j == nil {
		return true, nil
	}
	log := u.log.With("phase", j.Phase, "old", container.ShortID(j.OldID), "new", container.ShortID(j.NewID))
	log.Warn("recovering an interrupted agent replacement")
	if err := u.checkAgainstEngine(dctx, j); err != nil {
		if errors.Is(err, errJournalInvalid) {
			return u.rejectJournal(dctx, err)
		}
		return false, err
	}
	var result error
	switch j.Phase {
	case PhaseCommit:
		result = u.commit(dctx, j)
		if result == nil {
			return true, nil
		}
		if errors.Is(result, errNewGone) {
			result = u.rollbackRecovered(dctx, j, fmt.Sprintf("%s (after an updater restart): %v", PhaseCommit, result))
		}
	case PhaseHealth:
		healthyErr := errors.New("the new agent was not running after the restart")
		if j.NewID != "" {
			if c, err := u.docker.Inspect(dctx, j.NewID); err == nil && c.Running {
				u.setStatus(u.journalStatus(j, handoff.StateHealthCheck, "", nil))
				healthyErr = hb.during(func() error { return u.docker.WaitHealthy(ctx, j.NewID, u.o.HealthTimeout) })
			}
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if healthyErr == nil {
			result = u.commit(dctx, j)
			if result == nil {
				return true, nil
			}
			if errors.Is(result, errNewGone) {
				result = u.rollbackRecovered(dctx, j, fmt.Sprintf("%s (after an updater restart): %v", PhaseCommit, result))
			}
			break
		}
		result = u.rollbackRecovered(dctx, j, fmt.Sprintf("%s (after an updater restart): %v", PhaseHealth, healthyErr))
	case PhaseRollback:
		result = u.rollbackRecovered(dctx, j, j.Reason)
	default:
		result = u.rollbackRecovered(dctx, j, fmt.Sprintf("the updater stopped during %s", j.Phase))
	}
	if errors.Is(result, errJournalInvalid) {
		return u.rejectJournal(dctx, result)
	}
	if result != nil {
		return false, result
	}
	return true, nil
}

func (u *Updater) rollbackRecovered(ctx context.Context, j *Journal, reason string) error {
	outcome, err := u.rollback(ctx, j, reason)
	if err != nil {
		return err
	}
	t := u.target
	if t == nil || normVersion(t.req.Version) != normVersion(j.NewVersion) {
		// The retry state died with the old process: start it here, so the
		// same release is not retried at once.
		t = &target{req: handoff.Request{Version: j.NewVersion, RequestedAt: j.RequestedAt}, attempt: j.Attempt,
			retry: u.o.Retry, transient: u.o.TransientRetry, clock: u.o.ClockRetry}
		u.target = t
	}
	u.scheduleRetry(t, &t.retry)
	if outcome != restoredOld {
		u.setStatus(u.journalStatus(j, handoff.StateRollbackFailed, j.Reason, nil))
		return nil
	}
	u.setStatus(u.journalStatus(j, handoff.StateRolledBack, j.Reason, &t.nextTry))
	return nil
}

// rejectJournal handles a journal recovery must not act on (why says why):
// the pod is brought to a running agent from what the engine shows alone,
// then the journal is moved aside for an operator and the rejection is
// reported. Converging first means a crash or an engine error in between
// leaves the journal in place, and the next round does it all again.
func (u *Updater) rejectJournal(ctx context.Context, why error) (bool, error) {
	u.log.Error("update journal rejected; converging from the engine alone", "err", why)
	note, err := u.convergeWithoutJournal(ctx)
	if err != nil {
		u.setStatus(handoff.Status{State: handoff.StateFailed, Reason: fmt.Sprintf("update journal rejected (%v); could not converge yet: %v", why, err)})
		return false, fmt.Errorf("converge without the journal: %w", err)
	}
	moved, err := quarantineJournal(u.state)
	if err != nil {
		return false, err
	}
	u.log.Warn("converged without the journal", "result", note, "journal", moved)
	st := handoff.Status{State: handoff.StateFailed, Reason: fmt.Sprintf("update journal rejected (%v), moved to %s; %s", why, moved, note)}
	// Whatever was being installed is tried again later, not at once: the
	// rejection is a failed attempt like any other.
	if req, ok := u.readRequest(); ok {
		t := &target{req: req, retry: u.o.Retry, transient: u.o.TransientRetry, clock: u.o.ClockRetry}
		u.scheduleRetry(t, &t.transient)
		u.target = t
		next := t.nextTry.UTC()
		st.ToVersion, st.RequestedAt, st.NextRetryAt = req.Version, req.RequestedAt, &next
	}
	u.setStatus(st)
	return true, nil
}

// convergeWithoutJournal brings the pod to a running agent using only what
// the engine shows, trusting no file: a running agent under the agent name
// is kept; otherwise the one agent this updater renamed (named
// <agent>-old-<its own short ID>) is restored, replacing a stopped agent
// under the name. It never stops or removes a running container, and never
// touches anything but agent containers. note says what it found and did.
func (u *Updater) convergeWithoutJournal(ctx context.Context) (note string, err error) {
	cur, err := u.docker.Agent(ctx, u.o.AgentName)
	haveCur := err == nil
	switch {
	case haveCur && (cur.Running || cur.State == "restarting"):
		return fmt.Sprintf("kept the running agent %s (%s)", container.ShortID(cur.ID), cur.Version), nil
	case err != nil && !errors.Is(err, container.ErrNotFound):
		return "", err
	}
	agents, err := u.docker.Agents(ctx)
	if err != nil {
		return "", err
	}
	var renamed []container.Container
	for _, a := range agents {
		if a.Name == tempName(u.o.AgentName, a.ID) {
			renamed = append(renamed, a)
		}
	}
	if len(renamed) != 1 {
		what := "no agent container under the name"
		if haveCur {
			what = fmt.Sprintf("the agent %s is %s", container.ShortID(cur.ID), cur.State)
		}
		if len(renamed) == 0 {
			return what + " and no renamed previous agent: left as it is", nil
		}
		return fmt.Sprintf("%s and %d renamed previous agents: left as they are for an operator", what, len(renamed)), nil
	}
	old := renamed[0]
	if haveCur {
		if err := u.docker.Remove(ctx, cur.ID); err != nil && !errors.Is(err, container.ErrNotFound) {
			return "", fmt.Errorf("remove the stopped agent %s: %w", container.ShortID(cur.ID), err)
		}
	}
	if err := u.docker.Rename(ctx, old.ID, u.o.AgentName); err != nil {
		return "", fmt.Errorf("restore the previous agent's name: %w", err)
	}
	if err := u.docker.Start(ctx, old.ID); err != nil {
		return "", fmt.Errorf("start the previous agent: %w", err)
	}
	note = fmt.Sprintf("restored the previous agent %s (%s)", container.ShortID(old.ID), old.Version)
	if haveCur {
		note += fmt.Sprintf(", replacing the stopped agent %s (%s)", container.ShortID(cur.ID), cur.Version)
	}
	return note, nil
}
