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
			DelayStats{Packets: 100, Late: 2, MeanHold: 10 * time.Millisecond, Errors: 1, RealTime: true},
			DelayStats{Packets: 300, Late: 5, MeanHold: 11 * time.Millisecond, Errors: 1, RealTime: true},
			// (300×11 − 100×10) / 200 = 11.5 ms
			DelayStats{Packets: 200, Late: 3, MeanHold: 11500 * time.Microsecond, Errors: 0, RealTime: true}},
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
