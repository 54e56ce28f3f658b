// Package footprint is the benchmark of what a pod costs the machine it
// runs on: the idle memory of the radar-agent and radar-updater binaries run
// as a pod runs them (the agent registered with a loopback pods service and
// subscribed to its live channel, the updater watching an empty data
// directory against the real Docker engine), the size of the static binaries
// `make build-all` builds for each release platform, and the size of the
// images `make images` builds. `radar-bench footprint` runs it (see
// docs/benchmarks/footprint.md).
package footprint

import (
	"bufio"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/radarpod/radarpod/internal/bench"
	"github.com/radarpod/radarpod/internal/benchreport"
	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/radartest"
	"github.com/radarpod/radarpod/internal/release"
)

// Targets: images from issue 6; idle RSS from issue 14 (at or below the
// 12.3 MiB of the Radar agent the pod replaces).
const (
	idleRSSTarget = 12 // MiB, each daemon after 60 s idle
	imageTarget   = 15 // MB, each image
)

// binaryBaseline is each binary's size (MiB, as binarySizes measures it)
// when issue 14 asked for a lighter pod "with the binary sizes unchanged
// or smaller": the target each size is held to.
var binaryBaseline = map[string]float64{
	"linux-amd64/radar-agent": 11.38, "linux-amd64/radar-updater": 11.63,
	"linux-arm64/radar-agent": 10.5, "linux-arm64/radar-updater": 10.81,
	"linux-arm-v7/radar-agent": 10.81, "linux-arm-v7/radar-updater": 11.13,
}

// platforms are the release platforms `make build-all` builds.
var platforms = []string{"linux/amd64", "linux/arm64", "linux/arm/v7"}

// Options say what to measure.
type Options struct {
	// AgentBin and UpdaterBin are the binaries to run idle; empty builds
	// each, static, like `make build`.
	AgentBin, UpdaterBin string
	// Dist is the directory `make build-all` filled (binary sizes).
	Dist string
	// AgentImage and UpdaterImage are the images `make images` built (e.g.
	// ghcr.io/radarpod/radar-agent:1.2.3); both empty skips image sizes.
	AgentImage, UpdaterImage string
	// Settle is the idle time before RSS is read.
	Settle time.Duration
	// Command reproduces the figures; it is recorded with each.
	Command string
	// Log receives progress.
	Log io.Writer
}

// Run measures the footprint and returns its figures.
func Run(ctx context.Context, o Options) ([]benchreport.Figure, error) {
	var cl bench.Cleanups
	defer cl.Run()

	var figs []benchreport.Figure
	// Sizes first: they are quick and say at once whether the inputs exist.
	sizes, err := binarySizes(o.Dist, o.Command)
	if err != nil {
		return nil, err
	}
	figs = append(figs, sizes...)
	if o.AgentImage != "" || o.UpdaterImage != "" {
		imgs, err := imageSizes(ctx, o.Command, o.AgentImage, o.UpdaterImage)
		if err != nil {
			return nil, err
		}
		figs = append(figs, imgs...)
	}

	tmp, err := os.MkdirTemp("", "radar-bench-footprint-")
	if err != nil {
		return nil, err
	}
	cl.Add(func() { os.RemoveAll(tmp) })
	agentBin, updaterBin := o.AgentBin, o.UpdaterBin
	if agentBin == "" {
		if agentBin, err = bench.Build(ctx, tmp, "./cmd/radar-agent"); err != nil {
			return nil, err
		}
	}
	if updaterBin == "" {
		if updaterBin, err = bench.Build(ctx, tmp, "./cmd/radar-updater"); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(o.Log, "footprint: running agent and updater idle for %s\n", o.Settle)
	idle, err := idleRSS(ctx, &cl, tmp, agentBin, updaterBin, o.Settle, o.Command, o.Log)
	if err != nil {
		return nil, err
	}
	return append(figs, idle...), nil
}

// binarySizes reads the static binaries of every release platform.
func binarySizes(dist, cmdline string) ([]benchreport.Figure, error) {
	var figs []benchreport.Figure
	for _, p := range platforms {
		for _, bin := range []string{"radar-agent", "radar-updater"} {
			path := filepath.Join(dist, p, bin)
			st, err := os.Stat(path)
			if err != nil {
				return nil, fmt.Errorf("binary size: %w (run `make build-all` first)", err)
			}
			key := strings.ReplaceAll(p, "/", "-") + "/" + bin
			f := benchreport.Figure{
				Name:    "footprint/binary/" + key,
				Value:   bench.Round(float64(st.Size())/(1<<20), 2),
				Unit:    "MiB",
				Command: "make build-all && " + cmdline,
				Notes:   "static, -trimpath -s -w as `make build-all` builds it",
			}
			if b, ok := binaryBaseline[key]; ok {
				f.Op, f.Target = "<=", b
				f.Notes += "; target: its size when issue 14 was filed"
			}
			figs = append(figs, f)
		}
	}
	return figs, nil
}

// imageSizes reports each image's size as the engine counts it
// (uncompressed layers) — the figure held to the target — and what it
// weighs compressed, which is what a pod downloads.
func imageSizes(ctx context.Context, cmdline string, refs ...string) ([]benchreport.Figure, error) {
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
		gz, err := compressedSize(ctx, api, ref)
		if err != nil {
			return nil, err
		}
		name := ref[strings.LastIndex(ref, "/")+1:]
		if i := strings.LastIndex(name, ":"); i > 0 {
			name = name[:i]
		}
		figs = append(figs,
			benchreport.Figure{
				Name: "footprint/image/" + name, Value: bench.Round(float64(img.Size)/1e6, 2), Unit: "MB",
				Op: "<=", Target: imageTarget, Command: "make images && " + cmdline,
				Notes: ref + ": size as the engine reports it (uncompressed)",
			},
			benchreport.Figure{
				Name: "footprint/image/" + name + "/gzip", Value: bench.Round(float64(gz)/1e6, 2), Unit: "MB",
				Command: "make images && " + cmdline,
				Notes:   ref + ": `docker save` gzip-compressed (about what a pull transfers)",
			})
	}
	return figs, nil
}

func compressedSize(ctx context.Context, api *client.Client, ref string) (int64, error) {
	rc, err := api.ImageSave(ctx, []string{ref})
	if err != nil {
		return 0, fmt.Errorf("save %s: %w", ref, err)
	}
	defer rc.Close()
	var n counter
	zw := gzip.NewWriter(&n)
	if _, err := io.Copy(zw, rc); err != nil {
		return 0, fmt.Errorf("save %s: %w", ref, err)
	}
	if err := zw.Close(); err != nil {
		return 0, err
	}
	return int64(n), nil
}

// counter counts the bytes written to it.
type counter int64

func (c *counter) Write(p []byte) (int, error) { *c += counter(len(p)); return len(p), nil }

// idleRSS runs the agent connected to a loopback pods service and the
// updater watching a data dir against the real engine, both as pod
// processes (their own environment, nothing else), and reads their memory
// after settle.
func idleRSS(ctx context.Context, cl *bench.Cleanups, tmp, agentBin, updaterBin string, settle time.Duration, cmdline string, log io.Writer) ([]benchreport.Figure, error) {
	srv, err := radartest.New(radartest.Options{})
	if err != nil {
		return nil, err
	}
	cl.Add(srv.Close)
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
		"RADAR_AGENT_CONTAINER": "radar-bench-footprint-" + bench.RandHex(4),
		"RADAR_ROOT_CA_FILE":    rootPEM,
		"RADAR_LOG_FORMAT":      "json",
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		updaterEnv["DOCKER_HOST"] = h
	}
	agent, err := bench.Start(agentBin, agentEnv, "run")
	if err != nil {
		return nil, err
	}
	cl.Add(agent.Stop)
	updater, err := bench.Start(updaterBin, updaterEnv, "run")
	if err != nil {
		return nil, err
	}
	cl.Add(updater.Stop)
	started := time.Now()

	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = srv.Wait(wctx, func() bool { return srv.Subscribed() > 0 })
	cancel()
	if err != nil {
		return nil, fmt.Errorf("agent never subscribed to the loopback service: %w\n%s", err, agent.Output())
	}
	fmt.Fprintf(log, "footprint: agent registered and subscribed after %s\n", time.Since(started).Round(time.Millisecond))
	// CPU is counted from here: start-up (registration, the network
	// check) is a cost of each start, not of each idle hour.
	idleFrom := time.Now()
	var cpu0 [2]time.Duration
	for i, p := range []*bench.Proc{agent, updater} {
		if cpu0[i], err = cpuTime(p.Pid()); err != nil {
			return nil, err
		}
	}

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
		for i, p := range []*bench.Proc{agent, updater} {
			if p.Exited() {
				return nil, fmt.Errorf("%s exited while idle:\n%s", filepath.Base(p.Path()), p.Output())
			}
			rss, hwm, err := memory(p.Pid())
			if err != nil {
				return nil, err
			}
			samples[i] = append(samples[i], sample{rss, hwm})
		}
	}
	idleFor := time.Since(idleFrom)
	var figs []benchreport.Figure
	for i, who := range []string{"agent", "updater"} {
		cpu1, err := cpuTime([]*bench.Proc{agent, updater}[i].Pid())
		if err != nil {
			return nil, err
		}
		perHour := (cpu1 - cpu0[i]).Seconds() * float64(time.Hour) / float64(idleFor)
		figs = append(figs, benchreport.Figure{Name: "footprint/idle_cpu/" + who, Value: bench.Round(perHour, 2), Unit: "s/h", Command: cmdline,
			Notes: fmt.Sprintf("user+system CPU seconds per idle hour: %.3f s over %s idle (after start-up), scaled to an hour; /proc/<pid>/stat at %d ticks/s",
				(cpu1 - cpu0[i]).Seconds(), idleFor.Round(time.Second), clockTicks)})
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
			benchreport.Figure{Name: "footprint/idle_rss/" + who, Value: mib(last.rss), Unit: "MiB", Op: "<=", Target: idleRSSTarget, Command: cmdline, Notes: notes},
			benchreport.Figure{Name: "footprint/idle_rss/" + who + "/peak", Value: mib(last.hwm), Unit: "MiB", Command: cmdline,
				Notes: fmt.Sprintf("VmHWM (peak RSS since start) at the same moment; highest VmRSS sampled each second: %.1f MiB", mib(maxRSS))},
		)
	}
	fmt.Fprintf(log, "footprint: agent made %d status calls, %d syncs while idle\n", len(srv.StatusCalls()), len(srv.Syncs()))
	return figs, nil
}

// memory reads VmRSS and VmHWM (bytes) from /proc/<pid>/status.
func memory(pid int) (rss, hwm int64, err error) {
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

func mib(b int64) float64 { return bench.Round(float64(b)/(1<<20), 1) }

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times: 100 on
// every Linux architecture the pod runs on.
const clockTicks = 100

// cpuTime reads a process's user+system CPU time from /proc/<pid>/stat.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// fields are counted from the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
