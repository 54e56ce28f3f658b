package handoff

import (
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/wallclock"
)

// TestTestLockTTLNeverExpiresAtOnce: whatever ttl the agent computes, the
// lock it writes holds now and names an expiry. A test timeout near the
// largest duration plus the agent's 30 s margin wraps negative; the largest
// duration itself overflows the boot clock and a JSON time. Each used to
// write a lock already expired (or one without an expiry).
func TestTestLockTTLNeverExpiresAtOnce(t *testing.T) {
	const maxDuration = time.Duration(math.MaxInt64)
	wrapped := maxDuration - 10*time.Second
	wrapped += 30 * time.Second // the agent's lock margin, in int64 arithmetic
	tests := []struct {
		name     string
		ttl      time.Duration
		expireIn time.Duration // from now, within a minute
	}{
		{"a normal test timeout plus margin", 2*time.Minute + 30*time.Second, 2*time.Minute + 30*time.Second},
		{"the largest accepted test timeout plus margin", 30*time.Minute + 30*time.Second, 30*time.Minute + 30*time.Second},
		{"the maximum", MaxLockTTL, MaxLockTTL},
		{"beyond the maximum", MaxLockTTL + time.Hour, MaxLockTTL},
		{"the largest duration", maxDuration, MaxLockTTL},
		{"a timeout plus margin that wrapped negative", wrapped, MaxLockTTL},
		{"zero", 0, MaxLockTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), TestLockFile)
			l := &TestLock{Paths: []string{path}}
			before := wallclock.Now()
			if err := l.Acquire("ndt7", tt.ttl); err != nil {
				t.Fatal(err)
			}
			now := wallclock.Now()
			active, info, err := LockActive(path, now, time.Minute)
			if !active || err != nil {
				t.Fatalf("lock with ttl %v not active right after Acquire: %v, %+v", tt.ttl, err, info)
			}
			if info.ExpiresAt.IsZero() {
				t.Fatalf("lock names no expiry: %+v", info)
			}
			want := before.Wall.Add(tt.expireIn)
			if d := info.ExpiresAt.Sub(want); d < 0 || d > time.Minute {
				t.Errorf("expires at %v, want about %v", info.ExpiresAt, want)
			}
			if d := info.BootExpires - before.Boot - tt.expireIn; info.BootID != "" && (d < 0 || d > time.Minute) {
				t.Errorf("boot expiry %v after %v, want %v later", info.BootExpires, before.Boot, tt.expireIn)
			}
			// Still held just before it expires, stale just after.
			if active, _, _ := LockActive(path, now.Add(tt.expireIn-time.Minute), time.Minute); !active {
				t.Errorf("lock stale a minute before its expiry")
			}
			if active, _, _ := LockActive(path, now.Add(tt.expireIn+time.Minute), time.Minute); active {
				t.Errorf("lock still active a minute after its expiry")
			}
			if err := l.Release(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
