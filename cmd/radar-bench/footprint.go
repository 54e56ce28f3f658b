package main

// footprint: what a pod costs the machine it runs on — idle memory of the
// agent and the updater run as they run on a pod, binary sizes per
// architecture, image sizes. The helpers at the end (pb*) are shared by the
// footprint, outbox and update benchmarks.

import (
	"bufio"
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	"github.com/radarpod/radarpod/internal/benchreport"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/radartest"
	"github.com/radarpod/radarpod/internal/release"
)

func init() {
	register("footprint", "idle RSS of agent and updater, binary and image sizes", runFootprint)
}

// Targets from issue 6.
const (
	fpIdleRSSTarget = 20 // MiB, each daemon after 60 s idle
	fpImageTarget   = 15 // MB, each image
)

// fpPlatforms are the release platforms `make build-all` builds.
var fpPlatforms = []string{"linux/amd64", "linux/arm64", "linux/arm/v7"}

func runFootprint(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("footprint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", ".", "repository root (bench/out is written there)")
	agentBin := fs.String("agent", "", "radar-agent binary to run (default: build one, static, like `make build`)")
	updaterBin := fs.String("updater", "", "radar-updater binary to run (default: build one)")
	dist := fs.String("dist", "dist", "directory `make build-all` filled (binary sizes)")
	agentImage := fs.String("agent-image", "", "agent image `make images` built (e.g. ghcr.io/radarpod/radar-agent:1.2.3); empty skips image sizes")
	updaterImage := fs.String("updater-image", "", "updater image `make images` built")
	settle := fs.Duration("settle", 60*time.Second, "idle time before RSS is read")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cmdline := "radar-bench footprint " + strings.Join(args, " ")
	ctx, stop := pbSignalContext()
	defer stop()
	var cl pbCleanups
	defer cl.run()

	var figs []benchreport.Figure
	// Sizes first: they are quick and say at once whether the inputs exist.
	sizes, err := fpBinarySizes(*dist, cmdline)
	if err != nil {
		fmt.Fprintln(stderr, "radar-bench footprint:", err)
		return 1
	}
	figs = append(figs, sizes...)
	if *agentImage != "" || *updaterImage != "" {
		imgs, err := fpImageSizes(ctx, cmdline, *agentImage, *updaterImage)
		if err != nil {
			fmt.Fprintln(stderr, "radar-bench footprint:", err)
			return 1
		}
		figs = append(figs, imgs...)
	}

	tmp, err := os.MkdirTemp("", "radar-bench-footprint-")
	if err != nil {
		fmt.Fprintln(stderr, "radar-bench footprint:", err)
		return 1
	}
	cl.add(func() { os.RemoveAll(tmp) })
	if *agentBin == "" {
		if *agentBin, err = pbBuild(ctx, tmp, "./cmd/radar-agent"); err != nil {
			fmt.Fprintln(stderr, "radar-bench footprint:", err)
			return 1
		}
	}
	if *updaterBin == "" {
		if *updaterBin, err = pbBuild(ctx, tmp, "./cmd/radar-updater"); err != nil {
			fmt.Fprintln(stderr, "radar-bench footprint:", err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "footprint: running agent and updater idle for %s\n", *settle)
	idle, err := fpIdle(ctx, &cl, tmp, *agentBin, *updaterBin, *settle, cmdline, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "radar-bench footprint:", err)
		return 1
	}
	figs = append(figs, idle...)
	return pbFinish(*root, "footprint", figs, stdout, stderr)
}

// fpBinarySizes reads the static binaries of every release platform.
func fpBinarySizes(dist, cmdline string) ([]benchreport.Figure, error) {
	var figs []benchreport.Figure
	for _, p := range fpPlatforms {
		for _, bin := range []string{"radar-agent", "radar-updater"} {
			path := filepath.Join(dist, p, bin)
			st, err := os.Stat(path)
			if err != nil {
				return nil, fmt.Errorf("binary size: %w (run `make build-all` first)", err)
			}
			figs = append(figs, benchreport.Figure{
				Name:    "footprint/binary/" + strings.ReplaceAll(p, "/", "-") + "/" + bin,
				Value:   pbRound(float64(st.Size())/(1<<20), 2),
				Unit:    "MiB",
				Command: "make build-all && " + cmdline,
				Notes:   "static, -trimpath -s -w as `make build-all` builds it",
			})
		}
	}
	return figs, nil
}

// fpImageSizes reports each image's size as the engine counts it
// (uncompressed layers) — the figure held to the target — and what it
// weighs compressed, which is what a pod downloads.
func fpImageSizes(ctx context.Context, cmdline string, refs ...string) ([]benchreport.Figure, error) {
	api, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	defer api.Close()
	var figs []benchreport.Figure
	for _, ref := range refs {
		if ref == "" {
			continue
		}
		img, err := api.ImageInspect(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w (run `make images` first)", ref, err)
		}
		gz, err := fpCompressedSize(ctx, api, ref)
		if err != nil {
			return nil, err
		}
		name := ref[strings.LastIndex(ref, "/")+1:]
		if i := strings.LastIndex(name, ":"); i > 0 {
			name = name[:i]
		}
		figs = append(figs,
			benchreport.Figure{
				Name: "footprint/image/" + name, Value: pbRound(float64(img.Size)/1e6, 2), Unit: "MB",
				Op: "<=", Target: fpImageTarget, Command: "make images && " + cmdline,
				Notes: ref + ": size as the engine reports it (uncompressed)",
			},
			benchreport.Figure{
				Name: "footprint/image/" + name + "/gzip", Value: pbRound(float64(gz)/1e6, 2), Unit: "MB",
				Command: "make images && " + cmdline,
				Notes:   ref + ": `docker save` gzip-compressed (about what a pull transfers)",
			})
	}
	return figs, nil
}

func fpCompressedSize(ctx context.Context, api *client.Client, ref string) (int64, error) {
	rc, err := api.ImageSave(ctx, []string{ref})
	if err != nil {
		return 0, fmt.Errorf("save %s: %w", ref, err)
	}
	defer rc.Close()
	var n pbCounter
	zw := gzip.NewWriter(&n)
	if _, err := io.Copy(zw, rc); err != nil {
		return 0, fmt.Errorf("save %s: %w", ref, err)
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	return int64(n), nil
}

type pbCounter int64

func (c *pbCounter) Write(p []byte) (int, error) { *c += pbCounter(len(p)); return len(p), nil }

// fpIdle runs the agent connected to a loopback pods service and the
// updater watching a data dir against the real engine, both as pod
// processes (their own environment, nothing else), and reads their memory
// after settle.
func fpIdle(ctx context.Context, cl *pbCleanups, tmp, agentBin, updaterBin string, settle time.Duration, cmdline string, log io.Writer) ([]benchreport.Figure, error) {
	srv, err := radartest.New(radartest.Options{})
	if err != nil {
		return nil, err
	}
	cl.add(srv.Close)
	agentDir := filepath.Join(tmp, "agent-data")
	listen, err := proctest.FreeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	agentEnv := map[string]string{
		"RADAR_SERVER_URL":    srv.URL,
		"RADAR_DATA_DIR":      agentDir,
		"RADAR_LISTEN_ADDR":   listen,
		"RADAR_LOG_FORMAT":    "json",
		"RADAR_POD_NAME":      "footprint-bench",
		"RADAR_OOKLA_BIN":     filepath.Join(tmp, "no-ookla-cli"),
		"RADAR_NDT7_SCHEME":   "auto",
		"RADAR_PING_INTERVAL": "15s",
	}
	// The updater needs a pinned root to start; a fresh one is as good as
	// the development root (it verifies nothing while idle).
	ca, err := release.InitCA(filepath.Join(tmp, "ca"), release.CAOptions{CommonName: "radar-bench footprint root"})
	if err != nil {
		return nil, fmt.Errorf("root CA: %w", err)
	}
	rootPEM := filepath.Join(tmp, "root-ca.pem")
	if err := os.WriteFile(rootPEM, release.EncodeCerts(ca.Cert), 0o644); err != nil {
		return nil, err
	}
	updaterDir := filepath.Join(tmp, "updater-data")
	if err := os.MkdirAll(updaterDir, 0o755); err != nil {
		return nil, err
	}
	updaterEnv := map[string]string{
		"RADAR_DATA_DIR":        updaterDir,
		"RADAR_AGENT_CONTAINER": "radar-bench-footprint-" + pbRandHex(4),
		"RADAR_ROOT_CA_FILE":    rootPEM,
		"RADAR_LOG_FORMAT":      "json",
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		updaterEnv["DOCKER_HOST"] = h
	}
	agent, err := pbStart(agentBin, agentEnv, "run")
	if err != nil {
		return nil, err
	}
	cl.add(agent.stop)
	updater, err := pbStart(updaterBin, updaterEnv, "run")
	if err != nil {
		return nil, err
	}
	cl.add(updater.stop)
	started := time.Now()

	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = srv.Wait(wctx, func() bool { return srv.Subscribed() > 0 })
	cancel()
	if err != nil {
		return nil, fmt.Errorf("agent never subscribed to the loopback service: %w\n%s", err, agent.tail())
	}
	fmt.Fprintf(log, "footprint: agent registered and subscribed after %s\n", time.Since(started).Round(time.Millisecond))

	// Sample through the settle period: the peak tells whether start-up
	// (registration, network check) left memory behind.
	type sample struct{ rss, hwm int64 }
	var samples [2][]sample
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for time.Since(started) < settle {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		for i, p := range []*pbProc{agent, updater} {
			if p.exited() {
				return nil, fmt.Errorf("%s exited while idle:\n%s", filepath.Base(p.cmd.Path), p.tail())
			}
			rss, hwm, err := fpMemory(p.cmd.Process.Pid)
			if err != nil {
				return nil, err
			}
			samples[i] = append(samples[i], sample{rss, hwm})
		}
	}
	var figs []benchreport.Figure
	for i, who := range []string{"agent", "updater"} {
		last := samples[i][len(samples[i])-1]
		var maxRSS int64
		for _, s := range samples[i] {
			maxRSS = max(maxRSS, s.rss)
		}
		notes := fmt.Sprintf("VmRSS of the static binary %s after %s idle", who, settle)
		if who == "agent" {
			notes += " (registered with a loopback pods service, live channel subscribed, no test run)"
		} else {
			notes += " (polling an empty data dir, real Docker engine)"
		}
		figs = append(figs,
			benchreport.Figure{Name: "footprint/idle_rss/" + who, Value: pbMiB(last.rss), Unit: "MiB", Op: "<=", Target: fpIdleRSSTarget, Command: cmdline, Notes: notes},
			benchreport.Figure{Name: "footprint/idle_rss/" + who + "/peak", Value: pbMiB(last.hwm), Unit: "MiB", Command: cmdline,
				Notes: fmt.Sprintf("VmHWM (peak RSS since start) at the same moment; highest VmRSS sampled each second: %.1f MiB", pbMiB(maxRSS))},
		)
	}
	fmt.Fprintf(log, "footprint: agent made %d status calls, %d syncs while idle\n", len(srv.StatusCalls()), len(srv.Syncs()))
	return figs, nil
}

// fpMemory reads VmRSS and VmHWM (bytes) from /proc/<pid>/status.
func fpMemory(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, 0, fmt.Errorf("/proc/%d/status: unexpected %s line %q", pid, k, v)
		}
		n, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, 0, err
		}
		if k == "VmRSS" {
			rss = n << 10
		} else {
			hwm = n << 10
		}
	}
	if rss == 0 || hwm == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status: no VmRSS/VmHWM", pid)
	}
	return rss, hwm, sc.Err()
}

// ---- helpers shared by the footprint, outbox and update benchmarks ----

// pbCleanups runs registered functions in reverse order, once.
type pbCleanups struct {
	mu  sync.Mutex
	fns []func()
}

func (c *pbCleanups) add(f func()) {
	c.mu.Lock()
	c.fns = append(c.fns, f)
	c.mu.Unlock()
}

func (c *pbCleanups) run() {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}

// pbSignalContext is cancelled by SIGINT/SIGTERM, so an interrupted
// benchmark still runs its cleanups.
func pbSignalContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	// Output piped into `head` must not kill the benchmark before its
	// cleanups: a write to a closed pipe then just fails.
	signal.Ignore(syscall.SIGPIPE)
	go func() {
		select {
		case <-ch:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel() }
}

// pbBuild builds pkg static into dir, the way `make build` does.
func pbBuild(ctx context.Context, dir, pkg string, ldflags ...string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg)+"-"+pbRandHex(3))
	bctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if len(ldflags) == 0 {
		ldflags = []string{"-X github.com/radarpod/radarpod/internal/buildinfo.Version=" + proctest.TestVersion}
	}
	if err := proctest.GoBuild(bctx, out, pkg, ldflags...); err != nil {
		return "", err
	}
	return out, nil
}

// pbProc is a daemon started for a benchmark, in its own process group.
type pbProc struct {
	cmd  *exec.Cmd
	out  *pbTail
	done chan struct{}
	err  error
}

// pbStart runs bin with exactly env (plus PATH), as a pod would: nothing of
// the benchmark's own environment leaks in.
func pbStart(bin string, env map[string]string, args ...string) (*pbProc, error) {
	return pbStartTo(bin, env, nil, args...)
}

// pbStartTo is pbStart that also copies the output to w.
func pbStartTo(bin string, env map[string]string, w io.Writer, args ...string) (*pbProc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = proctest.Env(env)
	out := &pbTail{max: 64 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	if w != nil {
		mw := io.MultiWriter(out, w)
		cmd.Stdout, cmd.Stderr = mw, mw
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &pbProc{cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *pbProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM (what Docker sends), then SIGKILL to the group after 15 s.
func (p *pbProc) stop() {
	if p.exited() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func (p *pbProc) tail() string { return p.out.String() }

// pbTail keeps the last max bytes written: enough to explain a failure,
// bounded however chatty the process.
type pbTail struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *pbTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 2*t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *pbTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.b
	if len(b) > t.max {
		b = b[len(b)-t.max:]
	}
	return string(b)
}

// pbFinish writes the group's figures and prints them. Missed targets are
// not errors: the table shows them.
func pbFinish(root, group string, figs []benchreport.Figure, stdout, stderr io.Writer) int {
	if err := benchreport.Write(root, group, figs); err != nil {
		fmt.Fprintf(stderr, "radar-bench %s: %v\n", group, err)
		return 1
	}
	benchreport.PrintTable(stdout, figs)
	return 0
}

func pbRandHex(n int) string {
	b := make([]byte, n)
	f, err := os.Open("/dev/urandom")
	if err == nil {
		io.ReadFull(f, b)
		f.Close()
	}
	return fmt.Sprintf("%x", b)
}

func pbMiB(b int64) float64 { return pbRound(float64(b)/(1<<20), 1) }

func pbRound(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	if v < 0 {
		return -float64(int64(-v*p+0.5)) / p
	}
	return float64(int64(v*p+0.5)) / p
}

// pbMedian of durations, in seconds.
func pbMedian(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return m.Seconds()
}

// pbSeconds renders durations for the notes: "1.23 1.31 1.40".
func pbSeconds(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = strconv.FormatFloat(d.Seconds(), 'f', 2, 64)
	}
	return strings.Join(parts, " ")
}

// pbLoad is the machine's 1-minute load average, for the notes: figures
// taken on a busy shared machine say so.
func pbLoad() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}
