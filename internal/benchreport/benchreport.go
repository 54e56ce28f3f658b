// Package benchreport owns the format of benchmark figures: every benchmark
// writes its figures, each with the target it is held to and the command
// that produced it, to a file under bench/out/; `make bench` merges them into
// bench/results.json and prints one table, so a regression is visible in
// one place.
package benchreport

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/radarpod/radarpod/internal/atomicfile"
)

// Figure is one measured number and what it is held to.
type Figure struct {
	// Name identifies the figure, e.g. "ndt7/100mbit/download_fraction".
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	// Op and Target state the goal: Value Op Target, with Op one of
	// "<=", ">=", "within" (|Value| <= Target). An empty Op is informational.
	Op     string  `json:"op,omitempty"`
	Target float64 `json:"target,omitempty"`
	// Pass is computed from Op and Target (always true when informational).
	Pass bool `json:"pass"`
	// Command reproduces the figure.
	Command string `json:"command"`
	// Notes say how it was measured (runs, medians, peers).
	Notes string `json:"notes,omitempty"`
}

// MarshalJSON writes target whenever there is an op: a target of 0 ("0
// results lost") is a target, and omitempty would drop it.
func (f Figure) MarshalJSON() ([]byte, error) {
	type plain Figure // no methods: no recursion
	out := struct {
		plain
		Target *float64 `json:"target,omitempty"`
	}{plain: plain(f)}
	if f.Op != "" {
		out.Target = &f.Target
	}
	return json.Marshal(out)
}

// Evaluate sets Pass from Op and Target.
func (f *Figure) Evaluate() {
	switch f.Op {
	case "<=":
		f.Pass = f.Value <= f.Target
	case ">=":
		f.Pass = f.Value >= f.Target
	case "within":
		f.Pass = math.Abs(f.Value) <= f.Target
	default:
		f.Pass = true
	}
}

// Write stores figures as bench/out/<group>.json under root.
func Write(root, group string, figs []Figure) error {
	for i := range figs {
		figs[i].Evaluate()
	}
	dir := filepath.Join(root, "bench", "out")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("bench figures: %w", err)
	}
	return atomicfile.WriteJSON(filepath.Join(dir, group+".json"), figs, 0o644)
}

// Merge overlays every bench/out/*.json under root on the figures already
// in bench/results.json, writes the result there and returns the figures
// sorted by name. A figure measured now replaces the recorded one of the
// same name; figures not measured now stay as recorded. bench/out holds only
// what this checkout ran (it is not committed), so a partial run — one
// scenario, `make bench-sentry` — must not drop the figures of the others.
func Merge(root string) ([]Figure, error) {
	results := filepath.Join(root, "bench", "results.json")
	byName := map[string]Figure{}
	var recorded []Figure
	if err := atomicfile.ReadJSON(results, &recorded); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("bench figures %s: %w", results, err)
	}
	for _, f := range recorded {
		byName[f.Name] = f
	}
	paths, err := filepath.Glob(filepath.Join(root, "bench", "out", "*.json"))
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		var figs []Figure
		if err := atomicfile.ReadJSON(p, &figs); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("bench figures %s: %w", p, err)
		}
		for _, f := range figs {
			byName[f.Name] = f
		}
	}
	all := make([]Figure, 0, len(byName))
	for _, f := range byName {
		all = append(all, f)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Name < all[j].Name })
	for i := range all {
		all[i].Evaluate()
	}
	if err := atomicfile.WriteJSON(results, all, 0o644); err != nil {
		return nil, err
	}
	return all, nil
}

// PrintTable writes the figures as an aligned table.
func PrintTable(w io.Writer, figs []Figure) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tVALUE\tTARGET\tOK")
	for _, f := range figs {
		target := "-"
		if f.Op != "" {
			target = strings.TrimSpace(fmt.Sprintf("%s %s %s", f.Op, formatValue(f.Target), f.Unit))
		}
		ok := "ok"
		if !f.Pass {
			ok = "MISSED"
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\n", f.Name, formatValue(f.Value), f.Unit, target, ok)
	}
	return tw.Flush()
}

func formatValue(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e9:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// Failed lists the figures that missed their target.
func Failed(figs []Figure) []Figure {
	var out []Figure
	for _, f := range figs {
		if !f.Pass {
			out = append(out, f)
		}
	}
	return out
}

// MarshalIndent is a helper for commands that print figures as JSON.
func MarshalIndent(figs []Figure) ([]byte, error) { return json.MarshalIndent(figs, "", "  ") }
