package outbox

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/wallclock"
)

// FuzzDecode: no file content may crash the store, and anything decode
// accepts is exactly what encode would write.
func FuzzDecode(f *testing.F) {
	seeds := []Record{
		{ID: formatID(1, 2), CreatedAt: time.Unix(1700000000, 5), Clock: wallclock.Stamp{Synced: true, Source: wallclock.SourceKernel},
			Runner: "ndt7", Style: "NDT7", Result: []byte(`{"Download":{"Value":93.1}}`)},
		{ID: formatID(5, 6), Clock: wallclock.Stamp{Source: wallclock.SourceUnsynced, BootID: "b", Boot: time.Minute}, Runner: "ookla"},
		{ID: formatID(3, 4), Runner: "ookla", Style: "OOKLA", Interface: "wlan0", Wireless: true, ConnectionInfo: json.RawMessage(`{"ssid":"x"}`), ErrorClass: "timeout"},
		{},
	}
	for _, r := range seeds {
		b := encode(&r)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte("RPOB"))
	if v1, err := os.ReadFile(filepath.Join("testdata", v1Record)); err == nil {
		f.Add(v1)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decode(b)
		if err != nil {
			return
		}
		again := encode(&r)
		if b[4] == 1 {
			// A version-1 record is rewritten as version 2, losing nothing.
			r2, err := decode(again)
			if err != nil || !reflect.DeepEqual(r2, r) {
				t.Fatalf("version 1 %x decodes to %+v, re-encoded to %+v (%v)", b, r, r2, err)
			}
			return
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("decode accepted %x but encodes back to %x", b, again)
		}
	})
}
