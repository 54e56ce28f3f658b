package telemetry

// Metrics are the pod's Prometheus series, on a registry of their own so that
// tests can create as many as they like. Metrics serves them (ServeHTTP).
type Metrics struct {
	reg registry

	BuildInfo *GaugeVec

	ChannelConnected *Gauge
	// LastHeartbeat is the unix time of the last sign of life exchanged with
	// the pods service (a channel ping answered or a status call accepted).
	LastHeartbeat   *Gauge
	ChannelConnects *Counter
	StatusCalls     *CounterVec // result

	TestsTotal    *CounterVec // runner, result (ok|error)
	TestFailures  *CounterVec // runner, error_class
	LastTestTime  *GaugeVec   // runner
	LastDownload  *GaugeVec   // runner, interface (Mbit/s)
	LastUpload    *GaugeVec   // runner, interface (Mbit/s)
	LastLatency   *GaugeVec   // runner, interface (ms)
	RunnerUp      *GaugeVec   // runner: 0 when unavailable
	NDT7Scheme    *GaugeVec   // scheme, reason
	TestQueue     *Gauge
	TestRequested *CounterVec // source

	// TestBytes counts what tests moved, by runner, interface (only
	// interfaces a test ran on) and direction (sent|received).
	TestBytes *CounterVec
	// DataBudgetLimit is RADAR_DATA_BUDGET (0: no budget); DataBudgetUsed
	// what the tests moved in the current budget period, and
	// DataBudgetPeriodEnd when that period ends (unix time; 0 while the
	// clock has not been trusted yet).
	DataBudgetLimit     *Gauge
	DataBudgetUsed      *Gauge
	DataBudgetPeriodEnd *Gauge
	TestsSkipped        *CounterVec // reason (data_budget)
	TestsOverBudget     *CounterVec // source: runs requested past the budget, run anyway

	OutboxDepth     *Gauge
	OutboxBytes     *Gauge
	OutboxEvictions *Counter
	// OutboxUnreadable counts failed reads of outbox records kept for a
	// later attempt (permission or I/O errors): not lost, not delivered yet.
	OutboxUnreadable *Counter
	Uploads          *CounterVec // result (ok|retry|auth|rejected)

	// ResultsDropped counts results.jsonl entries deleted by its rotation
	// (the oldest generation, beyond the current file and one copy).
	ResultsDropped *Counter

	UpdateState  *GaugeVec // state, to_version
	UpdateEvents *CounterVec

	NetCheckPass *GaugeVec // row: 1 pass, 0 fail
	NetCheckTime *Gauge
}

// NewMetrics registers every series, plus the Go runtime's and the
// process's.
func NewMetrics() *Metrics {
	m := &Metrics{}
	r := &m.reg
	m.BuildInfo = r.gaugeVec("radar_build_info", "Build of this process (value 1).", "component", "version", "commit", "distribution")
	m.ChannelConnected = r.gauge("radar_channel_connected", "1 while the ActionCable channel is subscribed.")
	m.LastHeartbeat = r.gauge("radar_last_heartbeat_timestamp_seconds", "Unix time of the last heartbeat exchanged with the pods service.")
	m.ChannelConnects = r.counter("radar_channel_connects_total", "Channel subscriptions confirmed.")
	m.StatusCalls = r.counterVec("radar_status_calls_total", "Fallback status calls by result.", "result")
	m.TestsTotal = r.counterVec("radar_tests_total", "Speed tests run, by runner and result.", "runner", "result")
	m.TestFailures = r.counterVec("radar_test_failures_total", "Failed speed tests by runner and error class.", "runner", "error_class")
	m.LastTestTime = r.gaugeVec("radar_last_test_timestamp_seconds", "Unix time the last test of a runner finished.", "runner")
	m.LastDownload = r.gaugeVec("radar_last_download_mbps", "Download of the last successful test, Mbit/s.", "runner", "interface")
	m.LastUpload = r.gaugeVec("radar_last_upload_mbps", "Upload of the last successful test, Mbit/s.", "runner", "interface")
	m.LastLatency = r.gaugeVec("radar_last_latency_ms", "Latency of the last successful test, ms.", "runner", "interface")
	m.RunnerUp = r.gaugeVec("radar_runner_available", "1 when a runner can run (0: e.g. the Ookla CLI is missing).", "runner")
	m.NDT7Scheme = r.gaugeVec("radar_ndt7_scheme", "NDT7 scheme in use (value 1) and why it was chosen.", "scheme", "reason")
	m.TestQueue = r.gauge("radar_test_runs_pending", "Test runs requested but not started yet (0 or 1: requests coalesce).")
	m.TestRequested = r.counterVec("radar_test_requests_total", "Test run requests by source.", "source")
	m.TestBytes = r.counterVec("radar_test_bytes_total", "Bytes moved by speed tests, by runner, interface and direction (sent|received).", "runner", "interface", "direction")
	m.DataBudgetLimit = r.gauge("radar_data_budget_bytes", "RADAR_DATA_BUDGET: bytes the tests may move per budget period (0: no budget).")
	m.DataBudgetUsed = r.gauge("radar_data_budget_used_bytes", "Bytes the tests moved in the current budget period.")
	m.DataBudgetPeriodEnd = r.gauge("radar_data_budget_period_end_timestamp_seconds", "Unix time the current budget period ends (0 until the clock is trusted).")
	m.TestsSkipped = r.counterVec("radar_tests_skipped_total", "Scheduled test runs skipped, by reason.", "reason")
	m.TestsOverBudget = r.counterVec("radar_tests_over_budget_total", "Test runs requested (not scheduled) while the data budget was spent or the run would exceed it; they run anyway.", "source")
	m.OutboxDepth = r.gauge("radar_outbox_records", "Results waiting for upload.")
	m.OutboxBytes = r.gauge("radar_outbox_bytes", "Bytes held by the outbox.")
	m.OutboxEvictions = r.counter("radar_outbox_evictions_total", "Results the outbox dropped to stay within its byte bound (since the outbox was created).")
	m.OutboxUnreadable = r.counter("radar_outbox_unreadable_total", "Reads of an outbox record that failed with a permission or I/O error; the record is kept and read again later.")
	m.Uploads = r.counterVec("radar_uploads_total", "Upload attempts by result.", "result")
	m.ResultsDropped = r.counter("radar_results_dropped_total", "Entries of results.jsonl deleted by its rotation (current file up to 16 MiB plus one rotated copy are kept).")
	m.UpdateState = r.gaugeVec("radar_update_state", "Updater state from the status file (value 1).", "state", "to_version")
	m.UpdateEvents = r.counterVec("radar_update_events_total", "Update hand-offs and outcomes seen by the agent.", "event")
	m.NetCheckPass = r.gaugeVec("radar_network_check_pass", "Network preflight verdict per requirement row (1 pass, 0 fail).", "row")
	m.NetCheckTime = r.gauge("radar_network_check_timestamp_seconds", "Unix time of the last network preflight.")
	r.addRuntime()
	return m
}
