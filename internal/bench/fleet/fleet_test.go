package fleet

import (
	"context"
	"testing"
	"time"
)

func smallFleet() Options {
	o := Options{Pods: 200, Seed: 1}
	o.Defaults()
	return o
}

// After a restart every pod is back on the channel.
func TestRestartEveryPodReconnects(t *testing.T) {
	o := smallFleet()
	r, err := Restart(o, false)
	if err != nil {
		t.Fatal(err)
	}
	if r.Dropped != o.Pods || r.Reconnects != o.Pods {
		t.Fatalf("dropped %d, reconnected %d; want %d each", r.Dropped, r.Reconnects, o.Pods)
	}
}

// Pods that reconnect during the restart are refused and try again; the
// attempts outnumber the pods, and the first attempts are spread, not one
// wave: no second holds the whole fleet.
func TestRestartSpreadsAttempts(t *testing.T) {
	o := smallFleet()
	f := NewFleet(o)
	f.svc.Down(0, o.RestartDown)
	f.DropAll()
	f.RunUntil(time.Hour, func() bool { return f.Connected() == o.Pods })
	if f.Connected() != o.Pods {
		t.Fatalf("%d of %d pods back", f.Connected(), o.Pods)
	}
	total := 0
	peak, _ := PeakMean(f.svc.Attempts(Cable), 0, len(f.svc.Attempts(Cable)))
	for _, n := range f.svc.Attempts(Cable) {
		total += n
	}
	if total <= o.Pods {
		t.Errorf("%d cable attempts for %d pods: none refused during the restart", total, o.Pods)
	}
	if peak >= o.Pods/2 {
		t.Errorf("%d of %d pods tried in one second: a wave", peak, o.Pods)
	}
}

// Every queued result is delivered exactly once, with an unlimited service
// and with one that answers 503 or 429 with Retry-After above capacity.
func TestOutageDeliversEveryResultOnce(t *testing.T) {
	tests := []struct {
		name   string
		capped bool
		t429   bool
	}{
		{"unlimited", false, false},
		{"503 above capacity", true, false},
		{"429 above capacity", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := smallFleet()
			o.Outage = 20 * time.Minute
			o.Capacity = 20 // below the fleet's demand: the service refuses some
			o.Throttle429 = tt.t429
			r, err := Outage(o, tt.capped)
			if err != nil {
				t.Fatal(err)
			}
			if want := o.Pods * o.Results; r.Delivered != want || r.Duplicates != 0 || r.Lost != 0 {
				t.Fatalf("delivered %d, duplicates %d, left %d; want %d, 0, 0", r.Delivered, r.Duplicates, r.Lost, want)
			}
			if tt.capped && r.PeakAccepted > o.Capacity {
				t.Errorf("service stored %d in a second, above its capacity %d", r.PeakAccepted, o.Capacity)
			}
		})
	}
}

// The service's capacity holds and is seen: above it, pods are answered
// 503 and come back later rather than at once.
func TestServiceCapacity(t *testing.T) {
	var s Sim
	svc := NewService(&s)
	svc.Capacity, svc.RetryAfter = 2, 30*time.Second
	var errs []error
	s.At(0, func() {
		for range 3 {
			errs = append(errs, svc.call(Upload))
		}
	})
	s.At(time.Second, func() { errs = append(errs, svc.call(Upload)) })
	s.Run(time.Minute)
	if errs[0] != nil || errs[1] != nil || errs[2] == nil || errs[3] != nil {
		t.Fatalf("answers %v; want two accepted, one refused, then a new second accepted", errs)
	}
	if got := svc.Attempts(Upload); len(got) != 2 || got[0] != 3 || got[1] != 1 {
		t.Errorf("attempts per second %v, want [3 1]", got)
	}
}

func TestRunRecordsFigures(t *testing.T) {
	o := Options{Pods: 200, Outage: 10 * time.Minute, Command: "radar-bench fleet -pods 200"}
	figs, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range figs {
		names[f.Name] = true
		if f.Command == "" || f.Unit == "" {
			t.Errorf("figure %s lacks command or unit", f.Name)
		}
	}
	for _, n := range []string{"fleet/restart/peak_to_mean", "fleet/restart/p99_reconnect_s",
		"fleet/outage_1h/peak_uploads_per_s", "fleet/outage_1h/drain_s", "fleet/outage_1h/delivered"} {
		if !names[n] {
			t.Errorf("figure %s missing", n)
		}
	}
}
