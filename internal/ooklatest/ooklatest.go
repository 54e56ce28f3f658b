// Package ooklatest provides a fake Ookla `speedtest` CLI for tests: a small
// sh script that insists on the arguments the real CLI needs to run
// unattended, records every invocation (and the environment of the last
// one), and per Mode prints a real result
// (the fixture a pod in the field produced) or one made unique to the
// invocation, fails, hangs, or misbehaves, optionally after a delay.
package ooklatest

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
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

// Modes lists every mode whose output is fixed, for table-driven tests.
var Modes = []Mode{ModeResult, ModeResultWithLogs, ModeFail, ModeHang, ModeGarbage, ModeTruncated, ModeLogsOnly, ModeFlood}

// ModeUnique prints, exit 0, a result no other invocation of the fake
// installed in the same dir prints: UniqueResult(n), n being the number the
// invocation took (1, 2, ...; see Emitted). Fault drills use it to match
// what the service stored with what the pod measured. `--servers` prints a
// one-server list instead and takes no number. It is not in Modes: its output
// differs on every call.
const ModeUnique Mode = "unique"

// FailStderr is what ModeFail writes on stderr.
const FailStderr = "[error] Configuration - Couldn't resolve host name (HostNotFoundException)"

const (
	binName   = "speedtest"
	callsFile = "speedtest.calls"
	pidsFile  = "speedtest.pids"
	dataFile  = "ookla-result.json"
	delayFile = "speedtest.delay"
	// environFile is the environment the last invocation was started with,
	// as the kernel holds it (/proc/<pid>/environ: NUL-terminated entries),
	// not as the shell would export it (sh adds PWD of its own).
	environFile = "speedtest.environ"
	// uniqueDir holds one empty file per number ModeUnique handed out: an
	// exclusive create is the one atomic counter a plain sh has, and it
	// stays correct when a killed agent leaves its fake running.
	uniqueDir = "speedtest.unique"
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
	known := mode == ModeUnique
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
	script := fmt.Sprintf(scriptTemplate, dir, mode, len(Result())/2, FailStderr, fixtureID, fixtureDownload)
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
cat "/proc/$$/environ" > "$dir/speedtest.environ.$$" && mv -f "$dir/speedtest.environ.$$" "$dir/speedtest.environ"
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
if [ -s "$dir/speedtest.delay" ]; then sleep "$(cat "$dir/speedtest.delay")"; fi
case '%[2]s' in
unique)
	for a in "$@"; do
		if [ "$a" = --servers ]; then
			echo '{"type":"serverList","timestamp":"2023-03-09T21:29:00Z","servers":[{"id":52973,"host":"opstelecom.ravisystems.com.br","port":8080,"name":"Ops Telecom","location":"Sorocaba","country":"Brazil"}]}'
			exit 0
		fi
	done
	mkdir -p "$dir/speedtest.unique"
	n=$(ls "$dir/speedtest.unique" | wc -l)
	set -C
	n=$((n + 1))
	# true, not ":": a failed redirection of a special built-in ends the shell.
	until true 2>/dev/null > "$dir/speedtest.unique/$n"; do n=$((n + 1)); done
	set +C
	id=$(printf '00000000-0000-4000-8000-%%012d' "$n")
	sed -e "s/%[5]s/$id/g" -e "s/\"download\":{\"bandwidth\":%[6]d,/\"download\":{\"bandwidth\":$((%[6]d + n)),/" "$dir/ookla-result.json" ;;
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

// The parts of the fixture ModeUnique changes.
const (
	fixtureID       = "ea8e5ec3-e2fa-4994-a9fe-559c8d4dc6fd"
	fixtureDownload = 50357709 // download.bandwidth, bytes/s
)

// UniqueID is result.id of UniqueResult(n).
func UniqueID(n int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", n) }

// UniqueSeq is the n of a result.id made by UniqueID; ok is false for any
// other id.
func UniqueSeq(resultID string) (n int, ok bool) {
	rest, found := strings.CutPrefix(resultID, "00000000-0000-4000-8000-")
	if !found || len(rest) != 12 {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n <= 0 || UniqueID(n) != resultID {
		return 0, false
	}
	return n, true
}

// UniqueResult is what ModeUnique prints for invocation n (without the
// newline): the fixture with result.id (also in result.url) set to
// UniqueID(n) and download.bandwidth raised by n bytes/s, so both the
// stored result and the pod's own summary of it identify the invocation.
func UniqueResult(n int) []byte {
	b := bytes.ReplaceAll(Result(), []byte(fixtureID), []byte(UniqueID(n)))
	return bytes.Replace(b,
		[]byte(fmt.Sprintf(`"download":{"bandwidth":%d,`, fixtureDownload)),
		[]byte(fmt.Sprintf(`"download":{"bandwidth":%d,`, fixtureDownload+n)), 1)
}

// UniqueSeqOfDownload recovers n from the download figure (Mbit/s) a pod
// computed from UniqueResult(n); ok is false for a figure no unique result
// gives.
func UniqueSeqOfDownload(mbps float64) (n int, ok bool) {
	n = int(math.Round(mbps*1e6/8)) - fixtureDownload
	if n <= 0 || float64(fixtureDownload+n)*8/1e6 != mbps {
		return 0, false
	}
	return n, true
}

// Emitted lists the numbers ModeUnique invocations in dir took, ascending
// (the order they were taken). An invocation killed before printing still
// counts: it is what the fake handed out, not what anyone received.
func Emitted(t testing.TB, dir string) []int {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(dir, uniqueDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("ooklatest: %v", err)
	}
	var ns []int
	for _, de := range des {
		n, err := strconv.Atoi(de.Name())
		if err != nil {
			t.Fatalf("ooklatest: unexpected file %s in %s", de.Name(), uniqueDir)
		}
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return ns
}

// SetDelay makes every later invocation of the fake in dir wait d once its
// arguments are accepted, before it prints anything (a test that takes a
// while, so a kill can land in the middle of one); 0 removes the delay.
func SetDelay(t testing.TB, dir string, d time.Duration) {
	t.Helper()
	path := filepath.Join(dir, delayFile)
	if d <= 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("ooklatest: %v", err)
		}
		return
	}
	// Renamed into place: a running fake reads either the old or the new
	// value, never a torn one.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatFloat(d.Seconds(), 'f', 3, 64)), 0o644); err != nil {
		t.Fatalf("ooklatest: %v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatalf("ooklatest: %v", err)
	}
}

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

// Environ returns the environment the last invocation was started with,
// in the order the kernel gave it, nil if none was recorded.
func Environ(t testing.TB, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, environFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatalf("ooklatest: %v", err)
	}
	env := []string{}
	for kv := range strings.SplitSeq(string(b), "\x00") {
		if kv != "" {
			env = append(env, kv)
		}
	}
	return env
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
