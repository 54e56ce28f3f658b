package main

import (
	"context"
	"io"
	"os/signal"
	"syscall"

	"github.com/radarpod/radarpod/internal/netcheck"
)

func checkNetwork(args []string, environ map[string]string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return netcheck.CheckCommand(ctx, args, environ, stdout, stderr)
}

func networkRequirements(args []string, environ map[string]string, stdout, stderr io.Writer) int {
	return netcheck.RequirementsCommand(args, environ, stdout, stderr)
}
