// Package ookla owns the Ookla speed test: running the Ookla CLI
// (`speedtest --format=json`) as a bounded, killable child process, passing
// its result JSON through untouched as the file the pods service parses, and
// classifying everything that can go wrong with it.
package ookla

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/radarpod/radarpod/internal/speedtest"
)

// Name is the runner's name in RADAR_TESTS, metrics and results.
const Name = "ookla"

// DefaultBin is the CLI looked up on PATH when Options.Bin is empty.
const DefaultBin = "speedtest"

const (
	// The result object is ~1 KiB; anything near the cap is not the CLI.
	maxStdout = 1 << 20
	maxStderr = 64 << 10
	// waitDelay bounds waiting for output pipes after the CLI exits, should
	// something outside its process group still hold them.
	waitDelay = 5 * time.Second
)

// Options configure a Runner.
type Options struct {
	// Bin is the CLI: a path, or a name looked up on PATH (RADAR_OOKLA_BIN).
	Bin string
	// Logger receives runs, failures, and (once) a missing CLI.
	Logger *slog.Logger
}

// Runner runs the Ookla CLI. It is safe for concurrent use, though the agent
// runs one test at a time.
type Runner struct {
	bin string
	log *slog.Logger
	// missingLogged makes a missing CLI a single log line, not one per run;
	// it resets once the CLI starts again.
	missingLogged atomic.Bool
}

// New returns a runner for o.
func New(o Options) *Runner {
	r := &Runner{bin: o.Bin, log: o.Logger}
	if r.bin == "" {
		r.bin = DefaultBin
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("runner", Name)
	return r
}

// Name returns "ookla".
func (r *Runner) Name() string { return Name }

// Available reports whether the CLI can be found: nil, or an
// unavailable-class *speedtest.Error. A missing CLI is logged once, not on
// every call or run, until it has run again.
func (r *Runner) Available() error {
	_, err := r.lookPath()
	return err
}

func (r *Runner) lookPath() (string, error) {
	path, err := exec.LookPath(r.bin)
	if err != nil {
		return "", r.unavailable(fmt.Errorf("find Ookla CLI %q: %w", r.bin, err))
	}
	return path, nil
}

// unavailable builds the unavailable-class error, logging only the first of
// a series: the agent asks every run, and a missing CLI stays missing.
func (r *Runner) unavailable(err error) error {
	if r.missingLogged.CompareAndSwap(false, true) {
		r.log.Warn("Ookla CLI cannot run: the ookla runner is unavailable until it is installed",
			"bin", r.bin, "error", err.Error())
	}
	return &speedtest.Error{Runner: Name, Class: speedtest.ClassUnavailable, Err: err}
}

// cliArgs are the CLI's arguments for target: licence and GDPR acceptance (the
// CLI otherwise waits for a prompt nobody answers), JSON output, and the
// source address when testing one interface.
func cliArgs(target speedtest.Target) []string {
	args := []string{"--accept-license", "--accept-gdpr", "--format=json"}
	if target.LocalAddr != nil {
		args = append(args, "--ip="+target.LocalAddr.String())
	}
	return args
}

// Run runs the CLI once under ctx. The CLI and anything it started run in
// their own process group, killed as a whole when ctx ends and reaped before
// Run returns.
func (r *Runner) Run(ctx context.Context, target speedtest.Target) (speedtest.Result, error) {
	res := speedtest.Result{
		Runner:    Name,
		Style:     speedtest.StyleOokla,
		Interface: target.Interface,
		StartedAt: time.Now(),
	}
	log := r.log.With("interface", target.Interface)
	if target.LocalAddr != nil {
		log = log.With("local_addr", target.LocalAddr.String())
	}
	raw, sum, err := r.run(ctx, target, log)
	res.FinishedAt = time.Now()
	res.Raw, res.Summary = raw, sum
	res.Server = serverHost(raw)
	duration := res.FinishedAt.Sub(res.StartedAt).Round(time.Millisecond).String()
	if err != nil {
		if speedtest.ClassOf(err) != speedtest.ClassUnavailable { // logged once by lookPath
			log.Warn("ookla test failed", "class", string(speedtest.ClassOf(err)), "error", err.Error(), "duration", duration)
		}
		return res, err
	}
	log.Info("ookla test finished", "download_mbps", sum.DownloadMbps, "upload_mbps", sum.UploadMbps,
		"latency_ms", sum.LatencyMs, "bytes_sent", sum.BytesSent, "bytes_received", sum.BytesReceived, "duration", duration)
	return res, nil
}

func (r *Runner) run(ctx context.Context, target speedtest.Target, log *slog.Logger) ([]byte, speedtest.Summary, error) {
	var none speedtest.Summary
	path, err := r.lookPath()
	if err != nil {
		return nil, none, err
	}
	if e := speedtest.ContextError(ctx, Name); e != nil {
		return nil, none, e
	}
	log.Info("ookla test starting", "path", path)
	// With --format=json the CLI prints nothing until its result: the
	// phase is all there is to report.
	speedtest.ReportProgress(ctx, speedtest.Progress{Runner: Name, Interface: target.Interface, Phase: speedtest.PhaseRunning})
	stdout, errOut, waitErr, err := r.exec(ctx, path, cliArgs(target), log)
	if err != nil {
		return nil, none, err
	}
	fail := func(class speedtest.Class, err error) ([]byte, speedtest.Summary, error) {
		return nil, none, &speedtest.Error{Runner: Name, Class: class, Err: err, Stderr: errOut}
	}
	raw, sum, logErrors, parseErr := parse(stdout.buf.Bytes())
	if waitErr == nil && parseErr == nil && stdout.dropped == 0 {
		return raw, sum, nil
	}
	// Once the deadline has passed, the kill explains the rest.
	if e := speedtest.ContextError(ctx, Name); e != nil {
		e.Stderr = errOut
		return nil, none, e
	}
	var exitErr *exec.ExitError
	switch {
	case errors.As(waitErr, &exitErr):
		msg := waitErr.Error()
		if len(logErrors) > 0 {
			msg += ": " + strings.Join(logErrors, "; ")
		}
		return fail(speedtest.ClassExitStatus, errors.New(msg))
	case waitErr != nil:
		return fail(speedtest.ClassInternal, fmt.Errorf("wait for %s: %w", path, waitErr))
	case stdout.dropped > 0:
		return fail(speedtest.ClassBadOutput, fmt.Errorf("output exceeds %d bytes", maxStdout))
	default: // exited 0, output within bounds: parseErr != nil
		if len(logErrors) > 0 {
			parseErr = fmt.Errorf("%w (CLI reported: %s)", parseErr, strings.Join(logErrors, "; "))
		}
		return fail(speedtest.ClassBadOutput, parseErr)
	}
}

// exec runs the CLI at path with args in its own process group and returns
// its bounded output. err is set only when the CLI could not be started
// (classified: unavailable or internal); waitErr is how it ended.
func (r *Runner) exec(ctx context.Context, path string, args []string, log *slog.Logger) (stdout *capped, stderr string, waitErr, err error) {
	stdout, errBuf := &capped{max: maxStdout}, &capped{max: maxStderr}
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = cliEnv()
	cmd.Stdout, cmd.Stderr = stdout, errBuf
	// Pdeathsig: an agent killed outright (kill -9, the OOM killer, run
	// outside a container whose end would take the CLI along) must not
	// leave a test running on the line, unseen and unbounded. The kernel
	// sends it when the starting thread exits; the agent locks no
	// goroutine to a thread, so Go keeps that thread as long as the agent.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = waitDelay
	if err := cmd.Start(); err != nil {
		err = fmt.Errorf("start %s: %w", path, err)
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.ENOEXEC) {
			return nil, "", nil, r.unavailable(err)
		}
		return nil, "", nil, &speedtest.Error{Runner: Name, Class: speedtest.ClassInternal, Err: err}
	}
	if r.missingLogged.CompareAndSwap(true, false) {
		log.Info("Ookla CLI is available again", "path", path)
	}
	pid := cmd.Process.Pid
	// Wait for the CLI to exit without reaping it: while its zombie holds
	// the process group id, killing the group reaches only what the CLI left
	// behind and never an unrelated group that reused the id.
	waitExitNoReap(pid)
	_ = killGroup(pid)
	waitErr = cmd.Wait()
	return stdout, errBuf.String(), waitErr, nil
}

// cliEnvVars are all the CLI gets of the agent's environment: PATH, and
// HOME, where it keeps its licence acceptance. The CLI is a proprietary
// binary, and the rest of the agent's environment holds the registration
// token, the Sentry DSN and settings it has no use for (speed tests connect
// directly, never through the proxy).
var cliEnvVars = []string{"PATH", "HOME"}

// cliEnv is the CLI's whole environment, never nil (nil would make
// exec.Cmd pass on the agent's own).
func cliEnv() []string {
	env := []string{}
	for _, name := range cliEnvVars {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	return env
}

// Server is one entry of the CLI's nearest-servers list.
type Server struct {
	ID       int    `json:"id"`
	Host     string `json:"host"`
	Port     int    `json:"port"`
	Name     string `json:"name"`
	Location string `json:"location"`
	Country  string `json:"country"`
}

// Servers asks the CLI for the servers it would test against
// (`speedtest --servers`), under the same process handling as a test.
func (r *Runner) Servers(ctx context.Context) ([]Server, error) {
	path, err := r.lookPath()
	if err != nil {
		return nil, err
	}
	stdout, errOut, waitErr, err := r.exec(ctx, path, []string{"--servers", "--accept-license", "--accept-gdpr", "--format=json"}, r.log)
	if err != nil {
		return nil, err
	}
	if e := speedtest.ContextError(ctx, Name); e != nil {
		e.Stderr = errOut
		return nil, e
	}
	if waitErr != nil {
		return nil, &speedtest.Error{Runner: Name, Class: speedtest.ClassExitStatus, Err: fmt.Errorf("%s --servers: %w", path, waitErr), Stderr: errOut}
	}
	servers, err := ParseServerList(stdout.buf.Bytes())
	if err != nil {
		return nil, &speedtest.Error{Runner: Name, Class: speedtest.ClassBadOutput, Err: err, Stderr: errOut}
	}
	return servers, nil
}

// ParseServerList reads the CLI's `--servers --format=json` answer:
// {"type":"serverList","servers":[{"id":..,"host":"..","port":8080,..}]}.
func ParseServerList(out []byte) ([]Server, error) {
	for line := range bytes.SplitSeq(out, []byte("\n")) {
		var list struct {
			Type    string   `json:"type"`
			Servers []Server `json:"servers"`
		}
		if json.Unmarshal(bytes.TrimSpace(line), &list) != nil || list.Type != "serverList" {
			continue
		}
		if len(list.Servers) == 0 {
			return nil, errors.New("the CLI listed no server")
		}
		return list.Servers, nil
	}
	return nil, errors.New("no serverList in the CLI's output")
}

// parse picks the result object out of the CLI's JSON lines (it may also
// print "log" objects) and returns it byte for byte, with its summary and
// the messages of error-level log lines.
func parse(out []byte) (raw []byte, sum speedtest.Summary, logErrors []string, err error) {
	var garbage int
	for line := range bytes.SplitSeq(out, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var head struct {
			Type    string `json:"type"`
			Level   string `json:"level"`
			Message string `json:"message"`
		}
		if json.Unmarshal(line, &head) != nil {
			garbage++
			continue
		}
		switch {
		case head.Type == "result" && raw == nil:
			raw = bytes.Clone(line)
		case head.Type == "log" && head.Level == "error" && len(logErrors) < 5:
			logErrors = append(logErrors, head.Message)
		}
	}
	if raw == nil {
		if garbage > 0 {
			return nil, sum, logErrors, fmt.Errorf("no result object in %d bytes of output (%d lines are not JSON)", len(out), garbage)
		}
		return nil, sum, logErrors, fmt.Errorf("no result object in %d bytes of output", len(out))
	}
	// The fields the pods service reads; a result without them is useless.
	var r struct {
		Download struct {
			Bandwidth *float64
			Bytes     int64
		} `json:"download"`
		Upload struct {
			Bandwidth *float64
			Bytes     int64
		} `json:"upload"`
		Ping struct{ Latency *float64 } `json:"ping"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, sum, logErrors, fmt.Errorf("result object: %w", err)
	}
	if r.Download.Bandwidth == nil || r.Upload.Bandwidth == nil || r.Ping.Latency == nil {
		return nil, sum, logErrors, errors.New("result object lacks download.bandwidth, upload.bandwidth or ping.latency")
	}
	// bandwidth is in bytes per second.
	sum = speedtest.Summary{
		DownloadMbps: *r.Download.Bandwidth * 8 / 1e6,
		UploadMbps:   *r.Upload.Bandwidth * 8 / 1e6,
		LatencyMs:    *r.Ping.Latency,
		// What the CLI counted moving; absent or negative (a CLI that
		// does not report it) counts as nothing.
		BytesReceived: max(r.Download.Bytes, 0),
		BytesSent:     max(r.Upload.Bytes, 0),
	}
	return raw, sum, logErrors, nil
}

// serverHost is the host of the server a result was measured against
// (server.host), "" if raw has none.
func serverHost(raw []byte) string {
	var r struct {
		Server struct {
			Host string `json:"host"`
		} `json:"server"`
	}
	if len(raw) == 0 || json.Unmarshal(raw, &r) != nil {
		return ""
	}
	return r.Server.Host
}

// killGroup SIGKILLs the process group led by pid; a group already gone is
// not an error.
func killGroup(pid int) error {
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// waitExitNoReap blocks until the child pid has exited, leaving it waitable.
func waitExitNoReap(pid int) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return
		}
	}
}

// capped keeps the first max bytes written to it and counts the rest, so a
// runaway child can neither exhaust memory nor block on a full pipe.
type capped struct {
	buf     bytes.Buffer
	max     int
	dropped int64
}

func (c *capped) Write(p []byte) (int, error) {
	room := min(c.max-c.buf.Len(), len(p))
	if room > 0 {
		c.buf.Write(p[:room])
	}
	c.dropped += int64(len(p) - room)
	return len(p), nil
}

func (c *capped) String() string {
	s := c.buf.String()
	if c.dropped > 0 {
		s += fmt.Sprintf("\n[%d more bytes dropped]", c.dropped)
	}
	return s
}
