package ookla

import (
	"testing"
)

// FuzzParseServerList: the CLI's `--servers` answer is untrusted output of
// a closed-source binary (and whatever a broken install prints): no input
// may panic, and a list accepted is never empty.
func FuzzParseServerList(f *testing.F) {
	f.Add([]byte(`{"type":"serverList","timestamp":"2026-01-01T00:00:00Z","servers":[{"id":52973,"host":"opstelecom.ravisystems.com.br","port":8080,"name":"Ops Telecom","location":"Sorocaba","country":"Brazil"}]}`))
	f.Add([]byte(`{"type":"log","level":"error","message":"Configuration - Couldn't resolve host name"}` + "\n" + `{"type":"serverList","servers":[]}`))
	f.Add([]byte(`{"type":"serverList","servers":[{"id":"x","port":-1}]}`))
	f.Add([]byte(`{"type":"serverList","servers":null}` + "\r\n"))
	f.Add([]byte("Speedtest by Ookla\n\x00\xff"))
	f.Fuzz(func(t *testing.T, out []byte) {
		servers, err := ParseServerList(out)
		if err == nil && len(servers) == 0 {
			t.Fatalf("accepted an empty server list from %q", out)
		}
	})
}
