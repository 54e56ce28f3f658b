package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/radarpod/radarpod/internal/config"
	"github.com/radarpod/radarpod/internal/statuspage"
)

const resultsUsage = `usage: radar-agent results [--since D] [--format csv|json]

Prints the results this pod measured, from its local history in
RADAR_DATA_DIR (results.jsonl and its rotated copy), oldest first: the
same export as the status page's /results.csv and /results.json.
--since takes a duration back from now (36h, 7d, 2w) or a date
(2026-11-01, or RFC 3339); the default is everything kept.
`

// resultsCommand is `radar-agent results`.
func resultsCommand(args []string, environ map[string]string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("results", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, resultsUsage) }
	sinceFlag := fs.String("since", "", "duration back from now (7d, 36h) or date (2026-11-01)")
	format := fs.String("format", "csv", "csv or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "radar-agent results: unexpected argument %q\n\n%s", fs.Arg(0), resultsUsage)
		return 2
	}
	if !slices.Contains(statuspage.Formats, *format) {
		fmt.Fprintf(stderr, "radar-agent results: unknown format %q; allowed: %s\n", *format, strings.Join(statuspage.Formats, ", "))
		return 2
	}
	since, err := statuspage.ParseSince(*sinceFlag, time.Now())
	if err != nil {
		fmt.Fprintln(stderr, "radar-agent results: --"+err.Error())
		return 2
	}
	cfg, err := config.LoadAgent(environ)
	if err != nil {
		fmt.Fprintln(stderr, "radar-agent:", err)
		return config.ExitCode
	}
	w := bufio.NewWriter(stdout)
	err = statuspage.Export(w, cfg.DataDir, since, *format)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		fmt.Fprintln(stderr, "radar-agent results:", err)
		return 1
	}
	return 0
}
