package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	ctypes "github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
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

// WaitHealthy waits until the agent container id is healthy, at most
// timeout. It fails fast when Docker reports it unhealthy, or it exits or
// is restarted by its restart policy.
//
// Healthy is either Docker's verdict or a pass of the container's own
// healthcheck command, which WaitHealthy runs itself (docker exec) about
// once a second while Docker's status is still "starting". Docker runs the
// first probe only one interval after the start — 30 s with the shipped
// healthcheck, and engine 20.10 has no start_interval — so waiting for it
// alone would keep every update, and the pod's measurements, waiting 30 s
// for an agent that is ready within one. Failures of our own probes do not
// count against the container: Docker's retries and the timeout decide
// that, as the operator configured them.
func (c *Client) WaitHealthy(ctx context.Context, id string, timeout time.Duration) error {
	start := time.Now()
	deadline := start.Add(timeout)
	tick := time.NewTicker(c.healthPoll)
	defer tick.Stop()
	restarts := -1
	var lastProbe time.Time
	var probeOutput string // of our own last failing probe
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
			out := lastHealthOutput(st.Health)
			if out == "" {
				out = probeOutput
			}
			return &UnhealthyError{ID: raw.ID, Reason: reason, State: string(st.Status), ExitCode: st.ExitCode, Output: out, After: time.Since(start)}
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
		case st.Running && time.Since(lastProbe) >= probeEvery:
			lastProbe = time.Now()
			out, err := c.probe(ctx, raw, deadline)
			if err == nil {
				c.log.Info("agent passed its healthcheck before Docker's first probe", "container", short(raw.ID),
					"after", time.Since(start).Round(100*time.Millisecond).String())
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			probeOutput = out
			c.log.Debug("agent healthcheck not passing yet", "container", short(raw.ID), "err", err)
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

// probeEvery spaces our own healthcheck runs: each is a process started in
// the agent container, which on a Pi is not free.
const probeEvery = time.Second

// defaultProbeTimeout is Docker's own default healthcheck timeout.
const defaultProbeTimeout = 30 * time.Second

// probe runs the container's healthcheck command once, as Docker runs it
// (an exec in the container, as its user, with its environment), bounded
// by the healthcheck's timeout and the deadline. It returns nil when the
// command exits 0, and otherwise its output (trimmed and bounded, like
// lastHealthOutput) with the reason.
func (c *Client) probe(ctx context.Context, raw ctypes.InspectResponse, deadline time.Time) (string, error) {
	hc := raw.Config.Healthcheck
	var cmd []string
	switch {
	case !hasHealthcheck(raw.Config):
		return "", errors.New("no healthcheck")
	case hc.Test[0] == "CMD" && len(hc.Test) > 1:
		cmd = hc.Test[1:]
	case hc.Test[0] == "CMD-SHELL" && len(hc.Test) == 2:
		shell := raw.Config.Shell
		if len(shell) == 0 {
			shell = []string{"/bin/sh", "-c"}
		}
		cmd = append(slices.Clone(shell), hc.Test[1])
	default:
		return "", fmt.Errorf("healthcheck %q not understood", hc.Test)
	}
	timeout := hc.Timeout
	if timeout <= 0 {
		timeout = defaultProbeTimeout
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, timeout)
	defer cancel()

	ex, err := c.api.ExecCreate(ctx, raw.ID, client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return "", fmt.Errorf("healthcheck exec: %w", err)
	}
	att, err := c.api.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		return "", fmt.Errorf("healthcheck exec: %w", err)
	}
	defer att.Close()
	stop := context.AfterFunc(ctx, func() { att.Close() })
	defer stop()
	// Both streams, in order, as Docker logs them; bounded, because a
	// broken release could print without end.
	out := &boundedBuffer{limit: maxHealthOutput + 1}
	if _, err := stdcopy.StdCopy(out, out, att.Reader); err != nil && ctx.Err() == nil {
		return "", fmt.Errorf("healthcheck exec output: %w", err)
	}
	if ctx.Err() != nil {
		return trimOutput(out.String()), fmt.Errorf("healthcheck timed out after %s", timeout)
	}
	res, err := c.api.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
	if err != nil {
		return "", fmt.Errorf("healthcheck exec inspect: %w", err)
	}
	if res.Running {
		return "", errors.New("healthcheck still running after its output ended")
	}
	text := trimOutput(out.String())
	if res.ExitCode != 0 {
		return fmt.Sprintf("exit %d: %s", res.ExitCode, text), fmt.Errorf("healthcheck exit %d", res.ExitCode)
	}
	return text, nil
}

// boundedBuffer keeps the first limit bytes written to it and discards
// the rest, without failing the writer.
type boundedBuffer struct {
	bytes.Buffer
	limit int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.limit - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(room, len(p))])
	}
	return len(p), nil
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
