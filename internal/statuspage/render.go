package statuspage

import (
	"bytes"
	"html"
	"strconv"
)

// The page is written by hand rather than with html/template: text/template
// calls methods by name through reflection, which makes the linker keep
// every exported method of every reachable type, and that cost the agent
// about 3 MB of binary (and the RSS that goes with it on a Pi).
//
// The safety html/template gave is kept by construction: markup is a type
// of its own that only constants (and the chart's SVG, built from numbers
// and escaped labels) convert to implicitly, so a string from a result, the
// service, the updater's status file, the network check or the
// configuration cannot reach the page without going through text or attr.
// No data is ever written into a script, a style or a URL.

// markup is HTML this package wrote: a constant, or built from escaped
// parts (see renderChart). Converting anything else to it is a bug.
type markup string

// htmlWriter builds a page.
type htmlWriter struct {
	b bytes.Buffer
}

// raw writes markup as it is.
func (w *htmlWriter) raw(m markup) { w.b.WriteString(string(m)) }

// text writes s as the text of an element.
func (w *htmlWriter) text(s string) { w.b.WriteString(html.EscapeString(s)) }

// attr writes ` name="value"`, the value escaped: html.EscapeString
// escapes both quotes as well as <, > and &, so the value cannot end the
// attribute or start another.
func (w *htmlWriter) attr(name markup, value string) {
	w.b.WriteByte(' ')
	w.b.WriteString(string(name))
	w.b.WriteString(`="`)
	w.b.WriteString(html.EscapeString(value))
	w.b.WriteByte('"')
}

// kvList writes labelled facts as the page's <dl>.
func (w *htmlWriter) kvList(items []kv) {
	w.raw(`<dl>`)
	for _, it := range items {
		w.raw(`<dt>`)
		w.text(it.K)
		w.raw(`</dt><dd`)
		w.attr("class", it.Class)
		w.raw(`>`)
		if it.Class != "" {
			w.raw(`<span class="dot"></span>`)
		}
		w.text(it.V)
		w.raw(`</dd>`)
	}
	w.raw("</dl>\n")
}

// renderPage writes the status page of v.
func renderPage(v pageView) []byte {
	w := &htmlWriter{}
	w.b.Grow(64 << 10)
	w.raw(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>`)
	w.text(v.Title)
	w.raw(`</title>
<link rel="icon" href="data:,">
`)
	if v.Running {
		w.raw(`<noscript><meta http-equiv="refresh" content="5"></noscript>`)
	}
	w.raw("\n<style>\n" + pageStyle + "</style>\n</head>\n<body")
	if v.Running {
		w.raw(` data-running="1"`)
	}
	w.raw(">\n<header>\n<h1>")
	w.text(v.Title)
	w.raw("</h1>\n<p>This box measures the speed of the internet connection it is plugged into. Page updated ")
	w.text(v.Generated)
	w.raw(` · <a href="/">Refresh</a></p>
</header>
<main>

<section`)
	w.attr("class", "status "+v.StatusClass)
	w.raw(">\n<div><strong>")
	w.text(v.StatusText)
	w.raw(`</strong>`)
	if len(v.StatusDetail) > 0 {
		w.raw(`<ul>`)
		for _, d := range v.StatusDetail {
			w.raw(`<li>`)
			w.text(d)
			w.raw(`</li>`)
		}
		w.raw(`</ul>`)
	}
	w.raw(`</div>
</section>

<div class="row">
<div class="card">
<h2>Latest result</h2>
`)
	w.latest(v.Latest)
	w.raw(`
</div>
<div class="card" id="test">
<h2>Run a test now</h2>
`)
	w.actions(v)
	w.raw("\n")
	if v.OtherTest {
		w.raw(`<p class="mut" id="busy">A test is running right now; pressing the button joins it.</p>`)
	}
	w.raw("\n<div id=\"run-status\"")
	w.attr("class", "run "+v.Run.State)
	w.raw(` role="status" aria-live="polite">`)
	w.text(v.Run.Message)
	w.raw(`</div>
</div>
</div>

`)
	w.charts(v)
	w.raw(`

<div class="grid2">
<section id="connection">
<h2>`)
	w.text(v.ConnectionHeader)
	w.raw("</h2>\n")
	w.kvList(v.Connection)
	w.raw(`</section>
<section id="updates">
<h2>Software updates</h2>
`)
	w.kvList(v.Update)
	w.raw("</section>\n")
	if len(v.Budget) > 0 {
		w.raw("<section id=\"budget\">\n<h2>Data budget</h2>\n")
		w.kvList(v.Budget)
		w.raw(`</section>`)
	}
	w.raw(`
<section id="about">
<h2>About this pod</h2>
`)
	w.kvList(v.About)
	w.raw(`</section>
</div>

<section id="network">
<h2>Network check</h2>
`)
	w.netCheck(v.NetCheck)
	w.raw(`
</section>
<section id="results">
<h2>Recent results <span class="dl right"><a href="/results.csv" download>Download all (CSV)</a><a href="/results.json" download>JSON</a></span></h2>
`)
	w.results(v)
	w.raw("\n</section>\n</main>\n<script")
	w.attr("nonce", v.Nonce)
	w.raw(">\n" + pageScript + "</script>\n</body>\n</html>\n")
	return w.b.Bytes()
}

func (w *htmlWriter) latest(l *latestView) {
	if l == nil {
		w.raw(`<p class="mut">No successful test yet.</p>`)
		return
	}
	w.raw("\n<div class=\"figs\">\n")
	for _, f := range []struct {
		label markup
		value string
		unit  markup
	}{{"Download", l.Down, "Mbit/s"}, {"Upload", l.Up, "Mbit/s"}, {"Latency", l.Latency, "ms"}} {
		w.raw(`<div class="fig"><div class="l">` + f.label + `</div><div class="n">`)
		w.text(f.value)
		w.raw(`</div><div class="u">` + f.unit + "</div></div>\n")
	}
	w.raw("</div>\n<p class=\"mut\">")
	w.text(l.Test)
	w.raw(", ")
	w.text(l.When)
	w.raw("</p>\n")
}

// actions is the test button, or why there is none.
func (w *htmlWriter) actions(v pageView) {
	switch {
	case v.CanRun:
		w.raw(`
<form id="run-form" method="post" action="/test">
<input type="hidden" name="csrf"`)
		w.attr("value", v.CSRF)
		w.raw(">\n")
		if v.TokenNeeded {
			w.raw(`<input type="password" name="token" placeholder="Access token" autocomplete="current-password" aria-label="Access token (RADAR_STATUS_TOKEN)" required>`)
		}
		w.raw("\n<button id=\"run-button\" type=\"submit\"")
		if v.Running {
			w.raw(` disabled>Test running…`)
		} else {
			w.raw(`>Run a speed test`)
		}
		w.raw(`</button>
</form>
<p class="mut">Takes about a minute and uses some data (about 100 MB to 2 GB, depending on the speed of the line).</p>
`)
	case v.ActionsNote != "":
		w.raw(`<p class="mut">`)
		w.text(v.ActionsNote)
		w.raw("</p>\n")
	default:
		w.raw(`<p class="mut">Not available on this pod.</p>`)
	}
}

func (w *htmlWriter) charts(v pageView) {
	w.raw("<section id=\"charts\" class=\"tabs\">\n<h2>Speed over time</h2>\n")
	for _, rg := range v.Ranges {
		w.raw(`<input type="radio" name="range"`)
		w.attr("id", "r-"+rg.ID)
		if rg.Checked {
			w.raw(` checked`)
		}
		w.raw(`>`)
	}
	w.raw("\n<div class=\"tabbar\">")
	for _, rg := range v.Ranges {
		w.raw(`<label`)
		w.attr("for", "r-"+rg.ID)
		w.raw(`>`)
		w.text(rg.Label)
		w.raw(`</label>`)
	}
	w.raw("</div>\n")
	if len(v.Legend) > 0 {
		w.raw(`<ul class="legend">`)
		for _, s := range v.Legend {
			w.raw(`<li><i`)
			// Colours are this package's own (seriesColors); escaped
			// all the same.
			w.attr("style", "background:"+s.Color)
			w.raw(`></i>`)
			w.text(s.Label)
			w.raw(`</li>`)
		}
		w.raw(`</ul>`)
	}
	w.raw("\n")
	for _, rg := range v.Ranges {
		w.raw(`<div`)
		w.attr("class", "range range-"+rg.ID)
		w.attr("data-range", rg.ID)
		w.raw(">\n<div class=\"charts\">")
		for _, c := range rg.Charts {
			w.raw(`<div class="chartbox"`)
			w.attr("data-metric", c.ID)
			w.raw(`><h3>`)
			w.text(c.Title)
			w.raw(` <span>(`)
			w.text(c.Unit)
			w.raw(`)</span></h3>`)
			w.raw(c.SVG)
			w.raw(`</div>`)
		}
		w.raw("</div>\n</div>")
	}
	w.raw(`
<p class="mut">Times are in UTC. Each line is one kind of test on one network connection; “default route” is the pod’s main connection.</p>
</section>
`)
}

func (w *htmlWriter) netCheck(nc *netView) {
	if nc == nil {
		w.raw(`<p class="mut">The check runs when the agent starts; no result yet.</p>`)
		return
	}
	w.raw("\n<p class=\"mut\">Last check: ")
	w.text(nc.When)
	w.raw(`. It tries every connection the pod needs; a blocked one is usually a firewall.</p>
<div class="scroll"><table>
<thead><tr>`)
	for _, h := range nc.Header {
		w.raw(`<th>`)
		w.text(h)
		w.raw(`</th>`)
	}
	w.raw("</tr></thead>\n<tbody>")
	for _, row := range nc.Rows {
		w.raw(`<tr>`)
		for i, cell := range row.Cells {
			w.raw(`<td`)
			// The third column is the verdict, coloured.
			if i == 2 {
				w.attr("class", row.Class)
			}
			w.raw(`>`)
			w.text(cell)
			w.raw(`</td>`)
		}
		w.raw("</tr>\n")
	}
	w.raw("</tbody></table></div>\n<p class=\"foot\">")
	w.text(nc.Footer)
	w.raw("</p>\n")
}

func (w *htmlWriter) results(v pageView) {
	if len(v.Results) == 0 {
		w.raw(`<p class="mut">No results yet. The first test runs soon after the pod starts, or press “Run a speed test”.</p>`)
		return
	}
	w.raw(`
<div class="scroll"><table>
<thead><tr><th>When (UTC)</th><th>Test</th><th class="n">Download<br>Mbit/s</th><th class="n">Upload<br>Mbit/s</th><th class="n">Latency<br>ms</th></tr></thead>
<tbody>
`)
	for _, r := range v.Results {
		w.raw(`<tr`)
		if !r.OK {
			w.raw(` class="fail"`)
		}
		w.raw(`><td>`)
		w.text(r.When)
		if r.Ago != "" {
			w.raw(`<br><span class="mut">`)
			w.text(r.Ago)
			w.raw(`</span>`)
		}
		w.raw(`</td><td>`)
		w.text(r.Test)
		w.raw(`</td>`)
		if r.OK {
			for _, n := range []string{r.Down, r.Up, r.Latency} {
				w.raw(`<td class="n">`)
				w.text(n)
				w.raw(`</td>`)
			}
		} else {
			w.raw(`<td colspan="3" class="bad"`)
			w.attr("title", r.Error)
			w.raw(`>Failed (`)
			w.text(r.ErrKind)
			w.raw(`)`)
			if r.Error != "" {
				w.raw(`<br><span class="mut">`)
				w.text(r.Error)
				w.raw(`</span>`)
			}
			w.raw(`</td>`)
		}
		w.raw("</tr>\n")
	}
	w.raw("</tbody></table></div>\n<p class=\"mut\">The last ")
	w.text(strconv.Itoa(len(v.Results)))
	w.raw(` of `)
	w.text(strconv.Itoa(v.ResultsTotal))
	w.raw(` results of the last 35 days`)
	if v.UnsyncedResults > 0 {
		w.raw(`; `)
		w.text(strconv.Itoa(v.UnsyncedResults))
		w.raw(` were measured before the pod knew the time`)
	}
	w.raw(".</p>\n")
}
