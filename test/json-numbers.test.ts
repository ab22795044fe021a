/** Numbers a double does not hold (src/security/json-numbers.ts) and the scan that flags them (json-depth.ts). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { scanJsonBatch } from '../src/security/json-depth.js';
import { alteredNumber, alteredNumberHelp, firstAlteredNumber, hasAlteredNumber } from '../src/security/json-numbers.js';

const flags = (text: string): boolean[] => scanJsonBatch(Buffer.from(text), 64).items!.map((s) => s.longNumber);

describe('alteredNumber', () => {
  it('gives the delivered text of a value a double does not hold', () => {
    expect(alteredNumber('33.333333333333333333')).toBe('33.333333333333336');
    expect(alteredNumber('-33.333333333333333333')).toBe('-33.333333333333336');
    expect(alteredNumber('0.1000000000000000000001')).toBe('0.1');
    expect(alteredNumber('12345678901234567890')).toBe('12345678901234567000');
    expect(alteredNumber('9007199254740993')).toBe('9007199254740992');
    expect(alteredNumber('1e-400')).toBe('0');
    expect(alteredNumber('3e-324')).toBe('5e-324');
    expect(alteredNumber('1e400')).toBe('null');
    expect(alteredNumber('-1.7976931348623159e308')).toBe('null');
  });

  it('leaves the same value however written: trailing or leading zeros, exponents, -0', () => {
    for (const t of ['1.50', '1e3', '1E+3', '-0', '-0.0e10', '0', '5e-324', '9007199254740992', '1.7976931348623157e308', '1.0000000000000000000', '0.000000000000000000001', '100000000000000000000000']) {
      expect(alteredNumber(t), t).toBeNull();
    }
  });

  it('never alters a double written as JSON.stringify writes it, nor with zeros added', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (d) => {
        const t = JSON.stringify(d);
        expect(alteredNumber(t)).toBeNull();
        expect(alteredNumber(t.includes('e') ? t.replace('e', '000e') : `${t}${t.includes('.') ? '' : '.'}000`)).toBeNull();
      }),
      { numRuns: 2000 },
    );
  });

  it('takes a double written with up to 17 digits (%.17g, Java before 19), not a 17-digit text no double prints', () => {
    for (const d of [0.1, 0.3, 12.345, 1 / 3, 2 ** 56, 2 ** -44, -1e-7]) {
      for (const digits of [16, 17]) expect(alteredNumber(d.toPrecision(digits)), d.toPrecision(digits)).toBeNull();
    }
    expect(alteredNumber('0.10000000000000001')).toBeNull();
    expect(alteredNumber('33.333333333333333')).toBe('33.333333333333336');
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (d) => {
        expect(alteredNumber(d.toPrecision(17))).toBeNull();
      }),
      { numRuns: 2000 },
    );
  });

  it('agrees with an exact comparison by BigInt for integers (against the text delivered, or the double at 17 digits)', () => {
    const exactly = (text: string): bigint => {
      const [mantissa, e = '0'] = text.split('e');
      const [whole, fraction = ''] = mantissa!.split('.');
      const shift = Number(e) - fraction.length;
      const digits = BigInt(`${whole}${fraction}`);
      return shift >= 0 ? digits * 10n ** BigInt(shift) : -1n; // a fraction is never an integer's text here
    };
    const significant = (n: bigint): number => (n < 0n ? -n : n).toString().replace(/0+$/, '').length;
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }), (n) => {
        const written = significant(n);
        const exact = exactly(String(Number(n))) === n || (written <= 17 && exactly(Number(n).toPrecision(Math.max(1, written)).replace('+', '')) === n);
        expect(alteredNumber(String(n)) === null).toBe(exact);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('firstAlteredNumber and its answer', () => {
  it('names the path of the first altered number, skipping strings and exact ones', () => {
    const text = '{"payload":{"CommonBlock":{"S1":{"s":"33.333333333333333333","x":[1,1.0000000000000000000,33.333333333333333333]}}}}';
    const found = firstAlteredNumber(text)!;
    expect(found).toEqual({ path: 'payload.CommonBlock.S1.x[2]', token: '33.333333333333333333', delivered: '33.333333333333336' });
    expect(alteredNumberHelp(found)).toMatch(/^payload\.CommonBlock\.S1\.x\[2\] is 33\.333333333333333333, which an IEEE 754 double does not hold .*delivered as 33\.333333333333336; send it with at most 15 significant digits/);
    expect(alteredNumberHelp(firstAlteredNumber('{"B1":{"v":1e999}}')!, 'payload.CustomBlock', 'decrypted')).toMatch(/^payload\.CustomBlock\.B1\.v \(decrypted\) is 1e999, beyond the largest/);
    expect(firstAlteredNumber('{"a":[1.5,"x",-0,3e1]}')).toBeNull();
  });

  it('quotes a very long number shortened, within the help text limit', () => {
    const help = alteredNumberHelp(firstAlteredNumber(`[0.${'3'.repeat(5000)}]`)!);
    expect(help.length).toBeLessThan(500);
    expect(help).toContain('(5002 characters)');
  });
});

describe('the scan flags each item holding a number of more than 15 digits or with an exponent', () => {
  it('per item, numbers in strings aside', () => {
    expect(flags('[{"a":123456789012345},{"a":1234567890123456},{"a":-1.5e3},{"a":"12345678901234567890"},{"a":true,"b":null}]')).toEqual([false, true, true, false, false]);
    expect(flags('[{"a":[0.000000000000001]}, {"a":[1,2.25,33.333333333333333333]}]')).toEqual([true, true]);
  });

  it('flags every number that alteredNumber alters', () => {
    fc.assert(
      // eslint-disable-next-line regexp/use-ignore-case -- fast-check cannot generate from a regex with flags
      fc.property(fc.stringMatching(/^-?(0|[1-9]\d{0,25})(\.\d{1,25})?([Ee][-+]?\d{1,3})?$/), (t) => {
        expect(hasAlteredNumber(Buffer.from(`["${t}",${t}]`))).toBe(alteredNumber(t) !== null);
        if (alteredNumber(t) !== null) {
          expect(flags(`[{"a":[${t}]}]`)).toEqual([true]);
          expect(hasAlteredNumber(Buffer.from(`{"s":"${t}","a":[1,${t}]}`))).toBe(true);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
