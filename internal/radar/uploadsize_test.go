package radar

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"testing"
)

// TestUploadBytesPerResult measures what one upload puts on the wire
// (the multipart body; HTTP and TLS headers add a few hundred bytes more)
// for real results, and checks the body is exactly as long as announced.
// The protocol says "no compression" for uploads, so the pod sends the
// result as measured; the gzip figure says what a service that accepted
// it would save.
func TestUploadBytesPerResult(t *testing.T) {
	id := Identity{UnixUser: "rlp0s0rdgaao", Secret: "0123456789abcdef0123456789abcdef"}
	tests := []struct {
		style, file string
	}{
		{StyleNDT7, "testdata/ndt7-result.ndjson"},
		{StyleOokla, "testdata/ookla-result.json"},
	}
	for _, tt := range tests {
		t.Run(tt.style, func(t *testing.T) {
			result, err := os.ReadFile(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			p, _, err := multipartBody(id, Measurement{Style: tt.style, Interface: "eth0", Result: result})
			if err != nil {
				t.Fatal(err)
			}
			rc, _ := p.get()
			body, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(body)) != p.size {
				t.Fatalf("body is %d bytes, Content-Length says %d", len(body), p.size)
			}
			if !bytes.Contains(body, result) {
				t.Fatal("the result is not in the body as measured")
			}
			overhead := len(body) - len(result)
			if overhead > 1024 {
				t.Errorf("multipart overhead %d bytes, want at most 1 KiB", overhead)
			}
			var z bytes.Buffer
			zw := gzip.NewWriter(&z)
			zw.Write(result)
			zw.Close()
			t.Logf("%s: result %d B, upload body %d B (multipart %d B); gzip would make the result %d B (%.0f%%)",
				tt.style, len(result), len(body), overhead, z.Len(), 100*float64(z.Len())/float64(len(result)))
		})
	}
}
