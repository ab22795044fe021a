/**
 * Server-rendered HTML: every interpolated value is escaped unless it is itself markup made here, so
 * nothing a participant typed (a callback URL, a display name) can become markup or script.
 */
export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

type Part = Html | string | number | boolean | null | undefined | readonly Part[];

function render(v: Part): string {
  if (v === null || v === undefined || v === false) return '';
  if (v instanceof Html) return v.text;
  if (Array.isArray(v)) return (v as readonly Part[]).map(render).join('');
  return escapeHtml(String(v));
}

export function html(strings: TemplateStringsArray, ...values: Part[]): Html {
  let out = strings[0] ?? '';
  values.forEach((v, i) => {
    out += render(v) + (strings[i + 1] ?? '');
  });
  return new Html(out);
}

export function when(condition: unknown, part: () => Html): Html | null {
  return condition ? part() : null;
}

export interface Nav {
  href: string;
  label: string;
}

/** A message above a page's content: what was done, or why not. */
export type Flash = { kind: 'ok' | 'error'; text: string | Html } | null;

export interface PageOptions {
  title: string;
  /** The portal's name in the header. */
  portal: string;
  nav: Nav[];
  /** The current path, to mark the current page in the navigation. */
  path: string;
  /** Who is signed in, with a sign-out form; absent on sign-in pages. */
  user?: { name: string; signOutAction: string; accountHref: string; csrf: string };
  flash?: Flash;
  body: Html;
}

export function page(o: PageOptions): string {
  const current = (href: string) => href.split('?')[0] === o.path.split('?')[0];
  return `<!doctype html>${html`<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${o.title} · ${o.portal}</title>
<link rel="stylesheet" href="/assets/portal.css">
<link rel="icon" href="data:,">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <span class="brand">${o.portal}</span>
  ${when(o.nav.length > 0, () => html`<nav aria-label="Main"><ul>${o.nav.map((n) => html`<li><a href="${n.href}"${current(n.href) ? new Html(' aria-current="page"') : ''}>${n.label}</a></li>`)}</ul></nav>`)}
  ${when(o.user, () => html`<form method="post" action="${o.user!.signOutAction}" class="signout"><a href="${o.user!.accountHref}">${o.user!.name}</a> <input type="hidden" name="_csrf" value="${o.user!.csrf}"><button type="submit">Sign out</button></form>`)}
</header>
<main id="main">
<h1>${o.title}</h1>
${when(o.flash, () => flashLine(o.flash!))}
${o.body}
</main>
</body>
</html>`.text}`;
}

function flashLine(f: NonNullable<Flash>): Html {
  return html`<p class="flash ${f.kind}" role="${f.kind === 'error' ? 'alert' : 'status'}">${f.text}</p>`;
}

/** A refusal shown inside a page (an API call that answered an error), announced to screen readers. */
export function alertLine(text: string | Html): Html {
  return flashLine({ kind: 'error', text });
}

/** A table with a caption; rows already rendered. */
/** A table; an empty heading (a column of buttons) reads "Actions", so no header is empty (axe empty-table-header). */
export function table(caption: string, headings: string[], rows: Html[], empty = 'None.'): Html {
  if (rows.length === 0) return html`<p>${empty}</p>`;
  return html`<table><caption>${caption}</caption><thead><tr>${headings.map((h) => html`<th scope="col">${h === '' ? 'Actions' : h}</th>`)}</tr></thead><tbody>${rows}</tbody></table>`;
}

/**
 * A dead letter's reason and detail as one line: the worker's detail often starts with the reason already
 * ("stale: not delivered to …"), which is not said twice ("stale: stale: …").
 */
export function deadLetterText(reason: string, status: number | null, detail: string): string {
  const head = `${reason}${status === null ? '' : ` ${status}`}`;
  const rest = withoutReason(reason, detail);
  return rest === '' || rest === reason ? head : `${head}: ${rest}`;
}

/** A dead letter's detail without the reason it may start with (shown beside it already). */
export const withoutReason = (reason: string, detail: string): string => (detail.startsWith(`${reason}: `) ? detail.slice(reason.length + 2) : detail);

/** A size in bytes as people read it (B, KiB, MiB, GiB). */
export const bytes = (n: number) => (n < 1024 ? `${n} B` : n < 1024 ** 2 ? `${(n / 1024).toFixed(1)} KiB` : n < 1024 ** 3 ? `${(n / 1024 ** 2).toFixed(1)} MiB` : `${(n / 1024 ** 3).toFixed(2)} GiB`);

export const isoOrDash = (ms: number | null | undefined): string => (ms === null || ms === undefined ? '—' : new Date(ms).toISOString().replace('.000Z', 'Z'));

/**
 * A bar chart as inline SVG (no script, no external image): one bar per label, with the values as text
 * beside the bars so the numbers are there for screen readers and for anyone who cannot tell colours apart.
 */
export function barChart(title: string, bars: Array<{ label: string; value: number; kind?: 'ok' | 'warn' | 'bad' }>): Html {
  const max = Math.max(1, ...bars.map((b) => b.value));
  const rowH = 26;
  const width = 560;
  const labelW = 170;
  const height = bars.length * rowH + 10;
  return html`<figure class="chart"><figcaption>${title}</figcaption>
<svg role="img" aria-label="${`${title}: ${bars.map((b) => `${b.label} ${b.value}`).join(', ')}`}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}">
${bars.map((b, i) => {
  const w = Math.round(((width - labelW - 60) * b.value) / max);
  const y = i * rowH + 5;
  return html`<text x="0" y="${y + 17}" class="label">${b.label}</text><rect x="${labelW}" y="${y}" width="${w}" height="${rowH - 8}" class="bar ${b.kind ?? 'ok'}"></rect><text x="${labelW + w + 6}" y="${y + 17}" class="value">${b.value}</text>`;
})}
</svg></figure>`;
}

/** Long text (a message, a certificate): scrollable, so focusable and named for keyboard and screen-reader users. */
export function codeBlock(label: string, text: string): Html {
  return html`<pre tabindex="0" role="region" aria-label="${label}">${text}</pre>`;
}

export type BadgeKind = 'ok' | 'warn' | 'bad';

export function badge(kind: BadgeKind, text: string): Html {
  return html`<span class="badge ${kind}">${text}</span>`;
}

/** How long a certificate has left, coloured: expired, under 30 days, or fine. */
export function daysLeftBadge(notAfterMs: number, now: number): Html {
  const days = Math.floor((notAfterMs - now) / 86_400_000);
  return days < 0 ? badge('bad', 'expired') : badge(days < 30 ? 'warn' : 'ok', `${days} days left`);
}

/** A definition list of facts (label, value). */
export function facts(rows: ReadonlyArray<readonly [string, Part]>): Html {
  return html`<dl class="facts">${rows.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`;
}

type AttrValue = string | number | boolean | null | undefined;

/** HTML attributes, escaped: `true` writes the bare name, false/null/undefined leave it out. */
function attributes(a: Readonly<Record<string, AttrValue>>): Html {
  return new Html(
    Object.entries(a)
      .filter(([, v]) => v !== false && v !== null && v !== undefined)
      .map(([k, v]) => (v === true ? ` ${k}` : ` ${k}="${escapeHtml(String(v))}"`))
      .join(''),
  );
}

export function hidden(name: string, value: string): Html {
  return html`<input type="hidden" name="${name}" value="${value}">`;
}

/**
 * A labelled input. `id` is also its name unless `name` is given; other attributes (type, value, required,
 * pattern, min…) as they are written in HTML.
 */
export function input(id: string, label: string, a: Readonly<Record<string, AttrValue>> = {}): Html {
  return html`<label for="${id}">${label}</label><input${attributes({ type: 'text', id, name: id, ...a })}>`;
}

export function textarea(id: string, label: string, a: Readonly<Record<string, AttrValue>> = {}): Html {
  return html`<label for="${id}">${label}</label><textarea${attributes({ id, name: id, ...a })}></textarea>`;
}

export interface Option {
  value: string;
  label: string;
}

export function select(id: string, label: string, options: readonly Option[], selected = '', a: Readonly<Record<string, AttrValue>> = {}): Html {
  return html`<label for="${id}">${label}</label><select${attributes({ id, name: id, ...a })}>${options.map((o) => html`<option value="${o.value}"${attributes({ selected: o.value === selected })}>${o.label}</option>`)}</select>`;
}

/** A checkbox or radio button with its label after it. */
export function choice(type: 'checkbox' | 'radio', id: string, name: string, value: string, label: string, checked = false): Html {
  return html`<input${attributes({ type, id, name, value, checked })}> <label for="${id}" class="inline-label">${label}</label>`;
}

/**
 * A one-button form that posts an action: the CSRF token, the hidden fields, and a button whose
 * accessible name adds `about` (hidden from sight) so that a row's buttons differ for screen readers.
 */
export function actionButton(o: { action: string; csrf: string; fields?: Readonly<Record<string, string>>; label: string; about?: string; kind?: 'secondary' | 'danger' }): Html {
  const fields = Object.entries(o.fields ?? {}).map(([k, v]) => hidden(k, v));
  return html`<form method="post" action="${o.action}" class="inline">${hidden('_csrf', o.csrf)}${fields}<button type="submit"${attributes({ class: o.kind })}>${o.label}${when(o.about, () => html`<span class="skip"> ${o.about}</span>`)}</button></form>`;
}

/** A GET form that filters the page it is on. */
export function filterForm(action: string, legend: string, controls: Html, button = 'Show'): Html {
  return html`<form method="get" action="${action}"><fieldset><legend>${legend}</legend>${controls}<div><button type="submit">${button}</button></div></fieldset></form>`;
}

export interface Series {
  name: string;
  kind: BadgeKind | 'info';
  /** One value per label; null where there is nothing to draw (no delivery in that hour, say). */
  values: ReadonlyArray<number | null>;
}

/**
 * A line chart over time as inline SVG (no script, CSP-safe): one line per series with a dot per point,
 * the y axis from 0 to the largest value. The figure's name summarises each series for screen readers,
 * and the numbers follow in a table inside <details> (opened without script) for anyone who wants them.
 */
export function timeChart(title: string, labels: readonly string[], series: readonly Series[], unit: string): Html {
  const width = 760;
  const height = 240;
  const left = 64;
  const bottom = 28;
  const top = 10;
  const plotW = width - left - 12;
  const plotH = height - top - bottom;
  const all = series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const max = Math.max(1, ...all);
  const x = (i: number) => left + (labels.length <= 1 ? plotW / 2 : (plotW * i) / (labels.length - 1));
  const y = (v: number) => top + plotH - (plotH * v) / max;
  const fmt = (v: number) => (Number.isInteger(v) ? String(v) : v.toFixed(1));
  const summary = series
    .map((s) => {
      const vs = s.values.filter((v): v is number => v !== null);
      return `${s.name}: ${vs.length ? `total ${fmt(vs.reduce((a, b) => a + b, 0))}, highest ${fmt(Math.max(...vs))} ${unit}` : 'no data'}`;
    })
    .join('; ');
  const ticks = labels.length ? [...new Set([0, Math.floor((labels.length - 1) / 2), labels.length - 1])] : [];
  const points = (s: Series) => s.values.map((v, i) => (v === null ? null : { cx: x(i), cy: y(v) })).filter((p): p is { cx: number; cy: number } => p !== null);
  return html`<figure class="chart"><figcaption>${title}</figcaption>
<svg role="img" aria-label="${`${title}, ${labels[0] ?? ''} to ${labels.at(-1) ?? ''}: ${summary}`}" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}">
<line x1="${left}" y1="${top + plotH}" x2="${width - 12}" y2="${top + plotH}" class="axis"></line><line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" class="axis"></line>
<text x="${left - 6}" y="${top + 10}" class="tick" text-anchor="end">${fmt(max)}</text><text x="${left - 6}" y="${top + plotH}" class="tick" text-anchor="end">0</text>
${ticks.map((i) => html`<text x="${x(i)}" y="${height - 8}" class="tick" text-anchor="${i === 0 && labels.length > 1 ? 'start' : i === labels.length - 1 && labels.length > 1 ? 'end' : 'middle'}">${labels[i]}</text>`)}
${series.map((s) => html`<polyline class="line ${s.kind}" points="${points(s).map((p) => `${p.cx.toFixed(1)},${p.cy.toFixed(1)}`).join(' ')}"></polyline>${points(s).map((p) => html`<circle class="dot ${s.kind}" cx="${p.cx.toFixed(1)}" cy="${p.cy.toFixed(1)}" r="3"></circle>`)}`)}
</svg>
<ul class="legend">${series.map((s) => html`<li><span class="swatch ${s.kind}"></span>${s.name}</li>`)}</ul>
<details><summary>${title}: the numbers</summary>${table(`${title} (${unit})`, ['Period', ...series.map((s) => s.name)], labels.map((l, i) => html`<tr><td>${l}</td>${series.map((s) => html`<td class="num">${s.values[i] === null || s.values[i] === undefined ? '—' : fmt(s.values[i])}</td>`)}</tr>`))}</details>
</figure>`;
}
