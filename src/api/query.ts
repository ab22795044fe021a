/**
 * Query strings on the participant and anonymous listeners, read by one rule.
 *
 * A parameter is read by its documented name in any case: the published API enforces no case on URLs
 * (the reference's "Ingress does not enforce the case of JSON field names or URLs"), and the request
 * signature covers the URL lower-cased, so the case of a name carries nothing the sender vouched for.
 * A generated client sends the names exactly as the OpenAPI document spells them, which always works; a
 * hand-written one that sends `MaxMessageCount` or `filename` is read alike rather than silently given
 * the default. A parameter given more than once, in one spelling or several, is refused naming it
 * (unless the route takes it repeated): which of the values was meant cannot be known, and Fastify hands
 * a repeated one over as an array, which checks written for a string would misread.
 */

/** A query string as Fastify parses it, its names as sent: a route reads it through readQuery. */
export type RawQuery = Record<string, unknown>;

/** What a route reads from its query string: each parameter a string, or the strings of a repeatable one. */
export type QueryValues<Q> = { [K in keyof Q]?: string | string[] };

/**
 * The parameters `names` from a parsed query string, each under its documented name whatever the case
 * it was sent in; the values of a `repeatable` one as a list; or why they cannot be read. Parameters
 * the route does not read are left out.
 */
export function readQuery<Q extends QueryValues<Q>>(query: RawQuery, names: ReadonlyArray<keyof Q & string>, repeatable: ReadonlyArray<keyof Q & string> = []): Q | { error: string } {
  const byLowerCase = new Map<string, keyof Q & string>(names.map((n) => [n.toLowerCase(), n]));
  const given = new Map<string, { spellings: string[]; values: string[] }>();
  for (const [key, value] of Object.entries(query)) {
    const name = byLowerCase.get(key.toLowerCase());
    if (name === undefined) continue;
    const found = given.get(name) ?? { spellings: [], values: [] };
    given.set(name, found);
    found.spellings.push(key);
    found.values.push(...(Array.isArray(value) ? value.map(String) : [String(value)]));
  }
  const read: Array<[string, string | string[]]> = [];
  for (const name of names) {
    const found = given.get(name);
    if (!found) continue;
    const { spellings, values } = found;
    if (repeatable.includes(name)) {
      read.push([name, values]);
      continue;
    }
    if (values.length > 1) {
      const as = spellings.length > 1 ? ` (as ${spellings.join(' and ')}; names are read in any case)` : '';
      return { error: `${name} (query string) is given ${values.length} times${as}: give it once` };
    }
    read.push([name, values[0]!]);
  }
  // Built from `names` alone, each a string, or a list where the route said it takes one.
  return Object.fromEntries(read) as Q;
}

/**
 * The refusal of a query string naming a parameter the route does not read (in any case), or null. Passed
 * over, a misspelt name changed what was answered with nothing said: `?typ=X` listed every publication,
 * `content?colums=MPAN` sent every column. `what`: what the names are, for the help ("a listing filter").
 */
export function unknownParameter(query: RawQuery, names: readonly string[], what: string): { error: string } | null {
  const known = new Set(names.map((n) => n.toLowerCase()));
  const unknown = Object.keys(query).find((name) => !known.has(name.toLowerCase()));
  if (unknown === undefined) return null;
  const shown = unknown.slice(0, 60);
  return { error: names.length === 0 ? `${shown} (query string): this request takes no query parameters` : `${shown} is not ${what} (query string): the names are ${names.join(', ')}` };
}
