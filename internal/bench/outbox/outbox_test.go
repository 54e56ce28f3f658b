package outbox

import (
	"testing"

	"github.com/radarpod/radarpod/internal/radartest"
)

// The buffered results must be real Ookla results the service parses, told
// apart by their result id, and as large as the real one.
func TestPayloadsAreDistinctRealResults(t *testing.T) {
	seen := map[string]bool{}
	for _, i := range []int{0, 1, 9999} {
		p := payload(ooklaResult, i)
		if len(p) != len(ooklaResult) {
			t.Fatalf("payload %d is %d bytes, the real result %d", i, len(p), len(ooklaResult))
		}
		r, err := radartest.ParseOokla(p)
		if err != nil {
			t.Fatalf("payload %d: %v", i, err)
		}
		if r.ResultID != resultID(i) || seen[r.ResultID] {
			t.Fatalf("payload %d has result id %q", i, r.ResultID)
		}
		seen[r.ResultID] = true
	}
	if _, err := radartest.ParseNDT7(ndt7Result); err != nil {
		t.Fatalf("embedded NDT7 result: %v", err)
	}
}
