package container

import (
	"context"
	"fmt"
	"strings"
	"time"

	ctypes "github.com/moby/moby/api/types/container"
)

// UnhealthyError says why a container did not become healthy. Its message
// carries the last healthcheck output, which is what an operator needs.
type UnhealthyError struct {
	ID string
	// Reason is "unhealthy", "exited", "restarting" or "timeout".
	Reason   string
	State    string
	ExitCode int
	// Output is the last healthcheck output (trimmed and bounded).
	Output string
	After  time.Duration
}

func (e *UnhealthyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "container %s not healthy (%s after %s", short(e.ID), e.Reason, e.After.Round(100*time.Millisecond))
	if e.Reason == "exited" {
		fmt.Fprintf(&b, ", exit code %d", e.ExitCode)
	}
	b.WriteString(")")
	if e.Output != "" {
		b.WriteString(": last healthcheck: ")
		b.WriteString(e.Output)
	}
	return b.String()
}

// maxHealthOutput bounds what of a healthcheck's output ends up in the
// status file and in Sentry.
const maxHealthOutput = 512

// noHealthcheckGrace is how long a container without any healthcheck must
// stay running (without restarting) to count as healthy: the operator
// disabled the check, and an update must not be impossible because of it.
const noHealthcheckGrace = 10 * time.Second

// WaitHealthy waits until Docker reports the agent container id healthy,
// at most timeout. It fails fast when the container turns unhealthy,
// exits or is restarted by its restart policy.
func (c *Client) WaitHealthy(ctx context.Context, id string, timeout time.Duration) error {
	start := time.Now()
	deadline := start.Add(timeout)
	tick := time.NewTicker(c.healthPoll)
	defer tick.Stop()
	restarts := -1
	for {
		raw, err := c.guard(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("wait healthy: %w", err)
		}
		if restarts < 0 {
			restarts = raw.RestartCount
		}
		st := raw.State
		fail := func(reason string) error {
			return &UnhealthyError{ID: raw.ID, Reason: reason, State: string(st.Status), ExitCode: st.ExitCode, Output: lastHealthOutput(st.Health), After: time.Since(start)}
		}
		switch {
		case st.Restarting || raw.RestartCount > restarts:
			return fail("restarting")
		case !st.Running && st.Status != ctypes.StateCreated:
			return fail("exited")
		case st.Health == nil:
			if !hasHealthcheck(raw.Config) {
				started, _ := time.Parse(time.RFC3339Nano, st.StartedAt)
				if st.Running && !started.IsZero() && time.Since(started) >= min(noHealthcheckGrace, timeout/2) {
					c.log.Warn("agent has no healthcheck; accepting it after it stayed up", "container", short(raw.ID))
					return nil
				}
			}
		case st.Health.Status == ctypes.Healthy:
			return nil
		case st.Health.Status == ctypes.Unhealthy:
			return fail("unhealthy")
		}
		if !time.Now().Before(deadline) {
			return fail("timeout")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func hasHealthcheck(cfg *ctypes.Config) bool {
	if cfg == nil || cfg.Healthcheck == nil || len(cfg.Healthcheck.Test) == 0 {
		return false
	}
	return cfg.Healthcheck.Test[0] != "NONE"
}

func lastHealthOutput(h *ctypes.Health) string {
	if h == nil || len(h.Log) == 0 {
		return ""
	}
	r := h.Log[len(h.Log)-1]
	if r == nil {
		return ""
	}
	out := strings.TrimSpace(r.Output)
	if len(out) > maxHealthOutput {
		out = out[:maxHealthOutput] + "…"
	}
	if r.ExitCode != 0 {
		out = fmt.Sprintf("exit %d: %s", r.ExitCode, out)
	}
	return out
}
