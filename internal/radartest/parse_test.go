package radartest

import (
	"math"
	"os"
	"strings"
	"testing"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseNDT7Fixture(t *testing.T) {
	r, err := ParseNDT7(readFixture(t, "ndt7-result.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want float64
	}{
		{"Download", r.Download, 436.32386704791077},
		{"Upload", r.Upload, 47.88207222563206},
		{"MinRTT", r.MinRTT, 10.172},
		// Last server TCPInfo of the download test: 15310524 / 574070589.
		{"LossRate", r.LossRate, 15310524.0 / 574070589.0},
		{"DownloadBytes", float64(r.DownloadBytes), 562089204},
		{"UploadBytes", float64(r.UploadBytes), 61874176},
		{"DataUsed", float64(r.DataUsed()), 562089204 + 61874176},
		{"Lines", float64(r.Lines), 160},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if !r.HasLossRate {
		t.Error("HasLossRate false")
	}
	if r.DownloadID != "ndt-virtual-rmz92_1673545290_00000000002E3483" || r.UploadID != "ndt-virtual-rmz92_1673545290_00000000002E1AAE" {
		t.Errorf("ids = %q, %q", r.DownloadID, r.UploadID)
	}
}

func TestParseOoklaFixture(t *testing.T) {
	r, err := ParseOokla(readFixture(t, "ookla-result.json"))
	if err != nil {
		t.Fatal(err)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(r.Download, 402.861672) || !near(r.Upload, 47.196424) {
		t.Errorf("Mbit/s = %v / %v, want 402.861672 / 47.196424", r.Download, r.Upload)
	}
	if r.DownloadBandwidth != 50357709 || r.UploadBandwidth != 5899553 {
		t.Errorf("bandwidth = %d / %d", r.DownloadBandwidth, r.UploadBandwidth)
	}
	if r.DownloadBytes != 529086852 || r.UploadBytes != 44203740 {
		t.Errorf("bytes = %d / %d", r.DownloadBytes, r.UploadBytes)
	}
	if r.Latency != 13.395 || r.Jitter != 0.726 {
		t.Errorf("latency/jitter = %v / %v", r.Latency, r.Jitter)
	}
	if !r.HasPacketLoss || !near(r.PacketLoss, 2.816901408450704) {
		t.Errorf("packet loss = %v (%v)", r.PacketLoss, r.HasPacketLoss)
	}
	if r.ResultID != "ea8e5ec3-e2fa-4994-a9fe-559c8d4dc6fd" {
		t.Errorf("result id = %q", r.ResultID)
	}
}

func TestParseRejectsWhatTheServiceCannotParse(t *testing.T) {
	ndt7 := string(readFixture(t, "ndt7-result.ndjson"))
	lines := strings.Split(strings.TrimRight(ndt7, "\n"), "\n")
	withoutSummary := strings.Join(lines[:len(lines)-1], "\n") + "\n"
	summaryFirst := lines[len(lines)-1] + "\n" + withoutSummary
	brokenMiddle := lines[0] + "\n{not json\n" + lines[len(lines)-1]
	blankMiddle := lines[0] + "\n\n" + lines[len(lines)-1]

	tests := []struct {
		name  string
		style string
		raw   string
	}{
		{"ndt7 empty", "ndt7", ""},
		{"ndt7 without summary line", "ndt7", withoutSummary},
		{"ndt7 summary not last", "ndt7", summaryFirst},
		{"ndt7 malformed line", "ndt7", brokenMiddle},
		{"ndt7 blank line", "ndt7", blankMiddle},
		{"ndt7 summary lacks MinRTT", "ndt7", `{"Download":{"Value":1},"Upload":{"Value":2}}`},
		{"ookla not json", "ookla", "speedtest: error"},
		{"ookla log line", "ookla", `{"type":"log","message":"Configuration - Couldn't connect"}`},
		{"ookla lacks upload", "ookla", `{"type":"result","ping":{"latency":1},"download":{"bandwidth":1,"bytes":2}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.style == "ndt7" {
				_, err = ParseNDT7([]byte(tc.raw))
			} else {
				_, err = ParseOokla([]byte(tc.raw))
			}
			if err == nil {
				t.Fatal("parsed without error")
			}
		})
	}
}

func TestParseNDT7MinimalAndMissingOptionals(t *testing.T) {
	// A summary alone is a valid result: ids, loss and data used stay unset.
	r, err := ParseNDT7([]byte(`{"Download":{"Value":1.5},"Upload":{"Value":2.5},"MinRTT":{"Value":3.5}}` + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Download != 1.5 || r.Upload != 2.5 || r.MinRTT != 3.5 || r.HasLossRate || r.DownloadID != "" || r.DataUsed() != 0 {
		t.Fatalf("got %+v", r)
	}
}
