//go:build linux && cgo

package ndt7

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/radarpod/radarpod/internal/benchreport"
)

// capWriter keeps the first max bytes written to it and drops the rest.
type capWriter struct {
	buf *bytes.Buffer
	max int
}

func (c *capWriter) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room > 0 {
		c.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

func medianDur(ds []time.Duration) time.Duration {
	xs := make([]float64, len(ds))
	for i, d := range ds {
		xs[i] = float64(d)
	}
	return time.Duration(median(xs)).Round(10 * time.Microsecond)
}

func minDur(ds []time.Duration) time.Duration { return slices.Min(ds).Round(10 * time.Microsecond) }

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// rateStats are one rate's figures, over the successful tests.
type rateStats struct {
	agentDown, agentUp, cliDown, cliUp []float64 // % of the rate
	diffDown, diffUp                   []float64 // agent − cli per pair, pp
	agentCPU, cliCPU                   []float64 // s
	agentRSS, cliRSS                   []float64 // MiB
	pressure                           []float64 // % per test, both tools
	failedAgent, failedCLI             int
}

func statsOf(r *rateResult) rateStats {
	var s rateStats
	for _, t := range append(slices.Clone(r.agent), r.cli...) {
		s.pressure = append(s.pressure, t.pressure)
	}
	for i, a := range r.agent {
		if a.err != nil {
			s.failedAgent++
		} else {
			s.agentDown, s.agentUp = append(s.agentDown, a.downFrac), append(s.agentUp, a.upFrac)
			s.agentCPU, s.agentRSS = append(s.agentCPU, a.cpu.Seconds()), append(s.agentRSS, mib(a.maxRSS))
		}
		if i < len(r.cli) && a.err == nil && r.cli[i].err == nil {
			s.diffDown = append(s.diffDown, a.downFrac-r.cli[i].downFrac)
			s.diffUp = append(s.diffUp, a.upFrac-r.cli[i].upFrac)
		}
	}
	for _, c := range r.cli {
		if c.err != nil {
			s.failedCLI++
			continue
		}
		s.cliDown, s.cliUp = append(s.cliDown, c.downFrac), append(s.cliUp, c.upFrac)
		s.cliCPU, s.cliRSS = append(s.cliCPU, c.cpu.Seconds()), append(s.cliRSS, mib(c.maxRSS))
	}
	return s
}

func list(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, " ")
}

// figures turns the measurements into benchreport figures: the targets
// of issue 6 and, informational, the peer's figures and the link's.
func figures(o Options, results []*rateResult, startup map[string]toolRun) []benchreport.Figure {
	var figs []benchreport.Figure
	startupNote := ""
	if a, c := startup[toolAgent], startup[toolCLI]; a.maxRSS > 0 && c.maxRSS > 0 {
		startupNote = fmt.Sprintf("; startup alone (server port closed): agent's runner %.1f MiB %.2f s, ndt7-client %.1f MiB %.2f s",
			mib(a.maxRSS), a.cpu.Seconds(), mib(c.maxRSS), c.cpu.Seconds())
	}
	for _, r := range results {
		s := statsOf(r)
		prefix := fmt.Sprintf("ndt7/%gmbit/", r.rate)
		link := fmt.Sprintf("%g Mbit/s tbf (burst %d B, limit %d B), %s RTT from the delay line", r.rate, r.burst, r.limit, 2*o.Delay)
		if len(r.rtt) > 0 {
			link += fmt.Sprintf(" (ping median %s)", medianDur(r.rtt))
		}
		runs := fmt.Sprintf("%d runs per tool alternating agent, ndt7-client v0.10.1; %s; both at nice %d; machine CPU pressure during the tests median %.0f%% (max %.0f%%)",
			o.Runs, o.Scheme, o.Nice, median(s.pressure), slices.Max(append([]float64{0}, s.pressure...)))
		if s.failedAgent+s.failedCLI > 0 {
			runs += fmt.Sprintf("; FAILED tests: agent %d, ndt7-client %d", s.failedAgent, s.failedCLI)
		}
		add := func(name string, xs []float64, value float64, unit, op string, target float64, notes string) {
			if len(xs) == 0 {
				return // nothing measured: the failures are in the notes of the others
			}
			figs = append(figs, benchreport.Figure{Name: prefix + name, Value: round(value, 2), Unit: unit, Op: op,
				Target: target, Command: Command, Notes: notes})
		}
		fracNotes := func(what string, a, c []float64) string {
			return fmt.Sprintf("%s, %% of the shaped rate, median of the agent's runs (%s) read from its uploaded result "+
				"as the pods service reads it; ndt7-client median %.2f (%s); %s; %s", what, list(a), median(c), list(c), runs, link)
		}
		add("download_fraction", s.agentDown, median(s.agentDown), "%", ">=", targetDownload, fracNotes("download", s.agentDown, s.cliDown))
		add("upload_fraction", s.agentUp, median(s.agentUp), "%", ">=", targetUpload, fracNotes("upload", s.agentUp, s.cliUp))
		add("download_diff", s.diffDown, median(s.diffDown), "pp", "within", targetDiff,
			fmt.Sprintf("agent − ndt7-client download, median of the A/B pairs (%s); %s", list(s.diffDown), runs))
		add("upload_diff", s.diffUp, median(s.diffUp), "pp", "within", targetDiff,
			fmt.Sprintf("agent − ndt7-client upload, median of the A/B pairs (%s); %s", list(s.diffUp), runs))
		if len(s.cliCPU) > 0 && median(s.cliCPU) > 0 {
			add("cpu_ratio", s.agentCPU, median(s.agentCPU)/median(s.cliCPU), "x", "<=", targetCPURatio,
				fmt.Sprintf("median user+sys CPU per test, agent %.2f s (%s) / ndt7-client %.2f s (%s); each tool's own rusage, from GNU time%s",
					median(s.agentCPU), list(s.agentCPU), median(s.cliCPU), list(s.cliCPU), startupNote))
		}
		add("peak_rss", s.agentRSS, slices.Max(append([]float64{0}, s.agentRSS...)), "MiB", "<=", targetRSSMiB,
			fmt.Sprintf("agent's largest peak RSS of any test (maxrss from GNU time; all: %s; median %.1f); ndt7-client median %.1f MiB (%s)%s",
				list(s.agentRSS), median(s.agentRSS), median(s.cliRSS), list(s.cliRSS), startupNote))
		add("cpu_seconds", s.agentCPU, median(s.agentCPU), "s", "", 0, "agent, median user+sys CPU per test (download + upload)")
		add("ndt7client_cpu_seconds", s.cliCPU, median(s.cliCPU), "s", "", 0, "ndt7-client v0.10.1, median user+sys CPU per test")
		add("ndt7client_peak_rss", s.cliRSS, slices.Max(append([]float64{0}, s.cliRSS...)), "MiB", "", 0, "ndt7-client v0.10.1, largest peak RSS of any test")
		add("ndt7client_download_fraction", s.cliDown, median(s.cliDown), "%", "", 0, "ndt7-client v0.10.1's own summary ÷ shaped rate, median")
		add("ndt7client_upload_fraction", s.cliUp, median(s.cliUp), "%", "", 0, "ndt7-client v0.10.1's own summary ÷ shaped rate, median")
		if len(r.rtt) > 0 {
			ms := make([]float64, len(r.rtt))
			for i, d := range r.rtt {
				ms[i] = float64(d) / 1e6
			}
			add("rtt", ms, median(ms), "ms", "", 0, fmt.Sprintf("ICMP echo client → server before the tests, median of %d (min %.2f, max %.2f)",
				len(ms), slices.Min(ms), slices.Max(ms)))
		}
		if r.ceilErr == nil && r.ceilDown > 0 {
			add("tcp_download_fraction", []float64{r.ceilDown}, r.ceilDown, "%", "", 0,
				"one bare TCP flow server → client (Go, BBR), 4 s after 1 s warm-up: the link's ceiling (single flow at MTU 1500: 95.6%)")
			add("tcp_upload_fraction", []float64{r.ceilUp}, r.ceilUp, "%", "", 0, "one bare TCP flow client → server, as above")
		}
	}
	return figs
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// printSummary prints one Markdown row per rate (the table in
// docs/benchmarks/ndt7.md).
func (b *session) printSummary(results []*rateResult) {
	w := b.stdout
	fmt.Fprintln(w, "\nmedians; fractions in % of the shaped rate; Δ = agent − ndt7-client, median of the A/B pairs, in points")
	fmt.Fprintln(w, "| rate | download agent / cli (Δ) | upload agent / cli (Δ) | CPU s agent / cli (ratio) | peak RSS MiB agent / cli (max agent) | RTT ms | bare TCP down / up | CPU pressure | failed |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		s := statsOf(r)
		ratio := 0.0
		if median(s.cliCPU) > 0 {
			ratio = median(s.agentCPU) / median(s.cliCPU)
		}
		rtt := "-"
		if len(r.rtt) > 0 {
			rtt = fmt.Sprintf("%.2f", float64(medianDur(r.rtt))/1e6)
		}
		ceil := "-"
		if r.ceilErr == nil && r.ceilDown > 0 {
			ceil = fmt.Sprintf("%.1f / %.1f", r.ceilDown, r.ceilUp)
		}
		fmt.Fprintf(w, "| %g Mbit/s | %.2f / %.2f (%+.2f) | %.2f / %.2f (%+.2f) | %.2f / %.2f (%.2f) | %.1f / %.1f (%.1f) | %s | %s | %.0f%% | %d |\n",
			r.rate, median(s.agentDown), median(s.cliDown), median(s.diffDown),
			median(s.agentUp), median(s.cliUp), median(s.diffUp),
			median(s.agentCPU), median(s.cliCPU), ratio,
			median(s.agentRSS), median(s.cliRSS), slices.Max(append([]float64{0}, s.agentRSS...)),
			rtt, ceil, median(s.pressure), s.failedAgent+s.failedCLI)
	}
	a, c := b.startup[toolAgent], b.startup[toolCLI]
	if a.maxRSS == 0 || c.maxRSS == 0 {
		return
	}
	fmt.Fprintf(w, "\nabove startup (each tool's closed-port run: agent %.1f MiB %.2f s, ndt7-client %.1f MiB %.2f s):\n",
		mib(a.maxRSS), a.cpu.Seconds(), mib(c.maxRSS), c.cpu.Seconds())
	fmt.Fprintln(w, "| rate | CPU s agent / cli | peak RSS MiB agent / cli |")
	fmt.Fprintln(w, "|---|---|---|")
	for _, r := range results {
		s := statsOf(r)
		fmt.Fprintf(w, "| %g Mbit/s | %.2f / %.2f | %.1f / %.1f |\n", r.rate,
			median(s.agentCPU)-a.cpu.Seconds(), median(s.cliCPU)-c.cpu.Seconds(),
			median(s.agentRSS)-mib(a.maxRSS), median(s.cliRSS)-mib(c.maxRSS))
	}
}

// EmulatedCommand reproduces the emulated figures.
const EmulatedCommand = "make bench-ndt7-qemu"

// emulatedFigures are Options.Emulate's: the peak RSS of the agent's
// runner built for armv7 and run under qemu-arm, and of the amd64 build
// under qemu-x86_64. qemu-user's own memory (its translation cache, the
// guest's mappings) is in both peaks, so their ratio, not either figure,
// says what the 32-bit build costs against amd64; the native amd64 peak
// of the same session is recorded beside them.
func emulatedFigures(o Options, results []*rateResult) []benchreport.Figure {
	var figs []benchreport.Figure
	ok := func(runs []toolRun) (rss, down, up []float64) {
		for _, t := range runs {
			if t.err == nil {
				rss, down, up = append(rss, mib(t.maxRSS)), append(down, t.downFrac), append(up, t.upFrac)
			}
		}
		return rss, down, up
	}
	for _, r := range results {
		prefix := fmt.Sprintf("ndt7_qemu/%gmbit/", r.rate)
		native, _, _ := ok(r.agent)
		arm, armDown, armUp := ok(r.armv7)
		amd, amdDown, amdUp := ok(r.amd64Emu)
		setup := fmt.Sprintf("%d runs each on a %g Mbit/s tbf link, %s RTT, %s; the agent's runner (internal/bench/ndt7/agentrun) built CGO_ENABLED=0 -trimpath -s -w for each platform",
			o.Runs, r.rate, 2*o.Delay, o.Scheme)
		if len(arm) > 0 {
			figs = append(figs, benchreport.Figure{Name: prefix + "armv7_peak_rss", Value: round(slices.Max(arm), 1), Unit: "MiB", Command: EmulatedCommand,
				Notes: fmt.Sprintf("largest maxrss of qemu-arm -cpu %s running the linux/arm/v7 build (all: %s), emulator included; it reached %s%% down, %s%% up of the rate; %s",
					qemuCPU, list(arm), list(armDown), list(armUp), setup)})
		}
		if len(amd) > 0 {
			figs = append(figs, benchreport.Figure{Name: prefix + "amd64_peak_rss", Value: round(slices.Max(amd), 1), Unit: "MiB", Command: EmulatedCommand,
				Notes: fmt.Sprintf("largest maxrss of qemu-x86_64 running the linux/amd64 build (all: %s), emulator included; %s%% down, %s%% up; %s",
					list(amd), list(amdDown), list(amdUp), setup)})
		}
		if len(native) > 0 {
			figs = append(figs, benchreport.Figure{Name: prefix + "native_amd64_peak_rss", Value: round(slices.Max(native), 1), Unit: "MiB", Command: EmulatedCommand,
				Notes: fmt.Sprintf("the amd64 build run natively in the same session (all: %s)", list(native))})
		}
		if len(arm) > 0 && len(amd) > 0 {
			figs = append(figs, benchreport.Figure{Name: prefix + "armv7_to_amd64_rss", Value: round(slices.Max(arm)/slices.Max(amd), 2), Unit: "x", Command: EmulatedCommand,
				Notes: "armv7 peak RSS ÷ amd64 peak RSS, both under qemu-user: a 32-bit Pi's test against amd64's, the emulator's share on both sides"})
		}
	}
	return figs
}
