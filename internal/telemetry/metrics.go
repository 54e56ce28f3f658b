package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics are the pod's Prometheus series, on a registry of their own so that
// tests can create as many as they like.
type Metrics struct {
	Registry *prometheus.Registry

	BuildInfo *prometheus.GaugeVec

	ChannelConnected prometheus.Gauge
	// LastHeartbeat is the unix time of the last sign of life exchanged with
	// the pods service (a channel ping answered or a status call accepted).
	LastHeartbeat   prometheus.Gauge
	ChannelConnects prometheus.Counter
	StatusCalls     *prometheus.CounterVec // result

	TestsTotal    *prometheus.CounterVec // runner, result (ok|error)
	TestFailures  *prometheus.CounterVec // runner, error_class
	LastTestTime  *prometheus.GaugeVec   // runner
	LastDownload  *prometheus.GaugeVec   // runner, interface (Mbit/s)
	LastUpload    *prometheus.GaugeVec   // runner, interface (Mbit/s)
	LastLatency   *prometheus.GaugeVec   // runner, interface (ms)
	RunnerUp      *prometheus.GaugeVec   // runner: 0 when unavailable
	NDT7Scheme    *prometheus.GaugeVec   // scheme, reason
	TestQueue     prometheus.Gauge
	TestRequested *prometheus.CounterVec // source

	// TestBytes counts what tests moved, by runner, interface (only
	// interfaces a test ran on) and direction (sent|received).
	TestBytes *prometheus.CounterVec
	// DataBudgetLimit is RADAR_DATA_BUDGET (0: no budget); DataBudgetUsed
	// what the tests moved in the current budget period, and
	// DataBudgetPeriodEnd when that period ends (unix time; 0 while the
	// clock has not been trusted yet).
	DataBudgetLimit     prometheus.Gauge
	DataBudgetUsed      prometheus.Gauge
	DataBudgetPeriodEnd prometheus.Gauge
	TestsSkipped        *prometheus.CounterVec // reason (data_budget)
	TestsOverBudget     *prometheus.CounterVec // source: runs requested past the budget, run anyway

	OutboxDepth     prometheus.Gauge
	OutboxBytes     prometheus.Gauge
	OutboxEvictions prometheus.Counter
	// OutboxUnreadable counts failed reads of outbox records kept for a
	// later attempt (permission or I/O errors): not lost, not delivered yet.
	OutboxUnreadable prometheus.Counter
	Uploads          *prometheus.CounterVec // result (ok|retry|auth|rejected)

	// ResultsDropped counts results.jsonl entries deleted by its rotation
	// (the oldest generation, beyond the current file and one copy).
	ResultsDropped prometheus.Counter

	UpdateState  *prometheus.GaugeVec // state, to_version
	UpdateEvents *prometheus.CounterVec

	NetCheckPass *prometheus.GaugeVec // row: 1 pass, 0 fail
	NetCheckTime prometheus.Gauge
}

// NewMetrics registers every series, plus the Go and process collectors.
func NewMetrics() *Metrics {
	r := prometheus.NewRegistry()
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	gv := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	}
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &Metrics{
		Registry:            r,
		BuildInfo:           gv("radar_build_info", "Build of this process (value 1).", "component", "version", "commit", "distribution"),
		ChannelConnected:    g("radar_channel_connected", "1 while the ActionCable channel is subscribed."),
		LastHeartbeat:       g("radar_last_heartbeat_timestamp_seconds", "Unix time of the last heartbeat exchanged with the pods service."),
		ChannelConnects:     prometheus.NewCounter(prometheus.CounterOpts{Name: "radar_channel_connects_total", Help: "Channel subscriptions confirmed."}),
		StatusCalls:         cv("radar_status_calls_total", "Fallback status calls by result.", "result"),
		TestsTotal:          cv("radar_tests_total", "Speed tests run, by runner and result.", "runner", "result"),
		TestFailures:        cv("radar_test_failures_total", "Failed speed tests by runner and error class.", "runner", "error_class"),
		LastTestTime:        gv("radar_last_test_timestamp_seconds", "Unix time the last test of a runner finished.", "runner"),
		LastDownload:        gv("radar_last_download_mbps", "Download of the last successful test, Mbit/s.", "runner", "interface"),
		LastUpload:          gv("radar_last_upload_mbps", "Upload of the last successful test, Mbit/s.", "runner", "interface"),
		LastLatency:         gv("radar_last_latency_ms", "Latency of the last successful test, ms.", "runner", "interface"),
		RunnerUp:            gv("radar_runner_available", "1 when a runner can run (0: e.g. the Ookla CLI is missing).", "runner"),
		NDT7Scheme:          gv("radar_ndt7_scheme", "NDT7 scheme in use (value 1) and why it was chosen.", "scheme", "reason"),
		TestQueue:           g("radar_test_runs_pending", "Test runs requested but not started yet (0 or 1: requests coalesce)."),
		TestRequested:       cv("radar_test_requests_total", "Test run requests by source.", "source"),
		TestBytes:           cv("radar_test_bytes_total", "Bytes moved by speed tests, by runner, interface and direction (sent|received).", "runner", "interface", "direction"),
		DataBudgetLimit:     g("radar_data_budget_bytes", "RADAR_DATA_BUDGET: bytes the tests may move per budget period (0: no budget)."),
		DataBudgetUsed:      g("radar_data_budget_used_bytes", "Bytes the tests moved in the current budget period."),
		DataBudgetPeriodEnd: g("radar_data_budget_period_end_timestamp_seconds", "Unix time the current budget period ends (0 until the clock is trusted)."),
		TestsSkipped:        cv("radar_tests_skipped_total", "Scheduled test runs skipped, by reason.", "reason"),
		TestsOverBudget:     cv("radar_tests_over_budget_total", "Test runs requested (not scheduled) while the data budget was spent or the run would exceed it; they run anyway.", "source"),
		OutboxDepth:         g("radar_outbox_records", "Results waiting for upload."),
		OutboxBytes:         g("radar_outbox_bytes", "Bytes held by the outbox."),
		OutboxEvictions:     prometheus.NewCounter(prometheus.CounterOpts{Name: "radar_outbox_evictions_total", Help: "Results the outbox dropped to stay within its byte bound (since the outbox was created)."}),
		OutboxUnreadable:    prometheus.NewCounter(prometheus.CounterOpts{Name: "radar_outbox_unreadable_total", Help: "Reads of an outbox record that failed with a permission or I/O error; the record is kept and read again later."}),
		Uploads:             cv("radar_uploads_total", "Upload attempts by result.", "result"),
		ResultsDropped:      prometheus.NewCounter(prometheus.CounterOpts{Name: "radar_results_dropped_total", Help: "Entries of results.jsonl deleted by its rotation (current file up to 16 MiB plus one rotated copy are kept)."}),
		UpdateState:         gv("radar_update_state", "Updater state from the status file (value 1).", "state", "to_version"),
		UpdateEvents:        cv("radar_update_events_total", "Update hand-offs and outcomes seen by the agent.", "event"),
		NetCheckPass:        gv("radar_network_check_pass", "Network preflight verdict per requirement row (1 pass, 0 fail).", "row"),
		NetCheckTime:        g("radar_network_check_timestamp_seconds", "Unix time of the last network preflight."),
	}
	r.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.BuildInfo, m.ChannelConnected, m.LastHeartbeat, m.ChannelConnects, m.StatusCalls,
		m.TestsTotal, m.TestFailures, m.LastTestTime, m.LastDownload, m.LastUpload, m.LastLatency,
		m.RunnerUp, m.NDT7Scheme, m.TestQueue, m.TestRequested,
		m.TestBytes, m.DataBudgetLimit, m.DataBudgetUsed, m.DataBudgetPeriodEnd, m.TestsSkipped, m.TestsOverBudget,
		m.OutboxDepth, m.OutboxBytes, m.OutboxEvictions, m.OutboxUnreadable, m.Uploads, m.ResultsDropped,
		m.UpdateState, m.UpdateEvents, m.NetCheckPass, m.NetCheckTime,
	)
	return m
}
