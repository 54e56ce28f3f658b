package backoff

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter bounds how long a server's Retry-After can hold a pod back:
// a wrong or hostile answer ("come back in a year") must not silence a pod
// for good. A pod told more waits this long, plus the spread below.
const MaxRetryAfter = time.Hour

// ParseRetryAfter reads a Retry-After header value (RFC 9110 §10.2.3):
// either delay-seconds or an HTTP-date. A date is measured from date, the
// answer's own Date header, when that parses — both then come from the
// server's clock, so a pod whose clock is off (a Pi without RTC at 1970)
// still waits what it was told — and from now otherwise. ok is false for
// an absent or malformed value; a date in the past is a wait of 0. The
// result is capped at MaxRetryAfter.
func ParseRetryAfter(value, date string, now time.Time) (d time.Duration, ok bool) {
	value = strings.TrimSpace(value)
	if value == "" {
		return 0, false
	}
	if value[0] >= '0' && value[0] <= '9' {
		secs, err := strconv.ParseUint(value, 10, 63)
		if err != nil {
			// Digits too many for an int64 are still "a very long time".
			if ne, isNum := err.(*strconv.NumError); !isNum || ne.Err != strconv.ErrRange {
				return 0, false
			}
			return MaxRetryAfter, true
		}
		if secs >= uint64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter, true
		}
		return time.Duration(secs) * time.Second, true
	}
	at, err := http.ParseTime(value)
	if err != nil {
		return 0, false
	}
	if served, err := http.ParseTime(strings.TrimSpace(date)); err == nil {
		now = served
	}
	d = at.Sub(now)
	switch {
	case d < 0:
		return 0, true
	case d > MaxRetryAfter:
		return MaxRetryAfter, true
	}
	return d, true
}

// RetryAfter is ParseRetryAfter on an answer's headers.
func RetryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	return ParseRetryAfter(h.Get("Retry-After"), h.Get("Date"), now)
}

// Spread returns hint plus a random extra of up to half of it (at least up
// to a second): pods told the same Retry-After — every pod behind one
// overloaded service is — come back spread over a window instead of in
// one wave at the same instant. The extra is only ever added: a pod never
// returns before it was told. u is uniform in [0, 1).
func Spread(hint time.Duration, u float64) time.Duration {
	if hint <= 0 {
		return 0
	}
	window := max(hint/2, time.Second)
	return hint + time.Duration(u*float64(window))
}

// After returns the delay before the next attempt after a failure that
// came with a server's hint (0 when it gave none): the longer of the
// backoff's own next delay and the spread hint. The backoff advances
// either way, so an answer that asks for patience (429, 503) never makes
// the next retry come sooner than the backoff alone would.
func (b *Backoff) After(hint time.Duration) time.Duration {
	d := b.Next()
	if hint > 0 {
		d = max(d, Spread(hint, rand.Float64()))
	}
	return d
}
