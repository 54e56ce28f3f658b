package update

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/radarpod/radarpod/internal/container"
	"github.com/radarpod/radarpod/internal/handoff"
)

type replaceResult struct {
	err         error
	rolledBack  bool
	interrupted bool
}

// replace swaps the agent container for one on j.NewImage. Docker calls run
// on a context that SIGTERM does not cancel (a half-sent rename helps no
// one); the process stops between steps or during the health wait, and the
// journal lets the next start finish the job.
func (u *Updater) replace(ctx context.Context, hb *heartbeat, j *Journal) replaceResult {
	dctx := context.WithoutCancel(ctx)
	log := u.log.With("from", j.OldVersion, "to", j.NewVersion, "old", container.ShortID(j.OldID))
	u.setStatus(u.journalStatus(j, handoff.StateReplacing, "", nil))
	log.Info("replacing the agent container", "image", j.NewImage)
	// Nothing has been touched yet: a data dir that refuses the journal
	// is a plain failure, with nothing to roll back.
	j.Phase = PhaseRename
	if err := writeJournal(u.o.DataDir, j); err != nil {
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
		{PhaseStopOld, func() error { return u.docker.Stop(dctx, j.OldID) }},
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
		if rerr := u.rollback(dctx, j, reason); rerr != nil {
			if errors.Is(rerr, errInterrupted) {
				return replaceResult{err: rerr, interrupted: true}
			}
			log.Error("rollback failed; the journal is kept and recovery retries", "err", rerr)
			return replaceResult{err: fmt.Errorf("%s; rollback: %w", reason, rerr)}
		}
		return replaceResult{err: errors.New(reason), rolledBack: true}
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
	if err := writeJournal(u.o.DataDir, j); err != nil {
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
func (u *Updater) commit(ctx context.Context, j *Journal) error {
	if err := u.step(j, PhaseCommit, func() error {
		if err := u.docker.Remove(ctx, j.OldID); err != nil && !errors.Is(err, container.ErrNotFound) {
			return fmt.Errorf("remove the old agent: %w", err)
		}
		return nil
	}); err != nil {
		return err
	}
	u.retagInstalled(ctx, j)
	u.pruneOldImage(ctx, j)
	if err := removeJournal(u.o.DataDir); err != nil {
		return err
	}
	u.setStatus(u.journalStatus(j, handoff.StateSucceeded, "", nil))
	u.log.Info("agent updated", "from", j.OldVersion, "to", j.NewVersion, "container", container.ShortID(j.NewID))
	return nil
}

// retagInstalled points the reference the old agent was created from (the
// compose file's "repo:tag") at the verified new image. Otherwise a later
// `docker compose up` sees the agent's image differ from the one its file
// names and recreates the agent from the old image: a silent downgrade. A
// reference pinned by digest is left alone (it cannot name another image).
func (u *Updater) retagInstalled(ctx context.Context, j *Journal) {
	if j.OldImageRef == "" || strings.Contains(j.OldImageRef, "@") {
		return
	}
	if err := u.docker.Tag(ctx, j.NewImage, j.OldImageRef); err != nil {
		u.log.Warn("could not point the agent's image reference at the new version; a later compose up may recreate the old one",
			"ref", j.OldImageRef, "err", err)
		return
	}
	u.log.Info("image reference now names the installed agent", "ref", j.OldImageRef, "image", j.NewImage)
}

func (u *Updater) pruneOldImage(ctx context.Context, j *Journal) {
	if j.OldImage == "" {
		return
	}
	if cur, err := u.docker.Inspect(ctx, j.NewID); err == nil && cur.Image == j.OldImage {
		return // "new" is the same image (re-tagged release)
	}
	err := u.docker.RemoveImage(ctx, j.OldImage)
	switch {
	case err == nil:
		u.log.Info("old agent image removed", "image", container.ShortID(j.OldImage))
	case errors.Is(err, container.ErrImageInUse):
		u.log.Info("old agent image kept: another container uses it", "image", container.ShortID(j.OldImage))
	default:
		u.log.Warn("could not remove the old agent image", "image", container.ShortID(j.OldImage), "err", err)
	}
}

// rollback restores the old agent under its name and removes the new one.
// It is idempotent: recovery runs it again after a crash in the middle.
func (u *Updater) rollback(ctx context.Context, j *Journal, reason string) error {
	j.Reason = reason
	var note string
	err := u.step(j, PhaseRollback, func() error {
		var err error
		note, err = u.restoreOld(ctx, j)
		return err
	})
	if err != nil {
		return err
	}
	return u.finishRollback(j, note)
}

// restoreOld is the rollback proper. note explains an unusual outcome.
func (u *Updater) restoreOld(ctx context.Context, j *Journal) (note string, err error) {
	newID, err := u.findNew(ctx, j)
	if err != nil {
		return "", err
	}
	old, err := u.docker.Inspect(ctx, j.OldID)
	if errors.Is(err, container.ErrNotFound) {
		// Never leave the pod without an agent: keep the new one.
		if newID == "" {
			return "the old agent container disappeared and no new one exists", nil
		}
		if err := u.docker.Rename(ctx, newID, j.AgentName); err != nil {
			return "", err
		}
		if err := u.docker.Start(ctx, newID); err != nil {
			return "", err
		}
		return "the old agent container disappeared; kept the new one", nil
	}
	if err != nil {
		return "", err
	}
	if newID != "" {
		if err := u.docker.Remove(ctx, newID); err != nil && !errors.Is(err, container.ErrNotFound) {
			return "", fmt.Errorf("remove the new agent: %w", err)
		}
		// A failed release's image goes too (a retry pulls it again);
		// RemoveImage keeps it if any container still uses it.
		if err := u.docker.RemoveImage(ctx, j.NewImage); err != nil && !errors.Is(err, container.ErrImageInUse) {
			u.log.Warn("could not remove the failed release's image", "image", j.NewImage, "err", err)
		}
	}
	if old.Name != j.AgentName {
		if err := u.docker.Rename(ctx, j.OldID, j.AgentName); err != nil {
			return "", fmt.Errorf("restore the old agent's name: %w", err)
		}
	}
	if err := u.docker.Start(ctx, j.OldID); err != nil {
		return "", fmt.Errorf("restart the old agent: %w", err)
	}
	return "", nil
}

func (u *Updater) finishRollback(j *Journal, note string) error {
	if note != "" {
		u.log.Error("rollback: "+note, "old", container.ShortID(j.OldID), "new", container.ShortID(j.NewID))
		j.Reason += "; " + note
	}
	if err := removeJournal(u.o.DataDir); err != nil {
		return err
	}
	u.log.Warn("rolled back to the previous agent", "version", j.OldVersion, "reason", j.Reason)
	return nil
}

// findNew returns the ID of the container the replacement created, or ""
// when there is none. Before the create step returned, the journal has no
// ID: the container holding the agent name that is not the old one and was
// created from the new image is ours.
func (u *Updater) findNew(ctx context.Context, j *Journal) (string, error) {
	if j.NewID != "" {
		if _, err := u.docker.Inspect(ctx, j.NewID); errors.Is(err, container.ErrNotFound) {
			return "", nil
		} else if err != nil {
			return "", err
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
		return "", fmt.Errorf("container %s holds the agent name but was not created by this update (image %q); refusing to touch it", container.ShortID(c.ID), c.ImageRef)
	}
	j.NewID = c.ID
	return c.ID, nil
}

// recoverJournal finishes a replacement a previous run left behind. done is
// true when no journal is left.
func (u *Updater) recoverJournal(ctx context.Context, hb *heartbeat) (done bool, err error) {
	j, err := readJournal(u.o.DataDir)
	if err != nil {
		u.log.Error("unreadable journal moved aside; check the agent container by hand", "err", err)
		if qerr := quarantineJournal(u.o.DataDir); qerr != nil {
			return false, fmt.Errorf("%v; move aside: %w", err, qerr)
		}
		return true, nil
	}
	if j == nil {
		return true, nil
	}
	log := u.log.With("phase", j.Phase, "old", container.ShortID(j.OldID), "new", container.ShortID(j.NewID))
	log.Warn("recovering an interrupted agent replacement")
	dctx := context.WithoutCancel(ctx)
	var result error
	switch j.Phase {
	case PhaseCommit:
		result = u.commit(dctx, j)
		if result == nil {
			return true, nil
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
			break
		}
		result = u.rollbackRecovered(dctx, j, fmt.Sprintf("%s (after an updater restart): %v", PhaseHealth, healthyErr))
	case PhaseRollback:
		result = u.rollbackRecovered(dctx, j, j.Reason)
	default:
		result = u.rollbackRecovered(dctx, j, fmt.Sprintf("the updater stopped during %s", j.Phase))
	}
	if result != nil {
		return false, result
	}
	return true, nil
}

func (u *Updater) rollbackRecovered(ctx context.Context, j *Journal, reason string) error {
	if err := u.rollback(ctx, j, reason); err != nil {
		return err
	}
	next := time.Now().Add(u.o.Retry.Initial)
	if t := u.target; t != nil && normVersion(t.req.Version) == normVersion(j.NewVersion) {
		u.scheduleRetry(t, &t.retry)
		next = t.nextTry
	} else {
		// The retry state died with the old process: start it here, so the
		// same release is not retried at once.
		t := &target{req: handoff.Request{Version: j.NewVersion, RequestedAt: j.RequestedAt}, attempt: j.Attempt,
			retry: u.o.Retry, transient: u.o.TransientRetry, clock: u.o.ClockRetry}
		u.scheduleRetry(t, &t.retry)
		next = t.nextTry
		u.target = t
	}
	u.setStatus(u.journalStatus(j, handoff.StateRolledBack, j.Reason, &next))
	return nil
}
