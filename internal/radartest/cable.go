package radartest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/radarpod/radarpod/internal/radar"
)

const cableReadLimit = 1 << 20

// wsConn is one upgraded channel connection.
type wsConn struct {
	id       int
	unixUser string
	conn     *websocket.Conn
	done     chan struct{}

	wmu sync.Mutex
	// Guarded by Server.mu: the confirmed subscription, and when each
	// ping sent since it is still waiting for its pong (oldest first).
	identifier  string
	unanswered  []time.Time
	pongOverdue bool
}

func (c *wsConn) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.sendRaw(b)
}

func (c *wsConn) sendRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.conn.WriteMessage(websocket.TextMessage, b)
}

// Frames the service sends, with its key order.
type (
	typeFrame struct {
		Type string `json:"type"`
	}
	pingFrame struct {
		Type    string `json:"type"`
		Message int64  `json:"message"`
	}
	subFrame struct {
		Identifier string `json:"identifier"`
		Type       string `json:"type"`
	}
	transmitFrame struct {
		Type    string `json:"type"`
		Message any    `json:"message"`
	}
	broadcastFrame struct {
		Identifier string `json:"identifier"`
		Message    any    `json:"message"`
	}
	broadcastMessage struct {
		Event   string `json:"event"`
		Payload any    `json:"payload"`
	}
	disconnectFrame struct {
		Type      string `json:"type"`
		Reason    string `json:"reason"`
		Reconnect bool   `json:"reconnect"`
	}
)

// basicAuth checks the upgrade's "Authorization: Basic <user>:<secret>"
// (raw: the service splits on ':' without decoding). Like clientToken it
// separates a wrong form (detail set: a violation) from credentials the
// service does not know (a plain refusal: the service may have forgotten
// the pod, which the pod cannot know).
func (s *Server) basicAuth(r *http.Request) (*pod, string) {
	a := r.Header.Get("Authorization")
	if a == "" {
		// The service cannot even parse it (it raises and reports the
		// error); to its operators it is a pod failing to log in.
		return nil, "no Authorization header on the upgrade (want Basic unix_user:secret, raw): every upgrade is the pod's own channel, and the service logs one without credentials as a pod failing to log in"
	}
	scheme, tok, _ := strings.Cut(a, " ")
	if scheme != "Basic" {
		return nil, fmt.Sprintf("upgrade Authorization scheme %q, want Basic unix_user:secret (raw)", scheme)
	}
	user, secret, ok := strings.Cut(tok, ":")
	if !ok {
		if dec, err := base64.StdEncoding.DecodeString(tok); err == nil && strings.Contains(string(dec), ":") {
			return nil, "upgrade Basic credentials are base64-encoded; the service wants the raw unix_user:secret"
		}
		return nil, "upgrade Basic credentials lack the ':' between unix_user and secret"
	}
	if user == "" || secret == "" || strings.Contains(secret, ":") {
		return nil, "upgrade Basic credentials are not unix_user:secret (an empty part, or a second ':')"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.pods[user]
	if p == nil || p.secret != secret {
		return nil, ""
	}
	return p, ""
}

func (s *Server) handleCable(w http.ResponseWriter, r *http.Request) {
	const ep = "cable"
	rec := Connection{Time: time.Now(), Header: r.Header.Clone(), ServiceStarted: r.Header.Get("Sec-Radar-Service-Started")}
	s.mu.Lock()
	s.nextConn++
	rec.ID = s.nextConn
	down := s.channelDown
	s.counts[EndpointCable]++
	n := s.counts[EndpointCable]
	f := s.responders[EndpointCable]
	s.mu.Unlock()
	finish := func() {
		s.mu.Lock()
		s.connections = append(s.connections, rec)
		s.notifyLocked()
		s.mu.Unlock()
	}

	if !websocket.IsWebSocketUpgrade(r) {
		s.violation(ep, "%s %s without a WebSocket upgrade", r.Method, r.URL.Path)
		rec.Status = http.StatusBadRequest
		finish()
		http.Error(w, "not a WebSocket upgrade", rec.Status)
		return
	}
	// Every upgrade is the pod's own channel, so each one must carry the
	// pod's headers exactly, whether or not the service is up to answer
	// it: nothing else of a pod (a reachability check included) may open
	// one.
	ua := r.UserAgent()
	uaOK := strings.HasPrefix(ua, "RadarPods")
	if !uaOK {
		s.violation(ep, "User-Agent %q does not start with RadarPods (the service treats it as a browser and refuses it)", ua)
	}
	if v := rec.ServiceStarted; v != "true" && v != "false" {
		s.violation(ep, "Sec-Radar-Service-Started is %q, want \"true\" (first connection of the process) or \"false\" (a reconnect)", v)
	}
	p, detail := s.basicAuth(r)
	if detail != "" {
		s.violation(ep, "%s", detail)
	}
	toolOK := r.Header.Get("Sec-Radar-Tool") == "true"
	if !toolOK {
		s.violation(ep, "Sec-Radar-Tool is %q, want \"true\"", r.Header.Get("Sec-Radar-Tool"))
	}
	if down {
		rec.Status = http.StatusServiceUnavailable
		finish()
		http.Error(w, "channel down", rec.Status)
		return
	}
	if f != nil {
		if rep := f(n); rep.Status != 0 || rep.Hangup {
			rec.Status = rep.Status
			finish()
			s.fault(w, r, Reply{Status: rep.Status, Body: rep.Body, Header: rep.Header, Hangup: rep.Hangup})
			return
		}
	}
	if !toolOK {
		// The service's origin check refuses the upgrade with a 404.
		rec.Status = http.StatusNotFound
		finish()
		http.Error(w, "Page not found", rec.Status)
		return
	}
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.violation(ep, "upgrade failed: %v", err)
		rec.Status = http.StatusBadRequest
		finish()
		return
	}
	rec.Status = http.StatusSwitchingProtocols
	if p == nil || !uaOK {
		// ActionCable's reject_unauthorized_connection: no welcome, a
		// disconnect frame, then close.
		rec.Refused = "unauthorized"
		finish()
		b, _ := json.Marshal(disconnectFrame{"disconnect", "unauthorized", false})
		conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		conn.WriteMessage(websocket.TextMessage, b)
		conn.Close()
		return
	}
	rec.UnixUser = p.unixUser
	wc := &wsConn{id: rec.ID, unixUser: p.unixUser, conn: conn, done: make(chan struct{})}
	s.mu.Lock()
	select {
	case <-s.closing:
		s.mu.Unlock()
		conn.Close()
		return
	default:
	}
	s.conns[wc.id] = wc
	s.connections = append(s.connections, rec)
	// Close waits for this handler and its pinger; it cannot have started
	// waiting, since closing is checked under the same lock it takes.
	s.wg.Add(2)
	s.notifyLocked()
	s.mu.Unlock()
	s.log.Info("channel connected", "conn", wc.id, "unix_user", wc.unixUser, "service_started", rec.ServiceStarted)

	defer s.wg.Done()
	defer func() {
		close(wc.done)
		conn.Close()
		s.mu.Lock()
		delete(s.conns, wc.id)
		s.notifyLocked()
		s.mu.Unlock()
	}()
	go s.pinger(wc)
	if err := wc.send(typeFrame{"welcome"}); err != nil {
		return
	}
	conn.SetReadLimit(cableReadLimit)
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		s.cableFrame(wc, data)
	}
}

func (s *Server) pinger(wc *wsConn) {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-wc.done:
			return
		case <-s.closing:
			return
		}
		now := time.Now()
		s.mu.Lock()
		stop := s.stopPinging
		overdue := !wc.pongOverdue && len(wc.unanswered) > 0 && now.Sub(wc.unanswered[0]) > s.opts.PongTimeout
		if overdue {
			wc.pongOverdue = true
		}
		s.mu.Unlock()
		if overdue {
			s.violation("cable", "connection %d left a ping unanswered for more than %s (every ping needs a pong)", wc.id, s.opts.PongTimeout)
		}
		if stop {
			continue
		}
		if wc.send(pingFrame{"ping", now.Unix()}) != nil {
			return
		}
		s.mu.Lock()
		if wc.identifier != "" && len(wc.unanswered) < 10000 {
			wc.unanswered = append(wc.unanswered, now)
		}
		s.mu.Unlock()
	}
}

func (s *Server) cableFrame(wc *wsConn, data []byte) {
	const ep = "cable"
	var f map[string]json.RawMessage
	if err := json.Unmarshal(data, &f); err != nil || f == nil {
		s.violation(ep, "frame is not a JSON object: %.200s", data)
		return
	}
	var cmd string
	if json.Unmarshal(f["command"], &cmd) != nil {
		s.violation(ep, "frame without a string command: %.200s", data)
		return
	}
	allowed := map[string]bool{"command": true, "identifier": true}
	if cmd == "message" {
		allowed["data"] = true
	}
	var extra []string
	for _, k := range sortedKeys(f) {
		if !allowed[k] {
			extra = append(extra, fmt.Sprintf("%s frame has unexpected key %q", cmd, k))
		}
	}
	s.violationsOf(ep, extra)
	switch cmd {
	case "subscribe":
		s.subscribe(wc, f["identifier"])
	case "message":
		s.message(wc, f["identifier"], f["data"])
	case "unsubscribe":
		s.mu.Lock()
		wc.identifier = ""
		s.notifyLocked()
		s.mu.Unlock()
	default:
		s.violation(ep, "unknown command %q", cmd)
	}
}

func (s *Server) subscribe(wc *wsConn, rawIdent json.RawMessage) {
	const ep = "cable"
	var ident string
	if json.Unmarshal(rawIdent, &ident) != nil {
		s.violation(ep, "subscribe identifier must be a JSON string holding {\"channel\":\"PodAgentChannel\",\"id\":...}; got %.200s", rawIdent)
		return
	}
	var id map[string]json.RawMessage
	if json.Unmarshal([]byte(ident), &id) != nil || id == nil {
		s.violation(ep, "subscribe identifier %q does not hold a JSON object", ident)
		return
	}
	var channel, uid string
	if json.Unmarshal(id["channel"], &channel) != nil || channel != radar.ChannelName {
		// The service logs "Subscription class not found" and answers nothing.
		s.violation(ep, "subscribe to channel %s, want %q", id["channel"], radar.ChannelName)
		return
	}
	if json.Unmarshal(id["id"], &uid) != nil {
		s.violation(ep, "subscribe identifier lacks a string id: %q", ident)
	} else if u, err := uuid.Parse(uid); err != nil || u.Version() != 4 {
		s.violation(ep, "subscribe identifier id %q is not a UUIDv4", uid)
	}
	if len(id) != 2 {
		s.violation(ep, "subscribe identifier %q has keys %v, want channel and id", ident, sortedKeys(id))
	}
	s.mu.Lock()
	dup := wc.identifier == ident
	reject := s.rejectSubs
	if !dup && !reject {
		wc.identifier = ident
		s.notifyLocked()
	}
	s.mu.Unlock()
	switch {
	case dup:
		s.violation(ep, "subscribed twice with %q", ident)
	case reject:
		wc.send(subFrame{ident, "reject_subscription"})
	default:
		wc.send(subFrame{ident, "confirm_subscription"})
	}
}

func (s *Server) message(wc *wsConn, rawIdent, rawData json.RawMessage) {
	const ep = "cable"
	var ident string
	s.mu.Lock()
	sub := wc.identifier
	s.mu.Unlock()
	if json.Unmarshal(rawIdent, &ident) != nil || sub == "" || ident != sub {
		s.violation(ep, "message for %.200s, which is not the confirmed subscription", rawIdent)
		return
	}
	var dataS string
	if json.Unmarshal(rawData, &dataS) != nil {
		s.violation(ep, "message data must be a JSON string holding the action object; got %.200s", rawData)
		return
	}
	var d map[string]json.RawMessage
	if json.Unmarshal([]byte(dataS), &d) != nil || d == nil {
		s.violation(ep, "message data %.200q does not hold a JSON object", dataS)
		return
	}
	var action string
	if json.Unmarshal(d["action"], &action) != nil {
		s.violation(ep, "message data without a string action: %.200s", dataS)
		return
	}
	now := time.Now()
	switch action {
	case "sync":
		payload, ok := d["payload"]
		var probs []string
		if !ok {
			probs = append(probs, "sync without payload")
		} else {
			probs = checkObject("sync payload", payload, syncSpec)
		}
		if len(d) > 2 {
			probs = append(probs, fmt.Sprintf("sync data has keys %v, want action and payload", sortedKeys(d)))
		}
		s.violationsOf(ep, probs)
		var sp radar.SyncPayload
		_ = json.Unmarshal(payload, &sp)
		s.mu.Lock()
		s.syncs = append(s.syncs, Sync{Time: now, Conn: wc.id, UnixUser: wc.unixUser, Payload: sp, Raw: payload})
		upd, test, ifaces := s.pendingUpdate, s.pendingTest, s.pendingIfaces
		s.notifyLocked()
		s.mu.Unlock()
		// Like the service: whatever is outstanding is transmitted right
		// away, update first.
		if upd != nil {
			wc.send(transmitFrame{"update", map[string]string{"version": upd.version, "binary_url": upd.url}})
		}
		if test {
			wc.send(transmitFrame{"run_test", map[string]any{"interfaces": ifaces}})
		}
	case "pong":
		if len(d) != 1 {
			s.violation(ep, "pong carries more than the action: %.200s", dataS)
		}
		s.mu.Lock()
		s.pongs = append(s.pongs, Action{Time: now, Conn: wc.id, Action: action, Data: dataS})
		if len(wc.unanswered) > 0 {
			wc.unanswered = wc.unanswered[1:]
		}
		s.notifyLocked()
		s.mu.Unlock()
	default:
		s.violation(ep, "unknown action %q (PodAgentChannel has sync and pong)", action)
		s.mu.Lock()
		s.actions = append(s.actions, Action{Time: now, Conn: wc.id, Action: action, Data: dataS})
		s.notifyLocked()
		s.mu.Unlock()
	}
}

// --- controls ----------------------------------------------------------------

func (s *Server) openConns(subscribedOnly bool) []*wsConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*wsConn
	for _, c := range s.conns {
		if !subscribedOnly || c.identifier != "" {
			out = append(out, c)
		}
	}
	return out
}

// SendBroadcast broadcasts {"event":event,"payload":payload} on the
// channel of every subscribed pod and returns how many it reached.
func (s *Server) SendBroadcast(event string, payload any) int {
	n := 0
	for _, c := range s.openConns(true) {
		s.mu.Lock()
		ident := c.identifier
		s.mu.Unlock()
		if c.send(broadcastFrame{ident, broadcastMessage{event, payload}}) == nil {
			n++
		}
	}
	return n
}

// SendRunTest requests a test the way the service does: the test becomes
// pending (status answers test_requested, a sync re-transmits it, an upload
// clears it) and test_requested is broadcast. nil interfaces is JSON null,
// the default route. It returns how many subscribed pods it reached.
func (s *Server) SendRunTest(interfaces []string) int {
	s.mu.Lock()
	s.pendingTest, s.pendingIfaces = true, interfaces
	s.mu.Unlock()
	return s.SendBroadcast("test_requested", map[string]any{"interfaces": interfaces})
}

// SendVersionChanged announces a version: it becomes the pending update
// and version_changed is broadcast.
func (s *Server) SendVersionChanged(version, binaryURL string) int {
	s.SetPendingUpdate(version, binaryURL)
	return s.SendBroadcast("version_changed", map[string]string{"version": version, "binary_url": binaryURL})
}

// SendTransmit sends the direct form the service uses during sync,
// {"type":typ,"message":message}, to every subscribed pod.
func (s *Server) SendTransmit(typ string, message any) int {
	n := 0
	for _, c := range s.openConns(true) {
		if c.send(transmitFrame{typ, message}) == nil {
			n++
		}
	}
	return n
}

// SendRaw sends frame as-is to every open connection.
func (s *Server) SendRaw(frame string) int {
	n := 0
	for _, c := range s.openConns(false) {
		if c.sendRaw([]byte(frame)) == nil {
			n++
		}
	}
	return n
}

// Disconnect sends {"type":"disconnect","reason":reason,"reconnect":
// reconnect} to every open connection and closes it.
func (s *Server) Disconnect(reason string, reconnect bool) int {
	n := 0
	for _, c := range s.openConns(false) {
		if c.send(disconnectFrame{"disconnect", reason, reconnect}) == nil {
			n++
		}
		c.conn.Close()
	}
	return n
}

// DropConnections closes every open channel socket without a word, as a
// network failure or a crashed service would.
func (s *Server) DropConnections() int {
	conns := s.openConns(false)
	for _, c := range conns {
		c.conn.Close()
	}
	return len(conns)
}
