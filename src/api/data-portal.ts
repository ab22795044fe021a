import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { Catalogue } from '../catalogue/catalogue.js';
import { DataPortal, splitDefinitionName, type FieldView, type InterfaceView } from '../catalogue/data-portal.js';
import { MSG } from '../domain/response-codes.js';
import type { RoutePluginOptions } from './deps.js';
import { sendStandard } from './request.js';
import { answers } from './route-schemas.js';

/**
 * The data portal (spec 5.9) at /catalogue: every interface and event code with its blocks and fields in
 * terms of data items and types, the data dictionary, the business flows linking interfaces, and a search;
 * as server-rendered HTML (no script at all, so the strictest Content-Security-Policy holds) and as the
 * JSON API at /catalogue/api/… that the pages are made from. Public within the environment: no API key or
 * signature, only the listener's mutual TLS.
 */

const CSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const CSS = `body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#fff}
header,main,footer{max-width:72rem;margin:0 auto;padding:0 1rem}
header{border-bottom:2px solid #1d4f91}nav ul{list-style:none;padding:0;display:flex;gap:1.5rem;flex-wrap:wrap}
a{color:#1d4f91}a:focus,input:focus,button:focus{outline:3px solid #f9a825;outline-offset:2px}
table{border-collapse:collapse;width:100%;margin:1rem 0}th,td{border:1px solid #c8c8c8;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#eef2f7}code{font-size:.9em;word-break:break-all}.req{font-weight:600}
label{display:block;font-weight:600}input[type=search]{font-size:1rem;padding:.4rem;width:min(30rem,100%)}
button{font-size:1rem;padding:.4rem 1rem;background:#1d4f91;color:#fff;border:0;border-radius:3px}
ol.flow li{margin:.3rem 0}.muted{color:#4a4a4a}
pre{background:#f4f4f4;padding:.8rem;overflow:auto;max-height:30rem;font-size:.85em}pre:focus{outline:3px solid #f9a825}
.skip{position:absolute;left:-999px;top:0;background:#fff;padding:.5rem}.skip:focus{left:.5rem}`;

export const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const link = (href: string, text: string) => `<a href="${esc(href)}">${esc(text)}</a>`;
const interfaceLink = (id: string) => link(`/catalogue/interfaces/${encodeURIComponent(id)}`, id);

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)} · DIP data portal</title><link rel="stylesheet" href="/catalogue/style.css"></head>
<body><a class="skip" href="#main">Skip to content</a><header><p><strong>DIP data portal</strong></p><nav aria-label="Data portal"><ul>
<li>${link('/catalogue', 'Interfaces')}</li><li>${link('/catalogue/data-items', 'Data dictionary')}</li><li>${link('/catalogue/flows', 'Business flows')}</li><li>${link('/api/docs', 'API catalogue (OpenAPI)')}</li>
</ul></nav></header>
<main id="main"><h1>${esc(title)}</h1>
${body}</main><footer><p class="muted">From the interface catalogue of DIP API ${esc(Catalogue.load().version)}. JSON: ${link('/catalogue/api/interfaces', '/catalogue/api/…')}</p></footer></body></html>`;
}

function searchForm(q: string): string {
  return `<form method="get" action="/catalogue" role="search"><label for="q">Search interfaces, event codes, roles, fields and data items</label>
<input type="search" id="q" name="q" value="${esc(q)}"> <button type="submit">Search</button></form>`;
}

function fieldRows(fields: FieldView[], prefix: string): string {
  return fields
    .map((f) => {
      const name = `${prefix}${f.name}`;
      const def = f.definition ? link(`/catalogue/data-items#${encodeURIComponent(splitDefinitionName(f.definition).code)}`, splitDefinitionName(f.definition).code) : '';
      const row = `<tr><td><code${f.required ? ' class="req"' : ''}>${esc(name)}</code>${f.required ? ' (required)' : ''}</td><td>${def}</td><td>${esc(f.type)}</td><td>${esc(f.constraints.join('; '))}</td></tr>`;
      return row + (f.fields ? fieldRows(f.fields, `${name}.`) : '');
    })
    .join('\n');
}

function interfacePage(v: InterfaceView, portal: DataPortal): string {
  const flows = portal.flows().filter((f) => v.flows.includes(f.id));
  const events = v.events
    .map(
      (e) => `<section aria-labelledby="ev-${esc(e.eventCode)}"><h2 id="ev-${esc(e.eventCode)}">Event code [${esc(e.eventCode)}]</h2>
<p>Validate a message: <code>POST /validate/${esc(v.interfaceId)}/${esc(e.eventCode)}</code></p>
${e.blocks
  .map(
    (b) => `<h3>${esc(b.part)}.${esc(b.block)}${b.required ? ' (required)' : ''}</h3>
<table><caption class="muted">Fields of ${esc(b.block)} on ${esc(v.interfaceId)} [${esc(e.eventCode)}]</caption>
<thead><tr><th scope="col">Field (JSON key)</th><th scope="col">Data item / type</th><th scope="col">Type</th><th scope="col">Constraints</th></tr></thead>
<tbody>${fieldRows(b.fields, '') || '<tr><td colspan="4">No fields</td></tr>'}</tbody></table>`,
  )
  .join('\n')}
<h3 id="example-${esc(e.eventCode)}">Example message</h3>
<p>A message of ${esc(v.interfaceId)} [${esc(e.eventCode)}] with every field filled in (illustrative values, accepted by this DIP's validator) and the header a submission to this DIP carries: its environment tag, no <code>D0</code> (the DIP fills it), <code>DIPConnectionProviderID</code> null (a connection provider puts its own DIP ID there). Before sending it as the body of <code>POST /validate/${esc(v.interfaceId)}/${esc(e.eventCode)}</code> or of a submission, put in your own <code>S1.senderDIPID</code>, <code>senderRoleID</code> and a new <code>senderUniqueReference</code>, and your recipients in <code>A0.primaryRecipients</code> (<code>dip example ${esc(v.interfaceId)} --event ${esc(e.eventCode)} --sender ID --to ID</code> does it for you):</p>
<pre tabindex="0" role="region" aria-labelledby="example-${esc(e.eventCode)}">${esc(JSON.stringify([e.example], null, 2))}</pre></section>`,
    )
    .join('\n');
  return page(
    `${v.interfaceId}: ${v.name}`,
    `<dl><dt>Publication</dt><dd>${esc(v.publicationId)}</dd><dt>Schema version</dt><dd>${esc(v.schemaVersions.join(', '))}</dd>
<dt>Sent by</dt><dd>${esc(v.senderRoles.join(', ') || '—')}</dd><dt>Received by</dt><dd>${esc(v.receiverRoles.join(', ') || '—')}</dd>
<dt>Routing</dt><dd>${esc(v.routingModes.join(', '))}</dd>
<dt>Business flows</dt><dd>${flows.length ? flows.map((f) => link(`/catalogue/flows#${f.id}`, f.name)).join(', ') : '—'}</dd></dl>
<p class="muted">Sender and receiver roles are the defaults this DIP routes by; the operator can change them.</p>
${events}`,
  );
}

function html(reply: FastifyReply, body: string): FastifyReply {
  return reply.header('content-security-policy', CSP).header('x-content-type-options', 'nosniff').type('text/html; charset=utf-8').send(body);
}

const channelSummary = {
  type: 'object',
  required: ['interfaceId', 'publicationId', 'name', 'eventCodes', 'schemaVersions', 'senderRoles', 'receiverRoles', 'routingModes'],
  properties: {
    interfaceId: { type: 'string' },
    publicationId: { type: 'string' },
    name: { type: 'string' },
    eventCodes: { type: 'array', items: { type: 'string' } },
    schemaVersions: { type: 'array', items: { type: 'string' } },
    senderRoles: { type: 'array', items: { type: 'string' } },
    receiverRoles: { type: 'array', items: { type: 'string' } },
    routingModes: { type: 'array', items: { type: 'string' } },
  },
};
const dataItem = {
  type: 'object',
  required: ['code', 'title', 'kind', 'type', 'constraints', 'interfaces'],
  properties: {
    code: { type: 'string' },
    title: { type: 'string' },
    kind: { type: 'string', enum: ['data item', 'data type'] },
    type: { type: 'string' },
    constraints: { type: 'array', items: { type: 'string' } },
    interfaces: { type: 'array', items: { type: 'string' } },
  },
};
const flow = {
  type: 'object',
  required: ['id', 'name', 'description', 'steps'],
  properties: {
    id: { type: 'string' },
    name: { type: 'string' },
    description: { type: 'string' },
    steps: { type: 'array', items: { type: 'object', required: ['interfaceId', 'what'], properties: { interfaceId: { type: 'string' }, what: { type: 'string' } } } },
  },
};
const tags = ['Data portal (OpenDIP)'];
const open = { security: [] };

export const dataPortalRoutes: FastifyPluginAsync<RoutePluginOptions> = async (app, { deps }) => {
  const portal = new DataPortal(Catalogue.load(), deps.config.environment);
  const hidden = { hide: true };

  app.get('/catalogue/style.css', { schema: hidden }, async (_req, reply) => reply.header('cache-control', 'max-age=3600').type('text/css; charset=utf-8').send(CSS));

  app.get<{ Querystring: { q?: string } }>('/catalogue', { schema: { ...hidden, querystring: { type: 'object', properties: { q: { type: 'string', maxLength: 200 } } } } }, async (req, reply) => {
    const q = (req.query.q ?? '').trim();
    const found = portal.search(q);
    const rows = found.interfaces
      .map((c) => `<tr><th scope="row">${interfaceLink(c.interfaceId)}</th><td>${esc(c.name)}</td><td>${esc(c.eventCodes.join(', '))}</td><td>${esc(c.senderRoles.join(', '))}</td><td>${esc(c.receiverRoles.join(', '))}</td></tr>`)
      .join('\n');
    const items = found.dataItems.length
      ? `<h2>Data items and types</h2><ul>${found.dataItems.map((d) => `<li>${link(`/catalogue/data-items#${encodeURIComponent(d.code)}`, d.code)} ${esc(d.title)}</li>`).join('')}</ul>`
      : '';
    const summary = q ? `<p role="status">${found.interfaces.length} interface(s) and ${found.dataItems.length} data item(s) match “${esc(q)}”.</p>` : '';
    return html(
      reply,
      page(
        'Interfaces',
        `${searchForm(q)}${summary}<table><caption class="muted">Interfaces of the DIP</caption><thead><tr><th scope="col">Interface</th><th scope="col">Name</th><th scope="col">Event codes</th><th scope="col">Sent by</th><th scope="col">Received by</th></tr></thead><tbody>${rows || '<tr><td colspan="5">No interface matches</td></tr>'}</tbody></table>${items}`,
      ),
    );
  });

  app.get<{ Params: { id: string } }>('/catalogue/interfaces/:id', { schema: hidden }, async (req, reply) => {
    const v = portal.interface(req.params.id);
    if (!v) return html(reply.code(404), page('No such interface', `<p>${esc(req.params.id)} is not an interface of this DIP. ${link('/catalogue', 'All interfaces')}</p>`));
    return html(reply, interfacePage(v, portal));
  });

  app.get('/catalogue/data-items', { schema: hidden }, async (_req, reply) => {
    const rows = portal
      .dataItems()
      .map((d) => `<tr id="${esc(d.code)}"><th scope="row">${esc(d.code)}</th><td>${esc(d.title)}</td><td>${esc(d.kind)}</td><td>${esc(d.type)}</td><td>${esc(d.constraints.join('; '))}</td><td>${d.interfaces.map(interfaceLink).join(', ')}</td></tr>`)
      .join('\n');
    return html(
      reply,
      page(
        'Data dictionary',
        `<p>Every data item (DI) and data type (DT) the interfaces use, with its type and constraints.</p><table><caption class="muted">Data items and types</caption><thead><tr><th scope="col">Code</th><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Type</th><th scope="col">Constraints</th><th scope="col">Used by</th></tr></thead><tbody>${rows}</tbody></table>`,
      ),
    );
  });

  app.get('/catalogue/flows', { schema: hidden }, async (_req, reply) => {
    const sections = portal
      .flows()
      .map((f) => `<section aria-labelledby="${esc(f.id)}"><h2 id="${esc(f.id)}">${esc(f.name)}</h2><p>${esc(f.description)}</p><ol class="flow">${f.steps.map((s) => `<li>${interfaceLink(s.interfaceId)}: ${esc(s.what)}</li>`).join('')}</ol></section>`)
      .join('\n');
    return html(reply, page('Business flows', `<p class="muted">The order of the interfaces in each business process: OpenDIP's reading of the interface catalogue, not a published list.</p>${sections}`));
  });

  // The JSON API behind the pages (documented in the OpenAPI document).
  app.get('/catalogue/api/interfaces', { schema: { ...open, tags, operationId: 'portalInterfaces', summary: 'Every interface', response: { 200: { type: 'array', items: channelSummary, description: 'Interfaces' } } } }, async () =>
    portal.interfaces(),
  );
  app.get<{ Params: { id: string } }>(
    '/catalogue/api/interfaces/:id',
    {
      schema: {
        ...open,
        tags,
        operationId: 'portalInterface',
        summary: 'One interface: its event codes, blocks and fields (logical view), roles and flows',
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string' } } },
        response: { 200: { type: 'object', additionalProperties: true, description: 'The interface (InterfaceView)' }, ...answers([404]) },
      },
    },
    async (req, reply) => {
      const v = portal.interface(req.params.id);
      // A refusal on the participant listener is the published StandardResponse, like every other one.
      if (!v) return sendStandard(deps, reply, 404, null, MSG.interfaceIdInvalid, `${req.params.id} is not an interface of this DIP`);
      return v;
    },
  );
  app.get('/catalogue/api/data-items', { schema: { ...open, tags, operationId: 'portalDataItems', summary: 'The data dictionary', response: { 200: { type: 'array', items: dataItem, description: 'Data items and types' } } } }, async () =>
    portal.dataItems(),
  );
  app.get('/catalogue/api/flows', { schema: { ...open, tags, operationId: 'portalFlows', summary: 'The business flows', response: { 200: { type: 'array', items: flow, description: 'Flows' } } } }, async () => portal.flows());
  app.get<{ Querystring: { q: string } }>(
    '/catalogue/api/search',
    {
      schema: {
        ...open,
        tags,
        operationId: 'portalSearch',
        summary: 'Interfaces and data items matching every word of q',
        querystring: { type: 'object', required: ['q'], properties: { q: { type: 'string', maxLength: 200 } } },
        response: {
          200: { type: 'object', required: ['interfaces', 'dataItems'], properties: { interfaces: { type: 'array', items: channelSummary }, dataItems: { type: 'array', items: dataItem } }, description: 'Matches' },
          // q missing or longer than 200 characters.
          ...answers([400]),
        },
      },
    },
    async (req) => portal.search(req.query.q),
  );
};
