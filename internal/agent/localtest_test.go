//go:build linux && cgo

package agent_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/ndt7test"
	"github.com/radarpod/radarpod/internal/ooklatest"
	"github.com/radarpod/radarpod/internal/outbox"
	"github.com/radarpod/radarpod/internal/radartest"
	"github.com/radarpod/radarpod/internal/speedtest"
)

// progressLog collects the events RunNow hands its caller.
type progressLog struct {
	mu     sync.Mutex
	events []speedtest.Progress
}

func (l *progressLog) add(p speedtest.Progress) {
	l.mu.Lock()
	l.events = append(l.events, p)
	l.mu.Unlock()
}

func (l *progressLog) rated(phase speedtest.Phase) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, p := range l.events {
		if p.Phase == phase && p.Mbps > 0 {
			n++
		}
	}
	return n
}

func (l *progressLog) has(phase speedtest.Phase) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.ContainsFunc(l.events, func(p speedtest.Progress) bool { return p.Phase == phase })
}

// ooklaRuns counts the fake CLI's test invocations (not --servers).
func ooklaRuns(t *testing.T, dir string) int {
	n := 0
	for _, args := range ooklatest.Calls(t, dir) {
		if !slices.Contains(args, "--servers") {
			n++
		}
	}
	return n
}

func runNowCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// TestRunNowGoesThroughTheQueue: a local test of one runner runs that
// runner only, streams its live rate, lands in the outbox and is uploaded
// like a test the service asked for, and is counted as local.
func TestRunNowGoesThroughTheQueue(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	ndt := ndt7test.Start(t, ndt7test.Options{})
	ooklaDir := t.TempDir()
	fake := ooklatest.Install(t, ooklaDir, ooklatest.ModeResult)
	p := startPod(t, podOptions{env: map[string]string{"RADAR_SERVER_URL": srv.URL}, runners: shortRunners(ndt, fake), server: srv})

	var live progressLog
	results, err := p.agent.RunNow(runNowCtx(t), agent.LocalTestRequest{Runner: "ndt7"}, live.add)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 {
		t.Fatalf("%d results, want the ndt7 one: %+v", len(results), results)
	}
	r := results[0]
	if r.Err != nil || r.Entry.Runner != "ndt7" || r.Entry.OutboxID == "" || r.Entry.DownloadMbps == nil || *r.Entry.DownloadMbps <= 0 || r.Server != "127.0.0.1" {
		t.Fatalf("result %+v (err %v), want a stored ndt7 result against 127.0.0.1", r.Entry, r.Err)
	}
	if live.rated(speedtest.PhaseDownload) == 0 || live.rated(speedtest.PhaseUpload) == 0 {
		t.Errorf("progress %+v: want live download and upload rates", live.events)
	}
	ms := waitMeasurements(t, srv, 1)
	if ms[0].Style != speedtest.StyleNDT7 {
		t.Errorf("uploaded %s, want the NDT7 result", ms[0].Style)
	}
	waitFor(t, "outbox drained", func() bool { return p.metrics.OutboxDepth.Value() == 0 })
	if n := len(srv.Measurements()); n != 1 {
		t.Errorf("%d uploads, want 1", n)
	}
	if n := ooklaRuns(t, ooklaDir); n != 0 {
		t.Errorf("the Ookla CLI ran %d times for an ndt7 test", n)
	}
	if got := p.metrics.TestRequested.WithLabelValues(agent.LocalSource).Value(); got != 1 {
		t.Errorf("local requests counted %v, want 1", got)
	}
	if e := p.results(); len(e) != 1 || e[0].OutboxID != r.Entry.OutboxID {
		t.Errorf("results.jsonl %+v, want the one result", e)
	}
}

// TestRunNowJoinsTheRunInProgress: requests made while a run covering them
// is in progress get that run's progress and results; nothing runs twice
// and the service gets one upload per runner.
func TestRunNowJoinsTheRunInProgress(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	ndt := ndt7test.Start(t, ndt7test.Options{})
	ooklaDir := t.TempDir()
	fake := ooklatest.Install(t, ooklaDir, ooklatest.ModeResult)
	gate := &gatedRunner{started: make(chan struct{}), release: make(chan struct{})}
	p := startPod(t, podOptions{
		env: map[string]string{"RADAR_SERVER_URL": srv.URL}, server: srv,
		runners: func(cfg config.Agent) []agent.Runner {
			rs := shortRunners(ndt, fake)(cfg)
			gate.Runner = rs[0]
			return []agent.Runner{gate, rs[1]}
		},
	})

	type answer struct {
		results []agent.LocalResult
		err     error
		live    *progressLog
	}
	ask := func(req agent.LocalTestRequest) chan answer {
		ch := make(chan answer, 1)
		go func() {
			live := &progressLog{}
			res, err := p.agent.RunNow(runNowCtx(t), req, live.add)
			ch <- answer{res, err, live}
		}()
		return ch
	}
	first := ask(agent.LocalTestRequest{})
	<-gate.started
	second := ask(agent.LocalTestRequest{})
	ookla := ask(agent.LocalTestRequest{Runner: "ookla"})
	waitFor(t, "both later requests to join", func() bool {
		return strings.Count(p.logs.String(), "joined the run in progress") == 2
	})
	close(gate.release)

	a, b, o := <-first, <-second, <-ookla
	for name, ans := range map[string]answer{"first": a, "second": b, "ookla": o} {
		if ans.err != nil {
			t.Fatalf("%s: %v", name, ans.err)
		}
	}
	ids := func(rs []agent.LocalResult) []string {
		var out []string
		for _, r := range rs {
			if r.Err != nil || r.Entry.OutboxID == "" {
				t.Errorf("result %+v (%v), want a stored success", r.Entry, r.Err)
			}
			out = append(out, r.Entry.Runner+"="+r.Entry.OutboxID)
		}
		return out
	}
	ia, ib, io := ids(a.results), ids(b.results), ids(o.results)
	if len(ia) != 2 || !slices.Equal(ia, ib) || len(io) != 1 || io[0] != ia[1] {
		t.Fatalf("results: first %v, second %v, ookla %v; want the same two, and the ookla one", ia, ib, io)
	}
	if b.live.rated(speedtest.PhaseDownload) == 0 || !o.live.has(speedtest.PhaseRunning) {
		t.Errorf("joined callers' progress: %+v and %+v", b.live.events, o.live.events)
	}
	waitMeasurements(t, srv, 2)
	waitFor(t, "outbox drained", func() bool { return p.metrics.OutboxDepth.Value() == 0 })
	if n := len(srv.Measurements()); n != 2 {
		t.Errorf("%d uploads, want 2 (one per runner)", n)
	}
	if n := ooklaRuns(t, ooklaDir); n != 1 {
		t.Errorf("the Ookla CLI ran %d times, want once", n)
	}
}

// TestRunNowWaitsBehindAnotherRun: a request the run in progress does not
// cover waits for it (and says so), then runs; a test of an interface the
// pod does not have fails with its class.
func TestRunNowWaitsBehindAnotherRun(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	ndt := ndt7test.Start(t, ndt7test.Options{})
	fake := ooklatest.Install(t, t.TempDir(), ooklatest.ModeResult)
	gate := &gatedRunner{started: make(chan struct{}), release: make(chan struct{})}
	p := startPod(t, podOptions{
		env: map[string]string{"RADAR_SERVER_URL": srv.URL}, server: srv,
		runners: func(cfg config.Agent) []agent.Runner {
			rs := shortRunners(ndt, fake)(cfg)
			gate.Runner = rs[0]
			return []agent.Runner{gate, rs[1]}
		},
	})
	waitFor(t, "the channel", func() bool { return srv.Subscribed() > 0 })
	srv.SendRunTest(nil)
	<-gate.started

	var live progressLog
	done := make(chan error, 1)
	var results []agent.LocalResult
	go func() {
		var err error
		results, err = p.agent.RunNow(runNowCtx(t), agent.LocalTestRequest{Runner: "ndt7", Interface: "nosuch0"}, live.add)
		done <- err
	}()
	waitFor(t, "the request to queue", func() bool { return live.has(speedtest.PhaseQueued) })
	close(gate.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || speedtest.ClassOf(results[0].Err) != speedtest.ClassNetwork || results[0].Entry.Interface != "nosuch0" || results[0].Entry.ErrorClass != "network" {
		t.Fatalf("results %+v, want one network failure on nosuch0", results)
	}
	waitMeasurements(t, srv, 2) // the service's run
}

// TestRunNowRefusesAndStops: a runner the pod does not run and a name that
// is no interface are refused; once the agent has stopped, RunNow says so,
// and the outbox is closed (its lock released: it opens again).
func TestRunNowRefusesAndStops(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{PingInterval: time.Second})
	fake := ooklatest.Install(t, t.TempDir(), ooklatest.ModeResult)
	p := startPod(t, podOptions{
		env: map[string]string{"RADAR_SERVER_URL": srv.URL, "RADAR_TESTS": "ookla", "RADAR_OOKLA_BIN": fake}, server: srv,
	})
	for _, req := range []agent.LocalTestRequest{{Runner: "ndt7"}, {Runner: "speedof.me"}, {Interface: "../etc"}, {Interface: "averyveryverylongname0"}} {
		if _, err := p.agent.RunNow(runNowCtx(t), req, nil); !errors.Is(err, agent.ErrBadRequest) {
			t.Errorf("RunNow(%+v) = %v, want ErrBadRequest", req, err)
		}
	}
	p.stop()
	if _, err := p.agent.RunNow(runNowCtx(t), agent.LocalTestRequest{}, nil); !errors.Is(err, agent.ErrStopped) {
		t.Errorf("RunNow after stop = %v, want ErrStopped", err)
	}
	box, err := outbox.Open(outbox.Options{Dir: p.cfg.DataDir + "/outbox", MaxBytes: 1 << 20})
	if err != nil {
		t.Fatalf("outbox after the agent stopped: %v", err)
	}
	box.Close()
}
