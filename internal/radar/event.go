package radar

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// EventKind says what the service asked for.
type EventKind string

// Event kinds. The service uses two shapes for each request: a direct
// transmit during sync ({"type":"run_test",...}) and a channel broadcast
// ({"message":{"event":"test_requested",...}}); both map to one kind.
const (
	// RunTest: run_test / test_requested. Interfaces nil = default route.
	RunTest EventKind = "run_test"
	// Update: update / version_changed, with Version and BinaryURL.
	Update EventKind = "update"
	// WatchdogUpdate: update_watchdog / watchdog_version_changed. Container
	// pods have no watchdog; the agent logs and ignores these.
	WatchdogUpdate EventKind = "watchdog_update"
	// Unknown: an unknown or malformed message; Err says why. It never
	// ends the channel.
	Unknown EventKind = "unknown"
)

// MaxTestInterfaces bounds the interfaces one test request may name: a pod
// has a handful, and every name costs a run of every runner.
const MaxTestInterfaces = 16

// Event is an application message from the service.
type Event struct {
	Kind EventKind
	// Interfaces to test; nil means the default route. At most
	// MaxTestInterfaces distinct names, each a valid interface name (or ""
	// for the default route).
	Interfaces []string
	// Refused counts the names of a run_test that were not kept: not a
	// valid interface name, or beyond MaxTestInterfaces. RefusedSample
	// quotes the first few, shortened, for the log.
	Refused       int
	RefusedSample []string
	// Version and BinaryURL of an announced release (BinaryURL is a path
	// on the service; container pods never download it).
	Version   string
	BinaryURL string
	// Raw is the frame as received.
	Raw []byte
	// Err is set for Unknown.
	Err error
}

// Handler receives what the live channel learns. Its methods are called on
// the channel's goroutine and must not block: pings are answered on the
// same goroutine, and a handler that runs a test inline would let the
// service declare the pod offline.
type Handler interface {
	// Connected: the subscription is confirmed and sync was sent.
	Connected()
	// Disconnected is called after every attempt ends (failed dial,
	// rejection, drop, dead channel, shutdown), with the reason; it may
	// come several times without a Connected in between.
	// errors.Is(err, ErrUnauthorized) means the credentials were refused.
	Disconnected(err error)
	// Heartbeat: a protocol ping arrived.
	Heartbeat()
	// Event: an application message (see EventKind).
	Event(Event)
}

var errNoVersion = errors.New("update without version")

// transmitEvent decodes the direct form sent during sync.
func transmitEvent(typ string, msg json.RawMessage, raw []byte) Event {
	switch typ {
	case "run_test":
		return runTestEvent(msg, raw)
	case "update":
		return updateEvent(Update, msg, raw)
	case "update_watchdog":
		return updateEvent(WatchdogUpdate, msg, raw)
	}
	return unknownEvent(raw, fmt.Errorf("unknown message type %q", typ))
}

// broadcastEvent decodes the channel form {"event":..., "payload":...}.
func broadcastEvent(msg json.RawMessage, raw []byte) Event {
	var b struct {
		Event   string          `json:"event"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := json.Unmarshal(msg, &b); err != nil {
		return unknownEvent(raw, fmt.Errorf("malformed broadcast: %w", err))
	}
	switch b.Event {
	case "test_requested":
		return runTestEvent(b.Payload, raw)
	case "version_changed":
		return updateEvent(Update, b.Payload, raw)
	case "watchdog_version_changed":
		return updateEvent(WatchdogUpdate, b.Payload, raw)
	}
	return unknownEvent(raw, fmt.Errorf("unknown broadcast event %q", b.Event))
}

// runTestEvent accepts a missing or null message and a missing or null
// interfaces key: the service sends {"type":"run_test"} bare and
// test_requested with an empty payload when no interface is named.
func runTestEvent(msg json.RawMessage, raw []byte) Event {
	ev := Event{Kind: RunTest, Raw: raw}
	if isNull(msg) {
		return ev
	}
	var m struct {
		Interfaces json.RawMessage `json:"interfaces"`
	}
	if err := json.Unmarshal(msg, &m); err != nil {
		return unknownEvent(raw, fmt.Errorf("malformed run_test: %w", err))
	}
	if isNull(m.Interfaces) {
		return ev
	}
	var list []string
	if err := json.Unmarshal(m.Interfaces, &list); err != nil {
		return unknownEvent(raw, fmt.Errorf("malformed run_test interfaces: %w", err))
	}
	seen := map[string]bool{}
	for _, name := range list {
		switch {
		case seen[name]:
		case (name == "" || ValidInterfaceName(name)) && len(ev.Interfaces) < MaxTestInterfaces:
			seen[name] = true
			ev.Interfaces = append(ev.Interfaces, name)
		default:
			ev.Refused++
			if len(ev.RefusedSample) < refusedSample {
				ev.RefusedSample = append(ev.RefusedSample, quoteShort(name))
			}
		}
	}
	if ev.Refused > 0 && len(ev.Interfaces) == 0 {
		// Testing the default route instead would answer a question the
		// service did not ask.
		return unknownEvent(raw, fmt.Errorf("run_test names no valid interface (%d refused, e.g. %v)", ev.Refused, ev.RefusedSample))
	}
	return ev
}

// refusedSample is how many refused names an event quotes.
const refusedSample = 4

// quoteShort quotes a name for a log line, at most 32 bytes of it.
func quoteShort(s string) string {
	const max = 32
	if len(s) > max {
		return strconv.Quote(s[:max]) + "…"
	}
	return strconv.Quote(s)
}

// ValidInterfaceName reports whether name can name a Linux network
// interface, by the kernel's own rule (dev_valid_name): 1 to 15 bytes
// (IFNAMSIZ less the terminating NUL), not "." or "..", and no '/', ':',
// whitespace or NUL.
func ValidInterfaceName(name string) bool {
	if len(name) == 0 || len(name) > 15 || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '/', ':', ' ', '\t', '\n', '\v', '\f', '\r', 0:
			return false
		}
	}
	return true
}

func updateEvent(kind EventKind, msg json.RawMessage, raw []byte) Event {
	var m struct {
		Version   string `json:"version"`
		BinaryURL string `json:"binary_url"`
	}
	if isNull(msg) {
		return unknownEvent(raw, fmt.Errorf("%s: %w", kind, errNoVersion))
	}
	if err := json.Unmarshal(msg, &m); err != nil {
		return unknownEvent(raw, fmt.Errorf("malformed %s: %w", kind, err))
	}
	if m.Version == "" {
		return unknownEvent(raw, fmt.Errorf("%s: %w", kind, errNoVersion))
	}
	return Event{Kind: kind, Version: m.Version, BinaryURL: m.BinaryURL, Raw: raw}
}

func unknownEvent(raw []byte, err error) Event {
	return Event{Kind: Unknown, Raw: raw, Err: err}
}

func isNull(p json.RawMessage) bool {
	return len(p) == 0 || string(p) == "null"
}
