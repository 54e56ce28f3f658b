package radartest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/radarpod/radarpod/internal/radar"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func registerPod(t *testing.T, s *Server) radar.Identity {
	t.Helper()
	id, err := radar.NewClient(s.URL, s.HTTPClient()).Register(ctxT(t), radar.RegisterRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func clientToken(user, secret string) string {
	return "ClientToken " + base64.StdEncoding.EncodeToString([]byte(user+":"+secret))
}

var goodIfaces = `[{"name":"eth0","mac":"dc:a6:32:00:00:01","is_wlan":false,"default":true,"ips":[{"IP":"192.168.1.10","Mask":"////AA=="},{"IP":"fe80::1","Mask":"//////////8AAAAAAAAAAA=="}]},{"name":"wlan0","mac":"dc:a6:32:00:00:02","is_wlan":true,"default":false,"ips":null}]`

func statusBody(mod func(m map[string]any)) string {
	var ifs any
	json.Unmarshal([]byte(goodIfaces), &ifs)
	m := map[string]any{"version": "1.4.0", "distribution": "linux-arm64", "watchdog_version": "", "os_version": "linux",
		"hardware_platform": "arm64", "service_first_ping": "true", "network_interfaces": ifs}
	if mod != nil {
		mod(m)
	}
	b, _ := json.Marshal(m)
	return string(b)
}

type httpCase struct {
	name string
	req  func(s *Server, id radar.Identity) *http.Request
	want int
	// violation is a substring one recorded violation must contain; empty
	// means the request is correct and nothing may be recorded.
	violation string
}

func runHTTPCases(t *testing.T, cases []httpCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, Options{AllowViolations: true})
			id := registerPod(t, s)
			req := tc.req(s, id)
			hc := s.HTTPClient()
			hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("HTTP %d (%s), want %d", resp.StatusCode, body, tc.want)
			}
			vs := s.Violations()
			if tc.violation == "" {
				if len(vs) != 0 {
					t.Errorf("violations for a correct request: %v", vs)
				}
				return
			}
			for _, v := range vs {
				if strings.Contains(v.Detail, tc.violation) {
					return
				}
			}
			t.Errorf("no violation mentions %q; got %v", tc.violation, vs)
		})
	}
}

func post(s *Server, path, body string, hdr map[string]string) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(body))
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	return req
}

func TestStatusEnforcement(t *testing.T) {
	hdr := func(id radar.Identity, mod map[string]string) map[string]string {
		h := map[string]string{"Accept": "application/json", "Content-Type": "application/json", "Authorization": clientToken(id.UnixUser, id.Secret)}
		for k, v := range mod {
			h[k] = v
		}
		return h
	}
	status := func(body string, mod map[string]string) func(s *Server, id radar.Identity) *http.Request {
		return func(s *Server, id radar.Identity) *http.Request {
			return post(s, "/clients/"+id.UnixUser+"/status", body, hdr(id, mod))
		}
	}
	runHTTPCases(t, []httpCase{
		{"correct", status(statusBody(nil), nil), 200, ""},
		{"no Accept", status(statusBody(nil), map[string]string{"Accept": ""}), 500, "Accept"},
		{"browser Accept", status(statusBody(nil), map[string]string{"Accept": "application/json, */*"}), 500, "Accept"},
		{"Basic auth on HTTP", func(s *Server, id radar.Identity) *http.Request {
			return post(s, "/clients/"+id.UnixUser+"/status", statusBody(nil), hdr(id, map[string]string{"Authorization": "Basic " + id.UnixUser + ":" + id.Secret}))
		}, 403, `scheme "Basic"`},
		{"ClientToken not base64", func(s *Server, id radar.Identity) *http.Request {
			return post(s, "/clients/"+id.UnixUser+"/status", statusBody(nil), hdr(id, map[string]string{"Authorization": "ClientToken " + id.UnixUser + ":" + id.Secret}))
		}, 403, "not base64"},
		{"no Authorization", status(statusBody(nil), map[string]string{"Authorization": ""}), 403, "no Authorization"},
		{"token for another pod", func(s *Server, id radar.Identity) *http.Request {
			return post(s, "/clients/rother0000000/status", statusBody(nil), hdr(id, nil))
		}, 403, "path names"},
		{"wrong secret is a plain 403", func(s *Server, id radar.Identity) *http.Request {
			return post(s, "/clients/"+id.UnixUser+"/status", statusBody(nil), hdr(id, map[string]string{"Authorization": clientToken(id.UnixUser, "wrongsecret")}))
		}, 403, ""},
		{"service_first_ping as JSON boolean", status(statusBody(func(m map[string]any) { m["service_first_ping"] = true }), nil), 200, "JSON boolean"},
		{"service_first_ping other string", status(statusBody(func(m map[string]any) { m["service_first_ping"] = "yes" }), nil), 200, "service_first_ping"},
		{"missing network_interfaces", status(statusBody(func(m map[string]any) { delete(m, "network_interfaces") }), nil), 200, `lacks "network_interfaces"`},
		{"net_interfaces name (sync's) on status", status(statusBody(func(m map[string]any) {
			m["net_interfaces"] = m["network_interfaces"]
			delete(m, "network_interfaces")
		}), nil), 200, `unexpected key "net_interfaces"`},
		{"empty version", status(statusBody(func(m map[string]any) { m["version"] = "" }), nil), 200, "version"},
		{"IPv4 with 16-byte mask", status(strings.Replace(statusBody(nil), "////AA==", "/////////////////////w==", 1), nil), 200, "is 16 bytes"},
		{"interface without is_wlan", status(strings.Replace(statusBody(nil), `"is_wlan":false,`, "", 1), nil), 200, `lacks "is_wlan"`},
		{"two default interfaces", status(statusBody(func(m map[string]any) {
			m["network_interfaces"].([]any)[1].(map[string]any)["default"] = true
		}), nil), 200, "2 interfaces as default"},
		{"form Content-Type", status(statusBody(nil), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}), 200, "Content-Type"},
		{"not JSON", status("secret=abc", nil), 200, "not a JSON object"},
	})
}

func TestRegisterEnforcement(t *testing.T) {
	reg := func(body string, hdr map[string]string) func(s *Server, _ radar.Identity) *http.Request {
		return func(s *Server, _ radar.Identity) *http.Request {
			h := map[string]string{"Accept": "application/json", "Content-Type": "application/json"}
			for k, v := range hdr {
				h[k] = v
			}
			return post(s, "/api/v1/clients", body, h)
		}
	}
	const good = `{"registration_token":"tok","name":null,"register_label":null}`
	runHTTPCases(t, []httpCase{
		{"correct", reg(good, nil), 201, ""},
		{"form Content-Type drops the token", reg(good, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}), 201, "drops the registration token"},
		{"missing keys instead of null", reg(`{"registration_token":"tok"}`, nil), 201, `lacks "register_label"`},
		{"empty string instead of null is fine", reg(`{"registration_token":"","name":"","register_label":""}`, nil), 201, ""},
		{"number name", reg(`{"registration_token":null,"name":5,"register_label":null}`, nil), 201, "want a string or null"},
		{"no Accept", reg(good, map[string]string{"Accept": ""}), 201, "Accept"},
		{"wrong path", func(s *Server, _ radar.Identity) *http.Request {
			return post(s, "/clients", good, map[string]string{"Accept": "application/json"})
		}, 404, "unexpected request"},
	})

	// The dropped token is visible in the record.
	s := Start(t, Options{AllowViolations: true})
	resp, err := s.HTTPClient().Do(post(s, "/api/v1/clients", good, map[string]string{"Accept": "application/json", "Content-Type": "text/plain"}))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if r := s.Registrations(); len(r) != 1 || !r[0].TokenDropped || r[0].Token != "" {
		t.Fatalf("registration %+v", r)
	}
}

// uploadReq builds a multipart upload; opts tweak it into the wrong shapes.
type uploadOpts struct {
	secret, style, wireless, filename string
	resultAsField, noStyle            bool
	extra                             map[string]string
	connInfo                          string
	result                            string
	hdr                               map[string]string
}

func uploadReq(o uploadOpts) func(s *Server, id radar.Identity) *http.Request {
	return func(s *Server, id radar.Identity) *http.Request {
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		if o.secret == "" {
			o.secret = id.Secret
		}
		if o.style == "" {
			o.style = "NDT7"
		}
		if o.wireless == "" {
			o.wireless = "false"
		}
		if o.filename == "" {
			o.filename = "result.json"
		}
		if o.result == "" {
			o.result = `{"Download":{"Value":1},"Upload":{"Value":2},"MinRTT":{"Value":3}}`
		}
		if !o.noStyle {
			w.WriteField("measurement[style]", o.style)
		}
		w.WriteField("client_secret", o.secret)
		w.WriteField("measurement[interface]", "")
		w.WriteField("measurement[wireless]", o.wireless)
		if o.connInfo != "" {
			w.WriteField("connection_info", o.connInfo)
		}
		for k, v := range o.extra {
			w.WriteField(k, v)
		}
		if o.resultAsField {
			w.WriteField("measurement[result]", o.result)
		} else {
			h := textproto.MIMEHeader{}
			h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="measurement[result]"; filename=%q`, o.filename))
			p, _ := w.CreatePart(h)
			p.Write([]byte(o.result))
		}
		w.Close()
		hdr := map[string]string{"Accept": "application/json", "Content-Type": w.FormDataContentType()}
		for k, v := range o.hdr {
			hdr[k] = v
		}
		return post(s, "/clients/"+id.UnixUser+"/measurements", buf.String(), hdr)
	}
}

func TestUploadEnforcement(t *testing.T) {
	runHTTPCases(t, []httpCase{
		{"correct", uploadReq(uploadOpts{}), 201, ""},
		{"wireless with connection_info", uploadReq(uploadOpts{wireless: "true", connInfo: `{"signal":-50}`}), 201, ""},
		{"result as a plain field", uploadReq(uploadOpts{resultAsField: true}), 500, "plain field"},
		{"result with another filename", uploadReq(uploadOpts{filename: "ndt7.ndjson"}), 201, "filename"},
		{"no Accept", uploadReq(uploadOpts{hdr: map[string]string{"Accept": ""}}), 302, "302"},
		{"wrong client_secret is a plain 404", uploadReq(uploadOpts{secret: "wrongsecret"}), 404, ""},
		{"unknown pod is a plain 500", func(s *Server, id radar.Identity) *http.Request {
			id.UnixUser = "rnobody000000"
			return uploadReq(uploadOpts{})(s, id)
		}, 500, ""},
		{"gzip", uploadReq(uploadOpts{hdr: map[string]string{"Content-Encoding": "gzip"}}), 500, "Content-Encoding"},
		{"missing style", uploadReq(uploadOpts{noStyle: true}), 400, "measurement[style] missing"},
		{"bogus style", uploadReq(uploadOpts{style: "SPEEDOF"}), 422, "NDT7 or OOKLA"},
		{"unknown field", uploadReq(uploadOpts{extra: map[string]string{"measurement[styl]": "x"}}), 201, "unexpected form field"},
		{"connection_info on a wired test", uploadReq(uploadOpts{connInfo: `{"signal":-50}`}), 201, "wireless only"},
		{"connection_info not JSON", uploadReq(uploadOpts{wireless: "true", connInfo: `signal=-50`}), 201, "not a JSON object"},
		{"wireless not a boolean word", uploadReq(uploadOpts{wireless: "1"}), 201, "measurement[wireless]"},
		{"unparsable result", uploadReq(uploadOpts{result: "not ndt7"}), 201, "cannot be parsed"},
		{"url-encoded form", func(s *Server, id radar.Identity) *http.Request {
			return post(s, "/clients/"+id.UnixUser+"/measurements", "client_secret="+id.Secret,
				map[string]string{"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"})
		}, 404, "multipart/form-data"},
	})
}

func TestUploadLost201(t *testing.T) {
	s := Start(t, Options{})
	id := registerPod(t, s)
	s.SetResponder(EndpointUpload, func(n int) Reply {
		if n == 1 {
			return Reply{Status: 500, AfterHandling: true}
		}
		return Reply{}
	})
	c := radar.NewClient(s.URL, s.HTTPClient())
	m := radar.Measurement{Style: radar.StyleNDT7, Result: []byte(`{"Download":{"Value":1},"Upload":{"Value":2},"MinRTT":{"Value":3}}`)}
	if err := c.UploadMeasurement(ctxT(t), id, m); radar.Classify(err) != radar.ClassServer {
		t.Fatalf("first upload: %v", err)
	}
	if err := c.UploadMeasurement(ctxT(t), id, m); err != nil {
		t.Fatal(err)
	}
	a := s.UploadAttempts()
	if len(a) != 2 || a[0].Status != 500 || !a[0].Fault || !a[0].Stored || a[1].Status != 201 || a[1].Fault {
		t.Fatalf("attempts %+v", a)
	}
	// The service stored both: a lost 201 makes duplicates, which is why
	// the double exposes it.
	if n := len(s.Measurements()); n != 2 {
		t.Fatalf("%d measurements", n)
	}
}

// --- WebSocket --------------------------------------------------------------

func cableHeader(id radar.Identity) http.Header {
	h := http.Header{}
	h.Set("User-Agent", "RadarPodsAgent/1.4.0")
	h.Set("Authorization", "Basic "+id.UnixUser+":"+id.Secret)
	h.Set("Sec-Radar-Tool", "true")
	h.Set("Sec-Radar-Service-Started", "true")
	return h
}

func readFrame(t *testing.T, c *websocket.Conn) map[string]json.RawMessage {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("frame %s: %v", b, err)
	}
	return m
}

// readType skips pings until a frame of typ arrives.
func readType(t *testing.T, c *websocket.Conn, typ string) map[string]json.RawMessage {
	t.Helper()
	for {
		m := readFrame(t, c)
		if string(m["type"]) == `"ping"` && typ != "ping" {
			continue
		}
		if string(m["type"]) != `"`+typ+`"` {
			t.Fatalf("got frame %v, want type %s", m, typ)
		}
		return m
	}
}

func TestCableUpgradeEnforcement(t *testing.T) {
	tests := []struct {
		name     string
		mod      func(h http.Header, id radar.Identity)
		down     bool
		wantHTTP int // non-zero: the upgrade is refused with this status
		refused  bool
		// violations are substrings of the violations that must be
		// recorded, and nothing else may be; none for a correct upgrade.
		violations []string
	}{
		{name: "correct", mod: func(http.Header, radar.Identity) {}},
		{name: "reconnect says false", mod: func(h http.Header, _ radar.Identity) { h.Set("Sec-Radar-Service-Started", "false") }},
		{name: "base64 Basic credentials", mod: func(h http.Header, id radar.Identity) {
			h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(id.UnixUser+":"+id.Secret)))
		}, refused: true, violations: []string{"base64-encoded"}},
		{name: "ClientToken on the upgrade", mod: func(h http.Header, id radar.Identity) { h.Set("Authorization", clientToken(id.UnixUser, id.Secret)) },
			refused: true, violations: []string{"scheme"}},
		{name: "empty secret", mod: func(h http.Header, id radar.Identity) { h.Set("Authorization", "Basic "+id.UnixUser+":") },
			refused: true, violations: []string{"not unix_user:secret"}},
		// Well-formed credentials the service does not know are its
		// ordinary refusal: it may have forgotten the pod, which the pod
		// cannot know.
		{name: "wrong secret is a plain refusal", mod: func(h http.Header, id radar.Identity) { h.Set("Authorization", "Basic "+id.UnixUser+":wrongsecret") }, refused: true},
		{name: "a pod the service forgot is a plain refusal", mod: func(h http.Header, _ radar.Identity) { h.Set("Authorization", "Basic rforgotten01:secret00042") }, refused: true},
		{name: "browser user agent", mod: func(h http.Header, _ radar.Identity) { h.Set("User-Agent", "Mozilla/5.0") }, refused: true, violations: []string{"User-Agent"}},
		{name: "no Sec-Radar-Tool", mod: func(h http.Header, _ radar.Identity) { h.Del("Sec-Radar-Tool") }, wantHTTP: 404, violations: []string{"Sec-Radar-Tool"}},
		{name: "no Sec-Radar-Service-Started", mod: func(h http.Header, _ radar.Identity) { h.Del("Sec-Radar-Service-Started") }, violations: []string{"Sec-Radar-Service-Started"}},
		{name: "Sec-Radar-Service-Started not a boolean", mod: func(h http.Header, _ radar.Identity) { h.Set("Sec-Radar-Service-Started", "1") }, violations: []string{"Sec-Radar-Service-Started"}},
		{name: "no Authorization", mod: func(h http.Header, _ radar.Identity) { h.Del("Authorization") }, refused: true, violations: []string{"no Authorization"}},
		// What a network check that opened the channel's URL would send:
		// the pod's user agent and origin header, no credentials. The
		// service logs it as a pod failing to log in, so it is a
		// violation, not a reachability probe.
		{name: "credential-less upgrade", mod: func(h http.Header, _ radar.Identity) {
			h.Del("Authorization")
			h.Del("Sec-Radar-Service-Started")
		}, refused: true, violations: []string{"no Authorization", "Sec-Radar-Service-Started"}},
		// The headers are the pod's obligation whether or not the service
		// is up to answer.
		{name: "credential-less upgrade while the channel is down", mod: func(h http.Header, _ radar.Identity) {
			h.Del("Authorization")
			h.Del("Sec-Radar-Service-Started")
		}, down: true, wantHTTP: 503, violations: []string{"no Authorization", "Sec-Radar-Service-Started"}},
		{name: "correct while the channel is down", mod: func(http.Header, radar.Identity) {}, down: true, wantHTTP: 503},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, Options{AllowViolations: true, TLS: true})
			id := registerPod(t, s)
			s.SetChannelDown(tc.down)
			h := cableHeader(id)
			tc.mod(h, id)
			c, resp, err := s.Dialer().DialContext(ctxT(t), s.CableURL(), h)
			if tc.wantHTTP != 0 {
				if err == nil || resp == nil || resp.StatusCode != tc.wantHTTP {
					t.Fatalf("upgrade: err %v, resp %v; want HTTP %d", err, resp, tc.wantHTTP)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if tc.refused {
					m := readFrame(t, c)
					if string(m["type"]) != `"disconnect"` || string(m["reason"]) != `"unauthorized"` || string(m["reconnect"]) != "false" {
						t.Fatalf("refusal frame %v", m)
					}
				} else {
					readType(t, c, "welcome")
				}
			}
			// The 101 goes out before a refusal is recorded.
			if err := s.Wait(ctxT(t), func() bool { return len(s.Connections()) == 1 }); err != nil {
				t.Fatal(err)
			}
			conns := s.Connections()
			if len(conns) != 1 || (conns[0].Refused == "unauthorized") != tc.refused {
				t.Errorf("connections %+v", conns)
			}
			if tc.wantHTTP == 0 && !tc.refused && conns[0].UnixUser != id.UnixUser {
				t.Errorf("accepted connection recorded for %q, want %q", conns[0].UnixUser, id.UnixUser)
			}
			vs := s.Violations()
			if len(vs) != len(tc.violations) {
				t.Errorf("violations %v, want one each for %q", vs, tc.violations)
			}
			for _, want := range tc.violations {
				if !slices.ContainsFunc(vs, func(v Violation) bool { return strings.Contains(v.Detail, want) }) {
					t.Errorf("no violation mentions %q; got %v", want, vs)
				}
			}
		})
	}
}

// TestCredentialLessUpgradeFailsTheTest: Start's cleanup fails the test
// for an upgrade without credentials, as for any other violation.
func TestCredentialLessUpgradeFailsTheTest(t *testing.T) {
	ft := &fakeTB{}
	s := Start(ft, Options{})
	h := http.Header{}
	h.Set("User-Agent", "RadarPodsAgent/1.4.0")
	h.Set("Sec-Radar-Tool", "true")
	c, _, err := s.Dialer().DialContext(ctxT(t), s.CableURL(), h)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := s.Wait(ctxT(t), func() bool { return len(s.Connections()) == 1 }); err != nil {
		t.Fatal(err)
	}
	for _, fn := range ft.cleanups {
		fn()
	}
	if !slices.ContainsFunc(ft.errs, func(e string) bool { return strings.Contains(e, "no Authorization") }) {
		t.Fatalf("cleanup reported %v, want the credential-less upgrade", ft.errs)
	}
}

// TestSiteRoot: GET / is answered as the service answers it (a 301 to the
// sign-in page on the host asked, empty body) and recorded, whoever asks;
// the sign-in page itself and any other method on / are no part of what a
// pod or its network check asks.
func TestSiteRoot(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", useTLS), func(t *testing.T) {
			s := Start(t, Options{AllowViolations: true, TLS: useTLS})
			hc := s.HTTPClient()
			hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			req, _ := http.NewRequestWithContext(ctxT(t), http.MethodGet, s.URL+"/", nil)
			req.Header.Set("User-Agent", "RadarNetworkCheck/1.4.0")
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != s.URL+"/users/sign_in" || len(body) != 0 {
				t.Fatalf("GET / answered %d, Location %q, body %q; want 301 to %s/users/sign_in", resp.StatusCode, resp.Header.Get("Location"), body, s.URL)
			}
			vis := s.Visits()
			if len(vis) != 1 || vis[0].Method != http.MethodGet || vis[0].Path != "/" || vis[0].Header.Get("User-Agent") != "RadarNetworkCheck/1.4.0" {
				t.Fatalf("visits %+v", vis)
			}
			if vs := s.Violations(); len(vs) != 0 {
				t.Fatalf("GET / recorded violations: %v", vs)
			}
			for _, r := range []*http.Request{
				must(http.NewRequest(http.MethodGet, s.URL+"/users/sign_in", nil)),
				must(http.NewRequest(http.MethodPost, s.URL+"/", nil)),
			} {
				resp, err := hc.Do(r)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			if vs := s.Violations(); len(vs) != 2 {
				t.Fatalf("violations %v, want the sign-in page and POST /", vs)
			}
			if n := len(s.Visits()); n != 1 {
				t.Fatalf("%d visits, want only the GET /", n)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// goodSync is the sync data string a correct pod sends.
func goodSync() string {
	return `{"action":"sync","payload":{"version":"1.4.0","distribution":"linux-arm64","watchdog_version":"","os_version":"linux","hardware_platform":"arm64","registration_token":"","net_interfaces":` + goodIfaces + `}}`
}

func TestCableChannelEnforcement(t *testing.T) {
	ident := func(id string) string {
		return `{"channel":"PodAgentChannel","id":"` + id + `"}`
	}
	const uid = "3b241101-e2bb-4255-8caf-4136c566a962"
	msg := func(identifier, data string) string {
		b, _ := json.Marshal(map[string]string{"command": "message", "identifier": identifier, "data": data})
		return string(b)
	}
	sub := func(identifier string) string {
		b, _ := json.Marshal(map[string]string{"command": "subscribe", "identifier": identifier})
		return string(b)
	}
	tests := []struct {
		name      string
		frames    []string // after a correct subscription, unless noSub
		noSub     bool
		violation string
	}{
		{"correct sync and pong", []string{msg(ident(uid), goodSync()), msg(ident(uid), `{"action":"pong"}`)}, false, ""},
		{"identifier as an object", []string{`{"command":"subscribe","identifier":{"channel":"PodAgentChannel","id":"` + uid + `"}}`}, true, "must be a JSON string"},
		{"wrong channel", []string{sub(`{"channel":"WatchdogChannel","id":"` + uid + `"}`)}, true, "want \"PodAgentChannel\""},
		{"id not a uuid4", []string{sub(ident("pod-1"))}, true, "UUIDv4"},
		{"message before subscribing", []string{msg(ident(uid), `{"action":"pong"}`)}, true, "not the confirmed subscription"},
		{"data as an object", []string{`{"command":"message","identifier":` + mustQuote(ident(uid)) + `,"data":{"action":"pong"}}`}, false, "data must be a JSON string"},
		{"pong with payload", []string{msg(ident(uid), `{"action":"pong","payload":{}}`)}, false, "pong carries"},
		{"sync without interfaces", []string{msg(ident(uid), strings.Replace(goodSync(), `,"net_interfaces":`+goodIfaces, "", 1))}, false, `lacks "net_interfaces"`},
		{"sync with status field names", []string{msg(ident(uid), strings.Replace(goodSync(), "net_interfaces", "network_interfaces", 1))}, false, `unexpected key "network_interfaces"`},
		{"sync numbers as strings", []string{msg(ident(uid), strings.Replace(goodSync(), `"is_wlan":false`, `"is_wlan":"false"`, 1))}, false, "want a boolean"},
		{"unknown action", []string{msg(ident(uid), `{"action":"hello"}`)}, false, "unknown action"},
		{"unknown command", []string{`{"command":"resubscribe","identifier":"x"}`}, false, "unknown command"},
		{"not JSON", []string{`hello`}, false, "not a JSON object"},
		{"subscribe twice", []string{sub(ident(uid))}, false, "subscribed twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Start(t, Options{AllowViolations: true})
			id := registerPod(t, s)
			c, _, err := s.Dialer().DialContext(ctxT(t), s.CableURL(), cableHeader(id))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			readType(t, c, "welcome")
			if !tc.noSub {
				c.WriteMessage(websocket.TextMessage, []byte(sub(ident(uid))))
				m := readType(t, c, "confirm_subscription")
				if string(m["identifier"]) != mustQuote(ident(uid)) {
					t.Fatalf("confirmation for %s", m["identifier"])
				}
			}
			for _, f := range tc.frames {
				c.WriteMessage(websocket.TextMessage, []byte(f))
			}
			// A correct round trip after the frames proves they were all
			// processed (frames are handled in order).
			if err := s.Wait(ctxT(t), func() bool {
				return tc.violation == "" && len(s.Pongs()) == 1 || tc.violation != "" && len(s.Violations()) > 0
			}); err != nil {
				t.Fatal(err)
			}
			vs := s.Violations()
			if tc.violation == "" {
				if len(vs) != 0 {
					t.Errorf("violations: %v", vs)
				}
				if sy := s.Syncs(); len(sy) != 1 || sy[0].Payload.Version != "1.4.0" || len(sy[0].Payload.NetInterfaces) != 2 ||
					sy[0].Payload.NetInterfaces[0].IPs[0].Mask.String() != "ffffff00" {
					t.Errorf("syncs %+v", sy)
				}
				return
			}
			for _, v := range vs {
				if strings.Contains(v.Detail, tc.violation) {
					return
				}
			}
			t.Errorf("no violation mentions %q; got %v", tc.violation, vs)
		})
	}
}

func mustQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// The service side of the channel: pings on its timer, what sync
// transmits, broadcasts and control frames, in the service's shapes.
func TestCableServiceFrames(t *testing.T) {
	s := Start(t, Options{PingInterval: 30 * time.Millisecond})
	id := registerPod(t, s)
	c, _, err := s.Dialer().DialContext(ctxT(t), s.CableURL(), cableHeader(id))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	readType(t, c, "welcome")
	p := readType(t, c, "ping")
	var unix int64
	if json.Unmarshal(p["message"], &unix) != nil || unix < time.Now().Add(-time.Minute).Unix() {
		t.Fatalf("ping message %s", p["message"])
	}
	identifier := `{"channel":"PodAgentChannel","id":"3b241101-e2bb-4255-8caf-4136c566a962"}`
	c.WriteMessage(websocket.TextMessage, []byte(`{"command":"subscribe","identifier":`+mustQuote(identifier)+`}`))
	readType(t, c, "confirm_subscription")

	s.SetPendingTest(true)
	s.SetPendingUpdate("1.5.0", "/client_versions/1.5.0/download")
	b, _ := json.Marshal(map[string]string{"command": "message", "identifier": identifier, "data": goodSync()})
	c.WriteMessage(websocket.TextMessage, b)
	if m := readType(t, c, "update"); string(m["message"]) != `{"binary_url":"/client_versions/1.5.0/download","version":"1.5.0"}` {
		t.Errorf("update transmit %s", m["message"])
	}
	if m := readType(t, c, "run_test"); string(m["message"]) != `{"interfaces":null}` {
		t.Errorf("run_test transmit %s", m["message"])
	}

	if n := s.SendRunTest([]string{"wlan0"}); n != 1 {
		t.Fatalf("SendRunTest reached %d", n)
	}
	for {
		m := readFrame(t, c)
		if string(m["type"]) == `"ping"` {
			continue
		}
		if string(m["identifier"]) != mustQuote(identifier) || string(m["message"]) != `{"event":"test_requested","payload":{"interfaces":["wlan0"]}}` {
			t.Fatalf("broadcast %v", m)
		}
		break
	}
	s.Disconnect("server_restart", true)
	if m := readType(t, c, "disconnect"); string(m["reason"]) != `"server_restart"` || string(m["reconnect"]) != "true" {
		t.Fatalf("disconnect %v", m)
	}
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			break // closed by the server
		}
	}
	if err := s.Wait(ctxT(t), func() bool { return s.Subscribed() == 0 }); err != nil {
		t.Fatal(err)
	}
}

func TestCableUnansweredPings(t *testing.T) {
	s := Start(t, Options{AllowViolations: true, PingInterval: 20 * time.Millisecond, PongTimeout: 200 * time.Millisecond})
	id := registerPod(t, s)
	c, _, err := s.Dialer().DialContext(ctxT(t), s.CableURL(), cableHeader(id))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	readType(t, c, "welcome")
	identifier := mustQuote(`{"channel":"PodAgentChannel","id":"3b241101-e2bb-4255-8caf-4136c566a962"}`)
	c.WriteMessage(websocket.TextMessage, []byte(`{"command":"subscribe","identifier":`+identifier+`}`))
	readType(t, c, "confirm_subscription")
	// Read (so the socket stays healthy) but never answer.
	go func() {
		for {
			if _, _, err := c.ReadMessage(); err != nil {
				return
			}
		}
	}()
	if err := s.Wait(ctxT(t), func() bool { return len(s.Violations()) > 0 }); err != nil {
		t.Fatal(err)
	}
	if v := s.Violations(); !strings.Contains(v[0].Detail, "unanswered") {
		t.Fatalf("violations %v", v)
	}
}

// fakeTB records what Start's cleanup reports.
type fakeTB struct {
	testing.TB
	cleanups []func()
	errs     []string
}

func (f *fakeTB) Helper()                        {}
func (f *fakeTB) Cleanup(fn func())              { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Errorf(format string, a ...any) { f.errs = append(f.errs, fmt.Sprintf(format, a...)) }
func (f *fakeTB) Fatal(a ...any)                 { panic(fmt.Sprint(a...)) }

func TestStartFailsTheTestOnViolations(t *testing.T) {
	for _, allow := range []bool{false, true} {
		ft := &fakeTB{}
		s := Start(ft, Options{AllowViolations: allow})
		resp, err := http.Post(s.URL+"/nope", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, fn := range ft.cleanups {
			fn()
		}
		if got := len(ft.errs) > 0; got == allow {
			t.Errorf("AllowViolations=%v: reported %v", allow, ft.errs)
		}
		if _, err := http.Get(s.URL + "/"); err == nil {
			t.Error("server still answering after cleanup")
		}
	}
}
