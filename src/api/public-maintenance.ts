import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { calendar } from '../domain/icalendar.js';
import { scopeText, windowStatus, RECENTLY_ENDED_MS, type MaintenanceNotice } from '../domain/maintenance.js';
import { UK_TIME_ZONE, ukTime, utcAndUk } from '../domain/uk-time.js';
import { esc } from './data-portal.js';
import type { ApiDeps } from './deps.js';
import { unknownParameter, type RawQuery } from './query.js';
import { sendStandard } from './request.js';
import { MSG } from '../domain/response-codes.js';

/**
 * The public maintenance page (spec 5.13.5: "details of forthcoming maintenance windows will be published on
 * the system website"), on the anonymous listener: no client certificate, no signature. It says only what
 * the operator published for everyone (window, scope, text): never who published it, nor anything of a
 * participant. Three forms of one list: a page for people, JSON for programs, iCalendar for calendars.
 *   GET /maintenance        the page (times in UTC and UK local time)
 *   GET /maintenance.json   the same windows as JSON
 *   GET /maintenance.ics    the same windows as an iCalendar feed (RFC 5545), and withdrawn ones as cancelled
 */

/** A minute: an amended or withdrawn window is off every cache that honours the header within it. */
const CACHE = 'public, max-age=60';
/** No script at all; the one stylesheet is the page's own route. */
const CSP = "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
const CSS = `body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fff}
header,main,footer{max-width:72rem;margin:0 auto;padding:0 1rem}header{border-bottom:2px solid #1d4f91}
a{color:#1d4f91}a:focus{outline:3px solid #f9a825;outline-offset:2px}
table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{border:1px solid #c8c8c8;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#eef2f7}.muted{color:#4a4a4a}td.text{white-space:pre-wrap}`;

/** A window as the JSON twin says it: UTC as ISO-8601, and UK local time as people read it. */
export interface PublicWindow {
  id: string;
  version: number;
  status: ReturnType<typeof windowStatus>;
  start: string;
  end: string;
  startUk: string;
  endUk: string;
  scope: 'dip' | 'channels';
  channels: string[];
  text: string;
  changedAt: string;
}

const asPublic = (n: MaintenanceNotice, now: number): PublicWindow => ({
  id: n.id,
  version: n.version,
  status: windowStatus(n, now),
  start: new Date(n.start).toISOString(),
  end: new Date(n.end).toISOString(),
  startUk: ukTime(n.start),
  endUk: ukTime(n.end),
  scope: n.scope.kind,
  channels: n.scope.kind === 'channels' ? n.scope.channels : [],
  text: n.text,
  changedAt: new Date(n.changedAt).toISOString(),
});

const when = (ms: number) => `<time datetime="${new Date(ms).toISOString()}">${esc(utcAndUk(ms))}</time>`;

function page(windows: readonly MaintenanceNotice[], now: number): string {
  const rows = windows.map(
    (n) => `<tr><td>${esc(n.id)}</td><td>${esc(windowStatus(n, now))}</td><td>${when(n.start)}</td><td>${when(n.end)}</td><td>${esc(scopeText(n.scope))}</td><td class="text">${esc(n.text)}</td></tr>`,
  );
  const body = rows.length
    ? `<table><caption>Maintenance windows</caption><thead><tr><th scope="col">Notice</th><th scope="col">Status</th><th scope="col">Start</th><th scope="col">End</th><th scope="col">Covers</th><th scope="col">What to expect</th></tr></thead><tbody>${rows.join('')}</tbody></table>`
    : '<p>No maintenance is announced.</p>';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Maintenance windows · DIP</title><link rel="stylesheet" href="/maintenance/style.css"><link rel="alternate" type="text/calendar" href="/maintenance.ics" title="Maintenance windows (iCalendar)"></head>
<body><header><p><strong>Data Integration Platform</strong></p></header>
<main id="main"><h1>Maintenance windows</h1>
<p>Windows in which the DIP, or the channels named, may not be available: announced and to come, in progress, and ended in the last ${RECENTLY_ENDED_MS / 3_600_000} hours. Times in UTC, with UK local time (${UK_TIME_ZONE}: GMT, or BST in summer) beside them.</p>
${body}</main><footer><p class="muted">As of ${esc(utcAndUk(now))}. Also as <a href="/maintenance.json">JSON</a> and as an <a href="/maintenance.ics">iCalendar feed</a>.</p></footer></body></html>`;
}

export function publicMaintenanceRoutes(app: FastifyInstance, deps: ApiDeps): void {
  const maintenance = deps.maintenance;
  if (!maintenance) return;
  const read = async () => ({ now: deps.clock.now(), windows: await maintenance.publicWindows() });
  const cached = (reply: FastifyReply, type: string) => reply.header('cache-control', CACHE).type(type);

  // As the listener's other routes: a name it does not read is refused (400 naming it), not ignored.
  const noQuery = { preHandler: async (req: FastifyRequest<{ Querystring: RawQuery }>, reply: FastifyReply) => {
    const unknown = unknownParameter(req.query, [], '');
    if (unknown) return sendStandard(deps, reply, 400, null, MSG.schemaFailure, unknown.error);
  } };
  app.get('/maintenance/style.css', async (_req, reply) => cached(reply, 'text/css; charset=utf-8').send(CSS));
  app.get('/maintenance', noQuery, async (_req, reply) => {
    const { now, windows } = await read();
    return cached(reply, 'text/html; charset=utf-8').header('content-security-policy', CSP).send(page(windows, now));
  });
  app.get('/maintenance.json', noQuery, async (_req, reply) => {
    const { now, windows } = await read();
    return cached(reply, 'application/json; charset=utf-8').send({ generatedAt: new Date(now).toISOString(), timeZone: UK_TIME_ZONE, windows: windows.map((n) => asPublic(n, now)) });
  });
  app.get('/maintenance.ics', noQuery, async (_req, reply) => {
    const [windows, withdrawn] = await Promise.all([maintenance.publicWindows(), maintenance.withdrawnWindows()]);
    // A withdrawn window is sent as cancelled, not left out: a calendar keeps an event the feed stops naming.
    // Its SEQUENCE is already past the published one's (the withdrawal adds a version).
    const events = [...windows, ...withdrawn].map((n) => ({
      uid: `${n.id}.maintenance.${deps.config.dipId}.${deps.config.environment.toLowerCase()}@opendip`,
      start: n.start,
      end: n.end,
      stamp: n.changedAt,
      sequence: n.version - 1,
      summary: `DIP maintenance: ${scopeText(n.scope)}`,
      description: n.text,
      ...(n.state === 'withdrawn' ? { cancelled: true as const } : {}),
    }));
    return cached(reply, 'text/calendar; charset=utf-8').send(calendar(`DIP maintenance windows (${deps.config.environment})`, events));
  });
}
