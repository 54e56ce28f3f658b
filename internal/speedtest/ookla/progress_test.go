package ookla

import (
	"context"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/ooklatest"
	"github.com/radarpod/radarpod/internal/speedtest"
)

// TestProgressIsThePhaseOnly: the CLI's JSON output has no progress, so
// the runner reports that it runs, and the result names the fixture's
// server.
func TestProgressIsThePhaseOnly(t *testing.T) {
	bin := ooklatest.Install(t, t.TempDir(), ooklatest.ModeResultWithLogs)
	var events []speedtest.Progress
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ctx = speedtest.WithProgress(ctx, func(p speedtest.Progress) { events = append(events, p) })
	res, err := New(Options{Bin: bin}).Run(ctx, speedtest.Target{Interface: "wlan0"})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0] != (speedtest.Progress{Type: "progress", Runner: Name, Interface: "wlan0", Phase: speedtest.PhaseRunning}) {
		t.Fatalf("events %+v, want one running event", events)
	}
	if res.Server != "opstelecom.ravisystems.com.br" {
		t.Errorf("server %q, want the fixture's opstelecom.ravisystems.com.br", res.Server)
	}
}
