package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/radarpod/radarpod/internal/benchreport"
)

func init() {
	register("report", "merge bench/out/*.json into bench/results.json and print the table", func(args []string, stdout, stderr io.Writer) int {
		fs := flag.NewFlagSet("report", flag.ContinueOnError)
		fs.SetOutput(stderr)
		root := fs.String("root", ".", "repository root")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		figs, err := benchreport.Merge(*root)
		if err != nil {
			fmt.Fprintln(stderr, "radar-bench report:", err)
			return 1
		}
		benchreport.PrintTable(stdout, figs)
		if missed := benchreport.Failed(figs); len(missed) > 0 {
			fmt.Fprintf(stdout, "\n%d of %d figures missed their target (see bench/results.json)\n", len(missed), len(figs))
		}
		return 0
	})
}
