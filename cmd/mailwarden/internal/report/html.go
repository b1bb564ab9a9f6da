package report

import (
	"fmt"
	"html/template"
	"io"
	"time"
)

// bar is one bar of a chart, laid out in SVG user units.
type bar struct {
	Label string
	Count int
	X, Y  int // position
	W, H  int // size
}

// chart is a horizontal (rows) or vertical (columns) bar chart.
type chart struct {
	ID     string
	Title  string
	Width  int
	Height int
	Bars   []bar
	Vert   bool
}

const (
	chartWidth = 640
	labelWidth = 220
	rowHeight  = 22
)

func hbars(id, title string, rows []Count) chart {
	c := chart{ID: id, Title: title, Width: chartWidth, Height: rowHeight*len(rows) + 8}
	maxN := 1
	for _, r := range rows {
		maxN = max(maxN, r.Count)
	}
	for i, r := range rows {
		w := (chartWidth - labelWidth - 60) * r.Count / maxN
		c.Bars = append(c.Bars, bar{Label: r.Key, Count: r.Count, X: labelWidth, Y: 4 + i*rowHeight, W: max(w, 1), H: rowHeight - 6})
	}
	return c
}

func vbars(id, title string, rows []Count) chart {
	const h = 160
	c := chart{ID: id, Title: title, Width: chartWidth, Height: h + 32, Vert: true}
	maxN := 1
	for _, r := range rows {
		maxN = max(maxN, r.Count)
	}
	if len(rows) == 0 {
		return c
	}
	step := max((chartWidth-20)/len(rows), 2)
	for i, r := range rows {
		bh := (h - 14) * r.Count / maxN
		c.Bars = append(c.Bars, bar{Label: r.Key, Count: r.Count, X: 10 + i*step, Y: h - bh, W: max(step-2, 1), H: max(bh, 1)})
	}
	return c
}

type page struct {
	R         *Report
	Generated string
	Actions   []Count
	Charts    []chart
}

var funcs = template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	},
	"reasons": formatReasons,
	"hour": func(k string) string { // "2006-01-02T15" → "02 15h"
		if len(k) == 13 {
			return k[8:10] + " " + k[11:] + "h"
		}
		return k
	},
	"add": func(a, b int) int { return a + b },
}

var pageTmpl = template.Must(template.New("page").Funcs(funcs).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>mailwarden report</title>
<style>
body{font-family:sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}
td.n{text-align:right;font-variant-numeric:tabular-nums}
svg{display:block;margin:.5em 0 1.5em;background:#fafafa}
svg text{font-size:12px;fill:#222}
rect.bar{fill:#4a78b0}
h2{border-bottom:1px solid #ddd;padding-bottom:.2em}
</style></head><body>
<h1>mailwarden report</h1>
<p id="period">Period: {{ts .R.First}} .. {{ts .R.Last}}{{if not .R.Since.IsZero}} (since {{ts .R.Since}}){{end}}. Lines read: {{.R.Lines}}, not JSON: {{.R.Skipped}}. Generated {{.Generated}}.</p>

<h2>Totals</h2>
<table id="totals"><tr><th>messages</th><td class="n" id="total-messages">{{.R.Messages}}</td></tr>
<tr><th>recipients refused at RCPT</th><td class="n" id="total-rcpts-refused">{{.R.RcptsRefused}}</td></tr>
{{range .Actions}}<tr><th>{{.Key}}</th><td class="n" id="action-{{.Key}}">{{.Count}}</td></tr>
{{end}}</table>
{{range .Charts}}
<h2>{{.Title}}</h2>
{{if .Bars}}<svg id="{{.ID}}" xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="{{.Title}}">
{{$v := .Vert}}{{$ := .}}{{range .Bars}}<g><title>{{.Label}}: {{.Count}}</title><rect class="bar" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}"></rect>
{{if $v}}{{if le (len $.Bars) 48}}<text x="{{.X}}" y="185">{{.Label | hour}}</text>{{end}}<text x="{{.X}}" y="{{add .Y -2}}">{{.Count}}</text>{{else}}<text x="4" y="{{add .Y 12}}">{{.Label}}</text><text x="{{add .X (add .W 4)}}" y="{{add .Y 12}}">{{.Count}}</text>{{end}}</g>
{{end}}</svg>{{else}}<p>(none)</p>{{end}}
{{end}}
<h2>Authentication failures: reason codes</h2>
{{if .R.AuthFailures}}<table id="auth"><tr><th>domain</th><th>failures</th><th>reasons</th></tr>
{{range .R.AuthFailures}}<tr><td>{{.Domain}}</td><td class="n">{{.Total}}</td><td>{{reasons .Reasons}}</td></tr>
{{end}}</table>{{else}}<p>(none)</p>{{end}}

<h2>Virus hits</h2>
{{template "events" .R.Viruses}}
<h2>Rate-limit events</h2>
{{if .R.RateLimits}}<table id="ratelimits"><tr><th>reason</th><th>count</th></tr>
{{range .R.RateLimits}}<tr><td>{{.Key}}</td><td class="n">{{.Count}}</td></tr>{{end}}</table>{{else}}<p>(none)</p>{{end}}
<h2>Relay attempts</h2>
{{template "events" .R.RelayAttempts}}
<h2>Local-only refusals</h2>
{{template "events" .R.LocalOnly}}
<h2>Bursts</h2>
{{if .R.Bursts}}<table id="bursts"><tr><th>address or client</th><th>messages</th><th>from</th><th>to</th></tr>
{{range .R.Bursts}}<tr><td>{{.Key}}</td><td class="n">{{.Count}}</td><td>{{ts .Start}}</td><td>{{ts .End}}</td></tr>
{{end}}</table>{{else}}<p>(none)</p>{{end}}
<h2>Operations events</h2>
{{template "events" .R.Ops}}
</body></html>
{{define "events"}}{{if .}}<table><tr><th>time</th><th>kind</th><th>client</th><th>from</th><th>recipient</th><th>detail</th></tr>
{{range .}}<tr><td>{{ts .Time}}</td><td>{{.Kind}}</td><td>{{.Client}}</td><td>{{.From}}</td><td>{{.Rcpt}}</td><td>{{.Detail}} {{.Reason}}</td></tr>
{{end}}</table>{{else}}<p>(none)</p>{{end}}{{end}}
`))

// WriteHTML writes the report as one self-contained page: inline CSS and
// SVG charts, no scripts, no external assets (a Content-Security-Policy
// forbids loading any).
func (rep *Report) WriteHTML(w io.Writer, generated time.Time) error {
	pg := page{R: rep, Generated: generated.UTC().Format(time.RFC3339)}
	var acts []Count
	for _, a := range Actions {
		pg.Actions = append(pg.Actions, Count{a, rep.ByAction[a]})
		acts = append(acts, Count{a, rep.ByWouldBe[a]})
	}
	var authRows []Count
	for _, a := range rep.AuthFailures {
		authRows = append(authRows, Count{a.Domain, a.Total})
	}
	pg.Charts = []chart{
		hbars("chart-actions", "Messages by action (as enforce mode decides)", acts),
		vbars("chart-hourly", "Messages per hour", rep.Hourly),
		hbars("chart-clients", "Top rejected clients", rep.TopClients),
		hbars("chart-domains", "Top rejected sender domains", rep.TopDomains),
		hbars("chart-auth", "Authentication failures by sender domain", authRows),
	}
	if err := pageTmpl.Execute(w, pg); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}
