package telemetry

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/radarpod/radarpod/internal/sentrytest"
)

// secretStringer is a value whose text form carries a secret.
type secretStringer struct{ s string }

func (s secretStringer) String() string { return "stringer " + s.s }

// TestSentryEventCarriesNoSecretInAnyField: an event that carries the pod
// secret and the ClientToken credential (base64 of "unix_user:secret") in
// every part an event has — message, exception type, value and stack
// frames, threads and their frames' variables, breadcrumbs, tags, contexts
// and their extra data, map keys, fingerprint, modules, user, request —
// reaches a loopback Sentry with none of them, the redaction marker in
// their place and the rest of the event intact.
func TestSentryEventCarriesNoSecretInAnyField(t *testing.T) {
	const unixUser = "rabc123def45"
	cred := base64.StdEncoding.EncodeToString([]byte(unixUser + ":" + podSecret))
	srv := sentrytest.Start(t, dsnKey)
	r := &Redactor{}
	// What the agent adds once the identity exists (radar.Identity.Secrets).
	r.Add(podSecret, cred, strings.TrimRight(cred, "="))
	s, err := NewSentry(SentryOptions{DSN: srv.DSN, Redactor: r})
	if err != nil {
		t.Fatal(err)
	}
	auth := "ClientToken " + cred
	frames := func(tag string) *sentry.Stacktrace {
		return &sentry.Stacktrace{Frames: []sentry.Frame{{
			Function: "upload", Module: "radar", AbsPath: "/src/client.go", Lineno: 42,
			ContextLine: `req.Header.Set("Authorization", "` + auth + `")`, PreContext: []string{"secret := " + podSecret},
			Vars: map[string]any{
				tag + "_secret": podSecret, podSecret: "as a key", "header": auth,
				"nested": map[string]any{"list": []any{"x", podSecret, map[string]any{"auth": auth}}},
			},
		}}}
	}
	e := sentry.NewEvent()
	e.Level = sentry.LevelError
	e.Message = "upload refused for " + podSecret
	e.Exception = []sentry.Exception{{
		Type: "*radar.StatusError{" + auth + "}", Value: "403: client_secret=" + podSecret, Module: "radar",
		Stacktrace: frames("exception"),
		Mechanism:  &sentry.Mechanism{Type: "generic", Description: "echo " + auth, Data: map[string]any{"body": podSecret}},
	}}
	e.Threads = []sentry.Thread{{ID: "1", Name: "uploader " + podSecret, Current: true, Stacktrace: frames("thread")}}
	e.Breadcrumbs = []*sentry.Breadcrumb{{Type: "http", Category: "upload", Message: "POST with " + auth,
		Data: map[string]any{"authorization": auth, podSecret: 1}, Timestamp: time.Now()}}
	e.Tags["pod_id"] = unixUser
	e.Tags["header"] = auth
	e.Tags[podSecret] = "tag key"
	e.Contexts["extra"] = sentry.Context{
		"err":      errors.New("refused: " + podSecret),
		"stringer": secretStringer{podSecret},
		"raw":      json.RawMessage(`{"auth":"` + auth + `"}`),
		"struct":   struct{ Header string }{auth},
		"pointer":  &struct{ Secret string }{podSecret},
		"list":     []string{"a", podSecret},
		"strings":  map[string]string{"auth": auth},
		"when":     time.Unix(1700000000, 0).UTC(),
		"count":    3,
	}
	e.Contexts["details"] = sentry.Context{"secret": podSecret}
	e.Fingerprint = []string{"upload", podSecret}
	e.Transaction = "upload " + podSecret
	e.Modules["github.com/x/"+podSecret] = "v1"
	e.User = sentry.User{ID: podSecret, Data: map[string]string{"auth": auth}}
	e.Request = &sentry.Request{URL: "https://radar.example/clients/" + unixUser, Headers: map[string]string{"Authorization": auth}}
	s.hub.CaptureEvent(e)
	s.Flush(10 * time.Second)

	events := srv.WaitEvents(1, 30*time.Second)
	if len(events) != 1 {
		t.Fatalf("got %d events, want 1", len(events))
	}
	raw := string(events[0].Raw)
	for _, secret := range []string{podSecret, cred, strings.TrimRight(cred, "="), dsnKey} {
		if strings.Contains(raw, secret) {
			t.Errorf("the event carries %q:\n%s", secret, raw)
		}
	}
	for _, want := range []string{
		`upload refused for [REDACTED]`,                              // message
		`*radar.StatusError{ClientToken [REDACTED]}`,                 // exception type
		`403: client_secret=[REDACTED]`,                              // exception value
		`"exception_secret":"[REDACTED]"`,                            // exception frame variables
		`"thread_secret":"[REDACTED]"`,                               // thread frame variables
		`uploader [REDACTED]`,                                        // thread name
		`POST with ClientToken [REDACTED]`,                           // breadcrumb
		`"header":"ClientToken [REDACTED]"`,                          // tag
		`"err":"refused: [REDACTED]"`,                                // extra: an error
		`"stringer":"stringer [REDACTED]"`,                           // extra: a Stringer
		`"raw":{"auth":"ClientToken [REDACTED]"}`,                    // extra: raw JSON
		`"struct":{"Header":"ClientToken [REDACTED]"}`,               // extra: a struct
		`"pointer":{"Secret":"[REDACTED]"}`,                          // extra: a pointer
		`"list":["a","[REDACTED]"]`,                                  // extra: a slice
		`"when":"2023-11-14T22:13:20Z"`, `"count":3`, `rabc123def45`, // the rest intact
	} {
		if !strings.Contains(raw, want) {
			t.Errorf("the event lacks %s:\n%s", want, raw)
		}
	}
	if strings.Contains(raw, `"request"`) || strings.Contains(raw, `"user"`) {
		t.Errorf("request or user data was sent:\n%s", raw)
	}
}

// TestScrubReachesEveryStringOfAnEvent: every string field a sentry.Event
// can hold, found by reflection (so a field a new SDK version adds is
// covered too), map keys included, is set to the secret; nothing of it
// survives the scrub in the event's JSON, as an error, a transaction or a
// check-in.
func TestScrubReachesEveryStringOfAnEvent(t *testing.T) {
	r := &Redactor{}
	r.Add(podSecret)
	s := &Sentry{redactor: r}
	for _, typ := range []string{"", "transaction", "check_in"} {
		e := &sentry.Event{}
		n := fillStrings(reflect.ValueOf(e).Elem(), 0)
		if n < 50 {
			t.Fatalf("only %d strings filled: the filler misses fields", n)
		}
		s.scrub(e)
		e.Type = typ
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), podSecret) {
			t.Errorf("%q event: the secret survives the scrub:\n%s", typ, b)
		}
		if !strings.Contains(string(b), Redacted) {
			t.Errorf("%q event lost its fields:\n%s", typ, b)
		}
	}
}

// fillStrings sets every exported string reachable from v to podSecret,
// creating one element in each slice and map and following pointers and
// empty interfaces, and returns how many it set.
func fillStrings(v reflect.Value, depth int) int {
	if depth > 10 || !v.CanSet() {
		return 0
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(podSecret)
		return 1
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return fillStrings(v.Elem(), depth+1)
	case reflect.Struct:
		n := 0
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				n += fillStrings(v.Field(i), depth+1)
			}
		}
		return n
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			v.SetBytes([]byte(`"` + podSecret + `"`))
			return 1
		}
		sl := reflect.MakeSlice(v.Type(), 1, 1)
		n := fillStrings(sl.Index(0), depth+1)
		v.Set(sl)
		return n
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k := reflect.New(v.Type().Key()).Elem()
		val := reflect.New(v.Type().Elem()).Elem()
		n := fillStrings(k, depth+1) + fillStrings(val, depth+1)
		m.SetMapIndex(k, val)
		v.Set(m)
		return n
	case reflect.Interface:
		if v.NumMethod() == 0 {
			v.Set(reflect.ValueOf(podSecret))
			return 1
		}
	}
	return 0
}
