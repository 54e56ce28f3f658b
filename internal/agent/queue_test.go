package agent

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/radarpod/radarpod/internal/radar"
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
	if merged, _ := q.add(requestFor([]string{"eth0"})); merged {
		t.Fatal("first request during a run reported as merged")
	}
	if m1, _ := q.add(requestFor([]string{"wlan0"})); !m1 {
		t.Fatal("later requests not merged")
	}
	if m2, _ := q.add(requestFor(nil)); !m2 {
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

// TestRunQueueBoundsCoalescedInterfaces: requests coalescing during a long
// run cannot pile up more than radar.MaxTestInterfaces names; the first
// ones stay, repeats cost nothing, the rest is counted as dropped.
func TestRunQueueBoundsCoalescedInterfaces(t *testing.T) {
	q := newRunQueue()
	q.add(requestFor(nil))
	q.take() // a run in progress
	var want []string
	for i := range radar.MaxTestInterfaces {
		want = append(want, fmt.Sprintf("if%02d", i))
	}
	q.add(requestFor(want[:10]))
	if _, dropped := q.add(requestFor(want[5:])); dropped != 0 {
		t.Fatalf("%d dropped within the bound", dropped)
	}
	for i, tc := range []struct {
		names   []string
		dropped int
	}{
		{[]string{"extra0", "if03"}, 1},
		{[]string{"extra1", "extra2", "extra3"}, 3},
		{want, 0},
	} {
		if merged, dropped := q.add(requestFor(tc.names)); !merged || dropped != tc.dropped {
			t.Errorf("request %d: merged %v, dropped %d; want merged, %d dropped", i, merged, dropped, tc.dropped)
		}
	}
	q.done()
	r, _ := q.take()
	if got := r.targets(); !reflect.DeepEqual(got, want) {
		t.Fatalf("coalesced run = %q, want %q", got, want)
	}
}
