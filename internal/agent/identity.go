package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/radarpod/radarpod/internal/backoff"
	"github.com/radarpod/radarpod/internal/radar"
)

// ensureIdentity returns the stored identity, or registers once and stores
// it. A pod registers exactly once in its life: losing the identity makes a
// new pod in the service. Registration retries forever (the service may be
// down, the network not up yet) and stops only when ctx is done.
func (a *Agent) ensureIdentity(ctx context.Context) (radar.Identity, error) {
	id, ok, err := radar.LoadIdentity(a.cfg.DataDir)
	if err != nil {
		// A corrupt identity must not silently become a second pod: stop and
		// say so; the operator decides (restore or delete the file).
		return radar.Identity{}, fmt.Errorf("load pod identity from %s: %w", a.cfg.DataDir, err)
	}
	if ok {
		a.adoptIdentity(id)
		a.log.Info("pod identity loaded", "pod_id", id.UnixUser)
		return id, nil
	}
	req := radar.RegisterRequest{RegistrationToken: a.cfg.RegistrationToken, Name: a.cfg.PodName, RegisterLabel: a.cfg.RegisterLabel}
	b := &backoff.Backoff{Initial: time.Second, Max: 5 * time.Minute, Jitter: 0.2}
	for {
		id, err := a.service.Register(ctx, req)
		if err == nil {
			if err := radar.SaveIdentity(a.cfg.DataDir, id); err != nil {
				// Registered but not stored: retrying would register a second
				// pod, so keep the identity in memory and keep trying to store.
				a.report("identity_save", "registered but could not store the identity; retrying", err)
				if werr := a.saveIdentityRetry(ctx, id); werr != nil {
					return radar.Identity{}, werr
				}
			}
			a.adoptIdentity(id)
			a.log.Info("pod registered", "pod_id", id.UnixUser)
			return id, nil
		}
		if ctx.Err() != nil {
			return radar.Identity{}, ctx.Err()
		}
		// A 429 or 503 may say when to come back (Retry-After): never
		// sooner than that, nor than the backoff. A 429 is the service
		// pacing its fleet, not a fault of this pod: it is not reported.
		delay := b.After(radar.RetryAfterOf(err))
		if radar.Classify(err) == radar.ClassThrottled {
			a.log.Warn("registration throttled by the service; retrying", "err", err, "retry_in", delay.Round(time.Second).String(), "attempt", b.Attempts())
		} else {
			a.report("register", "registration failed; retrying", err, "retry_in", delay.Round(time.Second).String(), "attempt", b.Attempts())
		}
		if err := a.sleep(ctx, "register", delay); err != nil {
			return radar.Identity{}, err
		}
	}
}

func (a *Agent) saveIdentityRetry(ctx context.Context, id radar.Identity) error {
	b := &backoff.Backoff{Initial: time.Second, Max: time.Minute, Jitter: 0.2}
	for {
		if err := backoff.Wait(ctx, b.Next()); err != nil {
			return err
		}
		if err := radar.SaveIdentity(a.cfg.DataDir, id); err == nil {
			return nil
		}
	}
}

// adoptIdentity makes the pod's credentials known to the redactor the
// moment they exist (registration or the identity file), in every form
// they are sent in, before anything could log them.
func (a *Agent) adoptIdentity(id radar.Identity) {
	a.redactor.Add(id.Secrets()...)
	a.sentry.SetTag("pod_id", id.UnixUser)
}
