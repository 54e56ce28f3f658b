package statuspage

// pageStyle is the page's stylesheet, inline: the page loads nothing.
const pageStyle = `:root{--fg:#1d2733;--mut:#5b6775;--bg:#f3f5f8;--card:#fff;--line:#e2e6ec;--ok:#1e7d45;--okb:#e6f4ec;--warn:#8a5a00;--warnb:#fff4d6;--bad:#b3261e;--badb:#fde8e6;--acc:#0b5cad}
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--fg);background:var(--bg)}
header{background:#14324f;color:#fff;padding:18px 24px}
header h1{margin:0;font-size:22px;font-weight:600}
header p{margin:4px 0 0;color:#c9d6e3;font-size:13px}
header a{color:#fff}
main{max-width:1060px;margin:0 auto;padding:18px 16px 40px}
h2{font-size:17px;margin:0 0 10px}
section,.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 18px;margin:0 0 16px}
.status{display:flex;gap:14px;align-items:flex-start;border-left:6px solid}
.status strong{font-size:18px}
.status ul{margin:4px 0 0;padding-left:18px}
.status.ok{border-left-color:var(--ok);background:var(--okb)}
.status.warn{border-left-color:#d99a00;background:var(--warnb)}
.status.bad{border-left-color:var(--bad);background:var(--badb)}
.row{display:grid;grid-template-columns:2fr 1fr;gap:16px}
.row>.card{margin:0}
@media (max-width:760px){.row,.grid2{grid-template-columns:1fr!important}}
.figs{display:flex;gap:26px;flex-wrap:wrap;margin:6px 0 4px}
.fig .n{font-size:34px;font-weight:600;line-height:1.1}
.fig .u{color:var(--mut);font-size:13px}
.fig .l{color:var(--mut);font-size:13px;text-transform:uppercase;letter-spacing:.04em}
.mut{color:var(--mut);font-size:13px}
button{font:inherit;font-weight:600;background:var(--acc);color:#fff;border:0;border-radius:8px;padding:11px 18px;cursor:pointer;width:100%}
button:disabled{background:#8aa6c4;cursor:default}
input[type=password]{font:inherit;width:100%;padding:8px;margin:0 0 8px;border:1px solid var(--line);border-radius:6px}
.run{margin:10px 0 0;padding:8px 10px;border-radius:6px;font-size:14px}
.run.running{background:#e8f0fb}.run.done{background:var(--okb)}.run.failed{background:var(--badb)}.run.idle{display:none}
.tabs>input{position:absolute;opacity:0;pointer-events:none}
.tabbar{display:flex;gap:6px;margin:0 0 8px}
.tabbar label{padding:5px 12px;border:1px solid var(--line);border-radius:16px;cursor:pointer;font-size:13px;background:#f7f9fb}
.range{display:none}
#r-7d:checked~.tabbar label[for=r-7d],#r-30d:checked~.tabbar label[for=r-30d]{background:var(--acc);color:#fff;border-color:var(--acc)}
#r-7d:checked~.range-7d,#r-30d:checked~.range-30d{display:block}
.charts{display:grid;grid-template-columns:1fr;gap:6px}
.charts h3{font-size:14px;margin:6px 0 0;font-weight:600}
.charts h3 span{color:var(--mut);font-weight:400}
svg.chart{width:100%;height:auto;display:block}
svg.chart .grid{stroke:#e6e9ee;stroke-width:1}
svg.chart .grid.v{stroke-dasharray:2 3}
svg.chart text{font:11px system-ui,sans-serif;fill:#6b7683}
svg.chart .yl{text-anchor:end}
svg.chart .xl{text-anchor:middle}
svg.chart .none{text-anchor:middle;font-size:13px}
svg.chart polyline{fill:none;stroke-width:2;stroke-linejoin:round;stroke-linecap:round}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;margin:0 0 6px;padding:0;list-style:none;font-size:13px}
.legend i{display:inline-block;width:14px;height:4px;border-radius:2px;vertical-align:middle;margin-right:6px}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:13px;color:var(--mut);font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums}
th.n{text-align:right}
tr.fail td{background:#fff8f7}
.scroll{overflow-x:auto}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.grid2>section{margin:0}
dl{display:grid;grid-template-columns:minmax(120px,38%) 1fr;gap:6px 12px;margin:0}
dt{color:var(--mut)}
dd{margin:0;overflow-wrap:anywhere}
.ok>.dot,.warn>.dot,.bad>.dot{display:inline-block;width:9px;height:9px;border-radius:50%;margin-right:6px}
.ok>.dot{background:var(--ok)}.warn>.dot{background:#d99a00}.bad>.dot{background:var(--bad)}
td.ok{color:var(--ok);font-weight:600}td.warn{color:var(--warn);font-weight:600}td.bad{color:var(--bad);font-weight:600}
.dl a{display:inline-block;margin-right:10px;color:var(--acc)}
.foot{white-space:pre-wrap;font-size:13px;margin:8px 0 0}
.right{float:right}
`

// pageScript is the page's one inline script (allowed by its CSP nonce).
// It is static on purpose: it takes what it needs from the page (ids,
// data-running), so no data is ever written into script context.
const pageScript = `(function(){
var f=document.getElementById("run-form"),b=document.getElementById("run-button"),box=document.getElementById("run-status");
function show(v){box.textContent=v.message||"";box.className="run "+(v.state||"idle");}
function poll(){fetch("/test/progress",{cache:"no-store"}).then(function(r){return r.json();}).then(function(v){
show(v);if(v.state==="running"){setTimeout(poll,500);}else{location.reload();}
}).catch(function(){setTimeout(poll,2000);});}
if(f){f.addEventListener("submit",function(ev){
ev.preventDefault();b.disabled=true;b.textContent="Test running…";
fetch("/test",{method:"POST",body:new URLSearchParams(new FormData(f)),headers:{"Accept":"application/json"}}).then(function(r){
return r.json().then(function(v){if(!r.ok){show({state:"failed",message:v.error});b.disabled=false;b.textContent="Run a speed test";return;}show(v);poll();});
}).catch(function(){show({state:"failed",message:"The pod did not answer."});b.disabled=false;b.textContent="Run a speed test";});
});}
if(document.body.getAttribute("data-running")==="1"){poll();}
})();
`
