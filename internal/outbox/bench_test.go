package outbox

import (
	"syscall"
	"testing"
)

// BenchmarkPutRemove measures one result's full trip through the outbox
// (durable Put, then durable Remove after a 201) and reports what a stored
// result costs on disk: its file size and the blocks the filesystem
// allocates for it.
func BenchmarkPutRemove(b *testing.B) {
	ookla := fixture(b, "ookla-result.json")
	ndt7 := fixture(b, "ndt7-result.ndjson")
	for _, c := range []struct {
		name    string
		payload []byte
	}{
		{"1KB", padTo(ookla, 1024)},
		{"150KB", padTo(ndt7, 150<<10)},
	} {
		b.Run(c.name, func(b *testing.B) {
			s, err := Open(Options{Dir: b.TempDir(), MaxBytes: 64 << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			rec := Record{Runner: "ndt7", Style: "NDT7", Interface: "eth0", Result: c.payload}
			r := mustPut(b, s, rec)
			var st syscall.Stat_t
			if err := syscall.Stat(s.path(r.ID), &st); err != nil {
				b.Fatal(err)
			}
			if err := s.Remove(r.ID); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(c.payload)))
			b.ReportAllocs()
			for b.Loop() {
				r, err := s.Put(rec)
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Remove(r.ID); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(st.Size), "file-B/record")
			b.ReportMetric(float64(st.Size-int64(len(c.payload))), "overhead-B/record")
			b.ReportMetric(float64(st.Blocks*512), "disk-B/record")
		})
	}
}

// padTo repeats a real result up to n bytes so the payload looks like one.
func padTo(seed []byte, n int) []byte {
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, seed[:min(len(seed), n-len(out))]...)
	}
	return out
}
