package netemu

import (
	"testing"
	"time"
)

func TestDelayStatsSub(t *testing.T) {
	tests := []struct {
		name      string
		prev, now DelayStats
		want      DelayStats
	}{
		{"interval of two reports",
			DelayStats{Packets: 100, Late: 2, Behind: 3 * time.Millisecond, MeanHold: 10 * time.Millisecond, Errors: 1, RealTime: true},
			DelayStats{Packets: 300, Late: 5, Behind: 650 * time.Millisecond, MeanHold: 11 * time.Millisecond, Errors: 1, RealTime: true},
			// (300×11 − 100×10) / 200 = 11.5 ms
			DelayStats{Packets: 200, Late: 3, Behind: 647 * time.Millisecond, MeanHold: 11500 * time.Microsecond, Errors: 0, RealTime: true}},
		{"nothing passed", DelayStats{Packets: 7, MeanHold: time.Millisecond}, DelayStats{Packets: 7, MeanHold: time.Millisecond},
			DelayStats{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.now.Sub(tt.prev); got != tt.want {
				t.Errorf("Sub = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestLinesStarved(t *testing.T) {
	const window = 3 * time.Second
	onTime := DelayStats{Packets: 5000, Late: 3, Behind: 4 * time.Millisecond}
	tests := []struct {
		name     string
		down, up DelayStats
		starved  bool
	}{
		{"on time", onTime, onTime, false},
		{"nothing passed", DelayStats{}, DelayStats{}, false},
		{"many late packets", DelayStats{Packets: 5000, Late: 300}, onTime, true},
		// CI, 77% of the rate: 57 of 6631 packets late, yet the ACK line
		// held one batch 640 ms.
		{"one long stall, few late packets", DelayStats{Packets: 3400, Late: 20, Behind: 9 * time.Millisecond},
			DelayStats{Packets: 3231, Late: 37, Behind: 640 * time.Millisecond}, true},
		{"short stalls within a fiftieth of the window", DelayStats{Packets: 5000, Late: 20, Behind: 30 * time.Millisecond},
			DelayStats{Packets: 5000, Late: 20, Behind: 29 * time.Millisecond}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := linesStarved(tt.down, tt.up, window)
			if (got != "") != tt.starved {
				t.Errorf("linesStarved = %q, want starved=%v", got, tt.starved)
			}
		})
	}
}
