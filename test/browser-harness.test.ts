import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { launchBrowser, newContext, seriousViolations } from './helpers/browser.js';

/** The harness itself: the real browser starts, runs axe under a strict CSP, and axe finds what it should. */
const pages: Record<string, string> = {
  '/good': '<!doctype html><html lang="en"><head><title>Good</title></head><body><main><h1>Good</h1><form><label for="a">Name</label><input id="a" name="a"></form></main></body></html>',
  '/bad': '<!doctype html><html lang="en"><head><title>Bad</title></head><body><main><h1>Bad</h1><form><input name="a"></form><img src="/x.png"></main></body></html>',
};

describe('browser harness', () => {
  let browser: Browser;
  let server: Server;
  let base: string;
  beforeAll(async () => {
    browser = await launchBrowser();
    server = createServer((req, res) => {
      const body = pages[req.url ?? ''];
      res.writeHead(body ? 200 : 404, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': "default-src 'none'" });
      res.end(body ?? '');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await browser?.close();
    server?.close();
  });

  it('reports no serious violation on an accessible page, and reports the unlabelled field and the image without alt text', async () => {
    const context = await newContext(browser);
    const page = await context.newPage();
    await page.goto(`${base}/good`);
    expect(await seriousViolations(page)).toEqual([]);
    await page.goto(`${base}/bad`);
    const ids = (await seriousViolations(page)).map((v) => v.id).sort();
    expect(ids).toEqual(['image-alt', 'label']);
    await context.close();
  });
});
