//go:build linux && cgo

package ndt7

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/radarpod/radarpod/internal/proctest"
)

// goBuildEnv builds static binaries the way the agent is built, for both
// tools alike: neither loads libc, neither pays for the other's build.
var goBuildEnv = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=", "GOTOOLCHAIN=local")

var goBuildFlags = []string{"build", "-trimpath", "-ldflags", "-s -w"}

// buildAgentRunner builds agentrun, the agent's runner on its own, from the
// module the working directory is in, for p (the zero Platform: this
// machine).
func buildAgentRunner(ctx context.Context, work string, p proctest.Platform) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
		return "", errors.New("run from inside the radarpod module: the agent's runner is built from source")
	}
	exe := filepath.Join(work, "ndt7-agent-run")
	env := goBuildEnv
	if p != (proctest.Platform{}) {
		exe += "-" + strings.ReplaceAll(p.String(), "/", "-")
		env = append(append(slices.Clone(env), "GOOS=linux"), p.Env()...)
	}
	build := exec.CommandContext(ctx, "go", append(goBuildFlags, "-o", exe, "./internal/bench/ndt7/agentrun")...)
	build.Dir, build.Env = root, env
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build the agent's runner in %s: %w: %s", root, err, out)
	}
	return exe, nil
}

// buildNDT7Client builds M-Lab's CLI the way docs/benchmarking.md says
// (`go install ...@v0.10.1` fails on this proxy): download the module,
// copy it somewhere writable, build its command there. Nothing lands in
// the repository.
func buildNDT7Client(ctx context.Context, work string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	dl := exec.CommandContext(ctx, "go", "mod", "download", "-json", clientModule)
	dl.Dir, dl.Env = work, goBuildEnv
	var stderr bytes.Buffer
	dl.Stderr = &stderr
	out, err := dl.Output()
	var mod struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &mod); err != nil || jerr != nil || mod.Dir == "" {
		return "", fmt.Errorf("go mod download %s: %v %s %s", clientModule, err, mod.Error, stderr.String())
	}
	src := filepath.Join(work, "ndt7-client-go")
	if err := copyTree(mod.Dir, src); err != nil {
		return "", fmt.Errorf("copy %s: %w", mod.Dir, err)
	}
	exe := filepath.Join(work, "ndt7-client")
	build := exec.CommandContext(ctx, "go", append(goBuildFlags, "-o", exe, "./cmd/ndt7-client")...)
	build.Dir, build.Env = src, goBuildEnv
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build ndt7-client: %w: %s", err, out)
	}
	return exe, nil
}

// copyTree copies a module directory (read-only in the module cache) into
// a writable one.
func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
}
