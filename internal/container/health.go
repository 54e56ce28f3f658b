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
	// Note explains an outcome the output cannot, such as a timeout before
	// Docker ran any probe.
	Note  string
	After time.Duration
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
	if e.Note != "" {
		b.WriteString(": ")
		b.WriteString(e.Note)
	}
	return b.String()
}

// maxHealthOutput bounds what of a healthcheck's output ends up in the
// status file and in Sentry.
const maxHealthOutput = 512

// noHealthcheckGrace is how long a container without any healthcheck must
// stay running (without restarting) to count as healthy: the operator
// disabled the check (HEALTHCHECK NONE, or healthcheck: disable: true), so
// Docker will never give a verdict, and an update must not be impossible
// because of that. Staying up is then the only evidence there is; a release
// that crashes at start still fails (exited or restarting).
const noHealthcheckGrace = 10 * time.Second

// WaitHealthy waits until Docker reports the agent container id healthy,
// at most timeout. It fails fast when Docker reports it unhealthy, or it
// exits or is restarted by its restart policy, and otherwise when the
// timeout passes.
//
// The verdict is Docker's own (State.Health.Status), as the operator's
// healthcheck (interval, retries, start period) defines it; the updater
// never substitutes a check of its own. When Docker gives its first
// verdict depends on the engine: engines from 25 (API 1.44) probe every
// start interval during the start period, older ones (Debian's 20.10)
// first probe one interval after the start. RADAR_HEALTH_TIMEOUT must
// therefore exceed the healthcheck's interval on old engines.
//
// A container without any healthcheck is accepted once it has stayed
// running for noHealthcheckGrace (or half the timeout, if shorter); see
// noHealthcheckGrace.
func (c *Client) WaitHealthy(ctx context.Context, id string, timeout time.Duration) error {
	start := time.Now()
	deadline := start.Add(timeout)
	tick := time.NewTicker(c.healthPoll)
	defer tick.Stop()
	restarts := -1
	warned := false
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
			e := &UnhealthyError{ID: raw.ID, Reason: reason, State: string(st.Status), ExitCode: st.ExitCode,
				Output: lastHealthOutput(st.Health), After: time.Since(start)}
			if reason == "timeout" && st.Health != nil && len(st.Health.Log) == 0 {
				e.Note = "Docker ran no healthcheck probe in that time (engines before 25 run the first one a whole interval after the start)"
			}
			return e
		}
		switch {
		case st.Restarting || raw.RestartCount > restarts:
			return fail("restarting")
		case !st.Running && st.Status != ctypes.StateCreated:
			return fail("exited")
		case st.Health != nil && st.Health.Status == ctypes.Healthy:
			return nil
		case st.Health != nil && st.Health.Status == ctypes.Unhealthy:
			return fail("unhealthy")
		case st.Health == nil && st.Running && !hasHealthcheck(raw.Config):
			if !warned {
				warned = true
				c.log.Warn("agent has no healthcheck; it counts as healthy once it stays up", "container", short(raw.ID),
					"grace", min(noHealthcheckGrace, timeout/2))
			}
			started, _ := time.Parse(time.RFC3339Nano, st.StartedAt)
			if !started.IsZero() && time.Since(started) >= min(noHealthcheckGrace, timeout/2) {
				return nil
			}
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

func trimOutput(s string) string {
	out := strings.TrimSpace(s)
	if len(out) > maxHealthOutput {
		out = out[:maxHealthOutput] + "…"
	}
	return out
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
	out := trimOutput(r.Output)
	if r.ExitCode != 0 {
		out = fmt.Sprintf("exit %d: %s", r.ExitCode, out)
	}
	return out
}
