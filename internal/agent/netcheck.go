package agent

import (
	"context"
	"time"

	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/netcheck"
)

// Network preflight pacing: a pod that cannot reach something must say what
// and where, but the check itself talks to many hosts, so it runs at
// start-up, after the channel has been down for a while, and then rarely.
const (
	netCheckAtStart      = "start-up"
	defaultNetCheckAfter = 5 * time.Minute
	netCheckRepeat       = 30 * time.Minute
)

// defaultNetCheck checks every row the pod's configuration implies,
// including the updater's (the operator reads one verdict for the box).
func defaultNetCheck(agentCfg config.Agent, updaterCfg config.Updater) func(context.Context) netcheck.Report {
	return func(ctx context.Context) netcheck.Report {
		return netcheck.Check(ctx, netcheck.Requirements(agentCfg, updaterCfg), netcheck.CheckOptions{})
	}
}

// netCheckLoop runs the preflight at start-up and whenever the live channel
// has been unable to connect for NetCheckAfter (again every 30 minutes while
// it stays down). It never overlaps a test run: they would share the line.
func (a *Agent) netCheckLoop(ctx context.Context) {
	a.runNetCheck(ctx, netCheckAtStart)
	tick := time.NewTicker(a.netCheckAfter / 10)
	defer tick.Stop()
	var downSince, lastRun time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if a.cfg.Standalone() || a.isChannelUp() {
			downSince = time.Time{}
			continue
		}
		now := a.now()
		if downSince.IsZero() {
			downSince = now
		}
		if now.Sub(downSince) < a.netCheckAfter || now.Sub(lastRun) < netCheckRepeat || a.queue.busy() {
			continue
		}
		lastRun = now
		a.runNetCheck(ctx, "channel down for "+now.Sub(downSince).Round(time.Second).String())
	}
}

func (a *Agent) runNetCheck(ctx context.Context, why string) {
	a.line.Lock()
	a.log.Info("network check started", "why", why)
	r := a.netCheck(ctx)
	a.line.Unlock()
	if ctx.Err() != nil {
		return
	}
	if why != netCheckAtStart {
		// The check's handshakes with every host are garbage now
		// (start-up's are released once the agent settles: settleLoop).
		defer a.releaseMemory("network check")
	}
	netcheck.RecordMetrics(a.metrics, r)
	a.rememberNetCheck(r, why)
	attrs := []any{"why", why, "duration", r.Duration.Round(time.Millisecond).String()}
	for _, row := range r.Failed() {
		attrs = append(attrs, row.ID, row.Step+": "+row.Hint)
	}
	if len(r.Failed()) == 0 {
		a.log.Info(r.Summary(), attrs...)
		return
	}
	// One line that names what is unreachable and where to look next;
	// the hints follow as attributes, one per failed row.
	verdict := "network check failed"
	if r.OK() {
		verdict = "network check passed, informational rows failed"
	}
	msg := verdict + ": " + r.Unreachable() + "; run `radar-agent check-network` for each step"
	switch {
	case !r.OK() && why != netCheckAtStart:
		// The channel has been down for a while and a required connection
		// fails: the pod is cut off until someone fixes the network.
		a.report("netcheck", msg, nil, attrs...)
	default:
		// At start-up a failure is a warning, whatever it is: a box that
		// boots offline (or restarts while its line is down) is not news
		// at every start, and the check runs again, and errs, should the
		// channel stay down.
		a.log.Warn(msg, attrs...)
	}
}
