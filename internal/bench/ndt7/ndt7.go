//go:build linux && cgo

package ndt7

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/radarpod/radarpod/internal/backoff"
	"github.com/radarpod/radarpod/internal/benchreport"
	"github.com/radarpod/radarpod/internal/netemu"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/radartest"
)

const (
	// Command reproduces the figures; it is recorded with each.
	Command = "make bench-ndt7"
	// clientModule is the CLI the agent is held to, at the version the
	// agent's library is pinned to.
	clientModule = "github.com/m-lab/ndt7-client-go@v0.10.1"
	// ndt7TestTimeout bounds one test (download + upload ≈ 21 s).
	ndt7TestTimeout = 90 * time.Second
	// maxToolOutput bounds what a tool may print (a result is ~250 KB).
	maxToolOutput = 16 << 20
)

// Targets (issue 6).
const (
	targetDownload = 92.0 // % of the shaped rate
	targetUpload   = 93.0
	targetDiff     = 1.0 // percentage points, agent − ndt7-client
	targetCPURatio = 1.2
	targetRSSMiB   = 40.0
)

// Options say what to measure.
type Options struct {
	// Rates are the shaped rates in Mbit/s.
	Rates []float64
	// Runs is the number of tests per tool and rate (alternating agent,
	// ndt7-client).
	Runs int
	// Delay is the one-way delay (the RTT is twice this).
	Delay time.Duration
	// Scheme is ws (the server serves ws; see Preflight).
	Scheme string
	// Client is a built ndt7-client v0.10.1; empty builds it from the
	// module cache.
	Client string
	// Workdir is the scratch directory; empty uses a temporary one,
	// removed afterwards.
	Workdir string
	// Settle is the pause between tests.
	Settle time.Duration
	// Ceiling measures a bare TCP flow at each rate (the link's ceiling).
	Ceiling bool
	// Nice is the nice value of the server and of both tools alike.
	Nice int
	// Verbose logs link setup and the children's stderr.
	Verbose bool
	// Emulate measures, instead of the agent against ndt7-client, the
	// agent's runner built for linux/arm/v7 under qemu-arm (a Pi's
	// Cortex-A7, no AES) against the amd64 build under qemu-x86_64: what
	// a test costs a 32-bit Pi in memory, as a ratio to amd64 with the
	// emulator's own overhead on both sides (see EmulatedFigures).
	Emulate bool
	// Stdout receives the progress and the summary tables, Stderr the
	// logs.
	Stdout, Stderr io.Writer
}

// Preflight reports what keeps the benchmark from running on this machine
// with these options: it builds network namespaces, shapes with tc and
// delays with iptables (root), and serves ws only.
func Preflight(o Options) error {
	if o.Scheme != "ws" {
		// The benchmark's server has no certificate the CLI would accept
		// without -no-verify, which the agent has no equivalent of.
		return errors.New("only -scheme ws is implemented")
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, tc, iptables)")
	}
	if o.Emulate {
		for _, emu := range []string{"qemu-arm", "qemu-x86_64"} {
			if _, err := exec.LookPath(emu); err != nil {
				return fmt.Errorf("-qemu needs %s: install Debian's qemu-user", emu)
			}
		}
	}
	return nil
}

// Run measures every rate in turn and returns the figures, evaluated,
// after printing the summary tables. It returns nil figures only when no
// rate was measured; with an error (a failed test, an interrupt) the
// figures are those of the rates measured so far.
func Run(ctx context.Context, o Options) ([]benchreport.Figure, error) {
	b := &session{o: o, stdout: o.Stdout, stderr: o.Stderr, logLevel: slog.LevelWarn}
	if o.Verbose {
		b.logLevel = slog.LevelInfo
	}
	b.log = slog.New(slog.NewTextHandler(o.Stderr, &slog.HandlerOptions{Level: b.logLevel}))
	results, err := b.measure(ctx)
	if len(results) == 0 {
		return nil, err
	}
	// Never nil once a rate was measured, even if every test failed: the
	// caller then still prints (and records) an empty table.
	figs := []benchreport.Figure{}
	if o.Emulate {
		figs = append(figs, emulatedFigures(o, results)...)
	} else {
		figs = append(figs, figures(o, results, b.startup)...)
		b.printSummary(results)
	}
	for i := range figs {
		figs[i].Evaluate()
	}
	return figs, err
}

// toolRun is one test by one tool.
type toolRun struct {
	tool     string // toolAgent or toolCLI
	down, up float64
	cpu      time.Duration
	maxRSS   int64 // bytes
	wall     time.Duration
	err      error
	downFrac float64 // % of the shaped rate
	upFrac   float64
	// pressure is the machine's CPU pressure during the test: the share of
	// time some runnable task waited for a CPU (PSI "some"), in %.
	pressure float64
}

const (
	toolAgent = "agent"
	toolCLI   = "ndt7-client"
	// The agent's runner under qemu-user (Options.Emulate).
	toolARMv7Emulated = "agent-armv7-qemu"
	toolAMD64Emulated = "agent-amd64-qemu"
)

// qemuCPU is the CPU qemu-arm emulates: a Raspberry Pi 2's (also a Pi 3
// or 4 on a 32-bit OS), without AES.
const qemuCPU = "cortex-a7"

// rateResult is everything measured at one rate.
type rateResult struct {
	rate              float64
	agent, cli        []toolRun
	armv7, amd64Emu   []toolRun // Options.Emulate
	rtt               []time.Duration
	ceilDown, ceilUp  float64 // TCP goodput, % of the rate
	lateDown, lateUp  float64 // % of packets the delay lines released >1 ms late
	holdDown, holdUp  time.Duration
	burst, limit      int
	ceilErr, pingErr  error
	delayLineRealtime bool
}

type session struct {
	o              Options
	stdout, stderr io.Writer
	log            *slog.Logger
	logLevel       slog.Level
	self, cli      string
	agent          string // the agent's runner, built by buildAgentRunner
	agentARMv7     string // the same for linux/arm/v7 (Options.Emulate)
	work           string
	// startup is each tool's cost of starting and failing at once (server
	// port closed): the share of CPU and RSS that is the program, not the
	// test.
	startup map[string]toolRun
}

func (b *session) measure(ctx context.Context) (results []*rateResult, err error) {
	if swept, err := netemu.Sweep(netemu.DefaultPrefix); err != nil {
		return nil, err
	} else if len(swept) > 0 {
		fmt.Fprintf(b.stdout, "removed namespaces left by killed runs: %s\n", strings.Join(swept, " "))
	}
	if b.self, err = os.Executable(); err != nil {
		return nil, err
	}
	b.work = b.o.Workdir
	if b.work == "" {
		if b.work, err = os.MkdirTemp("", "radar-bench-ndt7-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(b.work)
	} else if err := os.MkdirAll(b.work, 0o755); err != nil {
		return nil, err
	}
	fmt.Fprintln(b.stdout, "building the agent's runner (internal/bench/ndt7/agentrun) like the agent: CGO_ENABLED=0 -trimpath -ldflags '-s -w'")
	if b.agent, err = buildAgentRunner(ctx, b.work, proctest.Platform{}); err != nil {
		return nil, err
	}
	if b.o.Emulate {
		fmt.Fprintf(b.stdout, "building it for linux/arm/v7 too, to run under qemu-arm -cpu %s\n", qemuCPU)
		if b.agentARMv7, err = buildAgentRunner(ctx, b.work, proctest.LinuxARMv7); err != nil {
			return nil, err
		}
	}
	b.cli = b.o.Client
	if b.cli == "" && !b.o.Emulate {
		fmt.Fprintf(b.stdout, "building ndt7-client from %s, the same way\n", clientModule)
		if b.cli, err = buildNDT7Client(ctx, b.work); err != nil {
			return nil, err
		}
	}

	link, err := netemu.New(ctx, netemu.Config{
		RateMbit:         b.o.Rates[0],
		Delay:            b.o.Delay,
		DelayLineCommand: []string{b.self, childDelayLine},
		Logger:           b.log,
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := link.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	srv, err := b.startServer(ctx, link)
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := srv.stop(); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	fmt.Fprintf(b.stdout, "link: %s ⇄ %s ⇄ %s, one-way delay %s; ndt-server at %s; %d runs per tool and rate\n",
		link.Server.Name, link.Router.Name, link.Client.Name, b.o.Delay, srv.addr, b.o.Runs)
	if !b.o.Emulate {
		if err := b.measureStartup(ctx, link); err != nil {
			return nil, err
		}
	}

	var failed int
	for _, rate := range b.o.Rates {
		r, err := b.measureRate(ctx, link, srv.addr, rate)
		if r != nil {
			results = append(results, r)
			for _, t := range append(slices.Clone(r.agent), r.cli...) {
				if t.err != nil {
					failed++
				}
			}
		}
		if err != nil {
			return results, err
		}
	}
	if failed > 0 {
		return results, fmt.Errorf("%d tests failed (see above)", failed)
	}
	return results, nil
}

func (b *session) measureRate(ctx context.Context, link *netemu.Link, server string, rate float64) (*rateResult, error) {
	if err := link.SetRate(ctx, rate); err != nil {
		return nil, err
	}
	r := &rateResult{rate: rate}
	r.burst, r.limit = netemu.TBF(rate, 2*b.o.Delay)
	fmt.Fprintf(b.stdout, "\n== %g Mbit/s (tbf burst %d B, limit %d B) ==\n", rate, r.burst, r.limit)
	r.rtt, r.pingErr = link.Ping(ctx, 20, 50*time.Millisecond)
	if r.pingErr == nil {
		fmt.Fprintf(b.stdout, "ping: min %s median %s max %s (%d/20 replies)\n", minDur(r.rtt), medianDur(r.rtt), slices.Max(r.rtt), len(r.rtt))
	} else {
		fmt.Fprintf(b.stdout, "ping: %v\n", r.pingErr)
	}
	if b.o.Ceiling {
		down, err := link.Goodput(ctx, true, time.Second, 4*time.Second)
		up, uerr := link.Goodput(ctx, false, time.Second, 4*time.Second)
		if r.ceilErr = errors.Join(err, uerr); r.ceilErr == nil {
			r.ceilDown, r.ceilUp = 100*down/rate, 100*up/rate
			fmt.Fprintf(b.stdout, "bare TCP flow (1 s warm-up, 4 s): down %.1f%% up %.1f%% of the rate\n", r.ceilDown, r.ceilUp)
		} else {
			fmt.Fprintf(b.stdout, "bare TCP flow: %v\n", r.ceilErr)
		}
	}
	d0, u0 := link.DelayStats()
	tools := []string{toolAgent, toolCLI}
	if b.o.Emulate {
		tools = []string{toolAgent, toolARMv7Emulated, toolAMD64Emulated}
	}
	for i := range b.o.Runs {
		for _, tool := range tools {
			if err := backoff.Wait(ctx, b.o.Settle); err != nil {
				return r, err
			}
			t := b.runTool(ctx, link, tool, server, rate)
			if ctx.Err() != nil {
				return r, ctx.Err()
			}
			switch tool {
			case toolAgent:
				r.agent = append(r.agent, t)
			case toolCLI:
				r.cli = append(r.cli, t)
			case toolARMv7Emulated:
				r.armv7 = append(r.armv7, t)
			case toolAMD64Emulated:
				r.amd64Emu = append(r.amd64Emu, t)
			}
			status := fmt.Sprintf("down %5.1f%% up %5.1f%%  cpu %5.2fs  peak rss %5.1f MiB  (%s, cpu pressure %.0f%%)",
				t.downFrac, t.upFrac, t.cpu.Seconds(), mib(t.maxRSS), t.wall.Round(100*time.Millisecond), t.pressure)
			if t.err != nil {
				status = "FAILED: " + t.err.Error()
			}
			fmt.Fprintf(b.stdout, "run %d/%d %-12s %s\n", i+1, b.o.Runs, tool, status)
		}
	}
	// The delay line reports once a second: let its last report land.
	if err := backoff.Wait(ctx, 1500*time.Millisecond); err != nil {
		return r, err
	}
	d1, u1 := link.DelayStats()
	r.lateDown, r.holdDown = lateShare(d0, d1)
	r.lateUp, r.holdUp = lateShare(u0, u1)
	r.delayLineRealtime = d1.RealTime && u1.RealTime
	fmt.Fprintf(b.stdout, "delay line during the tests: mean hold %s/%s, >1 ms late %.2f%%/%.2f%% of packets (down/up), real-time thread %v\n",
		r.holdDown.Round(time.Microsecond), r.holdUp.Round(time.Microsecond), r.lateDown, r.lateUp, r.delayLineRealtime)
	return r, nil
}

// measureStartup runs each tool against a closed port three times and
// keeps the median CPU and RSS.
func (b *session) measureStartup(ctx context.Context, link *netemu.Link) error {
	b.startup = map[string]toolRun{}
	closed := link.ServerAddr.String() + ":1"
	for _, tool := range []string{toolAgent, toolCLI} {
		var cpu, rss []float64
		for range 3 {
			t := b.runTool(ctx, link, tool, closed, 1)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if t.err == nil {
				return fmt.Errorf("%s reported a result from a closed port", tool)
			}
			cpu, rss = append(cpu, t.cpu.Seconds()), append(rss, float64(t.maxRSS))
		}
		st := toolRun{tool: tool, cpu: time.Duration(median(cpu) * float64(time.Second)), maxRSS: int64(median(rss))}
		b.startup[tool] = st
		fmt.Fprintf(b.stdout, "startup (server port closed, median of 3) %-12s cpu %.2fs  peak rss %.1f MiB\n", tool, st.cpu.Seconds(), mib(st.maxRSS))
	}
	return nil
}

// cpuPressure reads the machine's cumulative CPU pressure stall time
// (/proc/pressure/cpu, "some total", µs) as a duration.
func cpuPressure() (time.Duration, error) {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "some ") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "total="); ok {
				us, err := strconv.ParseInt(v, 10, 64)
				return time.Duration(us) * time.Microsecond, err
			}
		}
	}
	return 0, errors.New("/proc/pressure/cpu: no some total")
}

func lateShare(a, b netemu.DelayStats) (pct float64, meanHold time.Duration) {
	iv := b.Sub(a)
	if iv.Packets == 0 {
		return 0, 0
	}
	return 100 * float64(iv.Late) / float64(iv.Packets), iv.MeanHold
}

// runTool runs one test in the client namespace and reads its figures.
func (b *session) runTool(ctx context.Context, link *netemu.Link, tool, server string, rate float64) toolRun {
	ctx, cancel := context.WithTimeout(ctx, ndt7TestTimeout)
	defer cancel()
	var argv []string
	switch tool {
	case toolAgent:
		argv = []string{b.agent, "-server", server, "-scheme", b.o.Scheme}
	case toolCLI:
		argv = []string{b.cli, "-server", server, "-scheme", b.o.Scheme, "-format", "json"}
	case toolARMv7Emulated:
		argv = []string{"qemu-arm", "-cpu", qemuCPU, b.agentARMv7, "-server", server, "-scheme", b.o.Scheme}
	case toolAMD64Emulated:
		argv = []string{"qemu-x86_64", b.agent, "-server", server, "-scheme", b.o.Scheme}
	}
	cmd, err := link.Client.Measure(ctx, "nice", append([]string{"-n", strconv.Itoa(b.o.Nice)}, argv...)...)
	if err != nil {
		return toolRun{tool: tool, err: err}
	}
	var out, errOut bytes.Buffer
	cmd.Stdout = &capWriter{buf: &out, max: maxToolOutput}
	cmd.Stderr = &capWriter{buf: &errOut, max: 64 << 10}
	if b.logLevel <= slog.LevelInfo {
		cmd.Stderr = io.MultiWriter(cmd.Stderr, b.stderr)
	}
	start := time.Now()
	psi0, psiErr := cpuPressure()
	err = cmd.Run()
	t := toolRun{tool: tool, wall: time.Since(start)}
	if psi1, err := cpuPressure(); err == nil && psiErr == nil {
		t.pressure = 100 * float64(psi1-psi0) / float64(t.wall)
	}
	u, uerr := cmd.Usage()
	t.cpu, t.maxRSS = u.CPU(), u.MaxRSS
	if err != nil {
		t.err = fmt.Errorf("%s: %w: %s", tool, err, lastLine(errOut.String()))
		return t
	}
	if uerr != nil {
		t.err = uerr
		return t
	}
	switch tool {
	case toolAgent, toolARMv7Emulated, toolAMD64Emulated:
		res, perr := radartest.ParseNDT7(out.Bytes())
		if perr != nil {
			t.err = fmt.Errorf("agent result: %w", perr)
			return t
		}
		t.down, t.up = res.Download, res.Upload
	case toolCLI:
		t.down, t.up, t.err = parseCLISummary(out.Bytes())
	}
	if t.err == nil && (t.down <= 0 || t.up <= 0) {
		t.err = fmt.Errorf("%s reported download %.2f, upload %.2f Mbit/s", tool, t.down, t.up)
	}
	t.downFrac, t.upFrac = 100*t.down/rate, 100*t.up/rate
	return t
}

// parseCLISummary reads the summary ndt7-client prints last with
// -format json (internal/emitter.Summary): throughputs in Mbit/s.
func parseCLISummary(out []byte) (down, up float64, err error) {
	line := lastLine(string(out))
	var s struct {
		Download, Upload *struct {
			Throughput struct {
				Value float64
				Unit  string
			}
		}
	}
	if err := json.Unmarshal([]byte(line), &s); err != nil {
		return 0, 0, fmt.Errorf("ndt7-client summary: %w", err)
	}
	if s.Download == nil || s.Upload == nil {
		return 0, 0, fmt.Errorf("ndt7-client summary without download and upload: %.200s", line)
	}
	for _, u := range []string{s.Download.Throughput.Unit, s.Upload.Throughput.Unit} {
		if u != "Mbit/s" {
			return 0, 0, fmt.Errorf("ndt7-client summary unit %q, want Mbit/s", u)
		}
	}
	return s.Download.Throughput.Value, s.Upload.Throughput.Value, nil
}

type ndt7Server struct {
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// startServer runs the real ndt-server in the server namespace.
func (b *session) startServer(ctx context.Context, link *netemu.Link) (*ndt7Server, error) {
	data := filepath.Join(b.work, "ndt-server")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	// Stopped by stop, not by ctx: it must outlive the last test.
	sctx, cancel := context.WithCancel(context.Background())
	cmd := link.Server.Command(sctx, "nice", "-n", strconv.Itoa(b.o.Nice), b.self, childServer,
		"-listen", link.ServerAddr.String()+":0", "-datadir", data)
	var errOut bytes.Buffer
	cmd.Stderr = &capWriter{buf: &errOut, max: 64 << 10}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start ndt-server: %w", err)
	}
	s := &ndt7Server{cancel: cancel, done: make(chan struct{})}
	addrc := make(chan string, 1)
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			addrc <- sc.Text()
		}
		for sc.Scan() {
		}
		s.err = cmd.Wait()
	}()
	fail := func(err error) (*ndt7Server, error) {
		s.stop()
		return nil, fmt.Errorf("ndt-server: %w: %s", err, strings.TrimSpace(errOut.String()))
	}
	select {
	case line := <-addrc:
		addr, ok := strings.CutPrefix(line, "listening ")
		if !ok {
			return fail(fmt.Errorf("unexpected output %q", line))
		}
		s.addr = addr
		return s, nil
	case <-s.done:
		return fail(fmt.Errorf("exited: %v", s.err))
	case <-ctx.Done():
		return fail(ctx.Err())
	case <-time.After(30 * time.Second):
		return fail(errors.New("not listening after 30s"))
	}
}

// stop interrupts the server, which waits for running subtests, and
// reports how it ended.
func (s *ndt7Server) stop() error {
	s.cancel()
	<-s.done
	// exec reports a clean exit after our interrupt as the context's error.
	if s.err != nil && !errors.Is(s.err, context.Canceled) {
		return fmt.Errorf("ndt-server: %w", s.err)
	}
	return nil
}
