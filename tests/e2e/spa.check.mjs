// The replaced single page app (saurabhdahariya/text-to-query-ai), changed exactly as
// docs/migrating.md says, in Chromium against the real querygate, PostgreSQL and
// MariaDB. Run by scripts/check-migrating.sh, which builds the app and starts nginx;
// not part of `npm test` (the app is not in this repository).
//
// Environment: QUERYGATE_BIN, QG_PORT (the port the cross-origin build calls),
// SAME_ORIGIN (nginx serving the same-origin build, /api/ passed to QG_PORT),
// CROSS_BUILD (the build made with REACT_APP_API_URL=http://127.0.0.1:QG_PORT/api).

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import { startFakeModel, startQuerygate } from './harness.mjs';

const { QUERYGATE_BIN, QG_PORT, SAME_ORIGIN, CROSS_BUILD } = process.env;
const KEYS = 't1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';
const TTL_S = 10;
const WAIT = { timeout: 15_000 };
const TEST = { timeout: 120_000 };
const MODEL_SQL = "SELECT customer_name, country, visits FROM customers WHERE country = 'France' ORDER BY customer_name";
const ENGINES = {
  postgresql: { port: '5432' },
  mysql: { port: '3306' },
};

/** Serves a build on its own origin, as a static host would (unknown paths: index.html). */
async function startStatic(dir) {
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json', '.ico': 'image/x-icon', '.png': 'image/png' };
  const server = http.createServer(async (req, res) => {
    const wanted = path.join(dir, decodeURIComponent(req.url.split('?')[0]));
    const file = wanted.startsWith(dir) && path.extname(wanted) ? wanted : path.join(dir, 'index.html');
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { origin: `http://127.0.0.1:${server.address().port}`, stop: () => new Promise((r) => server.close(r)) };
}

let browser; let model; let qg; let cross;

before(async () => {
  for (const [name, value] of Object.entries({ QUERYGATE_BIN, QG_PORT, SAME_ORIGIN, CROSS_BUILD })) {
    assert.ok(value, `${name} is set (run scripts/check-migrating.sh)`);
  }
  model = await startFakeModel({ fallbackSql: MODEL_SQL });
  cross = await startStatic(CROSS_BUILD);
  qg = await startQuerygate(QUERYGATE_BIN, {
    HOST: '127.0.0.1',
    PORT: QG_PORT,
    QUERYGATE_KEYS: KEYS,
    SQLITE_DIR: await mkdtemp(path.join(os.tmpdir(), 'querygate-spa-')),
    DB_ALLOWED_HOSTS: '127.0.0.1,localhost',
    RATE_LIMIT_MAX_REQUESTS: '0',
    TRUST_PROXY: 'true',
    FRONTEND_URL: cross.origin,
    TOKEN_TTL: String(TTL_S),
    TOKEN_LEEWAY: '0',
    OPENAI_BASE_URL: model.baseUrl,
    OPENAI_API_KEY: 'test',
  });
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
});

after(async () => {
  await browser?.close();
  await qg?.stop();
  await cross?.stop();
  await model?.stop();
});

/** A fresh tab on `origin` that records every API request; Google Fonts are cut off. */
async function open(t, origin) {
  const context = await browser.newContext();
  t.after(() => context.close());
  context.setDefaultTimeout(WAIT.timeout);
  await context.route(/fonts\.(googleapis|gstatic)\.com/, (route) => route.abort());
  const page = await context.newPage();
  const api = [];
  page.on('response', async (response) => {
    const url = new URL(response.url());
    if (!url.pathname.startsWith('/api/')) return;
    const headers = await response.request().allHeaders();
    api.push({ path: url.pathname, status: response.status(), auth: Boolean(headers.authorization), cookie: headers.cookie ?? null });
  });
  await page.goto(origin);
  await page.getByText('Transform Natural Language').waitFor();
  return { page, api };
}

/** Fills the connect form (from the landing page unless `onForm`) and opens the query view. */
async function connectThroughTheForm(page, engine, { onForm = false } = {}) {
  if (!onForm) await page.getByRole('button', { name: 'Connect Database' }).click();
  await page.locator('select').selectOption(engine);
  await page.fill('#host', '127.0.0.1');
  await page.fill('#port', ENGINES[engine].port);
  await page.fill('#database', 'spa_check');
  await page.fill('#username', 'qg_secret');
  await page.fill('#password', 'qg-right-password');
  await page.getByRole('button', { name: 'Test Connection' }).click();
  await page.getByText('Connection test successful!').waitFor();
  await page.getByRole('button', { name: 'Connect to Database' }).click();
  await page.getByText('Query Interface').waitFor();
  await page.getByText('customers', { exact: true }).waitFor();
}

async function ask(page) {
  await page.fill('textarea', 'Which customers are in France?');
  await page.getByRole('button', { name: 'Send' }).click();
  await page.getByText('Query Results').waitFor();
  const body = await page.textContent('body');
  assert.ok(body.includes('Atelier graphique') && body.includes('La Rochelle Gifts'), 'the rows of the user\'s database');
  assert.ok(body.includes('9007199254740993'), 'a 64-bit integer shown exactly');
  assert.ok(!body.includes('Signal Gift Stores'), 'only what the SQL selected');
}

async function expire(page) {
  await page.waitForTimeout(TTL_S * 1000 + 500);
  await page.fill('textarea', 'Which customers are in France?');
  await page.getByRole('button', { name: 'Send' }).click();
  await page.getByText('Your database session expired. Connect again.').waitFor();
  await page.getByRole('button', { name: 'Test Connection' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('querygate.session')), null);
}

function assertClean(api) {
  assert.deepEqual(api.filter((c) => c.cookie), [], 'no request carries a cookie');
  const needsToken = (c) => ['/api/database/schema', '/api/database/execute', '/api/generate-sql', '/api/database/status'].includes(c.path);
  assert.deepEqual(api.filter((c) => needsToken(c) && c.status === 200 && !c.auth), [], 'answered calls carried the token');
  assert.ok(!api.some((c) => c.path.startsWith('/api/demo/')), 'nothing was answered from the demo database');
}

describe('the replaced app behind nginx, same origin', () => {
  for (const engine of Object.keys(ENGINES)) {
    it(`${engine}: connect, schema, question, reload, disconnect, idle expiry`, TEST, async (t) => {
      const { page, api } = await open(t, SAME_ORIGIN);
      await connectThroughTheForm(page, engine);
      assert.match(await page.textContent('body'), /spa_check/);
      await ask(page);
      await page.reload();
      await page.getByText('Query Interface').waitFor();
      await page.getByText('customers', { exact: true }).waitFor();
      await page.getByRole('button', { name: 'Disconnect' }).click();
      await page.getByText('Transform Natural Language').waitFor();
      assert.equal(await page.evaluate(() => sessionStorage.getItem('querygate.session')), null);
      assert.ok(api.some((c) => c.path === '/api/database/disconnect' && c.auth && c.status === 200));
      await connectThroughTheForm(page, engine);
      await expire(page);
      // The session expired onto the connect form: connect again from there.
      await connectThroughTheForm(page, engine, { onForm: true });
      assertClean(api);
    });
  }
});

describe('the replaced app on another origin (FRONTEND_URL)', () => {
  it('postgresql: connect, question, reload, idle expiry', TEST, async (t) => {
    const { page, api } = await open(t, cross.origin);
    await connectThroughTheForm(page, 'postgresql');
    await ask(page);
    await page.reload();
    await page.getByText('Query Interface').waitFor();
    await expire(page);
    assert.ok(api.length > 0 && api.every((c) => c.path.startsWith('/api/')));
    assertClean(api);
  });
});
