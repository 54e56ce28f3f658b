package telemetry

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a real pseudo-terminal pair: what stderr is under
// `docker run -t`, in a shell or with compose's `tty: true`.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the terminal: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// TestLogFormatAuto: RADAR_LOG_FORMAT=auto writes text to a terminal and
// JSON to anything else (a pipe to Docker's log driver, a file, a
// buffer); json and text are what they say wherever the logs go.
func TestLogFormatAuto(t *testing.T) {
	master, tty := openPTY(t)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	file, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	for _, tc := range []struct {
		name, format string
		w            io.Writer
		want         string
	}{
		{"auto on a terminal", "auto", tty, "text"},
		{"empty on a terminal", "", tty, "text"},
		{"auto on a pipe", "auto", pw, "json"},
		{"auto on a file", "auto", file, "json"},
		{"auto on a buffer", "auto", &bytes.Buffer{}, "json"},
		{"json on a terminal", "json", tty, "json"},
		{"text on a pipe", "text", pw, "text"},
	} {
		if got := LogFormat(tc.format, tc.w); got != tc.want {
			t.Errorf("%s: LogFormat = %s, want %s", tc.name, got, tc.want)
		}
	}

	// What a person at the terminal reads: a key=value line.
	NewLogger(tty, LogOptions{Format: "auto"}).Info("speed test done", "runner", "ndt7")
	line := readLine(t, master)
	if !strings.Contains(line, `level=INFO msg="speed test done" runner=ndt7`) {
		t.Errorf("terminal got %q", line)
	}
	// What the log driver gets through a pipe: JSON.
	NewLogger(pw, LogOptions{Format: "auto"}).Info("speed test done", "runner", "ndt7")
	var rec map[string]any
	if err := json.Unmarshal([]byte(readLine(t, pr)), &rec); err != nil || rec["msg"] != "speed test done" {
		t.Errorf("pipe got %v, %v", rec, err)
	}
}

// readLine reads one line from f, bounded in time so a missing line fails
// the test instead of hanging it.
func readLine(t *testing.T, f *os.File) string {
	t.Helper()
	f.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b []byte
	buf := make([]byte, 1)
	for {
		n, err := f.Read(buf)
		if err != nil {
			t.Fatalf("read: %v (so far %q)", err, b)
		}
		if n == 1 {
			if buf[0] == '\n' {
				return strings.TrimRight(string(b), "\r")
			}
			b = append(b, buf[0])
		}
	}
}
