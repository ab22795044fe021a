import type { FastifyReply } from 'fastify';
import { DIP_ID_PATTERN } from '../domain/participant.js';
import { formDateTime } from '../domain/time.js';
import { filterForm, html, input } from './html.js';
import { render, type PortalReq, type Realm, type Signed } from './session.js';

/**
 * The portals' list pages' filters (the query string of a GET), read in one place. A value a filter
 * cannot take (a date that is none, a state of no list, a number out of range, a name it does not know)
 * is refused with the page, answered 400 and naming the field and why: never dropped, which would show
 * every row as if they were the ones asked for (the operator API's rule for its queries, README "Operator
 * accounts"). An absent or empty filter takes its default.
 */
export type FilterRule =
  | { kind: 'choice'; values: readonly string[]; fallback: string }
  | { kind: 'integer'; min: number; max: number; fallback: number }
  | { kind: 'dateTime' }
  | { kind: 'text'; max: number; pattern?: RegExp; shape?: string };

export const oneOf = <const V extends string>(values: readonly V[], fallback: NoInfer<V>) => ({ kind: 'choice', values, fallback }) as const;
export const integer = (min: number, max: number, fallback: number) => ({ kind: 'integer', min, max, fallback }) as const;
/** A UTC date-time as the portal's datetime-local fields send it (src/domain/time.ts formDateTime); null when absent. */
export const dateTime = () => ({ kind: 'dateTime' }) as const;
export const freeText = (max = 200) => ({ kind: 'text', max }) as const;
export const dipId = () => ({ kind: 'text', max: 10, pattern: DIP_ID_PATTERN, shape: 'a DIP ID: 10 letters or digits' }) as const;

type ValueOf<R> = R extends { kind: 'choice'; values: readonly (infer V)[] } ? V : R extends { kind: 'integer' } ? number : R extends { kind: 'dateTime' } ? { ms: number; lastMs: number } | null : string;
export type Filters<S extends Record<string, FilterRule>> = { [K in keyof S]: ValueOf<S[K]> };

export interface FilterProblem {
  field: string;
  problem: string;
}

const shown = (v: string): string => JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v);

/** Why `raw` is no value of `rule`, or the value. */
function readOne(rule: FilterRule, raw: string): { value: unknown } | { problem: string } {
  switch (rule.kind) {
    case 'choice':
      return rule.values.includes(raw) ? { value: raw } : { problem: `${shown(raw)} is not one of ${rule.values.join(', ')}` };
    case 'integer': {
      const n = Number(raw);
      return /^-?\d+$/.test(raw) && n >= rule.min && n <= rule.max ? { value: n } : { problem: `${shown(raw)} is not a whole number from ${rule.min} to ${rule.max}` };
    }
    case 'dateTime': {
      const at = formDateTime(raw);
      return at ? { value: at } : { problem: `${shown(raw)} is not a date and time (YYYY-MM-DDTHH:MM, UTC)` };
    }
    case 'text':
      if (raw.length > rule.max) return { problem: `is ${raw.length} characters long: at most ${rule.max}` };
      return !rule.pattern || rule.pattern.test(raw) ? { value: raw } : { problem: `${shown(raw)} is not ${rule.shape ?? 'of the expected shape'}` };
  }
}

const fallbackOf = (rule: FilterRule): unknown => (rule.kind === 'choice' || rule.kind === 'integer' ? rule.fallback : rule.kind === 'dateTime' ? null : '');

/** The query's filters by `spec`, or every problem with them (a name not in `spec` is one). */
export function parseFilters<S extends Record<string, FilterRule>>(query: Readonly<Record<string, string | undefined>>, spec: S): { ok: true; values: Filters<S> } | { ok: false; problems: FilterProblem[] } {
  const problems: FilterProblem[] = [];
  const values = new Map<string, unknown>();
  for (const [name, rule] of Object.entries(spec)) {
    const raw = (query[name] ?? '').trim();
    if (raw === '') {
      values.set(name, fallbackOf(rule));
      continue;
    }
    const read = readOne(rule, raw);
    if ('problem' in read) problems.push({ field: name, problem: read.problem });
    else values.set(name, read.value);
  }
  const known = Object.keys(spec);
  for (const name of Object.keys(query)) {
    if (!Object.hasOwn(spec, name)) problems.push({ field: name, problem: `is not a filter of this page (${known.length ? `it takes ${known.join(', ')}` : 'it takes none'})` });
  }
  return problems.length ? { ok: false, problems } : { ok: true, values: Object.fromEntries(values) as Filters<S> };
}

/** Where and as whom a list page answers, for its refusal. */
export interface FilterPage {
  reply: FastifyReply;
  realm: Realm;
  req: PortalReq;
  signed: Signed;
  title: string;
}

/**
 * A list page's filters, or the page answered 400: its title, the problems (each naming its field and
 * why) as the page's alert, and a form with the values as sent to correct them, or a link to the page
 * without filters.
 */
export function pageFilters<S extends Record<string, FilterRule>>(p: FilterPage, spec: S): Filters<S> | FastifyReply {
  const read = parseFilters(p.req.query, spec);
  if (read.ok) return read.values;
  const path = p.req.url.split('?')[0] ?? p.req.url;
  const given = Object.entries(p.req.query).filter(([name]) => Object.hasOwn(spec, name));
  const text = `The filters were not applied: ${read.problems.map((x) => `${x.field}: ${x.problem}`).join('; ')}.`;
  const body = html`${filterForm(path, 'Correct the filters', html`${given.map(([name, value]) => input(name, name, { value: value ?? '' }))}`)}
<p><a href="${path}">Show the page without filters</a></p>`;
  return render(p.reply, 400, p.realm, p.req, p.signed, p.title, body, { kind: 'error', text });
}
