// The browser client (clients/js/querygate.js) in headless Chromium, against a real
// querygate, on the same origin (a page whose /api is proxied to querygate, as
// nginx does in docs/migrating.md) and on another origin listed in FRONTEND_URL.
//
//   cd tests/e2e && npm ci && node --test client.test.mjs

import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startQuerygate } from './harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.resolve(ROOT, process.env.QUERYGATE_BIN ?? 'target/debug/querygate');
const KEYS = 't1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';
const TEST = { timeout: 60_000 };
// Tokens live 4 s, with no leeway: refreshing and idle expiry happen within a test.
const TTL_S = 4;

const PAGE = `<!doctype html><meta charset="utf-8"><title>client</title>
<script type="module">
  import * as querygate from '/querygate.js';
  window.querygate = querygate;
  window.ended = [];
  querygate.onSessionEnd((code) => window.ended.push(code));
  window.ready = true;
</script>`;

/** Serves the test page and the client; with `api`, proxies /api/* there. */
async function startPageServer(api) {
  const client = await readFile(path.join(ROOT, 'clients', 'js', 'querygate.js'), 'utf8');
  const server = http.createServer(async (req, res) => {
    if (req.url === '/' || req.url === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
    } else if (req.url === '/querygate.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(client);
    } else if (api && req.url.startsWith('/api/')) {
      const chunks = [];
      for await (const chunk of req) chunks.push(chunk);
      const upstream = await fetch(`${api.origin}${req.url}`, {
        method: req.method,
        headers: Object.fromEntries(
          Object.entries(req.headers).filter(([k]) => ['authorization', 'content-type'].includes(k)),
        ),
        body: ['GET', 'HEAD'].includes(req.method) ? undefined : Buffer.concat(chunks),
      });
      res.writeHead(upstream.status, { 'content-type': upstream.headers.get('content-type') ?? 'text/plain' })
        .end(Buffer.from(await upstream.arrayBuffer()));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    origin: `http://127.0.0.1:${server.address().port}`,
    stop: () => new Promise((resolve) => { server.closeAllConnections(); server.close(resolve); }),
  };
}

let browser; let tmp; let proxied; let foreign; let qg; const api = { origin: '' };

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'querygate-client-'));
  proxied = await startPageServer(api);
  foreign = await startPageServer(null);
  qg = await startQuerygate(BIN, {
    HOST: '127.0.0.1',
    QUERYGATE_KEYS: KEYS,
    SQLITE_DIR: tmp,
    RATE_LIMIT_MAX_REQUESTS: '0',
    DB_ALLOWED_HOSTS: '127.0.0.1,localhost',
    FRONTEND_URL: foreign.origin,
    TOKEN_TTL: String(TTL_S),
    TOKEN_LEEWAY: '0',
  });
  api.origin = qg.origin;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
});

after(async () => {
  await browser?.close();
  await qg?.stop();
  await proxied?.stop();
  await foreign?.stop();
});

/** A fresh page on `origin` with the client loaded and configured for `baseURL`. */
async function open(origin, baseURL) {
  const page = await (await browser.newContext()).newPage();
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => window.ready === true);
  await page.evaluate((base) => window.querygate.configure({ baseURL: base }), baseURL);
  const requests = [];
  page.on('request', (r) => requests.push(new URL(r.url()).pathname));
  return { page, requests };
}

async function connectDemo(page) {
  return page.evaluate(async () => {
    const response = await window.querygate.connect({ dbType: 'sqlite', database: 'demo' });
    // The body is still unread, for the caller.
    const body = await response.json();
    return { status: response.status, body };
  });
}

for (const [where, setup] of [
  ['same origin', () => ({ origin: proxied.origin, base: '/api' })],
  ['another origin (FRONTEND_URL)', () => ({ origin: foreign.origin, base: `${qg.origin}/api` })],
]) {
  describe(`the client, ${where}`, () => {
    it('keeps the token from connect in sessionStorage only and sends it', TEST, async () => {
      const { origin, base } = setup();
      const { page } = await open(origin, base);
      const connected = await connectDemo(page);
      assert.equal(connected.status, 200);
      assert.equal(connected.body.success, true);
      const kept = await page.evaluate(() => ({
        session: sessionStorage.getItem('querygate.session'),
        local: localStorage.length,
        cookies: document.cookie,
        has: window.querygate.hasSession(),
      }));
      assert.ok(JSON.parse(kept.session).token, 'the token is in sessionStorage');
      assert.deepEqual([kept.local, kept.cookies, kept.has], [0, '', true]);
      const schema = await page.evaluate(async () => {
        const response = await window.querygate.fetchWithToken('/database/schema');
        return window.querygate.schemaToLegacy(await response.json());
      });
      const customers = schema.tables.find((t) => t.TABLE_NAME === 'customers');
      assert.equal(customers.TABLE_TYPE, 'BASE TABLE');
      const key = customers.columns.find((c) => c.COLUMN_NAME === 'customerNumber');
      assert.deepEqual([key.COLUMN_KEY, key.IS_NULLABLE], ['PRI', 'NO']);
    });

    it('a reload restores the session from status', TEST, async () => {
      const { origin, base } = setup();
      const { page } = await open(origin, base);
      await connectDemo(page);
      await page.reload();
      await page.waitForFunction(() => window.ready === true);
      const status = await page.evaluate(async (b) => {
        window.querygate.configure({ baseURL: b });
        return window.querygate.restore();
      }, base);
      assert.equal(status.connected, true);
      assert.equal(status.dbType, 'sqlite');
      assert.equal(status.database, 'demo');
    });

    it('refreshes once per half life, not per request, and an idle session ends at expiry', TEST, async () => {
      const { origin, base } = setup();
      const { page, requests } = await open(origin, base);
      await connectDemo(page);
      // Busy for 1.5 lifetimes: a request every 100 ms.
      const statuses = await page.evaluate(async (ms) => {
        const seen = [];
        const until = Date.now() + ms;
        while (Date.now() < until) {
          const response = await window.querygate.fetchWithToken('/database/status');
          seen.push(response.status);
          await new Promise((r) => setTimeout(r, 100));
        }
        return seen;
      }, TTL_S * 1500);
      assert.ok(statuses.every((s) => s === 200), `every request served: ${statuses}`);
      const refreshes = requests.filter((p) => p.endsWith('/database/refresh')).length;
      assert.ok(refreshes >= 1 && refreshes <= 4, `${refreshes} refreshes for ${statuses.length} requests`);
      // Idle past the token's life: the next request ends the session (on the
      // browser's clock) and goes out without a token.
      const ended = await page.evaluate(async (ms) => {
        await new Promise((r) => setTimeout(r, ms));
        const response = await window.querygate.fetchWithToken('/database/schema');
        return {
          status: response.status,
          code: (await response.json()).code,
          ended: window.ended,
          kept: window.querygate.hasSession(),
        };
      }, TTL_S * 1000 + 200);
      assert.deepEqual(ended, { status: 401, code: 'token_missing', ended: ['token_expired'], kept: false });
    });

    it('a reload after the token expired ends the session and says so', TEST, async () => {
      const { origin, base } = setup();
      const { page } = await open(origin, base);
      await connectDemo(page);
      await page.waitForTimeout(TTL_S * 1000 + 200);
      await page.reload();
      await page.waitForFunction(() => window.ready === true);
      const restored = await page.evaluate(async (b) => {
        window.querygate.configure({ baseURL: b });
        const status = await window.querygate.restore();
        return { status, ended: window.ended, stored: sessionStorage.getItem('querygate.session') };
      }, base);
      assert.deepEqual(restored, { status: null, ended: ['token_expired'], stored: null });
    });

    it('cancel stops a statement sent with a queryId; an unknown id is false', TEST, async () => {
      const { origin, base } = setup();
      const { page } = await open(origin, base);
      await connectDemo(page);
      const result = await page.evaluate(async () => {
        const qg = window.querygate;
        const queryId = qg.newQueryId();
        const running = qg.fetchWithToken('/database/execute', {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({
            sql: 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c',
            queryId,
          }),
        });
        let cancelled = false;
        for (let attempt = 0; attempt < 100 && !cancelled; attempt += 1) {
          cancelled = await qg.cancel(queryId);
          if (!cancelled) await new Promise((r) => setTimeout(r, 50));
        }
        const response = await running;
        return {
          cancelled,
          status: response.status,
          code: (await response.json()).code,
          unknown: await qg.cancel(qg.newQueryId()),
        };
      });
      assert.deepEqual(result, { cancelled: true, status: 409, code: 'sql_cancelled', unknown: false });
    });

    it('disconnect tells the server and forgets the token', TEST, async () => {
      const { origin, base } = setup();
      const { page, requests } = await open(origin, base);
      await connectDemo(page);
      const answer = await page.evaluate(() => window.querygate.disconnect());
      assert.equal(answer.success, true);
      assert.ok(requests.some((p) => p.endsWith('/database/disconnect')));
      const after = await page.evaluate(() => ({
        has: window.querygate.hasSession(),
        stored: sessionStorage.getItem('querygate.session'),
        ended: window.ended,
      }));
      assert.deepEqual(after, { has: false, stored: null, ended: [] });
    });

    it('a request without a kept token never ends a session it does not have', TEST, async () => {
      const { origin, base } = setup();
      const { page } = await open(origin, base);
      const result = await page.evaluate(async () => {
        const response = await window.querygate.fetchWithToken('/database/schema');
        return { status: response.status, code: (await response.json()).code, ended: window.ended };
      });
      assert.deepEqual(result, { status: 401, code: 'token_missing', ended: [] });
    });
  });
}
