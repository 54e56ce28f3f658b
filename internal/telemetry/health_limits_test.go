package telemetry

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestHealthServerBoundsEachClient: a client of the health endpoint cannot
// hold a connection (and its goroutine) for ever by keeping it idle or by
// trickling a request body, nor send headers of any size. The limits are
// shortened here; the test's own bound (10 s) only catches a server that
// never lets go.
func TestHealthServerBoundsEachClient(t *testing.T) {
	saved := healthLimits
	t.Cleanup(func() { healthLimits = saved })
	healthLimits.readHeader, healthLimits.read, healthLimits.idle = time.Second, time.Second, 300*time.Millisecond

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	h := &Health{MaxSilence: time.Minute}
	h.Beat()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, addr, Handler(NewMetrics(), h), slog.New(slog.DiscardHandler)) }()
	t.Cleanup(func() { cancel(); <-done })
	var conn net.Conn
	for i := 0; ; i++ {
		if conn, err = net.Dial("tcp", addr); err == nil {
			conn.Close()
			break
		}
		if i == 200 {
			t.Fatalf("health endpoint not listening: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// closedByServer reads until the server closes the connection.
	closedByServer := func(t *testing.T, c net.Conn, br *bufio.Reader) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err := io.Copy(io.Discard, br)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal("the server still holds the connection after 10 s")
		}
	}
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, c net.Conn, br *bufio.Reader)
	}{
		{"an idle keep-alive connection is closed", func(t *testing.T, c net.Conn, br *bufio.Reader) {
			io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: pod\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Close {
				t.Fatalf("status %d, close %v: want a kept-alive 200", resp.StatusCode, resp.Close)
			}
			closedByServer(t, c, br)
		}},
		{"a trickled request body is cut off", func(t *testing.T, c net.Conn, br *bufio.Reader) {
			io.WriteString(c, "POST /healthz HTTP/1.1\r\nHost: pod\r\nContent-Length: 100000\r\n\r\nfirst bytes")
			closedByServer(t, c, br)
		}},
		{"headers are bounded", func(t *testing.T, c net.Conn, br *bufio.Reader) {
			io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: pod\r\nX-Filler: "+strings.Repeat("a", 64<<10)+"\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("64 KiB of headers: status %d, want 431", resp.StatusCode)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tc.run(t, c, bufio.NewReader(c))
		})
	}
}

// TestHealthServerLimits: the production values, including the write
// timeout no loopback client can provoke (an answer fits the socket
// buffers).
func TestHealthServerLimits(t *testing.T) {
	srv := healthServer(http.NotFoundHandler())
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout < srv.ReadHeaderTimeout || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 ||
		srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 64<<10 {
		t.Fatalf("health server limits: header %v, read %v, write %v, idle %v, max header bytes %d",
			srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout, srv.MaxHeaderBytes)
	}
}
