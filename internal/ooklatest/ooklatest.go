// Package ooklatest provides a fake Ookla `speedtest` CLI for tests: a small
// sh script that insists on the arguments the real CLI needs to run
// unattended, records every invocation, and per Mode prints a real result
// (the fixture a pod in the field produced), fails, hangs, or misbehaves.
package ooklatest

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

//go:embed testdata/ookla-result.json
var fixture []byte

// Result is the JSON object the fake prints in the result modes: a real
// `speedtest --format=json` result, byte for byte as the CLI wrote it (note
// "jitter":0.72599999999999998, which re-encoding would change).
func Result() []byte { return bytes.Clone(bytes.TrimSpace(fixture)) }

// Mode selects what the fake does once its arguments are accepted.
type Mode string

// The modes. Missing required arguments always make the fake exit 64 with a
// message on stderr, whatever the mode.
const (
	// ModeResult prints Result() and a newline, exit 0.
	ModeResult Mode = "result"
	// ModeResultWithLogs prints JSON log lines around the result, exit 0.
	ModeResultWithLogs Mode = "result-with-logs"
	// ModeFail prints an error log line on stdout and a message on stderr
	// (FailStderr), exit 2.
	ModeFail Mode = "fail"
	// ModeHang starts a child and waits forever; both pids are recorded
	// (PIDs), so a test can check the whole process group died.
	ModeHang Mode = "hang"
	// ModeGarbage prints text that is not JSON, exit 0.
	ModeGarbage Mode = "garbage"
	// ModeTruncated prints the first half of the result, exit 0.
	ModeTruncated Mode = "truncated"
	// ModeLogsOnly prints log lines and no result, exit 0.
	ModeLogsOnly Mode = "logs-only"
	// ModeFlood prints 2 MiB of log lines and then the result, exit 0.
	ModeFlood Mode = "flood"
)

// Modes lists every mode, for table-driven tests.
var Modes = []Mode{ModeResult, ModeResultWithLogs, ModeFail, ModeHang, ModeGarbage, ModeTruncated, ModeLogsOnly, ModeFlood}

// FailStderr is what ModeFail writes on stderr.
const FailStderr = "[error] Configuration - Couldn't resolve host name (HostNotFoundException)"

const (
	binName   = "speedtest"
	callsFile = "speedtest.calls"
	pidsFile  = "speedtest.pids"
	dataFile  = "ookla-result.json"
	// argSep separates recorded arguments (ASCII unit separator).
	argSep = "\x1f"
)

// Install writes the fake CLI into dir (created if needed) and returns its
// path. Installing again in the same dir switches the mode and keeps the
// record of earlier calls.
func Install(t testing.TB, dir string, mode Mode) string {
	t.Helper()
	path, err := install(dir, mode)
	if err != nil {
		t.Fatalf("ooklatest: %v", err)
	}
	return path
}

func install(dir string, mode Mode) (string, error) {
	known := false
	for _, m := range Modes {
		known = known || m == mode
	}
	if !known {
		return "", fmt.Errorf("unknown mode %q", mode)
	}
	if strings.ContainsAny(dir, "'\n") {
		return "", fmt.Errorf("directory %q cannot be quoted for sh", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, dataFile), append(Result(), '\n'), 0o644); err != nil {
		return "", err
	}
	script := fmt.Sprintf(scriptTemplate, dir, mode, len(Result())/2, FailStderr)
	path := filepath.Join(dir, binName)
	src := path + ".src"
	if err := os.WriteFile(src, []byte(script), 0o644); err != nil {
		return "", err
	}
	// The executable is written by a child process, never through a file
	// descriptor of this one: a descriptor open for writing leaks into any
	// child another goroutine forks meanwhile, and exec of the script then
	// fails with ETXTBSY (golang/go#22315). The copy goes to a temporary name
	// and is renamed, so a fake that is running keeps its own script.
	tmp := path + ".tmp"
	if out, err := exec.Command("cp", src, tmp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("cp script: %v: %s", err, out)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	return path, os.Rename(tmp, path)
}

// The script records the call first, so even a rejected call is visible.
const scriptTemplate = `#!/bin/sh
# Fake Ookla speedtest CLI written by ooklatest.
dir='%[1]s'
for a in "$@"; do printf '%%s\037' "$a"; done >> "$dir/speedtest.calls"
printf '\n' >> "$dir/speedtest.calls"
license= gdpr= format=
for a in "$@"; do
	case "$a" in
	--accept-license) license=1 ;;
	--accept-gdpr) gdpr=1 ;;
	--format=json) format=1 ;;
	esac
done
if [ -z "$license" ] || [ -z "$gdpr" ] || [ -z "$format" ]; then
	echo "speedtest (fake): --accept-license, --accept-gdpr and --format=json are required" >&2
	exit 64
fi
log() { printf '{"type":"log","timestamp":"2023-03-09T21:29:00Z","message":"%%s","level":"%%s"}\n' "$2" "$1"; }
case '%[2]s' in
result)
	cat "$dir/ookla-result.json" ;;
result-with-logs)
	log info "Server selection - Trying to find the best server"
	log warning "Latency test - slow server"
	cat "$dir/ookla-result.json"
	log info "Result persisted" ;;
fail)
	log error "Configuration - Couldn't resolve host name (HostNotFoundException)"
	echo "%[4]s" >&2
	exit 2 ;;
hang)
	log info "Download test - waiting"
	sleep 3600 &
	echo "$$ $!" > "$dir/speedtest.pids"
	wait ;;
garbage)
	echo "Speedtest by Ookla"
	echo "<html><body>captive portal</body></html>" ;;
truncated)
	head -c %[3]d "$dir/ookla-result.json" ;;
logs-only)
	log info "Server selection - Trying to find the best server"
	log error "Latency test - No servers defined (NoServersException)" ;;
flood)
	yes '{"type":"log","timestamp":"2023-03-09T21:29:00Z","message":"progress","level":"info"}' | head -c 2097152
	cat "$dir/ookla-result.json" ;;
esac
`

// Calls returns the arguments of every invocation so far, oldest first.
func Calls(t testing.TB, dir string) [][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, callsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("ooklatest: %v", err)
	}
	var calls [][]string
	for line := range strings.SplitSeq(strings.TrimSuffix(string(b), "\n"), "\n") {
		args := []string{}
		if line != "" {
			args = strings.Split(strings.TrimSuffix(line, argSep), argSep)
		}
		calls = append(calls, args)
	}
	return calls
}

// Args returns the arguments of the last invocation, nil if none.
func Args(t testing.TB, dir string) []string {
	t.Helper()
	calls := Calls(t, dir)
	if len(calls) == 0 {
		return nil
	}
	return calls[len(calls)-1]
}

// PIDs returns the pids ModeHang recorded: the script and its child. It is
// nil if no hanging fake got that far.
func PIDs(t testing.TB, dir string) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, pidsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("ooklatest: %v", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("ooklatest: bad pid file %q", b)
		}
		pids = append(pids, pid)
	}
	return pids
}

// Alive reports whether pid is a live process; a zombie (dead, not yet
// reaped by whoever inherited it) is not.
func Alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	state := b[i+2]
	return state != 'Z' && state != 'X'
}
