package radar_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/radarpod/radarpod/internal/buildinfo"
	"github.com/radarpod/radarpod/internal/httpclient"
	"github.com/radarpod/radarpod/internal/netif"
	"github.com/radarpod/radarpod/internal/radar"
	"github.com/radarpod/radarpod/internal/radartest"
)

var (
	unixUserRe = regexp.MustCompile(`^r[a-z0-9]{11}$`)
	secretRe   = regexp.MustCompile(`^[A-Za-z0-9]{11}$`)
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func newClient(srv *radartest.Server) *radar.Client {
	return radar.NewClient(srv.URL, srv.HTTPClient())
}

func register(t *testing.T, srv *radartest.Server) (*radar.Client, radar.Identity) {
	t.Helper()
	c := newClient(srv)
	id, err := c.Register(ctxT(t), radar.RegisterRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return c, id
}

// realInterfaces is what a pod on this machine would report.
func realInterfaces(t *testing.T) []radar.NetInterface {
	t.Helper()
	ifs, err := netif.List()
	if err != nil {
		t.Fatal(err)
	}
	return radar.FromNetif(ifs)
}

func statusRequest(t *testing.T) radar.StatusRequest {
	return radar.StatusRequest{
		Version: buildinfo.Version, Distribution: buildinfo.Distribution(), WatchdogVersion: "",
		OSVersion: buildinfo.OS(), HardwarePlatform: buildinfo.Arch(), NetworkInterfaces: realInterfaces(t),
	}
}

func TestRegister(t *testing.T) {
	tests := []struct {
		name     string
		tls      bool
		req      radar.RegisterRequest
		wantBody string
	}{
		{"empty fields are null", false, radar.RegisterRequest{},
			`{"registration_token":null,"name":null,"register_label":null}`},
		{"all fields over TLS", true, radar.RegisterRequest{RegistrationToken: "tok-1", Name: "kitchen pod", RegisterLabel: "L-7"},
			`{"registration_token":"tok-1","name":"kitchen pod","register_label":"L-7"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := radartest.Start(t, radartest.Options{TLS: tc.tls})
			id, err := newClient(srv).Register(ctxT(t), tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if !unixUserRe.MatchString(id.UnixUser) || !secretRe.MatchString(id.Secret) || id.ID == 0 {
				t.Fatalf("identity %q / secret of %d chars / id %d", id.UnixUser, len(id.Secret), id.ID)
			}
			regs := srv.Registrations()
			if len(regs) != 1 {
				t.Fatalf("%d registrations", len(regs))
			}
			r := regs[0]
			if string(r.Raw) != tc.wantBody {
				t.Errorf("body %s, want %s", r.Raw, tc.wantBody)
			}
			if got := r.Header.Values("Accept"); len(got) != 1 || got[0] != "application/json" {
				t.Errorf("Accept %q", got)
			}
			if got := r.Header.Values("Content-Type"); len(got) != 1 || got[0] != "application/json" {
				t.Errorf("Content-Type %q", got)
			}
			if !strings.HasPrefix(r.Header.Get("User-Agent"), "RadarPodsAgent/") {
				t.Errorf("User-Agent %q", r.Header.Get("User-Agent"))
			}
			if r.UnixUser != id.UnixUser || r.Secret != id.Secret || r.Token != tc.req.RegistrationToken {
				t.Errorf("service kept %q/%q token %q", r.UnixUser, r.Secret, r.Token)
			}
			if tc.req.RegistrationToken != "" && (id.AccountID == nil || *id.AccountID != 1) {
				t.Errorf("account_id %v, want the token's account", id.AccountID)
			}
		})
	}
}

func TestRegisterFailuresAreClassified(t *testing.T) {
	tests := []struct {
		name  string
		reply radartest.Reply
		// timeout shortens the client's overall timeout (slow drip).
		timeout time.Duration
		want    radar.Class
		wantErr string
	}{
		{"server error", radartest.Reply{Status: 500}, 0, radar.ClassServer, "500"},
		{"bad gateway", radartest.Reply{Status: 502, Body: []byte("<html>bad gateway</html>")}, 0, radar.ClassServer, "bad gateway"},
		{"unprocessable", radartest.Reply{Status: 422, Body: []byte(`{"name":["is invalid"]}`)}, 0, radar.ClassRejected, "422"},
		{"200 is not 201", radartest.Reply{Status: 200, Body: []byte(`{}`)}, 0, radar.ClassRejected, "200"},
		{"garbage 201", radartest.Reply{Status: 201, Body: []byte("<html>")}, 0, radar.ClassServer, "bad response"},
		{"201 without secret", radartest.Reply{Status: 201, Body: []byte(`{"id":1,"unix_user":"rabc"}`)}, 0, radar.ClassServer, "lacks"},
		{"huge 201", radartest.Reply{Status: 201, Filler: 8 << 20}, 0, radar.ClassServer, "size limit"},
		{"hang-up", radartest.Reply{Hangup: true}, 0, radar.ClassNetwork, ""},
		{"slow drip", radartest.Reply{Status: 201, Body: []byte(`{"id":1,"unix_user":"r12345678901","secret":"abcdefghijk"}`), Drip: 200 * time.Millisecond}, time.Second, radar.ClassNetwork, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := radartest.Start(t, radartest.Options{})
			srv.SetResponder(radartest.EndpointRegister, func(int) radartest.Reply { return tc.reply })
			hc := srv.HTTPClient()
			if tc.timeout > 0 {
				hc = httpclient.New(httpclient.Options{UserAgent: buildinfo.AgentUserAgent(), Timeout: tc.timeout})
			}
			_, err := radar.NewClient(srv.URL, hc).Register(ctxT(t), radar.RegisterRequest{})
			if err == nil {
				t.Fatal("registration succeeded")
			}
			if got := radar.Classify(err); got != tc.want {
				t.Errorf("Classify(%v) = %q, want %q", err, got, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "register pod: ") {
				t.Errorf("error %q lacks %q", err, tc.wantErr)
			}
		})
	}
}

func TestRegisterRetryThenSucceed(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{})
	srv.SetResponder(radartest.EndpointRegister, func(n int) radartest.Reply {
		if n < 3 {
			return radartest.Reply{Status: 503}
		}
		return radartest.Reply{}
	})
	c := newClient(srv)
	var id radar.Identity
	var err error
	for i := 0; i < 3; i++ {
		id, err = c.Register(ctxT(t), radar.RegisterRequest{})
		if err == nil {
			break
		}
		if radar.Classify(err) != radar.ClassServer {
			t.Fatalf("attempt %d: %v classified %q", i+1, err, radar.Classify(err))
		}
	}
	if err != nil || !id.Valid() {
		t.Fatalf("third attempt: %v", err)
	}
	if n := len(srv.Registrations()); n != 1 {
		t.Fatalf("service holds %d pods, want 1", n)
	}
}

func TestStatus(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{TLS: true})
	c, id := register(t, srv)
	start := new(radar.ServiceStart)
	c.Start = start

	resp, err := c.Status(ctxT(t), id, statusRequest(t))
	if err != nil {
		t.Fatal(err)
	}
	if resp.TestRequested || resp.Update != nil {
		t.Fatalf("nothing pending, got %+v", resp)
	}
	if start.First() {
		t.Fatal("a 200 to service_first_ping \"true\" did not acknowledge the start")
	}

	srv.SetPendingTest(true)
	srv.SetPendingUpdate("1.5.0", "/client_versions/1.5.0/distributions/linux-arm64/download?signed=true")
	resp, err = c.Status(ctxT(t), id, statusRequest(t))
	if err != nil {
		t.Fatal(err)
	}
	wantURL := srv.URL + "/client_versions/1.5.0/distributions/linux-arm64/download?signed=true"
	if !resp.TestRequested || resp.Update == nil || resp.Update.Version != "1.5.0" || resp.Update.URL != wantURL {
		t.Fatalf("pending test and update, got %+v (update %+v)", resp, resp.Update)
	}

	calls := srv.StatusCalls()
	if len(calls) != 2 {
		t.Fatalf("%d status calls", len(calls))
	}
	if calls[0].ServiceFirstPing != `"true"` || calls[1].ServiceFirstPing != `"false"` {
		t.Errorf("service_first_ping sent %s then %s", calls[0].ServiceFirstPing, calls[1].ServiceFirstPing)
	}
	if got := calls[0].Header.Get("Authorization"); !strings.HasPrefix(got, "ClientToken ") || strings.Contains(got, id.Secret) {
		t.Errorf("Authorization %q", got)
	}
	if len(calls[0].NetworkInterfaces) != len(realInterfaces(t)) {
		t.Errorf("sent %d interfaces", len(calls[0].NetworkInterfaces))
	}
}

func TestStatusWrongCredentialsIsAuth(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{})
	c, id := register(t, srv)
	wrong := id
	wrong.Secret = "not-the-one"
	_, err := c.Status(ctxT(t), wrong, statusRequest(t))
	var se *radar.StatusError
	if !errors.As(err, &se) || se.Code != 403 || se.Op != radar.OpStatus {
		t.Fatalf("error %v, want a 403 StatusError", err)
	}
	if radar.Classify(err) != radar.ClassAuth {
		t.Fatalf("classified %q", radar.Classify(err))
	}
	if strings.Contains(err.Error(), wrong.Secret) || strings.Contains(err.Error(), id.Secret) {
		t.Fatalf("error leaks a secret: %v", err)
	}
}

func TestUploadFixtures(t *testing.T) {
	ndt7, err := os.ReadFile("../radartest/testdata/ndt7-result.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	ookla, err := os.ReadFile("../radartest/testdata/ookla-result.json")
	if err != nil {
		t.Fatal(err)
	}
	ci, _ := json.Marshal(radar.ConnectionInfoFor(
		netif.Interface{Name: "wlan0", Up: true, Addrs: nil},
		netif.WirelessInfo{SignalDBm: -52, NoiseDBm: -95, HasNoise: true}))

	srv := radartest.Start(t, radartest.Options{})
	c, id := register(t, srv)
	srv.SetPendingTest(true)
	if err := c.UploadMeasurement(ctxT(t), id, radar.Measurement{Style: radar.StyleNDT7, Result: ndt7}); err != nil {
		t.Fatal(err)
	}
	if srv.PendingTest() {
		t.Error("a stored upload did not clear the pending test")
	}
	if err := c.UploadMeasurement(ctxT(t), id, radar.Measurement{Style: radar.StyleOokla, Interface: "wlan0", Wireless: true, ConnectionInfo: ci, Result: ookla}); err != nil {
		t.Fatal(err)
	}
	ms, err := srv.WaitMeasurements(ctxT(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	n, o := ms[0], ms[1]
	if n.UnixUser != id.UnixUser || n.Style != "NDT7" || n.Interface != "" || n.Wireless || n.ConnectionInfo != nil || n.Filename != "result.json" {
		t.Errorf("ndt7 upload fields: %+v", n)
	}
	if string(n.Raw) != string(ndt7) {
		t.Error("ndt7 result altered in transit")
	}
	if n.NDT7 == nil || n.NDT7.Download != 436.32386704791077 || n.NDT7.Upload != 47.88207222563206 || n.NDT7.MinRTT != 10.172 {
		t.Errorf("service parsed ndt7 as %+v (err %v)", n.NDT7, n.ParseErr)
	}
	if o.Style != "OOKLA" || o.Interface != "wlan0" || !o.Wireless || o.Ookla == nil || o.Ookla.ResultID != "ea8e5ec3-e2fa-4994-a9fe-559c8d4dc6fd" {
		t.Errorf("ookla upload: %+v / %+v (err %v)", o, o.Ookla, o.ParseErr)
	}
	var gotCI map[string]any
	if err := json.Unmarshal(o.ConnectionInfo, &gotCI); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"bssid", "status", "ip", "signal", "tx_speed", "frequency", "channel", "width", "noise", "ssid"} {
		if _, ok := gotCI[k]; !ok {
			t.Errorf("connection_info lacks %q", k)
		}
	}
	if gotCI["signal"] != -52.0 || gotCI["noise"] != -95.0 || gotCI["status"] != "connected" || gotCI["bssid"] != nil {
		t.Errorf("connection_info %s", o.ConnectionInfo)
	}
	for _, a := range srv.UploadAttempts() {
		if a.Status != 201 || !a.Stored {
			t.Errorf("attempt %+v", a)
		}
	}
}

func TestUploadsReuseOneConnection(t *testing.T) {
	ookla, err := os.ReadFile("../radartest/testdata/ookla-result.json")
	if err != nil {
		t.Fatal(err)
	}
	srv := radartest.Start(t, radartest.Options{})
	c, id := register(t, srv)
	for range 5 {
		if err := c.UploadMeasurement(ctxT(t), id, radar.Measurement{Style: radar.StyleOokla, Result: ookla}); err != nil {
			t.Fatal(err)
		}
	}
	att := srv.UploadAttempts()
	if len(att) != 5 {
		t.Fatalf("%d upload attempts, want 5", len(att))
	}
	for _, a := range att[1:] {
		if a.RemoteAddr != att[0].RemoteAddr {
			t.Errorf("upload %d came from %s, the first from %s: each upload opens a new connection", a.N, a.RemoteAddr, att[0].RemoteAddr)
		}
	}
}

// rewriteAccept stands for a broken client that sends a browser-like
// Accept header.
type rewriteAccept struct{ next http.RoundTripper }

func (r rewriteAccept) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Accept", "application/json, */*")
	return r.next.RoundTrip(req)
}

func TestUploadFailuresAreClassified(t *testing.T) {
	result := []byte(`{"Download":{"Value":1},"Upload":{"Value":2},"MinRTT":{"Value":3}}` + "\n")
	tests := []struct {
		name       string
		setup      func(srv *radartest.Server, id *radar.Identity, hc *http.Client)
		want       radar.Class
		wantCode   int
		violations bool
	}{
		{"wrong client_secret is 404", func(_ *radartest.Server, id *radar.Identity, _ *http.Client) { id.Secret = "wrongsecret" }, radar.ClassAuth, 404, false},
		{"unknown pod is 500", func(_ *radartest.Server, id *radar.Identity, _ *http.Client) { id.UnixUser = "rzzzzzzzzzzz" }, radar.ClassServer, 500, false},
		{"server error", func(srv *radartest.Server, _ *radar.Identity, _ *http.Client) {
			srv.SetUploadResponder(func(int) (int, time.Duration) { return 503, 0 })
		}, radar.ClassServer, 503, false},
		{"wrong Accept is 302", func(_ *radartest.Server, _ *radar.Identity, hc *http.Client) {
			hc.Transport = rewriteAccept{hc.Transport}
		}, radar.ClassRejected, 302, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := radartest.Start(t, radartest.Options{AllowViolations: tc.violations})
			_, id := register(t, srv)
			hc := srv.HTTPClient()
			tc.setup(srv, &id, hc)
			err := radar.NewClient(srv.URL, hc).UploadMeasurement(ctxT(t), id, radar.Measurement{Style: radar.StyleNDT7, Result: result})
			var se *radar.StatusError
			if !errors.As(err, &se) || se.Code != tc.wantCode || se.Op != radar.OpUpload {
				t.Fatalf("error %v, want HTTP %d", err, tc.wantCode)
			}
			if got := radar.Classify(err); got != tc.want {
				t.Errorf("classified %q, want %q", got, tc.want)
			}
			if strings.Contains(err.Error(), id.Secret) {
				t.Errorf("error leaks the secret: %v", err)
			}
			if len(srv.Measurements()) != 0 {
				t.Error("a refused upload was stored")
			}
			if got := len(srv.Violations()) > 0; got != tc.violations {
				t.Errorf("violations recorded: %v, want %v (%v)", got, tc.violations, srv.Violations())
			}
		})
	}
}

func TestUploadTimeoutIsNetworkAndRetrySucceeds(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{})
	_, id := register(t, srv)
	srv.SetUploadResponder(func(n int) (int, time.Duration) {
		if n == 1 {
			return 0, 5 * time.Second // slower than the client allows
		}
		return 0, 0
	})
	hc := httpclient.New(httpclient.Options{UserAgent: buildinfo.AgentUserAgent(), Timeout: 500 * time.Millisecond})
	c := radar.NewClient(srv.URL, hc)
	m := radar.Measurement{Style: radar.StyleNDT7, Result: []byte(`{"Download":{"Value":1},"Upload":{"Value":2},"MinRTT":{"Value":3}}`)}
	err := c.UploadMeasurement(ctxT(t), id, m)
	if radar.Classify(err) != radar.ClassNetwork {
		t.Fatalf("slow upload: %v classified %q", err, radar.Classify(err))
	}
	if err := c.UploadMeasurement(ctxT(t), id, m); err != nil {
		t.Fatal(err)
	}
	if got := len(srv.Measurements()); got != 1 {
		t.Fatalf("%d measurements stored, want 1", got)
	}
}

func TestUploadRejectsUnknownStyle(t *testing.T) {
	err := radar.NewClient("http://127.0.0.1:1", nil).UploadMeasurement(ctxT(t), radar.Identity{UnixUser: "r1", Secret: "s"}, radar.Measurement{Style: "SPEEDOF"})
	if err == nil {
		t.Fatal("unknown style accepted")
	}
}

// A confused service or proxy may echo the request; the error a caller logs
// must not carry the secret or the registration token.
func TestErrorBodiesNeverCarrySecrets(t *testing.T) {
	srv := radartest.Start(t, radartest.Options{})
	c, id := register(t, srv)
	const token = "reg-token-SENSITIVE"
	srv.SetResponder(radartest.EndpointRegister, func(int) radartest.Reply {
		return radartest.Reply{Status: 422, Body: []byte(`{"registration_token":"` + token + `","error":"invalid"}`)}
	})
	srv.SetResponder(radartest.EndpointStatus, func(int) radartest.Reply {
		return radartest.Reply{Status: 500, Body: []byte("client_secret=" + id.Secret + "&trace=" + strings.Repeat("x", 2000))}
	})
	_, regErr := c.Register(ctxT(t), radar.RegisterRequest{RegistrationToken: token})
	_, stErr := c.Status(ctxT(t), id, statusRequest(t))
	for _, err := range []error{regErr, stErr} {
		if err == nil {
			t.Fatal("call succeeded")
		}
		if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), id.Secret) {
			t.Errorf("error carries a secret: %v", err)
		}
		if !strings.Contains(err.Error(), "[REDACTED]") {
			t.Errorf("error lost the body context: %v", err)
		}
		var se *radar.StatusError
		if errors.As(err, &se) && len(se.Body) > 600 {
			t.Errorf("body not truncated: %d bytes", len(se.Body))
		}
	}
}
