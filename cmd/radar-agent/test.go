package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/localapi"
	"github.com/radarpod/radarpod/internal/speedtest"
	"github.com/radarpod/radarpod/internal/telemetry"
)

const testUsage = `usage: radar-agent test [--runner ndt7|ookla] [--interface IF] [--format human|json]

Runs one measurement now. With an agent running (RADAR_LISTEN_ADDR), the
agent runs it through its queue and stores and uploads it like any other;
without one, it runs in this process and nothing is stored.
Exit status: 0 result, 1 test failed, 2 bad usage.
`

var testFormats = []string{"human", "json"}

// testCommand is `radar-agent test`.
func testCommand(args []string, environ map[string]string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, testUsage) }
	runner := fs.String("runner", "", "ndt7 or ookla; default: every runner of RADAR_TESTS")
	iface := fs.String("interface", "", "interface to test; default: the default route")
	format := fs.String("format", "human", "human or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "radar-agent test: unexpected argument %q\n\n%s", fs.Arg(0), testUsage)
		return 2
	}
	if *runner != "" && !slices.Contains(config.Runners, *runner) {
		fmt.Fprintf(stderr, "radar-agent test: unknown runner %q; allowed: %s\n", *runner, strings.Join(config.Runners, ", "))
		return 2
	}
	if !slices.Contains(testFormats, *format) {
		fmt.Fprintf(stderr, "radar-agent test: unknown format %q; allowed: %s\n", *format, strings.Join(testFormats, ", "))
		return 2
	}
	cfg, err := config.LoadAgent(environ)
	if err != nil {
		fmt.Fprintln(stderr, "radar-agent:", err)
		return config.ExitCode
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	out := newTestOutput(*format, stdout)
	defer out.close()
	req := localapi.Request{Runner: *runner, Interface: *iface}
	var res localapi.Result
	err = localapi.ErrNoAgent
	if cfg.ListenAddr != "" {
		res, err = localapi.Run(ctx, cfg.ListenAddr, cfg.StatusToken, req, out.progress)
	}
	if errors.Is(err, localapi.ErrNoAgent) {
		where := "RADAR_LISTEN_ADDR is empty"
		if cfg.ListenAddr != "" {
			where = "nothing listens on " + cfg.ListenAddr + " (RADAR_LISTEN_ADDR)"
		}
		fmt.Fprintf(stderr, "radar-agent test: no running agent (%s): testing in this process; the result is not stored\n", where)
		var results []agent.LocalResult
		results, err = agent.RunInProcess(ctx, cfg, inProcessLog(cfg, stderr), agent.LocalTestRequest{Runner: *runner, Interface: *iface}, out.progress)
		if err != nil {
			return out.failure(localapi.ErrorEventOf(err), stderr)
		}
		res = localapi.NewResult(localapi.SourceInProcess, results)
	} else if err != nil {
		var ae *localapi.Error
		if errors.As(err, &ae) {
			return out.failure(ae.Event, stderr)
		}
		fmt.Fprintln(stderr, "radar-agent test:", err)
		return 1
	}
	out.result(res)
	if !res.OK {
		return 1
	}
	return 0
}

// inProcessLog is the runners' logger for an in-process test: silent
// (the output says what matters) unless RADAR_LOG_LEVEL=debug.
func inProcessLog(cfg config.Agent, stderr io.Writer) *slog.Logger {
	if cfg.Level() > slog.LevelDebug {
		return slog.New(slog.DiscardHandler)
	}
	return telemetry.NewLogger(stderr, telemetry.LogOptions{Level: slog.LevelDebug, Format: "text"})
}

// testOutput prints progress and the result: one JSON event per line
// (--format json) or for a person, the live line redrawn in place on a
// terminal.
type testOutput struct {
	json bool
	tty  bool
	w    io.Writer

	mu       sync.Mutex
	last     *speedtest.Progress
	lastAt   time.Time
	drawn    bool
	stopTick chan struct{}
	ticking  sync.WaitGroup
}

// liveRedraw is how often the live line is redrawn on a terminal: the
// elapsed time moves on between events (the Ookla CLI reports none).
const liveRedraw = 250 * time.Millisecond

func newTestOutput(format string, w io.Writer) *testOutput {
	o := &testOutput{json: format == "json", w: w}
	// telemetry.LogFormat's "auto" is the process's one terminal check.
	o.tty = !o.json && telemetry.LogFormat("auto", w) == "text"
	if o.tty {
		o.stopTick = make(chan struct{})
		o.ticking.Add(1)
		go o.tick()
	}
	return o
}

func (o *testOutput) tick() {
	defer o.ticking.Done()
	t := time.NewTicker(liveRedraw)
	defer t.Stop()
	for {
		select {
		case <-o.stopTick:
			return
		case <-t.C:
			o.mu.Lock()
			if o.last != nil {
				o.drawLocked()
			}
			o.mu.Unlock()
		}
	}
}

func (o *testOutput) close() {
	if o.stopTick != nil {
		close(o.stopTick)
		o.ticking.Wait()
		o.stopTick = nil
	}
}

func (o *testOutput) progress(p speedtest.Progress) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.json {
		writeJSONLine(o.w, p)
		return
	}
	o.last, o.lastAt = &p, time.Now()
	if o.tty {
		o.drawLocked()
		return
	}
	fmt.Fprintln(o.w, liveLine(p, 0))
}

// drawLocked redraws the live line in place.
func (o *testOutput) drawLocked() {
	fmt.Fprint(o.w, "\r\033[K"+liveLine(*o.last, time.Since(o.lastAt)))
	o.drawn = true
}

// endLiveLocked moves past the live line before anything else is printed.
func (o *testOutput) endLiveLocked() {
	if o.drawn {
		fmt.Fprint(o.w, "\r\033[K")
		o.drawn = false
	}
	o.last = nil
}

// liveLine is one progress event for a person; since is how long ago it
// arrived (the elapsed time goes on).
func liveLine(p speedtest.Progress, since time.Duration) string {
	elapsed := p.ElapsedS + since.Seconds()
	who := p.Runner
	if p.Interface != "" {
		who += " on " + p.Interface
	}
	switch p.Phase {
	case speedtest.PhaseQueued:
		return "waiting for the test in progress to finish…"
	case speedtest.PhaseLocate:
		return fmt.Sprintf("%s: finding a server (M-Lab locate)…", who)
	case speedtest.PhaseRunning:
		return fmt.Sprintf("%s: testing… %.0f s (no live figures from this runner)", who, elapsed)
	}
	if p.Mbps == 0 {
		if p.Server != "" {
			return fmt.Sprintf("%s %s: starting against %s…", who, p.Phase, p.Server)
		}
		return fmt.Sprintf("%s %s: starting…", who, p.Phase)
	}
	line := fmt.Sprintf("%s %-8s %8.2f Mbit/s  %5.1f s", who, string(p.Phase), p.Mbps, elapsed)
	if p.Server != "" {
		line += "  " + p.Server
	}
	return line
}

func (o *testOutput) result(r localapi.Result) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.json {
		writeJSONLine(o.w, r)
		return
	}
	o.endLiveLocked()
	for i, t := range r.Tests {
		if i > 0 {
			fmt.Fprintln(o.w)
		}
		printTest(o.w, t, r.Source)
	}
}

// failure prints an error event (no test result) and returns the exit
// status: 2 for a request the agent refuses as asked, 1 otherwise.
func (o *testOutput) failure(ev localapi.ErrorEvent, stderr io.Writer) int {
	o.mu.Lock()
	if o.json {
		writeJSONLine(o.w, ev)
	} else {
		o.endLiveLocked()
	}
	o.mu.Unlock()
	if !o.json {
		fmt.Fprintf(stderr, "radar-agent test: %s: %s\n", ev.Class, ev.Error)
		if ev.Hint != "" {
			fmt.Fprintln(stderr, "hint:", ev.Hint)
		}
	}
	if ev.Class == localapi.ClassBadRequest {
		return 2
	}
	return 1
}

func printTest(w io.Writer, t localapi.Test, source string) {
	where := "the default route"
	if t.Interface != "" {
		where = t.Interface
	}
	if t.Failed() {
		fmt.Fprintf(w, "%s on %s: FAILED (%s)\n  error: %s\n", t.Runner, where, t.ErrorClass, t.Error)
		if t.Hint != "" {
			fmt.Fprintf(w, "  hint:  %s\n", t.Hint)
		}
		return
	}
	fmt.Fprintf(w, "%s on %s\n", t.Runner, where)
	if t.Server != "" {
		fmt.Fprintf(w, "  server     %s\n", t.Server)
	}
	fmt.Fprintf(w, "  download   %s\n", mbps(t.DownloadMbps))
	fmt.Fprintf(w, "  upload     %s\n", mbps(t.UploadMbps))
	latency := "min RTT "
	if t.Runner == "ookla" {
		latency = "latency "
	}
	if t.LatencyMs != nil {
		fmt.Fprintf(w, "  %s   %.1f ms\n", latency, *t.LatencyMs)
	}
	if used := t.BytesSent + t.BytesReceived; used > 0 {
		fmt.Fprintf(w, "  data used  %s (sent %s, received %s)\n", megabytes(used), megabytes(t.BytesSent), megabytes(t.BytesReceived))
	} else {
		fmt.Fprintf(w, "  data used  not counted\n")
	}
	switch {
	case source == localapi.SourceInProcess:
		fmt.Fprintf(w, "  stored     no (tested in this process)\n")
	case t.OutboxID != "":
		fmt.Fprintf(w, "  stored     in the outbox for upload (%s)\n", t.OutboxID)
	default:
		fmt.Fprintf(w, "  stored     in results.jsonl\n")
	}
}

func mbps(v *float64) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f Mbit/s", *v)
}

func megabytes(n int64) string {
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}

func writeJSONLine(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	w.Write(append(b, '\n'))
}
