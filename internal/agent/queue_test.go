package agent

import (
	"reflect"
	"testing"
)

func TestRequestFor(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
	}{
		{nil, []string{""}},
		{[]string{}, []string{""}},
		{[]string{"wlan0", "eth0", "eth0"}, []string{"eth0", "wlan0"}},
		{[]string{"", "eth0"}, []string{"", "eth0"}},
	}
	for _, tt := range tests {
		if got := requestFor(tt.in).targets(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("requestFor(%q).targets() = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRunQueueCoalescesNeverDrops(t *testing.T) {
	q := newRunQueue()
	if _, ok := q.take(); ok {
		t.Fatal("empty queue yielded a run")
	}
	q.add(requestFor(nil))
	r, ok := q.take()
	if !ok || !reflect.DeepEqual(r.targets(), []string{""}) {
		t.Fatalf("first run = %+v, %v", r, ok)
	}
	if !q.busy() {
		t.Fatal("queue not busy while a run is in progress")
	}
	// Three requests during the run collapse into one pending run holding all targets.
	if q.add(requestFor([]string{"eth0"})) {
		t.Fatal("first request during a run reported as merged")
	}
	if !q.add(requestFor([]string{"wlan0"})) || !q.add(requestFor(nil)) {
		t.Fatal("later requests not merged")
	}
	if q.depth() != 1 {
		t.Fatalf("depth = %d, want 1", q.depth())
	}
	q.done()
	r, ok = q.take()
	if !ok || !reflect.DeepEqual(r.targets(), []string{"", "eth0", "wlan0"}) {
		t.Fatalf("coalesced run = %q, %v", r.targets(), ok)
	}
	q.done()
	if q.busy() {
		t.Fatal("queue busy after the last run")
	}
}
