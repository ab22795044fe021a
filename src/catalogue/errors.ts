import type { ErrorObject } from 'ajv';
import type { ValidationIssue } from './types.js';

/** Enough to tell a sender what to fix; a batch with hundreds of bad periods need not list them all. */
export const MAX_ISSUES = 10;

/** Keywords that only say "a subschema failed"; the subschema's own errors say why. */
const UMBRELLA = new Set(['if', 'oneOf', 'anyOf', 'allOf', 'not', '$ref']);

/** JSON Pointer (`/payload/CustomBlock/B900/settlementDayConsumptionPeriods/0`) → `payload.CustomBlock.B900.settlementDayConsumptionPeriods[0]`. */
export function dottedPath(pointer: string): string {
  if (!pointer) return '';
  let out = '';
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    out += /^\d+$/.test(seg) ? `[${seg}]` : out ? `.${seg}` : seg;
  }
  return out;
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

/** How many levels down a dotted path reaches (`''` 0, `payload` 1, `payload.CommonBlock.S1` 3, `a[0]` 2). */
function pathDepth(path: string): number {
  let n = path ? 1 : 0;
  for (const c of path) if (c === '.' || c === '[') n++;
  return n;
}

function list(values: unknown[]): string {
  const shown = values.slice(0, 12).map((v) => JSON.stringify(v));
  return shown.join(', ') + (values.length > 12 ? `, … (${values.length} values)` : '');
}

function typeName(t: unknown): string {
  const names = Array.isArray(t) ? t.map(String) : String(t).split(',');
  return names.join(' or ');
}

/** What the errors are about: a message on a channel, or the body of one of the API's own operations. */
export interface IssueContext {
  /** The channel a message was sent on; absent for the API's own request bodies. */
  channelId?: string;
  /** The message's event code (S0.eventCode), when it gives one: which CustomBlock fields are allowed depends on it. */
  eventCode?: string;
  /** How to name the instance itself when an error is about it as a whole. */
  root: string;
  /** Issues not to report (those about a CustomBlock that travels encrypted), left out before the cut. */
  omit?: (issue: ValidationIssue) => boolean;
}

function describe(e: ErrorObject, context: IssueContext): ValidationIssue {
  const { channelId } = context;
  const at = dottedPath(e.instancePath);
  const p = e.params as Record<string, unknown>;
  const subject = at || context.root;
  switch (e.keyword) {
    case 'required': {
      const path = join(at, String(p['missingProperty']));
      return { path, rule: 'required', message: `${path} is required` };
    }
    case 'additionalProperties': {
      const path = join(at, String(p['additionalProperty']));
      // A CustomBlock field may be one for another event code of the channel: the help says which it was checked for.
      const forEvent = context.eventCode && subject.startsWith('payload.CustomBlock') ? ` for event code ${context.eventCode}` : '';
      const where = channelId ? `${subject}${forEvent} on ${channelId}` : subject;
      return { path, rule: 'additionalProperties', message: `${path} is not a field of ${where}; extra fields are not allowed` };
    }
    case 'pattern':
      return { path: at, rule: 'pattern', message: `${subject} must match pattern ${String(p['pattern'])}` };
    case 'enum': {
      const allowed = Array.isArray(p['allowedValues']) ? (p['allowedValues'] as unknown[]) : [];
      if (channelId && at === 'payload.CommonBlock.S0.interfaceID') {
        return { path: at, rule: 'enum', message: `${at} must be ${list(allowed)}: the message was sent on channel ${channelId}` };
      }
      return { path: at, rule: 'enum', message: `${subject} must be one of ${list(allowed)}` };
    }
    case 'type':
      return { path: at, rule: 'type', message: `${subject} must be of type ${typeName(p['type'])}` };
    case 'minLength':
    case 'maxLength': {
      const bound = e.keyword === 'minLength' ? 'at least' : 'at most';
      return { path: at, rule: e.keyword, message: `${subject} must be ${bound} ${String(p['limit'])} characters long` };
    }
    case 'minItems':
    case 'maxItems': {
      const bound = e.keyword === 'minItems' ? 'at least' : 'at most';
      return { path: at, rule: e.keyword, message: `${subject} must have ${bound} ${String(p['limit'])} items` };
    }
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return { path: at, rule: e.keyword, message: `${subject} must be ${String(p['comparison'])} ${String(p['limit'])}` };
    case 'format':
      return { path: at, rule: 'format', message: `${subject} must be a valid ${String(p['format'])}` };
    default:
      return { path: at, rule: e.keyword, message: `${subject} ${e.message ?? 'is invalid'}` };
  }
}

/**
 * The issues a sender is shown: the shallowest first, so that a missing or mistyped block
 * (payload.CommonBlock) is named before the fields it would have held; otherwise in the order they
 * were found (the sort is stable); at most MAX_ISSUES. Ordered before the cut, so that ten deeper
 * problems cannot crowd out an envelope one.
 */
export function firstIssues<T extends { path: string }>(issues: readonly T[]): T[] {
  return [...issues].sort((a, b) => pathDepth(a.path) - pathDepth(b.path)).slice(0, MAX_ISSUES);
}

/** Ajv errors → issues (allIssues), then firstIssues. */
export function toIssues(errors: readonly ErrorObject[], context: IssueContext): ValidationIssue[] {
  return firstIssues(allIssues(errors, context));
}

/**
 * Ajv errors → every issue, uncut: umbrella errors dropped (unless nothing else explains the failure);
 * the same fault repeated across array elements reported once with a count; `context.omit` left out.
 * For a caller that also says how many were cut (ValidationResult's `count`).
 */
export function allIssues(errors: readonly ErrorObject[], context: IssueContext): ValidationIssue[] {
  const specific = errors.filter((e) => !UMBRELLA.has(e.keyword));
  const chosen = specific.length > 0 ? specific : errors;
  const groups = new Map<string, { issue: ValidationIssue; repeats: number }>();
  for (const e of chosen) {
    const issue = describe(e, context);
    const key = `${issue.path.replace(/\[\d+\]/g, '[]')}\u0000${issue.rule}`;
    const g = groups.get(key);
    if (!g) groups.set(key, { issue, repeats: 0 });
    else if (g.issue.path !== issue.path) g.repeats++;
  }
  // The map keeps the order in which each fault was first found.
  const issues = [...groups.values()].map(({ issue, repeats }) =>
    repeats === 0 ? issue : { ...issue, message: `${issue.message} (and ${repeats} more like it)` },
  );
  return context.omit ? issues.filter((i) => !context.omit?.(i)) : issues;
}
