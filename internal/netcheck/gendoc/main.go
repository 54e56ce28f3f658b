// Command gendoc writes docs/network-requirements.md from the default
// configuration (run by `go generate ./internal/netcheck`), so the document
// network administrators read is the table the code checks.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/radarpod/radarpod/internal/atomicfile"
	"github.com/radarpod/radarpod/internal/netcheck"
)

func main() {
	out := flag.String("o", "", "output file (default stdout)")
	flag.Parse()
	var b bytes.Buffer
	if err := netcheck.WriteDefaultDoc(&b); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
	if *out == "" {
		os.Stdout.Write(b.Bytes())
		return
	}
	if err := atomicfile.Write(*out, b.Bytes(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gendoc:", err)
		os.Exit(1)
	}
}
