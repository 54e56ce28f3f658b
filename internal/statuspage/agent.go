package statuspage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/netif"
	"github.com/radarpod/radarpod/internal/speedtest"
)

// ForAgent is the page of a running agent: its snapshot and history, its
// RunNow queue behind the button (a test the button started ends when the
// agent stops: RunNow returns then), its data budget. redact hides the
// process's secrets in error texts.
func ForAgent(a *agent.Agent, cfg config.Agent, log *slog.Logger, redact func(string) string) *Server {
	return New(Options{
		Pod: a, DataDir: cfg.DataDir, Token: cfg.StatusToken, Log: log, Redact: redact,
		// Read at each request: a container's network can be reattached.
		LocalPeer: func(addr netip.Addr) bool { return slices.Contains(netif.Gateways(), addr) },
		RunTest: func(ctx context.Context, progress func(speedtest.Progress)) error {
			results, err := a.RunNow(ctx, agent.LocalTestRequest{}, progress)
			if err != nil {
				return err
			}
			return failures(results)
		},
		Budget: func() (Budget, bool) {
			st := a.DataBudget()
			return Budget{Limit: st.Limit, Used: st.Used, PeriodStart: st.PeriodStart, PeriodEnd: st.PeriodEnd, Exhausted: st.Exceeded()}, true
		},
	})
}

// failures joins the errors of the failed tests of a run (nil when every
// test succeeded), each named by its runner.
func failures(results []agent.LocalResult) error {
	var msgs []string
	for _, r := range results {
		if r.Err != nil {
			msgs = append(msgs, fmt.Sprintf("%s: %s", seriesLabel(r.Entry.Runner, r.Entry.Interface), r.Err))
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}
