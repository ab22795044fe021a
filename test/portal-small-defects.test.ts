import { describe, expect, it } from 'vitest';
import { subscribeForm } from '../src/portal/alarms-view.js';
import { deadLetterText, html, page, table } from '../src/portal/html.js';

// An operator's black-box review of the control room found these.
describe('small portal defects', () => {
  it('says a dead letter\'s reason once ("stale: not delivered …", not "stale: stale: …")', () => {
    expect(deadLetterText('stale', null, 'stale: not delivered to 1000000001 within 1 h')).toBe('stale: not delivered to 1000000001 within 1 h');
    expect(deadLetterText('rejected', 400, 'HTTP 400')).toBe('rejected 400: HTTP 400');
  });

  it("words the operator's alarm-subscribe form for the operator, not the participant's \"us\" and \"our\"", () => {
    const operator = String(subscribeForm('/operator/alarms', html``, ['dead-letter', 'webhook-failing', 'certificate-expiring', 'queue-depth'], 'Rules', 'operator'));
    expect(operator).not.toMatch(/\b(us|our)\b/);
    const participant = String(subscribeForm('/portal/alarms', html``, ['dead-letter', 'webhook-failing'], 'Rules', '1000000001'));
    expect(participant).toContain('a message to us');
  });

  it('gives a column of buttons a header (axe empty-table-header)', () => {
    expect(String(table('Subscriptions', ['Rules', ''], [html`<tr><td>x</td><td>y</td></tr>`]))).not.toContain('<th scope="col"></th>');
  });

  it('names an icon within the CSP, so no page asks /favicon.ico', () => {
    expect(page({ title: 'Alarms', portal: 'Operator portal', path: '/operator/alarms', nav: [], body: html`` })).toContain('<link rel="icon" href="data:,">');
  });
});
