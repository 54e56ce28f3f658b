package statuspage

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/radarpod/radarpod/internal/agent"
	"github.com/radarpod/radarpod/internal/handoff"
	"github.com/radarpod/radarpod/internal/netcheck"
	"github.com/radarpod/radarpod/internal/speedtest"
)

// TestHostileStringsAreEscaped puts markup in everything the page shows
// from outside the package — the pod's name (the service, the config), a
// result's error and interface (the results), the update reason (the
// updater's status file), the network check — and parses the page the way
// a browser does: each string comes back as the text or attribute value it
// was, and nothing it holds became an element, an attribute or a script.
func TestHostileStringsAreEscaped(t *testing.T) {
	for _, tc := range []struct{ name, s string }{
		{"script element", `<script>alert(1)</script>`},
		{"attribute breakout", `"onmouseover="alert(1)`},
		{"attribute breakout, spaced", `x" onmouseover="alert(1)" y="`},
		{"single quote breakout", `'><img src=x onerror=alert(1)>`},
		{"ampersand and apostrophe", `Tom & Jerry's &amp; &lt;b&gt;`},
		{"closing the list", `</dd></dl></section><script>alert(1)</script>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.s
			now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
			dir := t.TempDir()
			if err := handoff.WriteStatus(dir, handoff.Status{State: handoff.StateRefused, Reason: h, UpdatedAt: now.Add(-time.Hour)}); err != nil {
				t.Fatal(err)
			}
			down, up, lat := 90.5, 20.25, 12.0
			pod := &historyPod{
				snap: agent.Snapshot{PodName: h, PodID: 7, ServerURL: "https://radar.example.org", ChannelUp: true,
					NetCheckWhy: h, NetCheck: &netcheck.Report{Started: now.Add(-time.Minute), Rows: []netcheck.RowResult{
						{ID: h, Service: h, Required: true, Verdict: netcheck.Fail, Step: "tcp", Hint: h},
					}}},
				entries: []agent.ResultEntry{
					{Time: now.Add(-2 * time.Hour), Runner: "ookla", Interface: h, DownloadMbps: &down, UploadMbps: &up, LatencyMs: &lat},
					{Time: now.Add(-time.Hour), Runner: "ndt7", ErrorClass: h, Error: h},
				},
			}
			s := New(Options{Pod: pod, DataDir: dir, Now: func() time.Time { return now },
				RunTest: func(context.Context, func(speedtest.Progress)) error { return nil }})
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
			page := rec.Body.String()
			if rec.Code != 200 {
				t.Fatalf("GET / = %d\n%s", rec.Code, page)
			}
			if strings.Contains(page, h) {
				t.Errorf("the page holds %q unescaped", h)
			}
			doc, err := html.Parse(strings.NewReader(page))
			if err != nil {
				t.Fatal(err)
			}

			// Nothing was injected.
			scripts := 0
			walk(doc, func(n *html.Node) {
				if n.Type != html.ElementNode {
					return
				}
				for _, a := range n.Attr {
					if strings.HasPrefix(a.Key, "on") {
						t.Errorf("<%s> has an attribute %s=%q", n.Data, a.Key, a.Val)
					}
				}
				switch n.Data {
				case "img":
					t.Errorf("the page has an <img>")
				case "script":
					scripts++
					if got := text(n); got != "\n"+pageScript {
						t.Errorf("the script is not the page's own:\n%s", got)
					}
				}
			})
			if scripts != 1 {
				t.Errorf("%d scripts, want 1", scripts)
			}

			// Every string is where it belongs, as it was.
			iface := "Ookla on " + h
			for _, c := range []struct {
				where string
				got   []string
				want  string
			}{
				{"title", texts(doc, byTag("title")), "Radar pod “" + h + "”"},
				{"heading", texts(doc, byTag("h1")), "Radar pod “" + h + "”"},
				{"about: name", dd(doc, "about", "Name"), h},
				{"updates: reason", dd(doc, "updates", "Reason"), h},
				{"status: last test failed", texts(doc, byTag("li")), "The last test failed: " + h + "."},
				{"latest result", texts(doc, byClass("p", "mut")), iface + ", 2 hours ago (2026-06-01 10:00 UTC)"},
				{"legend", texts(doc, within("ul", "legend", byTag("li"))), iface},
				{"chart line", attrs(doc, byTag("polyline"), "data-series"), iface},
				{"results: test", texts(doc, within("section", "results", byTag("td"))), iface},
				{"results: error title", attrs(doc, byClass("td", "bad"), "title"), h},
				{"results: error text", texts(doc, within("td", "bad", byClass("span", "mut"))), h},
				{"results: error kind", texts(doc, byClass("td", "bad")), "Failed (" + h + ")" + h},
				{"network check: service", texts(doc, within("section", "network", byTag("td"))), h},
				{"network check: why", texts(doc, within("section", "network", byClass("p", "mut"))),
					"Last check: 1 minute ago (2026-06-01 11:59 UTC) (" + h + "). It tries every connection the pod needs; a blocked one is usually a firewall."},
			} {
				found := false
				for _, g := range c.got {
					found = found || g == c.want
				}
				if !found {
					t.Errorf("%s: want %q among %q", c.where, c.want, c.got)
				}
			}
		})
	}
}

func walk(n *html.Node, f func(*html.Node)) {
	f(n)
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		walk(c, f)
	}
}

func text(n *html.Node) string {
	var b strings.Builder
	walk(n, func(c *html.Node) {
		if c.Type == html.TextNode {
			b.WriteString(c.Data)
		}
	})
	return b.String()
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func byTag(tag string) func(*html.Node) bool {
	return func(n *html.Node) bool { return n.Type == html.ElementNode && n.Data == tag }
}

// byClass matches a tag by one of its classes or, for a section, its id.
func byClass(tag, class string) func(*html.Node) bool {
	return func(n *html.Node) bool {
		if !byTag(tag)(n) {
			return false
		}
		if id, _ := attr(n, "id"); id == class {
			return true
		}
		cl, _ := attr(n, "class")
		for _, c := range strings.Fields(cl) {
			if c == class {
				return true
			}
		}
		return false
	}
}

// within matches what match matches inside a tag of that class or id.
func within(tag, class string, match func(*html.Node) bool) func(*html.Node) bool {
	outer := byClass(tag, class)
	return func(n *html.Node) bool {
		if !match(n) {
			return false
		}
		for p := n.Parent; p != nil; p = p.Parent {
			if outer(p) {
				return true
			}
		}
		return false
	}
}

func find(doc *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	walk(doc, func(n *html.Node) {
		if match(n) {
			out = append(out, n)
		}
	})
	return out
}

func texts(doc *html.Node, match func(*html.Node) bool) []string {
	var out []string
	for _, n := range find(doc, match) {
		out = append(out, text(n))
	}
	return out
}

func attrs(doc *html.Node, match func(*html.Node) bool, key string) []string {
	var out []string
	for _, n := range find(doc, match) {
		if v, ok := attr(n, key); ok {
			out = append(out, v)
		}
	}
	return out
}

// dd is the value of the fact labelled label in the section of that id.
func dd(doc *html.Node, section, label string) []string {
	var out []string
	for _, dt := range find(doc, within("section", section, byTag("dt"))) {
		if text(dt) != label {
			continue
		}
		for s := dt.NextSibling; s != nil; s = s.NextSibling {
			if byTag("dd")(s) {
				out = append(out, text(s))
				break
			}
		}
	}
	return out
}
