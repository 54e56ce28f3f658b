package config

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// loaders runs each binary's loader; the updater needs a readable root CA.
func loaders(t *testing.T) map[string]func(map[string]string) (any, error) {
	ca := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return map[string]func(map[string]string) (any, error){
		"agent": func(env map[string]string) (any, error) { return LoadAgent(env) },
		"updater": func(env map[string]string) (any, error) {
			env["RADAR_ROOT_CA_FILE"] = ca
			return LoadUpdater(env)
		},
	}
}

// TestBoundsOfDurationsAndSizes: every duration and size is refused outside
// its range, with exit-2 errors that name the variable and the range; the
// bounds themselves are accepted. Sizes that int64 cannot hold are refused,
// not wrapped (17179869185GiB is 2^64 + 1 GiB: it used to become 1 GiB).
func TestBoundsOfDurationsAndSizes(t *testing.T) {
	load := loaders(t)
	tests := []struct {
		binary, name, value string
		want                int64  // the parsed value when accepted
		problem             string // "" = accepted
		allowed             string
	}{
		{"agent", "RADAR_PING_INTERVAL", "1s", int64(time.Second), "", ""},
		{"agent", "RADAR_PING_INTERVAL", "1h", int64(time.Hour), "", ""},
		{"agent", "RADAR_PING_INTERVAL", "999ms", 0, "too small: must be at least 1s", "a duration from 1s to 1h, such as 15s"},
		{"agent", "RADAR_PING_INTERVAL", "0", 0, "too small: must be at least 1s", "from 1s to 1h"},
		{"agent", "RADAR_PING_INTERVAL", "-15s", 0, "negative: must be at least 1s", "from 1s to 1h"},
		{"agent", "RADAR_PING_INTERVAL", "1h0m0.001s", 0, "too large: must be at most 1h", "from 1s to 1h"},
		{"agent", "RADAR_PING_INTERVAL", "2562047h", 0, "too large: must be at most 1h", "from 1s to 1h"},

		{"agent", "RADAR_TEST_TIMEOUT", "5s", int64(5 * time.Second), "", ""},
		{"agent", "RADAR_TEST_TIMEOUT", "30m", int64(30 * time.Minute), "", ""},
		{"agent", "RADAR_TEST_TIMEOUT", "4s", 0, "too small: must be at least 5s", "a duration from 5s to 30m, such as 2m"},
		{"agent", "RADAR_TEST_TIMEOUT", "31m", 0, "too large: must be at most 30m", "from 5s to 30m"},
		// The largest duration there is: plus the lock margin it used to
		// overflow into a lock written already expired.
		{"agent", "RADAR_TEST_TIMEOUT", "2562047h47m16.854775807s", 0, "too large: must be at most 30m", "from 5s to 30m"},
		{"agent", "RADAR_TEST_TIMEOUT", "2562048h", 0, problemUnparsable, "from 5s to 30m"},

		{"agent", "RADAR_OUTBOX_MAX_BYTES", "64KiB", 64 << 10, "", ""},
		{"agent", "RADAR_OUTBOX_MAX_BYTES", "65536", 64 << 10, "", ""},
		{"agent", "RADAR_OUTBOX_MAX_BYTES", "1GiB", 1 << 30, "", ""},
		{"agent", "RADAR_OUTBOX_MAX_BYTES", "1073741824B", 1 << 30, "", ""},
		{"agent", "RADAR_OUTBOX_MAX_BYTES", "65535", 0, "too small: must be at least 64KiB", "a size from 64KiB to 1GiB: bytes, or with a KiB, MiB or GiB suffix (e.g. 64MiB)"},
		{"agent", "RADAR_OUTBOX_MAX_BYTES", "-1", 0, "negative: must be at least 64KiB", "from 64KiB to 1GiB"},
		{"agent", "RADAR_OUTBOX_MAX_BYTES", "1073741825", 0, "too large: must be at most 1GiB", "from 64KiB to 1GiB"},
		{"agent", "RADAR_OUTBOX_MAX_BYTES", "2GiB", 0, "too large: must be at most 1GiB", "from 64KiB to 1GiB"},
		{"agent", "RADAR_OUTBOX_MAX_BYTES", "17179869185GiB", 0, "out of range: must be from 64KiB to 1GiB", "from 64KiB to 1GiB"},
		{"agent", "RADAR_OUTBOX_MAX_BYTES", "8589934592GiB", 0, "out of range: must be from 64KiB to 1GiB", "from 64KiB to 1GiB"},
		{"agent", "RADAR_OUTBOX_MAX_BYTES", "8589934591GiB", 0, "too large: must be at most 1GiB", "from 64KiB to 1GiB"},
		{"agent", "RADAR_OUTBOX_MAX_BYTES", "9223372036854775807", 0, "too large: must be at most 1GiB", "from 64KiB to 1GiB"},
		{"agent", "RADAR_OUTBOX_MAX_BYTES", "9223372036854775808", 0, "out of range: must be from 64KiB to 1GiB", "from 64KiB to 1GiB"},
		{"agent", "RADAR_OUTBOX_MAX_BYTES", "-17179869185GiB", 0, "out of range: must be from 64KiB to 1GiB", "from 64KiB to 1GiB"},
		{"agent", "RADAR_OUTBOX_MAX_BYTES", "lots", 0, problemUnparsable, "from 64KiB to 1GiB"},

		// Data plans are sold in decimal units; binary ones work too. 0 and
		// empty mean no budget, whatever the range.
		{"agent", "RADAR_DATA_BUDGET", "50GB", 50e9, "", ""},
		{"agent", "RADAR_DATA_BUDGET", "500MiB", 500 << 20, "", ""},
		{"agent", "RADAR_DATA_BUDGET", "2TiB", 2 << 40, "", ""},
		{"agent", "RADAR_DATA_BUDGET", "1MB", 1e6, "", ""},
		{"agent", "RADAR_DATA_BUDGET", "1000TB", 1000e12, "", ""},
		{"agent", "RADAR_DATA_BUDGET", "0", 0, "", ""},
		{"agent", "RADAR_DATA_BUDGET", "", 0, "", ""},
		{"agent", "RADAR_DATA_BUDGET", "999kB", 0, "too small: must be at least 1MB", "0 or empty (off), or a size from 1MB to 1000TB"},
		{"agent", "RADAR_DATA_BUDGET", "1001TB", 0, "too large: must be at most 1000TB", "from 1MB to 1000TB"},
		{"agent", "RADAR_DATA_BUDGET", "-5GB", 0, "negative: must be at least 1MB", "from 1MB to 1000TB"},
		{"agent", "RADAR_DATA_BUDGET", "9300000000000000000B", 0, "out of range: must be from 1MB to 1000TB", "from 1MB to 1000TB"},
		{"agent", "RADAR_DATA_BUDGET", "9223373TB", 0, "out of range: must be from 1MB to 1000TB", "from 1MB to 1000TB"},
		{"agent", "RADAR_DATA_BUDGET", "50 gigs", 0, problemUnparsable, "from 1MB to 1000TB"},
		{"agent", "RADAR_DATA_BUDGET_RESET_DAY", "1", 1, "", ""},
		{"agent", "RADAR_DATA_BUDGET_RESET_DAY", "28", 28, "", ""},
		{"agent", "RADAR_DATA_BUDGET_RESET_DAY", "29", 0, "too large: must be at most 28", "a whole number from 1 to 28"},
		{"agent", "RADAR_DATA_BUDGET_RESET_DAY", "0", 0, "too small: must be at least 1", "from 1 to 28"},
		{"agent", "RADAR_DATA_BUDGET_RESET_DAY", "-3", 0, "negative: must be at least 1", "from 1 to 28"},
		{"agent", "RADAR_DATA_BUDGET_RESET_DAY", "first", 0, problemUnparsable, "from 1 to 28"},

		{"updater", "RADAR_HEALTH_TIMEOUT", "1s", int64(time.Second), "", ""},
		{"updater", "RADAR_HEALTH_TIMEOUT", "1h", int64(time.Hour), "", ""},
		{"updater", "RADAR_HEALTH_TIMEOUT", "0s", 0, "too small: must be at least 1s", "a duration from 1s to 1h, such as 90s"},
		{"updater", "RADAR_HEALTH_TIMEOUT", "1000h", 0, "too large: must be at most 1h", "from 1s to 1h"},
		{"updater", "RADAR_TEST_TIMEOUT", "30m", int64(30 * time.Minute), "", ""},
		{"updater", "RADAR_TEST_TIMEOUT", "4s", 0, "too small: must be at least 5s", "from 5s to 30m"},
		// Twice this bounds the updater's wait for the lock.
		{"updater", "RADAR_TEST_TIMEOUT", "1500000h", 0, "too large: must be at most 30m", "from 5s to 30m"},
	}
	for _, tt := range tests {
		t.Run(tt.binary+"/"+tt.name+"="+tt.value, func(t *testing.T) {
			cfg, err := load[tt.binary](map[string]string{tt.name: tt.value})
			if tt.problem == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if got := fieldInt(t, cfg, tt.name); got != tt.want {
					t.Fatalf("parsed as %d, want %d", got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted as %d", fieldInt(t, cfg, tt.name))
			}
			es, ok := err.(Errors)
			if !IsConfigError(err) || !ok || len(es) != 1 {
				t.Fatalf("want exactly one configuration error, got %v", err)
			}
			e := es[0]
			if e.Var != tt.name || e.Value != tt.value || e.Problem != tt.problem || !strings.Contains(e.Allowed, tt.allowed) {
				t.Fatalf("error %+v, want %s=%q: %s; allowed %q", *e, tt.name, tt.value, tt.problem, tt.allowed)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.name) || !strings.Contains(msg, "allowed: ") {
				t.Fatalf("message does not name the variable and the allowed range: %s", msg)
			}
		})
	}
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	sizeType     = reflect.TypeOf(ByteSize(0))
)

// fieldInt reads the variable's parsed value from cfg.
func fieldInt(t *testing.T, cfg any, name string) int64 {
	t.Helper()
	for _, f := range fieldsOf(cfg) {
		if f.name == name {
			return reflect.ValueOf(cfg).FieldByIndex(f.index).Int()
		}
	}
	t.Fatalf("no variable %s", name)
	return 0
}

// TestEveryDurationAndSizeIsBounded: a new duration or size variable
// cannot be added without a range, its bounds parse, its default lies
// within them, a variable both binaries read has the same range in both,
// and the largest accepted values leave room for what the code adds to
// them (the lock margin, twice the test timeout).
func TestEveryDurationAndSizeIsBounded(t *testing.T) {
	shared := map[string]string{}
	for _, cfg := range []any{Agent{}, Updater{}} {
		for _, f := range fieldsOf(cfg) {
			if f.typ != durationType && f.typ != sizeType && f.typ.Kind() != reflect.Int {
				if f.min != "" || f.max != "" {
					t.Errorf("%s: bounds on a %s", f.name, f.typ)
				}
				continue
			}
			if f.min == "" || f.max == "" {
				t.Errorf("%s has no range (min and max tags)", f.name)
				continue
			}
			lo, hi := f.bounds()
			var def int64
			switch f.typ {
			case durationType:
				d, err := time.ParseDuration(f.def)
				if err != nil {
					t.Fatalf("%s: default %q: %v", f.name, f.def, err)
				}
				def = int64(d)
			case sizeType:
				def = mustSize(f.def)
			default:
				n, err := strconv.Atoi(f.def)
				if err != nil {
					t.Fatalf("%s: default %q: %v", f.name, f.def, err)
				}
				def = int64(n)
			}
			if f.zeroOff && def == 0 {
				// Off by default: the bounds apply to the values that turn it on.
			} else if !(0 < lo && lo <= def && def <= hi) {
				t.Errorf("%s: default %s outside %s", f.name, f.def, f.rangeText())
			}
			// Twice the maximum plus a margin still fits (the updater's
			// lock budget, the agent's lock expiry).
			if hi > (math.MaxInt64-int64(time.Hour))/2 {
				t.Errorf("%s: maximum %s leaves no room for arithmetic", f.name, f.max)
			}
			if r, seen := shared[f.name]; seen && r != f.rangeText() {
				t.Errorf("%s: %s in one binary, %s in the other", f.name, r, f.rangeText())
			}
			shared[f.name] = f.rangeText()
		}
	}
	if len(shared) < 4 {
		t.Fatalf("only %d bounded variables found: %v", len(shared), shared)
	}
}
