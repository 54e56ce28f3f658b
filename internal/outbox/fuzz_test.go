package outbox

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// FuzzDecode: no file content may crash the store, and anything decode
// accepts is exactly what encode would write.
func FuzzDecode(f *testing.F) {
	seeds := []Record{
		{ID: formatID(1, 2), CreatedAt: time.Unix(1700000000, 5), Runner: "ndt7", Style: "NDT7", Result: []byte(`{"Download":{"Value":93.1}}`)},
		{ID: formatID(3, 4), Runner: "ookla", Style: "OOKLA", Interface: "wlan0", Wireless: true, ConnectionInfo: json.RawMessage(`{"ssid":"x"}`), ErrorClass: "timeout"},
		{},
	}
	for _, r := range seeds {
		b := encode(&r)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte("RPOB"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decode(b)
		if err != nil {
			return
		}
		if again := encode(&r); !bytes.Equal(again, b) {
			t.Fatalf("decode accepted %x but encodes back to %x", b, again)
		}
	})
}
