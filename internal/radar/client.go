package radar

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"

	"github.com/radarpod/radarpod/internal/backoff"
	"github.com/radarpod/radarpod/internal/httpclient"
)

// maxJSONBody bounds a JSON answer of the service (a client record is a
// few hundred bytes).
const maxJSONBody = 1 << 20

// Client makes the pods service's HTTP calls.
type Client struct {
	base string
	hc   *http.Client
	// Start, when set, supplies service_first_ping for Status and is
	// acknowledged by a 200 answer to a "true" call.
	Start *ServiceStart
}

// NewClient returns a client for the service at baseURL (scheme and host,
// optionally a path prefix). hc is built by the caller with httpclient.New
// and the agent's User-Agent; the client never follows redirects (a 302 is
// the service's answer to a wrong Accept header and must be seen).
func NewClient(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = httpclient.New(httpclient.Options{})
	}
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: &c}
}

// Register creates a new pod: POST /api/v1/clients. Only 201 is success.
func (c *Client) Register(ctx context.Context, req RegisterRequest) (Identity, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return Identity{}, fmt.Errorf("register pod: %w", err)
	}
	hr, err := c.newRequest(ctx, c.base+"/api/v1/clients", bytes.NewReader(body))
	if err != nil {
		return Identity{}, fmt.Errorf("register pod: %w", err)
	}
	hr.Header.Set("Content-Type", "application/json")
	var rec ClientRecord
	if err := c.do(hr, OpRegister, http.StatusCreated, []string{req.RegistrationToken}, &rec); err != nil {
		return Identity{}, fmt.Errorf("register pod: %w", err)
	}
	id := Identity{ID: rec.ID, UnixUser: rec.UnixUser, Secret: rec.Secret, AccountID: rec.AccountID, LocationID: rec.LocationID}
	if !id.Valid() {
		return Identity{}, fmt.Errorf("register pod: %w", &responseError{op: OpRegister, err: errors.New("record lacks unix_user or secret")})
	}
	return id, nil
}

// Status sends the fallback heartbeat: POST /clients/<unix_user>/status.
func (c *Client) Status(ctx context.Context, id Identity, req StatusRequest) (StatusResponse, error) {
	if c.Start != nil {
		req.ServiceFirstPing = BoolString(c.Start.First())
	}
	if req.NetworkInterfaces == nil {
		// The service wants an array, even an empty one.
		req.NetworkInterfaces = []NetInterface{}
	}
	body, err := json.Marshal(req)
	if err != nil {
		return StatusResponse{}, fmt.Errorf("status of %s: %w", id.UnixUser, err)
	}
	hr, err := c.newRequest(ctx, c.base+"/clients/"+url.PathEscape(id.UnixUser)+"/status", bytes.NewReader(body))
	if err != nil {
		return StatusResponse{}, fmt.Errorf("status of %s: %w", id.UnixUser, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", id.clientToken())
	var resp StatusResponse
	if err := c.do(hr, OpStatus, http.StatusOK, id.Secrets(), &resp); err != nil {
		return StatusResponse{}, fmt.Errorf("status of %s: %w", id.UnixUser, err)
	}
	if req.ServiceFirstPing {
		c.Start.Acknowledge()
	}
	return resp, nil
}

// Measurement styles the service knows.
const (
	StyleNDT7  = "NDT7"
	StyleOokla = "OOKLA"
)

// Measurement is one result to upload.
type Measurement struct {
	// Style is StyleNDT7 or StyleOokla.
	Style string
	// Interface is the interface the test was bound to; empty for the
	// default route.
	Interface string
	Wireless  bool
	// ConnectionInfo is sent for wireless tests only (see ConnectionInfo).
	ConnectionInfo json.RawMessage
	// Result is the raw result exactly as the service parses it.
	Result []byte
}

// UploadMeasurement posts a result: multipart/form-data to
// /clients/<unix_user>/measurements, authenticated by client_secret. Only a
// 201 means the service stored it.
func (c *Client) UploadMeasurement(ctx context.Context, id Identity, m Measurement) error {
	if m.Style != StyleNDT7 && m.Style != StyleOokla {
		return fmt.Errorf("upload %s measurement: unknown style", m.Style)
	}
	body, ctype, err := multipartBody(id, m)
	if err != nil {
		return fmt.Errorf("upload %s measurement: %w", m.Style, err)
	}
	hr, err := c.newRequest(ctx, c.base+"/clients/"+url.PathEscape(id.UnixUser)+"/measurements", nil)
	if err != nil {
		return fmt.Errorf("upload %s measurement: %w", m.Style, err)
	}
	hr.Header.Set("Content-Type", ctype)
	hr.Body, _ = body.get()
	hr.GetBody = body.get
	hr.ContentLength = body.size
	if err := c.do(hr, OpUpload, http.StatusCreated, id.Secrets(), nil); err != nil {
		return fmt.Errorf("upload %s measurement: %w", m.Style, err)
	}
	return nil
}

// multipartPayload is the upload body as three pieces: the form fields and
// the file part's header, the result itself (not copied), and the closing
// boundary. The exact length is known up front, so the request carries a
// Content-Length and can be replayed.
type multipartPayload struct {
	head, result, tail []byte
	size               int64
}

func (p *multipartPayload) get() (io.ReadCloser, error) {
	return io.NopCloser(io.MultiReader(bytes.NewReader(p.head), bytes.NewReader(p.result), bytes.NewReader(p.tail))), nil
}

func multipartBody(id Identity, m Measurement) (*multipartPayload, string, error) {
	var head, tail bytes.Buffer
	sw := &switchWriter{w: &head}
	w := multipart.NewWriter(sw)
	fields := [][2]string{
		{"measurement[style]", m.Style},
		{"client_secret", id.Secret},
		{"measurement[interface]", m.Interface},
		{"measurement[wireless]", fmt.Sprint(m.Wireless)},
	}
	if len(m.ConnectionInfo) > 0 {
		fields = append(fields, [2]string{"connection_info", string(m.ConnectionInfo)})
	}
	for _, f := range fields {
		if err := w.WriteField(f[0], f[1]); err != nil {
			return nil, "", err
		}
	}
	h := make(textproto.MIMEHeader)
	h.Set("Content-Disposition", `form-data; name="measurement[result]"; filename="result.json"`)
	h.Set("Content-Type", "application/octet-stream")
	if _, err := w.CreatePart(h); err != nil {
		return nil, "", err
	}
	sw.w = &tail
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	p := &multipartPayload{head: head.Bytes(), result: m.Result, tail: tail.Bytes()}
	p.size = int64(len(p.head) + len(p.result) + len(p.tail))
	return p, w.FormDataContentType(), nil
}

type switchWriter struct{ w io.Writer }

func (s *switchWriter) Write(p []byte) (int, error) { return s.w.Write(p) }

func (c *Client) newRequest(ctx context.Context, u string, body io.Reader) (*http.Request, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u, body)
	if err != nil {
		return nil, err
	}
	// Exactly this value: the service decides "JSON request" from it.
	hr.Header.Set("Accept", "application/json")
	return hr, nil
}

// do sends hr and accepts only want; into, when set, receives the JSON body.
func (c *Client) do(hr *http.Request, op string, want int, secrets []string, into any) error {
	resp, err := c.hc.Do(hr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		b, _ := httpclient.ReadLimited(resp.Body, 64<<10)
		se := newStatusError(op, resp.StatusCode, b, secrets...)
		if honoursRetryAfter(resp.StatusCode) {
			se.RetryAfter, _ = backoff.RetryAfter(resp.Header, time.Now())
		}
		return se
	}
	if into == nil {
		// Read the little the service sends back (a 201 echoes the stored
		// record): only a body read to its end returns the connection to
		// the pool. Otherwise every upload pays a new TCP and TLS handshake.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxJSONBody))
		return nil
	}
	b, err := httpclient.ReadLimited(resp.Body, maxJSONBody)
	if err != nil {
		if errors.Is(err, httpclient.ErrTooLarge) {
			return &responseError{op: op, err: err}
		}
		return err
	}
	if err := json.Unmarshal(b, into); err != nil {
		return &responseError{op: op, err: err}
	}
	return nil
}
