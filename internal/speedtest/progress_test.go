package speedtest

import (
	"context"
	"testing"
)

func TestReportProgress(t *testing.T) {
	// Without an observer it is a no-op.
	ReportProgress(context.Background(), Progress{Phase: PhaseDownload})
	if HasProgress(context.Background()) {
		t.Fatal("background context has an observer")
	}
	var got []Progress
	ctx := WithProgress(context.Background(), func(p Progress) { got = append(got, p) })
	if !HasProgress(ctx) {
		t.Fatal("observer not found")
	}
	ReportProgress(ctx, Progress{Runner: "ndt7", Phase: PhaseUpload, Mbps: 12.5})
	if len(got) != 1 || got[0].Type != ProgressType || got[0].Phase != PhaseUpload || got[0].Mbps != 12.5 {
		t.Fatalf("observed %+v", got)
	}
}
