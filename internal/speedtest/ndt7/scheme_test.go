package ndt7

import (
	"strings"
	"testing"
)

func TestChooseScheme(t *testing.T) {
	for _, s := range []string{"ws", "wss"} {
		got, reason := ChooseScheme(s)
		if got != s || !strings.Contains(reason, "RADAR_NDT7_SCHEME") {
			t.Errorf("ChooseScheme(%q) = %q, %q", s, got, reason)
		}
	}
	if got, reason := ChooseScheme("auto"); (got != "ws" && got != "wss") || !strings.HasPrefix(reason, "auto: ") {
		t.Errorf("ChooseScheme(auto) = %q, %q", got, reason)
	}
	tests := []struct {
		aes  bool
		want string
	}{{true, "wss"}, {false, "ws"}}
	for _, tt := range tests {
		got, reason := schemeFor(tt.aes, "test flag")
		if got != tt.want || !strings.Contains(reason, "test flag") {
			t.Errorf("schemeFor(%v) = %q, %q", tt.aes, got, reason)
		}
	}
}
