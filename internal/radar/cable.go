package radar

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/radarpod/radarpod/internal/backoff"
	"github.com/radarpod/radarpod/internal/httpclient"
)

// Live channel defaults.
const (
	// DefaultPingTimeout: the protocol declares a socket dead after two
	// minutes without a ping.
	DefaultPingTimeout = 2 * time.Minute
	// DefaultUnauthorizedDelay paces reconnects after the service refused
	// the credentials: keep trying (an operator may restore the pod), but
	// slowly.
	DefaultUnauthorizedDelay = 5 * time.Minute

	// ChannelName is the ActionCable channel pods subscribe to.
	ChannelName = "PodAgentChannel"

	cableReadLimit    = 1 << 20
	cableWriteTimeout = 10 * time.Second
	cableDialTimeout  = 30 * time.Second
)

// ErrUnauthorized marks a channel the service closed or refused because of
// the pod's credentials (disconnect "unauthorized" or reconnect false,
// reject_subscription, HTTP 401/403 on the upgrade).
var ErrUnauthorized = errors.New("pods service refused the pod's credentials")

// ErrChannelDead marks a socket that stayed open without pings.
var ErrChannelDead = errors.New("live channel dead: no ping from the service")

// UpgradeError is an HTTP answer to the channel's upgrade other than 101
// (and other than 401/403, which are ErrUnauthorized): the service, or a
// proxy in front of it, is unavailable or throttling.
type UpgradeError struct {
	Code int
	// RetryAfter is the wait a 429 or 503 asked for (0: none given).
	RetryAfter time.Duration
}

func (e *UpgradeError) Error() string {
	return fmt.Sprintf("channel upgrade refused with HTTP %d", e.Code)
}

// DisconnectError is the service's disconnect message.
type DisconnectError struct {
	Reason    string
	Reconnect bool
}

func (e *DisconnectError) Error() string {
	return fmt.Sprintf("service closed the channel: reason %q, reconnect %v", e.Reason, e.Reconnect)
}

// Is makes an unauthorized disconnect (or any with reconnect false) match
// ErrUnauthorized, so callers test one sentinel.
func (e *DisconnectError) Is(target error) bool {
	return target == ErrUnauthorized && (e.Reason == "unauthorized" || !e.Reconnect)
}

// CableURL derives the channel URL from the service URL: ws:// for
// http://, wss:// for https://, path /api/v1/clients/ws.
func CableURL(serverURL string) (string, error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", fmt.Errorf("cable URL: %w", err)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("cable URL: scheme %q is not http or https", u.Scheme)
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/api/v1/clients/ws"
	u.RawPath, u.RawQuery, u.Fragment = "", "", ""
	return u.String(), nil
}

// CableClient keeps the pod's ActionCable channel to the service open.
// Configure the fields, then call Run once.
type CableClient struct {
	// URL is the channel URL (see CableURL).
	URL      string
	Identity Identity
	// UserAgent must start with "RadarPods" (buildinfo.AgentUserAgent()).
	UserAgent string
	// Sync builds the sync payload; it is called for every sync so the
	// interfaces reported are current.
	Sync   func() SyncPayload
	Logger *slog.Logger
	// Dialer overrides the WebSocket dialer (extra TLS roots in tests).
	// The default uses the proxy from the environment and bounded timeouts.
	Dialer *websocket.Dialer
	// PingTimeout declares the socket dead without a ping for this long;
	// it also bounds the wait for welcome and confirm_subscription.
	// Default DefaultPingTimeout.
	PingTimeout time.Duration
	// Backoff paces ordinary reconnects (default backoff.Channel()); it is
	// reset once a subscription is confirmed.
	Backoff *backoff.Backoff
	// UnauthorizedDelay paces reconnects after ErrUnauthorized (±10%).
	// Default DefaultUnauthorizedDelay.
	UnauthorizedDelay time.Duration
	// Start is shared with the status calls; nil gives the client its own.
	Start *ServiceStart
	// OnUpgrade, when set, sees the response to every upgrade attempt that
	// got one, accepted or refused: its Date header is the service's time
	// (wallclock.Clock.ObserveResponse).
	OnUpgrade func(*http.Response)

	// wait is backoff.Wait; tests observe the delays through it.
	wait func(ctx context.Context, d time.Duration) error
}

// Run connects and reconnects until ctx is done, then closes the socket
// and returns ctx.Err(). It returns early only for a configuration error.
func (c *CableClient) Run(ctx context.Context, h Handler) error {
	if h == nil || c.Sync == nil {
		return errors.New("cable: handler and Sync are required")
	}
	if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "ws" && u.Scheme != "wss") {
		return fmt.Errorf("cable: URL %q is not ws:// or wss://", c.URL)
	}
	if !c.Identity.Valid() {
		return errors.New("cable: identity lacks unix_user or secret")
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "cable")
	bo := c.Backoff
	if bo == nil {
		bo = backoff.Channel()
	}
	start := c.Start
	if start == nil {
		start = new(ServiceStart)
	}
	wait := c.wait
	if wait == nil {
		wait = backoff.Wait
	}
	for {
		err := c.session(ctx, h, log, start, bo)
		if ctx.Err() != nil {
			h.Disconnected(ctx.Err())
			return ctx.Err()
		}
		h.Disconnected(err)
		d := ReconnectDelay(bo, err, c.unauthorizedDelay())
		if errors.Is(err, ErrUnauthorized) {
			log.Warn("live channel refused the credentials; retrying slowly", "err", err, "retry_in", d)
		} else {
			log.Warn("live channel down", "err", err, "retry_in", d, "attempt", bo.Attempts())
		}
		if err := wait(ctx, d); err != nil {
			return ctx.Err()
		}
	}
}

// ReconnectDelay is the wait before the next channel attempt after err
// ended the last one: refused credentials wait unauthorized (±10%); any
// other failure waits the backoff's next delay, or longer when a 429 or
// 503 to the upgrade said when to come back (backoff.Backoff.After). It
// is the decision of Run's loop, exported so that the fleet simulation
// (internal/bench/fleet) paces its pods with this very code.
func ReconnectDelay(bo *backoff.Backoff, err error, unauthorized time.Duration) time.Duration {
	if errors.Is(err, ErrUnauthorized) {
		return jitter(unauthorized)
	}
	return bo.After(RetryAfterOf(err))
}

// Connected is what a confirmed subscription does to the reconnect pacing:
// the next reconnect, should this channel drop, is drawn from the whole
// backoff window (backoff.Backoff.SpreadNext). A service restart drops
// every pod's channel at once; pods that all came back within the
// backoff's first delay would hit the restarted service in one wave. The
// pod is not cut off meanwhile: the status heartbeat takes over.
func Connected(bo *backoff.Backoff) { bo.SpreadNext() }

func (c *CableClient) pingTimeout() time.Duration {
	if c.PingTimeout > 0 {
		return c.PingTimeout
	}
	return DefaultPingTimeout
}

func (c *CableClient) unauthorizedDelay() time.Duration {
	if c.UnauthorizedDelay > 0 {
		return c.UnauthorizedDelay
	}
	return DefaultUnauthorizedDelay
}

func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (1 + (rand.Float64()*2-1)*0.1))
}

func (c *CableClient) dialer() *websocket.Dialer {
	if c.Dialer != nil {
		return c.Dialer
	}
	return DefaultDialer()
}

// DefaultDialer is the channel's dialer unless CableClient.Dialer says
// otherwise: the proxy from the environment and bounded timeouts.
func DefaultDialer() *websocket.Dialer {
	return &websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		NetDialContext:   httpclient.Dialer(nil).DialContext,
		HandshakeTimeout: cableDialTimeout,
	}
}

// session runs one connection from dial to its end.
func (c *CableClient) session(ctx context.Context, h Handler, log *slog.Logger, start *ServiceStart, bo *backoff.Backoff) error {
	hdr := http.Header{}
	hdr.Set("User-Agent", c.UserAgent)
	hdr.Set("Authorization", c.Identity.cableAuth())
	hdr.Set("Sec-Radar-Tool", "true")
	hdr.Set("Sec-Radar-Service-Started", strconv.FormatBool(start.First()))

	dctx, cancel := context.WithTimeout(ctx, cableDialTimeout)
	conn, resp, err := c.dialer().DialContext(dctx, c.URL, hdr)
	cancel()
	if resp != nil && c.OnUpgrade != nil {
		c.OnUpgrade(resp)
	}
	if err != nil {
		if resp != nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
				return fmt.Errorf("channel upgrade refused with HTTP %d: %w", resp.StatusCode, ErrUnauthorized)
			}
			ue := &UpgradeError{Code: resp.StatusCode}
			if honoursRetryAfter(resp.StatusCode) {
				ue.RetryAfter, _ = backoff.RetryAfter(resp.Header, time.Now())
			}
			return ue
		}
		return fmt.Errorf("connect channel: %w", err)
	}
	start.Acknowledge()
	defer conn.Close()
	// Closing the socket is what unblocks the read loop on shutdown.
	stop := context.AfterFunc(ctx, func() {
		_ = conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseGoingAway, "shutdown"), time.Now().Add(time.Second))
		conn.Close()
	})
	defer stop()
	conn.SetReadLimit(cableReadLimit)
	log.Debug("live channel connected", "pod", c.Identity)

	ident, _ := json.Marshal(struct {
		Channel string `json:"channel"`
		ID      string `json:"id"`
	}{ChannelName, uuid.NewString()})
	s := &cableSession{c: c, conn: conn, h: h, log: log, bo: bo, identifier: string(ident), timeout: c.pingTimeout()}
	err = s.loop()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// cableSession is one connection's state. Every write happens on the
// goroutine running loop, so frames never interleave; only the shutdown
// close runs elsewhere (gorilla allows WriteControl and Close concurrently).
type cableSession struct {
	c          *CableClient
	conn       *websocket.Conn
	h          Handler
	log        *slog.Logger
	bo         *backoff.Backoff
	identifier string
	timeout    time.Duration

	subscribeSent bool
	subscribed    bool
}

func (s *cableSession) loop() error {
	// Until the subscription is confirmed the deadline stays fixed, so a
	// service that pings but never confirms is also given up on.
	s.conn.SetReadDeadline(time.Now().Add(s.timeout))
	for {
		typ, data, err := s.conn.ReadMessage()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if !s.subscribed {
					return fmt.Errorf("live channel: no subscription confirmed within %s", s.timeout)
				}
				return fmt.Errorf("%w for %s", ErrChannelDead, s.timeout)
			}
			return fmt.Errorf("live channel read: %w", err)
		}
		if typ != websocket.TextMessage {
			s.unknown(unknownEvent(data, fmt.Errorf("non-text frame (type %d)", typ)))
			continue
		}
		if err := s.handle(data); err != nil {
			return err
		}
	}
}

// frame is any server-to-pod ActionCable frame.
type frame struct {
	Type       string          `json:"type"`
	Identifier json.RawMessage `json:"identifier"`
	Message    json.RawMessage `json:"message"`
	Reason     string          `json:"reason"`
	Reconnect  *bool           `json:"reconnect"`
}

func (s *cableSession) handle(data []byte) error {
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		s.unknown(unknownEvent(data, fmt.Errorf("malformed frame: %w", err)))
		return nil
	}
	switch f.Type {
	case "welcome":
		if s.subscribeSent {
			return nil
		}
		s.subscribeSent = true
		return s.send(struct {
			Command    string `json:"command"`
			Identifier string `json:"identifier"`
		}{"subscribe", s.identifier})
	case "ping":
		if s.subscribed {
			s.conn.SetReadDeadline(time.Now().Add(s.timeout))
		}
		s.h.Heartbeat()
		if !s.subscribed {
			// Actions need a confirmed subscription; the service would
			// reject a pong before it.
			return nil
		}
		return s.action("pong", nil)
	case "confirm_subscription":
		if !s.ours(f.Identifier) {
			s.unknown(unknownEvent(data, errors.New("confirmation for another subscription")))
			return nil
		}
		if s.subscribed {
			return nil
		}
		s.subscribed = true
		s.conn.SetReadDeadline(time.Now().Add(s.timeout))
		Connected(s.bo)
		payload := s.c.Sync()
		if payload.NetInterfaces == nil {
			payload.NetInterfaces = []NetInterface{}
		}
		if err := s.action("sync", payload); err != nil {
			return err
		}
		s.log.Info("live channel subscribed", "pod", s.c.Identity)
		s.h.Connected()
		return nil
	case "reject_subscription":
		return fmt.Errorf("subscription to %s rejected: %w", ChannelName, ErrUnauthorized)
	case "disconnect":
		reconnect := f.Reconnect == nil || *f.Reconnect
		return &DisconnectError{Reason: f.Reason, Reconnect: reconnect}
	case "run_test", "update", "update_watchdog":
		s.event(transmitEvent(f.Type, f.Message, data))
		return nil
	case "":
		if len(f.Identifier) > 0 && len(f.Message) > 0 {
			if !s.ours(f.Identifier) {
				s.unknown(unknownEvent(data, errors.New("broadcast for another subscription")))
				return nil
			}
			s.event(broadcastEvent(f.Message, data))
			return nil
		}
		s.unknown(unknownEvent(data, errors.New("frame without type or message")))
		return nil
	}
	s.unknown(unknownEvent(data, fmt.Errorf("unknown frame type %q", f.Type)))
	return nil
}

// ours reports whether an identifier (a JSON string) names our subscription.
func (s *cableSession) ours(raw json.RawMessage) bool {
	var id string
	return json.Unmarshal(raw, &id) == nil && id == s.identifier
}

func (s *cableSession) event(ev Event) {
	if ev.Kind == Unknown {
		s.unknown(ev)
		return
	}
	if ev.Refused > 0 {
		s.log.Warn("refusing interface names of a test request", "refused", ev.Refused, "examples", ev.RefusedSample,
			"kept", ev.Interfaces, "allowed", fmt.Sprintf("at most %d valid interface names (1-15 bytes, no '/', ':' or whitespace, not . or ..)", MaxTestInterfaces))
	}
	s.log.Info("service request", "kind", ev.Kind, "interfaces", ev.Interfaces, "version", ev.Version)
	s.h.Event(ev)
}

func (s *cableSession) unknown(ev Event) {
	const max = 512
	raw := string(ev.Raw)
	if len(raw) > max {
		raw = raw[:max] + "…"
	}
	s.log.Warn("ignoring unexpected channel message", "err", ev.Err, "frame", raw)
	s.h.Event(ev)
}

// action sends {"command":"message","identifier":...,"data":"<JSON>"}:
// data is a JSON object encoded as a string.
func (s *cableSession) action(name string, payload any) error {
	data, err := json.Marshal(struct {
		Action  string `json:"action"`
		Payload any    `json:"payload,omitempty"`
	}{name, payload})
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return s.send(struct {
		Command    string `json:"command"`
		Identifier string `json:"identifier"`
		Data       string `json:"data"`
	}{"message", s.identifier, string(data)})
}

func (s *cableSession) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("live channel encode: %w", err)
	}
	s.conn.SetWriteDeadline(time.Now().Add(cableWriteTimeout))
	if err := s.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		return fmt.Errorf("live channel write: %w", err)
	}
	return nil
}
