//go:build linux && cgo

package ndt7

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/radarpod/radarpod/internal/ndt7test"
	"github.com/radarpod/radarpod/internal/speedtest"
)

// TestProgressFromAServer runs real tests against the in-process
// ndt-server with a progress observer: via locate, the phases come in
// order (locate, download, upload), every rate event carries the server,
// a rate and a byte count that grows within its phase, and the result
// names the server.
func TestProgressFromAServer(t *testing.T) {
	t.Parallel()
	srv := ndt7test.Start(t, ndt7test.Options{})
	loc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		base := "ws://" + srv.Addr
		fmt.Fprintf(w, `{"results":[{"machine":"mlab1-test","location":{"city":"Loopback"},"urls":{
			"ws:///ndt/v7/download":%q,"ws:///ndt/v7/upload":%q}}]}`,
			base+"/ndt/v7/download", base+"/ndt/v7/upload")
	}))
	t.Cleanup(loc.Close)
	tests := []struct {
		name       string
		viaLocate  bool
		wantPhases []speedtest.Phase
	}{
		{"pinned server", false, []speedtest.Phase{speedtest.PhaseDownload, speedtest.PhaseUpload}},
		{"via locate", true, []speedtest.Phase{speedtest.PhaseLocate, speedtest.PhaseDownload, speedtest.PhaseUpload}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := shortOptions(t, srv)
			o.Scheme = "ws"
			if tt.viaLocate {
				o.Server, o.LocateURL = "", loc.URL+"/v2/nearest/"
			}
			var mu sync.Mutex
			var events []speedtest.Progress
			ctx := speedtest.WithProgress(runCtx(t), func(p speedtest.Progress) {
				mu.Lock()
				events = append(events, p)
				mu.Unlock()
			})
			res, err := New(o).Run(ctx, speedtest.Target{Interface: "eth7"})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.Server != "127.0.0.1" {
				t.Errorf("result server %q, want 127.0.0.1", res.Server)
			}
			mu.Lock()
			defer mu.Unlock()
			var phases []speedtest.Phase
			rates := map[speedtest.Phase]int{}
			var lastBytes int64
			for _, p := range events {
				if p.Type != speedtest.ProgressType || p.Runner != Name || p.Interface != "eth7" {
					t.Fatalf("event %+v: want type progress, runner ndt7, interface eth7", p)
				}
				if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
					phases = append(phases, p.Phase)
					lastBytes = 0
				}
				if p.Phase == speedtest.PhaseLocate {
					continue
				}
				if p.Server != "127.0.0.1" {
					t.Errorf("%s event without the server: %+v", p.Phase, p)
				}
				if p.Mbps == 0 {
					continue // the phase's first event: nothing measured yet
				}
				rates[p.Phase]++
				if p.Bytes < lastBytes || p.ElapsedS <= 0 {
					t.Errorf("%s event %+v: bytes went back from %d or no elapsed time", p.Phase, p, lastBytes)
				}
				lastBytes = p.Bytes
			}
			if fmt.Sprint(phases) != fmt.Sprint(tt.wantPhases) {
				t.Errorf("phases %v, want %v", phases, tt.wantPhases)
			}
			if rates[speedtest.PhaseDownload] == 0 || rates[speedtest.PhaseUpload] == 0 {
				t.Errorf("rate events: %v, want some of each direction", rates)
			}
		})
	}
}
