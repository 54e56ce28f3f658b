package netcheck

import "testing"

// TestUnreachable: the log line names each failed row by its first failed
// endpoint and step, counts the rest, and says nothing when all passed.
func TestUnreachable(t *testing.T) {
	ok := RowResult{ID: "pods", Verdict: Pass, Probes: []ProbeResult{{Target: "radar.example:443", OK: true}}}
	dns := RowResult{ID: "locate", Verdict: Fail, Step: StepDNS, Probes: []ProbeResult{
		{Target: "locate.measurementlab.net:443", Step: StepDNS},
		{Target: "locate.measurementlab.net:80", Step: StepDNS},
		{Target: "passing.example:443", OK: true},
	}}
	noProbe := RowResult{ID: "ookla", Verdict: Fail, Step: "discover"}
	tls := RowResult{ID: "sentry", Verdict: Fail, Step: StepTCP, Probes: []ProbeResult{{Target: "o1.ingest.sentry.io:443", Step: StepTLS}}}
	for _, tc := range []struct {
		name string
		rows []RowResult
		want string
	}{
		{"all passed", []RowResult{ok}, ""},
		{"nothing", nil, ""},
		{"several", []RowResult{ok, dns, noProbe, tls}, "3 of 4 rows failed: locate locate.measurementlab.net:443 (dns) and 1 more, ookla (discover), sentry o1.ingest.sentry.io:443 (tls)"},
	} {
		if got := (Report{Rows: tc.rows}).Unreachable(); got != tc.want {
			t.Errorf("%s: %q\nwant %q", tc.name, got, tc.want)
		}
	}
}
