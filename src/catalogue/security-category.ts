import type { JsonSchema, JsonValue } from './types.js';

/**
 * Spec 5.2.2: "Each of the MHHS interfaces will be assigned one of these categories" — 1 public data,
 * 2 MPAN, 3 MPAN + PII, 4 MPAN + consumption data. The programme's assignment is not public, so OpenDIP
 * suggests one per interface from the data items its published schema carries, by the rule below, for
 * the operator to review (docs/security-categories.md lists every interface with its evidence). A
 * suggestion changes nothing unless the operator opts in (`applySuggestedSecurityCategories`).
 *
 * The rule, first match wins:
 *   4  an MPAN and MPAN-level consumption or meter readings;
 *   3  personal or confidential party data (with or without an MPAN): a metering point's address or
 *      postcode, a person's name, e-mail or telephone number, bank details, a billing site's address;
 *   2  an MPAN;
 *   1  none of these (public data; aggregated volumes such as BM-unit totals carry no MPAN).
 */
export type SecurityCategory = 1 | 2 | 3 | 4;

export interface CategorySuggestion {
  category: SecurityCategory;
  /** The data items (JSON keys, with their DI numbers) that decided it. */
  evidence: string[];
}

/** Data items identifying a metering point (JSON key → data item). */
export const MPAN_ITEMS: Readonly<Record<string, string>> = {
  MPANCore: 'DI-063',
  linkedImportExportMPAN: 'DI-038',
  principalMPAN: 'DI-073',
  subsidiaryMPAN: 'DI-074',
  primaryMPAN: 'DI-075',
  secondaryMPAN: 'DI-079',
  listOfMPANSonSite: 'DI-566',
};

/** MPAN-level consumption and readings. */
export const CONSUMPTION_ITEMS: Readonly<Record<string, string>> = {
  v: 'DI-147 period consumption value',
  annualConsumption: 'DI-148',
  supplierNominatedAnnualConsumption: 'DI-152',
  defaultedSPConsumption: 'DI-153',
  grossRevisedConsumption: 'DI-165',
  cumulativeRegisterReading: 'DI-088',
  configurableRegisterReading: 'DI-104',
  periodMeteringSystemMeteredData: 'DI-432',
  maximumDemandInTheInvoicePeriod: 'DI-590',
};

const range = (prefix: string, from: number, to: number, di: number): Record<string, string> =>
  Object.fromEntries(Array.from({ length: to - from + 1 }, (_, i) => [`${prefix}${from + i}`, `DI-${String(di + i).padStart(3, '0')}`]));

/** Personal or confidential party data. */
export const PERSONAL_ITEMS: Readonly<Record<string, string>> = {
  ...range('addressLine', 1, 9, 1),
  meteringPointPostcode: 'DI-010',
  distributorBillingContactName: 'DI-532',
  distributorBillingEmail: 'DI-533',
  distributorBillingTelephoneNumber: 'DI-534',
  distributorBankSortCode: 'DI-545',
  distributorBankAccountNumber: 'DI-546',
  'LDSOBillingSupplierBill-ToContactName': 'DI-551',
  ...range('LDSOBillingSiteAddressLine', 1, 9, 569),
  LDSOBillingSitePostCode: 'DI-578',
};

/** Aggregated volumes: not MPAN-level, so category 1 by the rule; named in the evidence for review. */
const AGGREGATE = /BMUnit.*(?:Consumption|Volume)|Consumption$|Volume$|loadShape.*Total$|loadShapePeriodValue/;

function isObject(v: JsonValue | undefined): v is { [k: string]: JsonValue } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Every property name the schema can carry, through its `$ref`s into `definitions`. */
export function schemaKeys(schema: JsonSchema): Set<string> {
  const definitions = isObject(schema['definitions']) ? schema['definitions'] : {};
  const keys = new Set<string>();
  const seen = new Set<string>();
  const walk = (node: JsonValue | undefined): void => {
    if (Array.isArray(node)) return node.forEach(walk);
    if (!isObject(node)) return;
    const ref = node['$ref'];
    if (typeof ref === 'string' && ref.startsWith('#/definitions/')) {
      const name = ref.slice('#/definitions/'.length);
      if (!seen.has(name)) {
        seen.add(name);
        walk(definitions[name]);
      }
    }
    const props = node['properties'];
    if (isObject(props)) for (const k of Object.keys(props)) keys.add(k);
    for (const [k, v] of Object.entries(node)) if (k !== 'definitions') walk(v);
  };
  walk(schema);
  return keys;
}

export function suggestSecurityCategory(schema: JsonSchema): CategorySuggestion {
  const keys = [...schemaKeys(schema)].sort();
  const found = (items: Readonly<Record<string, string>>) => keys.filter((k) => Object.hasOwn(items, k)).map((k) => `${k} (${items[k]})`);
  const mpan = found(MPAN_ITEMS);
  const consumption = found(CONSUMPTION_ITEMS);
  const personal = found(PERSONAL_ITEMS);
  // Every indicator found is evidence, whichever decided: a reviewer sees all that the interface carries.
  const evidence = [...mpan, ...consumption, ...personal];
  if (mpan.length > 0 && consumption.length > 0) return { category: 4, evidence };
  if (personal.length > 0) return { category: 3, evidence };
  if (mpan.length > 0) return { category: 2, evidence };
  const aggregates = keys.filter((k) => AGGREGATE.test(k) && !Object.hasOwn(CONSUMPTION_ITEMS, k));
  return { category: 1, evidence: aggregates.map((k) => `${k} (aggregated)`) };
}

/** The reviewable table (docs/security-categories.md): every interface, its suggestion and the evidence. */
export function securityCategoryTable(catalogue: { version: string; channels(): Array<{ interfaceId: string; name: string }>; schema(id: string): JsonSchema | undefined }): string {
  const rows = catalogue.channels().map((c) => {
    const s = suggestSecurityCategory(catalogue.schema(c.interfaceId) ?? {});
    return `| ${c.interfaceId} | ${c.name.replace(/\|/g, '/')} | ${s.category} | ${s.evidence.join(', ') || '—'} |`;
  });
  const counts = ([1, 2, 3, 4] as const).map((n) => `${rows.filter((r) => r.split(' | ')[2] === String(n)).length} in category ${n}`).join(', ');
  return [
    `# Suggested security categories (API ${catalogue.version})`,
    '',
    'Generated by `npm run catalogue:categories` from the committed catalogue; `test/security-category.test.ts`',
    'fails when it is out of date. **Nothing here is in force** unless the operator opts in (see the README,',
    '"Encrypted channels"): the DIP runs security pattern 1 on every channel by default, as the live DIP does.',
    '',
    'Spec 5.2.2 gives every interface one of four categories (1 public data, 2 MPAN, 3 MPAN + PII, 4 MPAN +',
    "consumption data); the programme's own assignment is not public. The rule (`src/catalogue/security-category.ts`),",
    "applied to the data items each interface's published schema can carry, first match wins:",
    '',
    '- **4**: an MPAN and MPAN-level consumption or meter readings (DI-147 `v`, DI-148, DI-152, DI-153, DI-165, DI-088, DI-104, DI-432, DI-590);',
    "- **3**: personal or confidential party data: a metering point's address or postcode (DI-001–DI-010), a person's name, e-mail or telephone number (DI-532–DI-534, DI-551), bank details (DI-545, DI-546), a billing site's address (DI-569–DI-578);",
    '- **2**: an MPAN (DI-063 `MPANCore`, DI-038, DI-073–DI-075, DI-079, DI-566);',
    '- **1**: none of these. Aggregated volumes (BM-unit, GSP group, load shape totals) carry no MPAN and are listed as evidence for review.',
    '',
    `${rows.length} interfaces: ${counts}. Categories 2–4 select pattern 2 (encrypted via the DIP), category 1 pattern 1 (signed).`,
    '',
    '| interface | name | suggested category | evidence (data items the schema carries) |',
    '| --- | --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}
