package localapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"syscall"

	"github.com/radarpod/radarpod/internal/httpclient"
	"github.com/radarpod/radarpod/internal/speedtest"
	"github.com/radarpod/radarpod/internal/telemetry"
)

// ErrNoAgent: nothing listens on the agent's endpoint, so no agent runs
// there (or it runs with RADAR_LISTEN_ADDR empty).
var ErrNoAgent = errors.New("no agent is listening")

// maxEventLine bounds one event line; a result event is a few KiB.
const maxEventLine = 1 << 20

// Run asks the agent listening on listenAddr (RADAR_LISTEN_ADDR, asked on
// 127.0.0.1 when its host is unspecified) to run req, calls progress with
// each progress event, and returns the result event. An error event is
// returned as *Error; a refused connection as ErrNoAgent (wrapped).
func Run(ctx context.Context, listenAddr, token string, req Request, progress func(speedtest.Progress)) (Result, error) {
	url, err := telemetry.LocalURL(listenAddr, Path)
	if err != nil {
		return Result{}, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return Result{}, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Result{}, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", ndjson)
	if token != "" {
		hreq.Header.Set("Authorization", "Bearer "+token)
	}
	t := httpclient.Transport(httpclient.Options{})
	// The agent's own endpoint: never through a proxy, which would see the
	// token (and could not reach the pod's loopback anyway).
	t.Proxy = nil
	client := &http.Client{Transport: t}
	resp, err := client.Do(hreq)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return Result{}, fmt.Errorf("%w on %s: %w", ErrNoAgent, listenAddr, err)
		}
		return Result{}, fmt.Errorf("ask the agent on %s: %w", listenAddr, err)
	}
	defer resp.Body.Close()
	if ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); ct != ndjson {
		if resp.StatusCode == http.StatusNotFound {
			// An agent from before this API, or another program.
			return Result{}, fmt.Errorf("what listens on %s has no test API (HTTP 404 for %s): an older radar-agent, or another program", listenAddr, Path)
		}
		return Result{}, fmt.Errorf("what listens on %s answered HTTP %d (%s), not the test API's events", listenAddr, resp.StatusCode, ct)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventLine)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(line, &head); err != nil {
			return Result{}, fmt.Errorf("the agent sent a line that is not JSON: %w", err)
		}
		switch head.Type {
		case TypeProgress:
			var p speedtest.Progress
			if err := json.Unmarshal(line, &p); err == nil && progress != nil {
				progress(p)
			}
		case TypeResult:
			var r Result
			if err := json.Unmarshal(line, &r); err != nil {
				return Result{}, fmt.Errorf("the agent's result: %w", err)
			}
			return r, nil
		case TypeError:
			var ev ErrorEvent
			if err := json.Unmarshal(line, &ev); err != nil {
				return Result{}, fmt.Errorf("the agent's error: %w", err)
			}
			return Result{}, &Error{Event: ev}
		}
	}
	if err := sc.Err(); err != nil {
		return Result{}, fmt.Errorf("reading the agent's answer: %w", err)
	}
	return Result{}, &Error{Event: ErrorEvent{Type: TypeError, Class: ClassAgent,
		Error: fmt.Sprintf("the agent ended the answer (HTTP %d) without a result", resp.StatusCode),
		Hint:  "the agent may have stopped; `radar-agent healthcheck` tells whether it runs"}}
}
