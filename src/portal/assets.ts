/**
 * The portals' only asset: one style sheet, served from the DIP itself (the Content-Security-Policy allows
 * styles from 'self' and nothing inline). Colours meet WCAG AA contrast on white.
 */
export const PORTAL_CSS = `
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1b1b;background:#fff}
a{color:#0b4f9c}
a:focus,button:focus,input:focus,select:focus,textarea:focus{outline:3px solid #f9a800;outline-offset:2px}
.skip{position:absolute;left:-999px;top:0;background:#fff;padding:.5em}
.skip:focus{left:.5em}
header.top{display:flex;flex-wrap:wrap;align-items:center;gap:1em;padding:.6em 1.2em;background:#13294b;color:#fff}
header.top a{color:#fff}
header.top .brand{font-weight:700;margin-right:1em}
header.top nav ul{display:flex;flex-wrap:wrap;gap:.9em;list-style:none;margin:0;padding:0}
header.top nav a[aria-current=page]{font-weight:700;text-decoration-thickness:3px}
header.top .signout{margin-left:auto;display:flex;gap:.5em;align-items:center}
main{padding:1em 1.5em 3em;max-width:1200px}
h1{font-size:1.6em;margin:.4em 0 .6em}
h2{font-size:1.25em;margin:1.4em 0 .5em}
table{border-collapse:collapse;margin:.5em 0 1em;width:100%}
caption{text-align:left;font-weight:600;padding:.3em 0}
th,td{border-bottom:1px solid #c8c8c8;padding:.35em .5em;text-align:left;vertical-align:top}
th{background:#eef1f6}
td.num{text-align:right}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em}
pre{background:#f4f4f4;padding:.8em;overflow:auto;max-height:28em;white-space:pre-wrap;word-break:break-all}
form.inline{display:inline}
fieldset{border:1px solid #c8c8c8;padding:.8em 1em;margin:.8em 0}
legend{font-weight:600}
label{display:block;font-weight:600;margin-top:.5em}
label.inline-label{display:inline;font-weight:400}
input[type=text],input[type=email],input[type=url],input[type=password],input[type=number],input[type=datetime-local],select,textarea{font:inherit;padding:.35em;border:1px solid #595959;border-radius:3px;min-width:18em;max-width:100%}
textarea{width:100%;min-height:8em}
button{font:inherit;padding:.35em .9em;border:1px solid #0b4f9c;background:#0b4f9c;color:#fff;border-radius:3px;cursor:pointer;margin-top:.6em}
button.secondary{background:#fff;color:#0b4f9c}
button.danger{background:#a4262c;border-color:#a4262c}
.flash{padding:.6em .9em;border-left:5px solid}
.flash.ok{background:#e7f4e8;border-color:#1e7b34}
.flash.error{background:#fdecea;border-color:#a4262c}
.badge{display:inline-block;padding:0 .45em;border-radius:3px;font-size:.85em;font-weight:600}
.badge.ok{background:#e7f4e8;color:#14591f}
.badge.warn{background:#fff4ce;color:#5c4400}
.badge.bad{background:#fdecea;color:#8a1f24}
.muted{color:#555}
.field-problem{color:#a4262c;font-weight:600}
ul.marks{list-style:none;padding:0;margin:0}
ol.workflow li{margin:.3em 0}
ol.timeline{list-style:none;padding-left:0;border-left:3px solid #13294b;margin-left:.5em}
ol.timeline li{position:relative;padding:.2em 0 .8em 1.2em}
ol.timeline li::before{content:"";position:absolute;left:-.55em;top:.55em;width:.8em;height:.8em;border-radius:50%;background:#13294b}
figure.chart{margin:1em 0}
figure.chart figcaption{font-weight:600}
svg .bar.ok{fill:#1e7b34}svg .bar.warn{fill:#8a6d00}svg .bar.bad{fill:#a4262c}
svg text{font-size:13px;fill:#1b1b1b}
svg .axis{stroke:#595959;stroke-width:1}
svg .line{fill:none;stroke-width:2}
svg .line.ok{stroke:#1e7b34}svg .line.warn{stroke:#8a6d00}svg .line.bad{stroke:#a4262c}svg .line.info{stroke:#0b4f9c}
svg .dot.ok{fill:#1e7b34}svg .dot.warn{fill:#8a6d00}svg .dot.bad{fill:#a4262c}svg .dot.info{fill:#0b4f9c}
ul.legend{list-style:none;display:flex;gap:1.2em;padding:0;margin:.2em 0}
.swatch{display:inline-block;width:1.4em;height:.5em;margin-right:.4em;vertical-align:middle}
.swatch.ok{background:#1e7b34}.swatch.warn{background:#8a6d00}.swatch.bad{background:#a4262c}.swatch.info{background:#0b4f9c}
details summary{cursor:pointer;color:#0b4f9c}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}
dl.facts dt{font-weight:600}
dl.facts dd{margin:0}
`;
