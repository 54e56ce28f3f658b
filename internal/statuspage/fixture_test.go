package statuspage

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/radartest"
	"github.com/radarpod/radarpod/internal/wallclock"
)

// fixture is a pod's history written the way the agent writes it: 35 days
// of results in results.jsonl.1 and results.jsonl, built around the real
// results in testdata (an NDT7 run, an Ookla run): NDT7 and Ookla on the
// default route four times a day, Ookla on wlan0 once a day for the last
// ten days, an NDT7 timeout every fifth day, one result measured before the
// clock was known, a torn line after a crash, and the raw results on a few
// lines (standalone pods keep them).
type fixture struct {
	entries []agent.ResultEntry // in the order written
	// points[range][series label] is how many points each chart must
	// show: the successful dated results in the range.
	points map[string]map[string]int
}

func writeFixture(t *testing.T, dir string, now time.Time) fixture {
	t.Helper()
	ndtRaw, err := os.ReadFile("testdata/ndt7-result.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	ooklaRaw, err := os.ReadFile("testdata/ookla-result.json")
	if err != nil {
		t.Fatal(err)
	}
	ndt, err := radartest.ParseNDT7(ndtRaw)
	if err != nil {
		t.Fatal(err)
	}
	ookla, err := radartest.ParseOokla(ooklaRaw)
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{points: map[string]map[string]int{"7d": {}, "30d": {}}}
	// Figures vary around the real ones, smoothly, so the charts look
	// like a line's day: slower in the evening.
	vary := func(base float64, i int) *float64 {
		v := math.Round(base*(0.8+0.2*math.Sin(float64(i)/3))*100) / 100
		return &v
	}
	start := now.Truncate(time.Hour).Add(-35 * 24 * time.Hour)
	i := 0
	add := func(e agent.ResultEntry) {
		f.entries = append(f.entries, e)
		if e.ErrorClass != "" || e.Time.IsZero() {
			return
		}
		label := seriesLabel(e.Runner, e.Interface)
		for rg, d := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour} {
			if !e.Time.Before(now.Add(-d)) && !e.Time.After(now) {
				f.points[rg][label]++
			}
		}
	}
	for at := start; at.Before(now.Add(-time.Hour)); at = at.Add(6 * time.Hour) {
		i++
		day := int(now.Sub(at).Hours() / 24)
		stamp := wallclock.Stamp{Synced: true, Source: wallclock.SourceKernel}
		if day%5 == 2 && at.Hour() >= 18 {
			add(agent.ResultEntry{Time: at, Stamp: stamp, Runner: "ndt7", DurationSeconds: 120,
				ErrorClass: "timeout", Error: "ndt7: download: context deadline exceeded"})
		} else {
			add(agent.ResultEntry{Time: at, Stamp: stamp, Runner: "ndt7", DurationSeconds: 21.4,
				DownloadMbps: vary(ndt.Download, i), UploadMbps: vary(ndt.Upload, i+2), LatencyMs: vary(ndt.MinRTT, i+5)})
		}
		add(agent.ResultEntry{Time: at.Add(25 * time.Second), Stamp: stamp, Runner: "ookla", DurationSeconds: 19.2,
			DownloadMbps: vary(ookla.Download, i+1), UploadMbps: vary(ookla.Upload, i+3), LatencyMs: vary(ookla.Latency, i+4),
			Raw: ooklaRaw})
		if day < 10 && at.Hour() < 6 {
			add(agent.ResultEntry{Time: at.Add(time.Minute), Stamp: stamp, Runner: "ookla", Interface: "wlan0", DurationSeconds: 22.9,
				DownloadMbps: vary(ookla.Download/3, i), UploadMbps: vary(ookla.Upload/2, i+1), LatencyMs: vary(ookla.Latency*2, i+2)})
		}
	}
	// Two recent NDT7 lines carry their raw result, as standalone pods
	// write it (a JSON array of the NDJSON lines).
	for k := len(f.entries) - 1; k >= 0 && ndtRawLines(f.entries) < 2; k-- {
		if f.entries[k].Runner == "ndt7" && f.entries[k].ErrorClass == "" {
			f.entries[k].Raw = ndjsonAsArray(t, ndtRaw)
		}
	}
	// Measured before the clock was known, in a first boot that ended
	// before it synced: kept, listed, not charted.
	f.entries = append([]agent.ResultEntry{{Stamp: wallclock.Stamp{Synced: false, BootID: "b00t"}, Runner: "ookla", DurationSeconds: 18,
		DownloadMbps: vary(ookla.Download, 1), UploadMbps: vary(ookla.Upload, 1), LatencyMs: vary(ookla.Latency, 1)}}, f.entries...)

	// The older half in the rotated generation, a torn line at its end.
	half := len(f.entries) / 2
	write := func(name string, es []agent.ResultEntry, tail string) {
		var b bytes.Buffer
		for _, e := range es {
			line, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(line)
			b.WriteByte('\n')
		}
		b.WriteString(tail)
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(agent.ResultsFile+".1", f.entries[:half], `{"time":"2026-01-01T00:00:00Z","runner":"nd`+"\n")
	write(agent.ResultsFile, f.entries[half:], "")
	return f
}

func ndtRawLines(es []agent.ResultEntry) int {
	n := 0
	for _, e := range es {
		if e.Runner == "ndt7" && e.Raw != nil {
			n++
		}
	}
	return n
}

func ndjsonAsArray(t *testing.T, raw []byte) json.RawMessage {
	t.Helper()
	var b bytes.Buffer
	b.WriteByte('[')
	for i, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(line)
	}
	b.WriteByte(']')
	if !json.Valid(b.Bytes()) {
		t.Fatal("ndt7 fixture is not NDJSON")
	}
	return b.Bytes()
}
