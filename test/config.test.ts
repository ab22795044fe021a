import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULTS, loadConfig } from '../src/config.js';

function dirWith(yaml: string): string {
  const d = mkdtempSync(join(tmpdir(), 'opendip-config-'));
  writeFileSync(join(d, 'dip.config.yaml'), yaml);
  return d;
}

describe('configuration', () => {
  it('defaults, then the file, then environment variables', () => {
    const d = dirWith(['port: 9443', 'revocationPollMs: 100', 'rateLimit:', '  requestsPerSecond: 0', 'http:', '  maxJsonDepth: 32', 'delivery:', '  retryCapMs: 5000', 'channels:', '  IF-021:', '    securityPattern: 2', '    obfuscation:', '      SUP: [CustomBlock.B067]'].join('\n'));
    const c = loadConfig({ DIP_DATA_DIR: d, DIP_ENV: 'sit' });
    expect(c.port).toBe(9443);
    expect(c.environment).toBe('SIT');
    expect(c.revocationPollMs).toBe(100);
    expect(c.rateLimit).toEqual({ requestsPerSecond: 0, burst: DEFAULTS.rateLimit.burst });
    expect(c.http.maxJsonDepth).toBe(32);
    expect(c.http.maxConnectionsPerClient).toBe(64);
    expect(loadConfig({ DIP_DATA_DIR: dirWith('http:\n  maxConnectionsPerClient: 0') }).http.maxConnectionsPerClient).toBe(0);
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith('http:\n  maxConnectionsPerClient: -1') })).toThrow(/maxConnectionsPerClient/);
    expect([c.http.maxConnectionsPerAddress, c.http.firstByteTimeoutMs, c.http.authenticatedReservePercent]).toEqual([256, 2_000, 25]);
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith('http:\n  authenticatedReservePercent: 95') })).toThrow(/authenticatedReservePercent/);
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith('http:\n  firstByteTimeoutMs: 10') })).toThrow(/firstByteTimeoutMs/);
    expect(c.publications.anonymous.maxConnectionsPerAddress).toBe(64);
    expect(loadConfig({ DIP_DATA_DIR: dirWith('publications:\n  anonymous:\n    maxConnectionsPerAddress: 0') }).publications.anonymous.maxConnectionsPerAddress).toBe(0);
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith('publications:\n  anonymous:\n    maxConnectionsPerAddress: -1') })).toThrow(/maxConnectionsPerAddress/);
    expect(c.portal.maxConnectionsPerAddress).toBe(128);
    expect(loadConfig({ DIP_DATA_DIR: dirWith('portal:\n  maxConnectionsPerAddress: 0') }).portal.maxConnectionsPerAddress).toBe(0);
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith('portal:\n  maxConnectionsPerAddress: -1') })).toThrow(/portal\/maxConnectionsPerAddress/);
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith('portal:\n  maxConnectionsPerAddress: 1.5') })).toThrow(/portal\/maxConnectionsPerAddress/);
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith('portal:\n  maxConnections: 8') })).toThrow(/portal/);
    expect(c.portal.sessionIdleMinutes).toBe(30);
    expect(loadConfig({ DIP_DATA_DIR: dirWith('portal:\n  sessionIdleMinutes: 15') }).portal).toEqual({ maxConnectionsPerAddress: 128, sessionIdleMinutes: 15, maxSessionsPerUser: 5, firstPasswordHours: 72, operatorAllowList: [], rateLimit: { requestsPerSecond: 10, burst: 100 } });
    // The portal's request rate, field by field: a file that sets only the burst keeps the default rate.
    expect(loadConfig({ DIP_DATA_DIR: dirWith('portal:\n  rateLimit:\n    burst: 20') }).portal.rateLimit).toEqual({ requestsPerSecond: 10, burst: 20 });
    expect(loadConfig({ DIP_DATA_DIR: dirWith('portal:\n  maxSessionsPerUser: 0') }).portal.maxSessionsPerUser).toBe(0);
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith('portal:\n  maxSessionsPerUser: -1') })).toThrow(/portal\/maxSessionsPerUser/);
    expect(c.operators.allowedHosts).toEqual([]);
    expect(loadConfig({ DIP_DATA_DIR: dirWith('operators:\n  allowedHosts: [ops.example.net]') }).operators.allowedHosts).toEqual(['ops.example.net']);
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith('operators:\n  allowedHosts: ["ops.example.net:8444"]') })).toThrow(/operators.allowedHosts 'ops.example.net:8444' is not a host name/);
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith('portal:\n  sessionIdleMinutes: 0') })).toThrow(/portal\/sessionIdleMinutes/);
    expect(c.delivery.retryCapMs).toBe(5000);
    expect(c.delivery.retryBaseMs).toBe(DEFAULTS.delivery.retryBaseMs);
    expect(c.channels['IF-021']).toEqual({ securityPattern: 2, obfuscation: { SUP: ['CustomBlock.B067'] } });
    expect(loadConfig({ DIP_DATA_DIR: d, DIP_PORT: '8000' }).port).toBe(8000);
  });

  it('holds publicUrl as clients request it (host lower-cased, no default port, no trailing slash), and refuses one no request could reach', () => {
    const d = dirWith('');
    const publicUrl = (v: string) => loadConfig({ DIP_DATA_DIR: d, DIP_PUBLIC_URL: v }).publicUrl;
    expect(publicUrl('https://DIP.Example:443/')).toBe('https://dip.example');
    expect(publicUrl('https://dip.example')).toBe('https://dip.example');
    expect(publicUrl('https://dip.example:8443/base/')).toBe('https://dip.example:8443/base');
    expect(publicUrl('https://dip.example/a/./b/../in box')).toBe('https://dip.example/a/in%20box');
    expect(loadConfig({ DIP_DATA_DIR: dirWith('publicUrl: HTTPS://Dip.Example:443/') }).publicUrl).toBe('https://dip.example');
    expect(loadConfig({ DIP_DATA_DIR: d }, { publicUrl: 'https://dip.example:443/' }).publicUrl).toBe('https://dip.example');
    expect(loadConfig({ DIP_DATA_DIR: d }).publicUrl).toBeNull();
    // Empty, as a deployment template leaves it: unset (the Host header's URL), not a refusal at start.
    expect(loadConfig({ DIP_DATA_DIR: dirWith('publicUrl: https://from.file'), DIP_PUBLIC_URL: ' ' }).publicUrl).toBeNull();
    for (const bad of ['https://dip.example/?x=1', 'https://dip.example/#top', 'https://u:p@dip.example/', 'https://dip.example:99999/', 'http://dip.example/']) {
      expect(() => publicUrl(bad), bad).toThrow(/publicUrl .* is not an https:\/\/host\[:port\]\[\/path\] URL/);
    }
  });

  it("holds the anonymous listener's public URL (publications.anonymous.publicUrl, DIP_ANONYMOUS_PUBLIC_URL) as publicUrl is held", () => {
    const d = dirWith('');
    const anonymousUrl = (env: Record<string, string>, overrides = {}) => loadConfig({ DIP_DATA_DIR: d, ...env }, overrides).publications.anonymous.publicUrl;
    expect(anonymousUrl({})).toBeNull();
    expect(anonymousUrl({ DIP_ANONYMOUS_PUBLIC_URL: 'https://Files.Example:443/open/' })).toBe('https://files.example/open');
    expect(loadConfig({ DIP_DATA_DIR: dirWith('publications:\n  anonymous:\n    publicUrl: HTTPS://Files.Example:8446/') }).publications.anonymous.publicUrl).toBe('https://files.example:8446');
    // The environment over the file, and empty is unset; the participant listener's publicUrl is another setting.
    const fromFile = dirWith('publications:\n  anonymous:\n    publicUrl: https://from.file');
    expect(loadConfig({ DIP_DATA_DIR: fromFile, DIP_ANONYMOUS_PUBLIC_URL: 'https://from.env' }).publications.anonymous.publicUrl).toBe('https://from.env');
    expect(loadConfig({ DIP_DATA_DIR: fromFile, DIP_ANONYMOUS_PUBLIC_URL: ' ' }).publications.anonymous.publicUrl).toBeNull();
    expect(anonymousUrl({ DIP_PUBLIC_URL: 'https://dip.example' })).toBeNull();
    expect(anonymousUrl({}, { publications: { ...DEFAULTS.publications, anonymous: { ...DEFAULTS.publications.anonymous, publicUrl: 'https://over.ride:443' } } })).toBe('https://over.ride');
    for (const bad of ['http://files.example/', 'https://files.example/?x=1']) {
      expect(() => anonymousUrl({ DIP_ANONYMOUS_PUBLIC_URL: bad }), bad).toThrow(/publications\.anonymous\.publicUrl .* is not an https:\/\/host\[:port\]\[\/path\] URL/);
    }
  });

  it('takes the number of processes from the file or DIP_WORKERS (unset: decided by dip serve), and refuses nonsense', () => {
    expect(loadConfig({ DIP_DATA_DIR: dirWith('') }).workers).toBeNull();
    expect(loadConfig({ DIP_DATA_DIR: dirWith('workers: 3') }).workers).toBe(3);
    expect(loadConfig({ DIP_DATA_DIR: dirWith('workers: 3'), DIP_WORKERS: '1' }).workers).toBe(1);
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith(''), DIP_WORKERS: 'all' })).toThrow(/DIP_WORKERS 'all' is not a whole number from 1 to 64/);
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith('workers: 0') })).toThrow(/workers/);
  });

  it('takes the number of ingest threads from the file or DIP_INGEST_THREADS (0 allowed: ingest on the listeners\' thread)', () => {
    expect(loadConfig({ DIP_DATA_DIR: dirWith('') }).ingestThreads).toBeNull();
    expect(loadConfig({ DIP_DATA_DIR: dirWith('ingestThreads: 2') }).ingestThreads).toBe(2);
    expect(loadConfig({ DIP_DATA_DIR: dirWith('ingestThreads: 2'), DIP_INGEST_THREADS: '0' }).ingestThreads).toBe(0);
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith(''), DIP_INGEST_THREADS: '-1' })).toThrow(/DIP_INGEST_THREADS '-1' is not a whole number from 0 to 64/);
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith('ingestThreads: 65') })).toThrow(/ingestThreads/);
  });

  it('seals with the LZ4 dictionary (format 3) only when storage.atRest.lz4Dictionary says so: off by default for one release', () => {
    expect(loadConfig({ DIP_DATA_DIR: dirWith('') }).storage.atRest).toEqual({ lz4Dictionary: false, bindToRecord: true });
    const on = loadConfig({ DIP_DATA_DIR: dirWith(['storage:', '  atRest:', '    lz4Dictionary: true', '  maxDatabaseMb: 10'].join('\n')) }).storage;
    expect([on.atRest.lz4Dictionary, on.maxDatabaseMb, on.kind]).toEqual([true, 10, 'sqlite']);
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith(['storage:', '  atRest:', '    lz4Dictionary: yes please'].join('\n')) })).toThrow(/lz4Dictionary/);
    // storage.atRest.bindToRecord: on by default (a new deployment), turned off by an upgrading cluster; the other key keeps its default.
    const off = loadConfig({ DIP_DATA_DIR: dirWith(['storage:', '  atRest:', '    bindToRecord: false'].join('\n')) }).storage.atRest;
    expect(off).toEqual({ lz4Dictionary: false, bindToRecord: false });
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith(['storage:', '  atRest:', '    dictionary: true'].join('\n')) })).toThrow(/atRest/);
  });

  it("names a cluster node from storage.nats.nodeName or DIP_NODE_NAME (unset or empty: the host's name), and refuses a name that is not one", () => {
    expect(loadConfig({ DIP_DATA_DIR: dirWith('') }).storage.nats.nodeName).toBeNull();
    const d = dirWith(['storage:', '  nats:', '    nodeName: dip-a.example'].join('\n'));
    expect(loadConfig({ DIP_DATA_DIR: d }).storage.nats.nodeName).toBe('dip-a.example');
    expect(loadConfig({ DIP_DATA_DIR: d, DIP_NODE_NAME: 'dip-b' }).storage.nats.nodeName).toBe('dip-b');
    expect(loadConfig({ DIP_DATA_DIR: d, DIP_NODE_NAME: '' }).storage.nats.nodeName).toBeNull();
    expect(() => loadConfig({ DIP_DATA_DIR: d, DIP_NODE_NAME: 'two words' })).toThrow(/DIP_NODE_NAME 'two words' is not a node name/);
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith(['storage:', '  nats:', '    nodeName: "a/b"'].join('\n')) })).toThrow(/nodeName/);
  });

  it('reads webhook destinations and named always participants from the file', () => {
    const c = loadConfig({ DIP_DATA_DIR: dirWith(['webhookAllowList: [10.20.0.0/16, partner.example]', 'channels:', '  IF-021:', '    alwaysParticipants: ["9000000001"]'].join('\n')) });
    expect(c.webhookAllowList).toEqual(['10.20.0.0/16', 'partner.example']);
    expect(c.channels['IF-021']).toEqual({ alwaysParticipants: ['9000000001'] });
    expect(loadConfig({ DIP_DATA_DIR: dirWith('') }).webhookAllowList).toEqual([]);
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith('webhookAllowList: [""]') })).toThrow(/webhookAllowList/);
  });

  it('gives every listener a port of its own: the anonymous one too, enabled with its defaults; two on one port are refused by name', () => {
    const anonymous = loadConfig({ DIP_DATA_DIR: dirWith('publications:\n  anonymous:\n    enabled: true') });
    expect(new Set([anonymous.port, anonymous.adminPort, anonymous.portalPort, anonymous.publications.anonymous.port]).size).toBe(4);
    // port 0 (free ports, as tests and tools start a DIP): the anonymous listener takes a free one too.
    expect(loadConfig({ DIP_DATA_DIR: dirWith('port: 0\npublications:\n  anonymous:\n    enabled: true') }).publications.anonymous.port).toBe(0);
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith('publications:\n  anonymous:\n    enabled: true\n    port: 8443') })).toThrow(
      'configuration: publications.anonymous.port and port are both 8443: each listener needs a port of its own',
    );
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith(''), DIP_PORTAL_PORT: '8444' })).toThrow(/portalPort and adminPort are both 8444/);
  });

  it("refuses a staleness limit that dead-letters an offline consumer's messages before 14 days (spec 5.4) unless allowShortRetention says it is meant", () => {
    const load = (yaml: string, env: NodeJS.ProcessEnv = {}) => loadConfig({ DIP_DATA_DIR: dirWith(yaml), ...env });
    // The README's example once set IF-021 to a day: refused, naming the setting, the spec and the way out.
    expect(() => load('channels:\n  IF-021:\n    staleAfterMinutes: 1440')).toThrow(
      /^configuration: channels\.IF-021\.staleAfterMinutes 1440 \(1 day\) dead-letters a message its recipient has not fetched before the 14 days \(20160 minutes\) spec 5\.4 keeps it for.*channels\.IF-021\.allowShortRetention: true/,
    );
    expect(load('channels:\n  IF-021:\n    staleAfterMinutes: 1440\n    allowShortRetention: true').channels['IF-021']).toEqual({ staleAfterMinutes: 1440, allowShortRetention: true });
    expect(load('channels:\n  IF-021:\n    staleAfterMinutes: 20160').channels['IF-021']?.staleAfterMinutes).toBe(20_160);
    // The defaults every channel without its own takes: staleAfterMinutes, else retentionDays (also DIP_RETENTION_DAYS).
    expect(() => load('staleAfterMinutes: 60')).toThrow(/^configuration: staleAfterMinutes 60 \(1 hour\) dead-letters .* allowShortRetention: true/);
    expect(() => load('retentionDays: 7')).toThrow(/^configuration: retentionDays 7 \(7 days\) dead-letters .* allowShortRetention: true/);
    expect(() => load('', { DIP_RETENTION_DAYS: '1' })).toThrow(/^configuration: retentionDays 1 \(1 day\)/);
    expect(load('retentionDays: 7\nallowShortRetention: true').retentionDays).toBe(7);
    // An install configured by its environment alone acknowledges there too (true or false, nothing else;
    // empty, as a deployment template leaves it, is unset); the environment wins over the file.
    expect(() => load('', { DIP_RETENTION_DAYS: '1' })).toThrow(/allowShortRetention: true \(DIP_ALLOW_SHORT_RETENTION=true\)/);
    expect(load('', { DIP_RETENTION_DAYS: '1', DIP_ALLOW_SHORT_RETENTION: 'true' })).toMatchObject({ retentionDays: 1, allowShortRetention: true });
    expect(() => load('allowShortRetention: true', { DIP_RETENTION_DAYS: '1', DIP_ALLOW_SHORT_RETENTION: 'false' })).toThrow(/^configuration: retentionDays 1/);
    expect(() => load('allowShortRetention: true', { DIP_RETENTION_DAYS: '1', DIP_ALLOW_SHORT_RETENTION: '' })).not.toThrow();
    for (const v of ['1', 'yes', 'TRUE', ' true']) {
      expect(() => load('', { DIP_RETENTION_DAYS: '1', DIP_ALLOW_SHORT_RETENTION: v })).toThrow(`DIP_ALLOW_SHORT_RETENTION '${v}' is not true or false`);
    }
    // It acknowledges the default limit only, as allowShortRetention does: a channel's own needs the channel's.
    expect(() => load('channels:\n  IF-021:\n    staleAfterMinutes: 60', { DIP_ALLOW_SHORT_RETENTION: 'true' })).toThrow(/channels\.IF-021\.staleAfterMinutes 60/);
    // One acknowledgement does not cover another setting's: a channel's own limit needs the channel's.
    expect(() => load('allowShortRetention: true\nchannels:\n  IF-021:\n    staleAfterMinutes: 60')).toThrow(/channels\.IF-021\.staleAfterMinutes 60/);
    expect(DEFAULTS.allowShortRetention).toBe(false);
    // The README's per-channel example is a configuration the DIP starts with (it once set IF-021 to a day, unacknowledged).
    const readme = readFileSync(join(import.meta.dirname, '..', 'README.md'), 'utf8');
    const example = /Per channel, in the configuration file:\n\n```yaml\n([\s\S]*?)```/.exec(readme)![1]!;
    expect(Object.keys(load(example).channels)).toContain('IF-021');
  });

  it('refuses what it does not know, or cannot use, with the reason', () => {
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith('prot: 1') })).toThrow(/must NOT have additional properties/);
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith('channels:\n  IF-021:\n    securityPattern: 7') })).toThrow(/securityPattern/);
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith(''), DIP_PORT: 'eighty' })).toThrow(/DIP_PORT 'eighty' is not a TCP port/);
    expect(() => loadConfig({ DIP_DATA_DIR: dirWith(''), DIP_ENV: 'LIVE' })).toThrow(/DIP_ENV 'LIVE' is not one of/);
    expect(() => loadConfig({ DIP_CONFIG: '/nonexistent/dip.yaml' })).toThrow(/does not exist/);
  });
});
