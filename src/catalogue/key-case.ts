import type { JsonSchema, JsonValue } from './types.js';

/**
 * Ingress does not enforce the case of JSON field names (the published API says so); egress uses the
 * spec's exact case. A KeyNode mirrors one position of a channel schema: the field names allowed
 * there (exact, and lower-case → exact) and what lies below each. Built once per channel, then the
 * instance is walked alongside it.
 */
export interface KeyNode {
  exact: Map<string, KeyNode>;
  lower: Map<string, { name: string; node: KeyNode }>;
  items: KeyNode | null;
}

const EMPTY: KeyNode = { exact: new Map(), lower: new Map(), items: null };
const COMPOSITION = ['allOf', 'anyOf', 'oneOf', 'then', 'else'] as const;

function asSchema(v: JsonValue | undefined): JsonSchema | null {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? v : null;
}

/** Builds the key tree of a self-contained schema (local `#/definitions/…` refs only). */
export function buildKeyTree(root: JsonSchema): KeyNode {
  const defs = asSchema(root['definitions']) ?? {};
  const deref = (s: JsonSchema): JsonSchema => {
    let cur = s;
    for (let i = 0; i < 32 && typeof cur['$ref'] === 'string'; i++) {
      const name = cur['$ref'].replace(/^#\/definitions\//, '');
      cur = asSchema(defs[name]) ?? {};
    }
    return cur;
  };
  // Every schema that applies at one position: composition branches merge, since any may apply.
  const flatten = (s: JsonSchema, out: JsonSchema[], depth: number): void => {
    const d = deref(s);
    if (out.includes(d) || depth > 32) return;
    out.push(d);
    for (const k of COMPOSITION) {
      const v = d[k];
      if (Array.isArray(v)) for (const b of v) flatten(asSchema(b) ?? {}, out, depth + 1);
      else if (asSchema(v)) flatten(asSchema(v) ?? {}, out, depth + 1);
    }
  };
  const memo = new Map<JsonSchema, KeyNode>();
  const build = (schemas: JsonSchema[], depth: number): KeyNode => {
    const flat: JsonSchema[] = [];
    for (const s of schemas) flatten(s, flat, 0);
    const single = flat.length === 1 ? flat[0] : undefined;
    const cached = single ? memo.get(single) : undefined;
    if (cached) return cached;
    if (depth > 64) return EMPTY;
    const node: KeyNode = { exact: new Map(), lower: new Map(), items: null };
    if (single) memo.set(single, node); // before recursing, so a self-referencing block terminates
    const props = new Map<string, JsonSchema[]>();
    const items: JsonSchema[] = [];
    for (const s of flat) {
      const p = asSchema(s['properties']);
      if (p) for (const [name, sub] of Object.entries(p)) props.set(name, [...(props.get(name) ?? []), asSchema(sub) ?? {}]);
      const it = asSchema(s['items']);
      if (it) items.push(it);
    }
    for (const [name, subs] of props) {
      const child = build(subs, depth + 1);
      node.exact.set(name, child);
      const lc = name.toLowerCase();
      // Two spellings differing only in case would be ambiguous; the first in schema order wins.
      if (!node.lower.has(lc)) node.lower.set(lc, { name, node: child });
    }
    if (items.length > 0) node.items = build(items, depth + 1);
    return node;
  };
  return build([root], 0);
}

export interface NormaliseProblem {
  path: string;
  key: string;
  name: string;
}

/**
 * Returns the instance with every known field name in the spec's exact case. Unknown names are left
 * as sent (the schema then rejects them where it forbids extras). Objects and arrays that need no
 * change are returned as they are, so an already-exact message costs no allocation.
 * `problems` collects names that collide once normalised (`MPANCore` and `mpancore` both sent).
 */
export function normaliseKeys(value: unknown, node: KeyNode, problems: NormaliseProblem[]): unknown {
  return walk(value, node, problems, []);
}

/** `trail` is the path so far, pushed and popped in place: strings are only built for a problem. */
function walk(value: unknown, node: KeyNode, problems: NormaliseProblem[], trail: Array<string | number>): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    const itemNode = node.items;
    if (!itemNode) return value;
    let out: unknown[] | null = null;
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      trail.push(i);
      const n = walk(v, itemNode, problems, trail);
      trail.pop();
      if (n !== v) {
        out ??= value.slice();
        out[i] = n;
      }
    }
    return out ?? value;
  }
  if (node.exact.size === 0) return value;
  return walkObject(value as Record<string, unknown>, node, problems, trail);
}

/**
 * The common case, a message already in the spec's case, allocates nothing: for-in reads the keys
 * without building an array (and `obj[key]` inside it is served from V8's enum cache), and a copy
 * starts only at the first key that changes. Own keys come first in for-in, in Object.keys order, so
 * `index` is the key's position in Object.keys(obj).
 */
function walkObject(obj: Record<string, unknown>, node: KeyNode, problems: NormaliseProblem[], trail: Array<string | number>): Record<string, unknown> {
  let index = 0;
  for (const key in obj) {
    const v = obj[key];
    const child = node.exact.get(key);
    if (child === undefined) {
      const hit = node.lower.get(key.toLowerCase());
      if (hit) return rewrite(obj, node, problems, trail, index, hit.name, descend(v, hit.name, hit.node, problems, trail));
    } else {
      const nv = descend(v, key, child, problems, trail);
      if (nv !== v) return rewrite(obj, node, problems, trail, index, key, nv);
    }
    index++;
  }
  return obj;
}

function descend(v: unknown, name: string, child: KeyNode, problems: NormaliseProblem[], trail: Array<string | number>): unknown {
  if (typeof v !== 'object' || v === null) return v;
  trail.push(name);
  const nv = walk(v, child, problems, trail);
  trail.pop();
  return nv;
}

/** A copy of `obj` whose key number `at` becomes `name` → `value`, and the rest normalised after it. */
function rewrite(
  obj: Record<string, unknown>,
  node: KeyNode,
  problems: NormaliseProblem[],
  trail: Array<string | number>,
  at: number,
  name: string,
  value: unknown,
): Record<string, unknown> {
  const keys = Object.keys(obj);
  const out = copyFirst(obj, keys, at);
  place(out, keys[at] as string, name, value, problems, trail);
  for (let i = at + 1; i < keys.length; i++) {
    const key = keys[i] as string;
    const v = obj[key];
    const child = node.exact.get(key);
    const hit = child === undefined ? node.lower.get(key.toLowerCase()) : undefined;
    if (child !== undefined) place(out, key, key, descend(v, key, child, problems, trail), problems, trail);
    else if (hit) place(out, key, hit.name, descend(v, hit.name, hit.node, problems, trail), problems, trail);
    else place(out, key, key, v, problems, trail);
  }
  return out;
}

/** Two keys that normalise to the same name are a problem: the first one sent is kept. */
function place(out: Record<string, unknown>, key: string, name: string, value: unknown, problems: NormaliseProblem[], trail: Array<string | number>): void {
  if (Object.prototype.hasOwnProperty.call(out, name)) problems.push({ path: pathOf([...trail, name]), key, name });
  else setOwn(out, name, value);
}

function pathOf(trail: Array<string | number>): string {
  let s = '';
  for (const seg of trail) s += typeof seg === 'number' ? `[${seg}]` : s ? `.${seg}` : seg;
  return s;
}

/** A fresh object holding the first `count` keys of `obj`, unchanged. */
function copyFirst(obj: Record<string, unknown>, keys: string[], count: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i < count; i++) {
    const key = keys[i] as string;
    setOwn(out, key, obj[key]);
  }
  return out;
}

/** Plain assignment of "__proto__" would set the prototype instead of a field. */
export function setOwn(o: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(o, key, { value, enumerable: true, writable: true, configurable: true });
  // eslint-disable-next-line local/no-dynamic-key-write -- the guard itself: "__proto__" was defined above
  else o[key] = value;
}
