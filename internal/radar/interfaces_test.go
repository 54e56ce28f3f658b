package radar_test

import (
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/radarpod/radarpod/internal/proctest"
	"github.com/radarpod/radarpod/internal/radar"
	"github.com/radarpod/radarpod/internal/radartest"
)

func TestValidInterfaceName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"eth0", true}, {"wlan0", true}, {"enp0s31f6", true}, {"br-0a1b2c3d4e5f", true}, {"veth1234567abcd", true},
		{"a", true}, {"123456789012345", true}, {"wlan0.100", true}, {"..a", true}, {"ethé", true},
		{"", false}, {"1234567890123456", false}, {".", false}, {"..", false},
		{"../../etc", false}, {"a/b", false}, {"eth0:1", false}, {"eth 0", false}, {"eth0\n", false},
		{"\teth0", false}, {"eth\x000", false}, {"eth\r", false}, {"eth\v", false}, {"eth\f", false},
	} {
		if got := radar.ValidInterfaceName(tc.name); got != tc.ok {
			t.Errorf("ValidInterfaceName(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

// TestRunTestInterfaceListsAreBounded: a test request names at most
// radar.MaxTestInterfaces distinct valid interface names; the rest is
// refused with one log line, and a request that names nothing valid is no
// request (never a silent test of the default route).
func TestRunTestInterfaceListsAreBounded(t *testing.T) {
	logs := &proctest.LogBuffer{}
	r := newRig(t, radartest.Options{}, func(c *radar.CableClient) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	r.run(t)
	r.waitConnected(t, 1)

	names := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("eth%d", i)
		}
		return out
	}
	huge := names(50000) // about 400 KB: a frame well within the channel's read limit
	tests := []struct {
		name    string
		send    []string
		kind    radar.EventKind
		want    []string
		refused int
	}{
		{"sixteen names", names(16), radar.RunTest, names(16), 0},
		{"seventeen names", names(17), radar.RunTest, names(16), 1},
		{"fifty thousand names", huge, radar.RunTest, names(16), len(huge) - 16},
		{"invalid names among valid ones",
			[]string{"eth0", "../../etc/passwd", "a b", "", strings.Repeat("x", 16), ".", "..", "eth0:1", "wlan0", "eth0", "bad\nname"},
			radar.RunTest, []string{"eth0", "", "wlan0"}, 7},
		{"duplicates are one name", []string{"eth0", "eth0", "eth0"}, radar.RunTest, []string{"eth0"}, 0},
		{"only invalid names", []string{"../x", strings.Repeat("y", 4096)}, radar.Unknown, nil, 2},
	}
	for i, tt := range tests {
		if n := r.srv.SendRunTest(tt.send); n != 1 {
			t.Fatalf("%s: reached %d connections", tt.name, n)
		}
		ev := r.waitEvents(t, i+1)[i]
		if ev.Kind != tt.kind || !reflect.DeepEqual(ev.Interfaces, tt.want) {
			t.Errorf("%s: got %s %q, want %s %q", tt.name, ev.Kind, ev.Interfaces, tt.kind, tt.want)
		}
		if tt.kind == radar.RunTest && (ev.Refused != tt.refused || len(ev.RefusedSample) > 4 || (tt.refused > 0) != (len(ev.RefusedSample) > 0)) {
			t.Errorf("%s: refused %d (sample %q), want %d", tt.name, ev.Refused, ev.RefusedSample, tt.refused)
		}
		if tt.kind == radar.Unknown && (ev.Err == nil || !strings.Contains(ev.Err.Error(), "no valid interface")) {
			t.Errorf("%s: error %v", tt.name, ev.Err)
		}
		for _, s := range ev.RefusedSample {
			if len(s) > 40 {
				t.Errorf("%s: refused sample %q is not shortened", tt.name, s)
			}
		}
	}
	out := logs.String()
	if n := strings.Count(out, `"msg":"refusing interface names of a test request"`); n != 3 {
		t.Errorf("%d log lines refusing names, want 3 (one per request with refusals that still ran):\n%s", n, out)
	}
	if !strings.Contains(out, `"refused":49984`) || !strings.Contains(out, `at most 16 valid interface names`) {
		t.Errorf("the refusal log line does not say how many and what is allowed:\n%.4000s", out)
	}
	if len(out) > 64<<10 {
		t.Errorf("%d bytes of logs for a few requests: refused names are not bounded in the log", len(out))
	}
}
