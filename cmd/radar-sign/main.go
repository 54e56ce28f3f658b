// Command radar-sign is the release tool for Radar Pod updates: it creates
// the development root CA and code-signing certificates, signs agent images
// in a registry by digest, and issues the CRL the pods check. All behaviour
// lives in internal/release.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/radarpod/radarpod/internal/release"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := release.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
