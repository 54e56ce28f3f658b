//go:build linux && cgo

package ndt7test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/radarpod/radarpod/internal/httpclient"
)

// download runs a raw ndt7 download with early exit, as any ndt7 client
// would, and returns the UUID the server announced.
func download(t *testing.T, s *Server, roots *x509.CertPool) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d := websocket.Dialer{
		HandshakeTimeout: 10 * time.Second,
		TLSClientConfig:  &tls.Config{RootCAs: roots},
	}
	h := http.Header{"Sec-WebSocket-Protocol": {"net.measurementlab.ndt.v7"}}
	u := s.Scheme + "://" + s.Addr + "/ndt/v7/download?" + ShortTestParams().Encode()
	conn, _, err := d.DialContext(ctx, u, h)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	var uuid string
	for {
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		kind, r, err := conn.NextReader()
		if err != nil {
			if websocket.IsCloseError(err, websocket.CloseNormalClosure) {
				return uuid, nil
			}
			return uuid, err
		}
		if kind != websocket.TextMessage {
			if _, err := io.Copy(io.Discard, r); err != nil {
				return uuid, err
			}
			continue
		}
		msg, err := io.ReadAll(r)
		if err != nil {
			return uuid, err
		}
		var m struct{ ConnectionInfo *struct{ UUID string } }
		if err := json.Unmarshal(msg, &m); err != nil {
			t.Fatalf("server measurement: %v: %s", err, msg)
		}
		if m.ConnectionInfo != nil {
			uuid = m.ConnectionInfo.UUID
		}
	}
}

func TestStart(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := map[bool]string{false: "ws", true: "wss"}[useTLS]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := Start(t, Options{TLS: useTLS})
			if host, _, _ := net.SplitHostPort(s.Addr); host != "127.0.0.1" || s.Scheme != name {
				t.Fatalf("Addr %s Scheme %s", s.Addr, s.Scheme)
			}
			var roots *x509.CertPool
			if useTLS {
				if s.CA == nil {
					t.Fatal("no CA for a wss server")
				}
				// The CA file is what RADAR_NDT7_CA_FILE names: load it the
				// way the agent does.
				pemBytes, err := os.ReadFile(s.CA.File)
				if err != nil {
					t.Fatal(err)
				}
				if roots, err = httpclient.LoadCertPool(pemBytes); err != nil {
					t.Fatal(err)
				}
				if _, err := download(t, s, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
					t.Errorf("wss without the CA: %v, want a certificate error", err)
				}
			}
			uuid, err := download(t, s, roots)
			if err != nil || uuid == "" {
				t.Fatalf("download: uuid %q, %v", uuid, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			subs, err := s.Subtests()
			if err != nil {
				t.Fatal(err)
			}
			// The rejected TLS handshake never reached the handler.
			if len(subs) != 1 || subs[0].Download == nil || subs[0].Download.UUID != uuid {
				t.Fatalf("server recorded %+v, want one download %s", subs, uuid)
			}
			if n := len(subs[0].Download.ServerMeasurements); n == 0 {
				t.Error("server recorded no measurements")
			}
			if err := s.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

func TestServeRejects(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := Serve(ln, Config{DataDir: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("Serve accepted a data dir that does not exist")
	}
	if _, err := Serve(ln, Config{}); err == nil {
		t.Error("Serve accepted an empty data dir")
	}
	unix, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close()
	if _, err := Serve(unix, Config{DataDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "TCPListener") {
		t.Errorf("Serve on a unix listener: %v", err)
	}
}

func TestNewCAHosts(t *testing.T) {
	ca, err := NewCA(t.TempDir(), "10.200.0.1", "ndt.example")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(ca.ServerTLS.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"10.200.0.1", "ndt.example"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: ca.Pool}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "127.0.0.1", Roots: ca.Pool}); err == nil {
		t.Error("certificate valid for a host it was not issued for")
	}
}
