package footprint

import (
	"os"
	"testing"
)

func TestMemoryOfThisProcess(t *testing.T) {
	rss, hwm, err := memory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 0 || hwm < rss {
		t.Fatalf("VmRSS %d, VmHWM %d", rss, hwm)
	}
}
