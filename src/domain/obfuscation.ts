/**
 * Obfuscation (spec 5.5.6): fields a receiving role may not see are taken out of its copy. A rule is a
 * dotted path under `payload`, `[]` stepping into every element of an array, e.g.
 * `CustomBlock.B900.settlementDayConsumptionPeriods[].consumptionPeriods[].q`. A rule ending in `=x`
 * keeps the field with the spec's obfuscated value 'x' instead (for fields whose enum allows it); a rule
 * whose last step is `name[]` takes out the whole array, or with `=x` masks each of its elements. Names
 * match whatever their case, as ingress does not enforce case: a rule never silently misses its field.
 */
export type ObfuscationRules = Readonly<Record<string, readonly string[]>>;

/**
 * The paths to take out of the copy for a recipient that receives in any of `roles`. A participant that
 * holds a role entitled to a field sees it: only paths every one of its roles hides are hidden.
 */
export function hiddenPaths(rules: ObfuscationRules, roles: readonly string[]): string[] {
  if (roles.length === 0) return [];
  const lists = roles.map((r) => rules[r] ?? []);
  return lists.slice(1).reduce<string[]>((common, list) => common.filter((p) => list.includes(p)), [...lists[0]!]);
}

/** Returns a copy of the message with the paths removed (or masked); the input is not changed. */
export function obfuscate<T>(message: T, paths: readonly string[]): T {
  const copy = structuredClone(message) as { payload?: unknown };
  for (const rule of paths) {
    const [path, mask] = rule.endsWith('=x') ? [rule.slice(0, -2), true] : [rule, false];
    strip(copy.payload, path.split('.'), mask);
  }
  return copy as T;
}

function strip(node: unknown, steps: string[], mask: boolean): void {
  if (typeof node !== 'object' || node === null) return;
  const [step, ...rest] = steps;
  if (step === undefined) return;
  const each = step.endsWith('[]');
  const name = each ? step.slice(0, -2) : step;
  const obj = node as Record<string, unknown>;
  const key = Object.hasOwn(obj, name) ? name : Object.keys(obj).find((k) => k.toLowerCase() === name.toLowerCase());
  if (key === undefined) return;
  if (rest.length === 0) {
    const value = obj[key];
    if (!mask) delete obj[key];
    else {
      // eslint-disable-next-line local/no-dynamic-key-write -- key is an own property of obj (hasOwn / Object.keys): assigning an own data property never reaches the __proto__ setter
      obj[key] = each && Array.isArray(value) ? value.map(() => 'x') : 'x';
    }
    return;
  }
  const child = obj[key];
  if (each) {
    if (!Array.isArray(child)) return;
    for (const item of child) strip(item, rest, mask);
  } else strip(child, rest, mask);
}
