import { createRequire } from 'node:module';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { expect } from 'vitest';
import { totpCode } from '../../src/security/portal-credentials.js';
import { adminApi } from './admin.js';
import { keyAndCsr } from './csr.js';
import { startTestDip, type TestDip } from './dip-harness.js';
import { mailingTo, startSmtp, type TestSmtp } from './smtp.js';

/**
 * A real browser for the portals' tests: Debian's chromium (installed by .ci/run and the README's setup,
 * never a browser build downloaded by Playwright) driven by playwright-core, with axe-core injected for
 * accessibility checks and screenshots written to docs/screenshots/.
 *
 * One browser per test file (launch it in beforeAll, close it in afterAll): a launch costs about a
 * second of CPU on these machines; a context per test keeps cookies apart.
 */

export const CHROMIUM = process.env.DIP_CHROMIUM ?? '/usr/bin/chromium';
/**
 * Where screenshots go: docs/screenshots/ (committed, linked from the README) when DIP_SCREENSHOTS=docs,
 * else a temporary folder, so an ordinary test run leaves the working tree as it was.
 */
export const SCREENSHOTS_DIR = process.env.DIP_SCREENSHOTS === 'docs' ? resolve(import.meta.dirname, '../../docs/screenshots') : join(tmpdir(), 'opendip-screenshots');

/**
 * Playwright adds --headless itself and always starts from a fresh, temporary profile (it creates the
 * --user-data-dir and deletes it on close; it refuses one passed in args). The rest keeps the browser off
 * the network and quiet: no QUIC, no component or sync traffic, no first-run UI, no GPU process.
 */
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (see the README's setup)`);
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS, timeout: 60_000 });
}

/**
 * A context that accepts the DIP's development certificate (the test PKI is made at test time, so no CA
 * can be preinstalled in the browser) and fails fast: a page that needs long waits is a defect.
 */
export async function newContext(browser: Browser, clientCertificate?: { origin: string; certPem: string; keyPem: string }): Promise<BrowserContext> {
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: { width: 1280, height: 860 },
    javaScriptEnabled: true,
    // The participant listener (the data portal) asks for a client certificate at the handshake.
    ...(clientCertificate ? { clientCertificates: [{ origin: clientCertificate.origin, cert: Buffer.from(clientCertificate.certPem), key: Buffer.from(clientCertificate.keyPem) }] } : {}),
  });
  context.setDefaultTimeout(15_000);
  return context;
}

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export interface AxeViolation {
  id: string;
  impact: 'minor' | 'moderate' | 'serious' | 'critical' | null;
  help: string;
  nodes: Array<{ target: string[]; failureSummary?: string }>;
}

/**
 * Runs axe-core (WCAG 2.0/2.1 A and AA rules and best practices) on the page as it is and returns the
 * serious and critical violations. axe is evaluated through the DevTools protocol, which a page's
 * Content-Security-Policy does not govern: the portals' strict CSP stays on while they are checked.
 */
export async function seriousViolations(page: Page): Promise<AxeViolation[]> {
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run(ctx: unknown, opts: unknown): Promise<{ violations: unknown[] }> } }).axe;
    return axe.run(document, { resultTypes: ['violations'] });
  });
  return (result.violations as AxeViolation[]).filter((v) => v.impact === 'serious' || v.impact === 'critical');
}

/** Human-readable violations for an assertion message. */
export function describeViolations(violations: AxeViolation[]): string {
  return violations.map((v) => `${v.impact ?? '?'} ${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join(', ')}`).join('\n');
}

/** Saves a full-page screenshot as <SCREENSHOTS_DIR>/<name>.png (docs/screenshots/: linked from the README's Portals section). */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS_DIR, { recursive: true });
  const file = join(SCREENSHOTS_DIR, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** A page checked with axe-core (no serious or critical violation), then its screenshot saved as `name`. */
export async function checkPage(page: Page, name: string): Promise<void> {
  const violations = await seriousViolations(page);
  expect(violations, describeViolations(violations)).toEqual([]);
  await screenshot(page, name);
}

/**
 * A person's first sign-in to a portal (`base`: /portal or /operator) from its sign-in page, with the
 * first password an administrator or operator was shown: the authenticator set up (the TOTP secret read
 * off the page) and a password of their own chosen, `<username> chose this one`.
 */
export async function firstSignIn(page: Page, portalUrl: string, base: string, username: string, password: string): Promise<void> {
  await page.goto(`${portalUrl}${base}/sign-in`);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  const secret = (await page.locator('#totp-secret').textContent())!;
  await page.getByLabel('Code from your authenticator app').fill(totpCode(secret, Date.now()));
  await page.getByLabel('New password (12 characters or more)').fill(`${username} chose this one`);
  await page.getByLabel('New password again').fill(`${username} chose this one`);
  await page.getByRole('button', { name: 'Confirm and sign in' }).click();
  await page.waitForURL(`**${base}/`);
}

/**
 * A DIP that sends its e-mail to a test SMTP server, with the central register's `feed` applied (from
 * `source`), a CSR of `company` to register, and a browser: what the portals' browser tests of
 * participants and onboarding start from. `page` opens a page in a browser context of its own (cookies
 * apart); `signedIn` makes a person's first sign-in (firstSignIn) there. `close` ends it all.
 */
export interface MailingPortal {
  td: TestDip;
  smtp: TestSmtp;
  browser: Browser;
  admin: ReturnType<typeof adminApi>;
  csr: string;
  page(): Promise<Page>;
  signedIn(base: '/portal' | '/operator', username: string, password: string): Promise<Page>;
  close(): Promise<void>;
}

export async function startMailingPortal(feed: unknown, source: string, company: string): Promise<MailingPortal> {
  const smtp = await startSmtp();
  const td = await startTestDip(mailingTo(smtp));
  const admin = adminApi(td);
  const applied = await admin('POST', '/admin/register/apply', { feed, source });
  if (applied.status !== 200) throw new Error(`the register feed was refused: ${JSON.stringify(applied.body)}`);
  const { csr } = await keyAndCsr(company);
  const browser = await launchBrowser();
  const contexts: BrowserContext[] = [];
  const page = async () => {
    const context = await newContext(browser);
    contexts.push(context);
    return context.newPage();
  };
  return {
    td,
    smtp,
    browser,
    admin,
    csr,
    page,
    async signedIn(base, username, password) {
      const p = await page();
      await firstSignIn(p, td.dip.portalUrl, base, username, password);
      return p;
    },
    async close() {
      for (const c of contexts) await c.close();
      await browser.close();
      await td.close();
      await smtp.close();
    },
  };
}
