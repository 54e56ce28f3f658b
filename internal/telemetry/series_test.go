package telemetry

import (
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches /metrics from a real HTTP server and parses it with
// Prometheus's own text-format parser: what a Prometheus server would
// read from the pod.
func scrape(t *testing.T, m *Metrics) (map[string]*dto.MetricFamily, http.Header) {
	t.Helper()
	srv := httptest.NewServer(Handler(m, &Health{}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("Prometheus's parser rejects the page: %v\n%s", err, body)
	}
	return fams, resp.Header
}

// sample finds the value of name with exactly these labels.
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.Metric {
		if len(m.Label) != len(labels) {
			continue
		}
		match := true
		for _, l := range m.Label {
			if v, ok := labels[l.GetName()]; !ok || v != l.GetValue() {
				match = false
			}
		}
		if !match {
			continue
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			return m.Counter.GetValue(), true
		case dto.MetricType_GAUGE:
			return m.Gauge.GetValue(), true
		}
		t.Fatalf("%s has type %v", name, f.GetType())
	}
	return 0, false
}

func TestMetricsPageParsesAsPrometheusText(t *testing.T) {
	m := NewMetrics()
	// Label values an interface name, a version or an error class could
	// bring: quotes, backslashes, newlines and non-ASCII must round-trip.
	hostile := "eth0 \"lan\"\\\n\u00e9"
	m.LastDownload.WithLabelValues("ndt7", hostile).Set(93.5)
	m.TestsTotal.WithLabelValues("ndt7", "ok").Inc()
	m.TestsTotal.WithLabelValues("ndt7", "ok").Add(2)
	m.TestsTotal.WithLabelValues("ndt7", "ok").Add(-5) // ignored: counters never go down
	m.TestBytes.WithLabelValues("ndt7", "eth0", "received").Add(1.25e9)
	m.OutboxDepth.Set(3)
	m.OutboxDepth.Dec()
	m.LastHeartbeat.Set(1.7e9)
	m.ChannelConnects.Inc()
	m.UpdateState.WithLabelValues("installing", "2.0.0").Set(1)
	m.UpdateState.Reset()
	m.UpdateState.WithLabelValues("installed", "2.0.0").Set(1)
	m.LastLatency.WithLabelValues("ookla", "wlan0").Set(math.Inf(1))

	fams, header := scrape(t, m)
	if ct := header.Get("Content-Type"); ct != contentType {
		t.Errorf("Content-Type = %q, want %q", ct, contentType)
	}
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
		kind   dto.MetricType
	}{
		{"radar_last_download_mbps", map[string]string{"runner": "ndt7", "interface": hostile}, 93.5, dto.MetricType_GAUGE},
		{"radar_tests_total", map[string]string{"runner": "ndt7", "result": "ok"}, 3, dto.MetricType_COUNTER},
		{"radar_test_bytes_total", map[string]string{"runner": "ndt7", "interface": "eth0", "direction": "received"}, 1.25e9, dto.MetricType_COUNTER},
		{"radar_outbox_records", nil, 2, dto.MetricType_GAUGE},
		{"radar_last_heartbeat_timestamp_seconds", nil, 1.7e9, dto.MetricType_GAUGE},
		{"radar_channel_connects_total", nil, 1, dto.MetricType_COUNTER},
		{"radar_outbox_evictions_total", nil, 0, dto.MetricType_COUNTER},
		{"radar_update_state", map[string]string{"state": "installed", "to_version": "2.0.0"}, 1, dto.MetricType_GAUGE},
		{"radar_last_latency_ms", map[string]string{"runner": "ookla", "interface": "wlan0"}, math.Inf(1), dto.MetricType_GAUGE},
		{"go_info", map[string]string{"version": runtime.Version()}, 1, dto.MetricType_GAUGE},
	}
	for _, tt := range tests {
		got, ok := sample(t, fams, tt.name, tt.labels)
		if !ok {
			t.Errorf("%s%v missing", tt.name, tt.labels)
			continue
		}
		if got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
		if k := fams[tt.name].GetType(); k != tt.kind {
			t.Errorf("%s is a %v, want %v", tt.name, k, tt.kind)
		}
		if fams[tt.name].GetHelp() == "" {
			t.Errorf("%s has no HELP", tt.name)
		}
	}
	if _, ok := sample(t, fams, "radar_update_state", map[string]string{"state": "installing", "to_version": "2.0.0"}); ok {
		t.Error("a series removed by Reset is still on the page")
	}
	// A family with no series yet is left out, as Prometheus's client did.
	if _, ok := fams["radar_network_check_pass"]; ok {
		t.Error("radar_network_check_pass is on the page before any check ran")
	}
	// The process and runtime series an operator reads a pod's health by.
	for _, name := range []string{"process_resident_memory_bytes", "process_virtual_memory_bytes", "go_goroutines", "go_memstats_heap_alloc_bytes", "go_memstats_sys_bytes", "process_open_fds", "process_max_fds", "process_start_time_seconds"} {
		if v, ok := sample(t, fams, name, nil); !ok || v <= 0 {
			t.Errorf("%s = %v (present %v), want > 0", name, v, ok)
		}
	}
	if v, ok := sample(t, fams, "process_cpu_seconds_total", nil); !ok || v < 0 {
		t.Errorf("process_cpu_seconds_total = %v (present %v)", v, ok)
	}
}

func TestMetricsPageIsSortedAndStable(t *testing.T) {
	m := NewMetrics()
	for _, r := range []string{"ookla", "ndt7"} {
		m.RunnerUp.WithLabelValues(r).Set(1)
	}
	var a, b strings.Builder
	if err := m.WriteText(&a); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	page := a.String()
	if i, j := strings.Index(page, `radar_runner_available{runner="ndt7"}`), strings.Index(page, `radar_runner_available{runner="ookla"}`); i < 0 || j < i {
		t.Errorf("children not sorted by label value:\n%s", page)
	}
	if i, j := strings.Index(page, "# TYPE radar_build_info"), strings.Index(page, "# TYPE radar_runner_available"); i >= 0 || j < 0 {
		t.Errorf("radar_build_info has no series but is on the page, or radar_runner_available is missing")
	}
	strip := func(s string) string { // the runtime series move between scrapes
		var keep []string
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(l, "radar_") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	if strip(a.String()) != strip(b.String()) {
		t.Error("two scrapes of unchanged series differ")
	}
}

func TestMetricsConcurrentUpdates(t *testing.T) {
	m := NewMetrics()
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				m.Uploads.WithLabelValues("ok").Inc()
				m.OutboxBytes.Add(2)
				m.WriteText(io.Discard)
			}
		}()
	}
	wg.Wait()
	if got := m.Uploads.WithLabelValues("ok").Value(); got != 8000 {
		t.Errorf("uploads = %v, want 8000", got)
	}
	if got := m.OutboxBytes.Value(); got != 16000 {
		t.Errorf("outbox bytes = %v, want 16000", got)
	}
}

func TestMetricsRejectsMethodsOtherThanGet(t *testing.T) {
	srv := httptest.NewServer(Handler(NewMetrics(), &Health{}))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/metrics", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %s, want 405", resp.Status)
	}
}
