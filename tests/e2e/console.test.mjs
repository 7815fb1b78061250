// End-to-end tests of the querygate console (web/) in headless Chromium.
//
// The runner starts everything itself on loopback: querygate (QUERYGATE_BIN, default
// target/debug/querygate), a scripted OpenAI-compatible model and a static server for
// web/ on other origins. Every flow runs against each origin in E2E_ORIGINS
// (default "same,cross"): "same" is the console served by querygate at / (skipped,
// saying so, only while GET / answers 404), "cross" the same files from another
// origin listed in CORS_ALLOWED_ORIGINS.
//
//   cd tests/e2e && npm ci && npm test

import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startFakeModel, startQuerygate, startStaticServer } from './harness.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = path.resolve(ROOT, process.env.QUERYGATE_BIN ?? 'target/debug/querygate');
const SHOTS = path.join(ROOT, 'target', 'e2e-screenshots');
const ORIGINS = (process.env.E2E_ORIGINS ?? 'same,cross').split(',').map((s) => s.trim());
const KEYS = 't1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=';
const WAIT_MS = 10_000; // every Playwright wait
const TEST = { timeout: 60_000 };
const MODEL_SQL = 'SELECT country, COUNT(*) AS n FROM customers GROUP BY country ORDER BY n DESC';

let tmp; let tmpBare; let model; let listed; let unlisted; let qg; let bare; let browser;
const apiConfig = { apiOrigin: '' };
const facts = {}; // answers read straight from the API, to compare the page with

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'querygate-e2e-'));
  await mkdir(SHOTS, { recursive: true });
  model = await startFakeModel({ fallbackSql: MODEL_SQL });
  listed = await startStaticServer(path.join(ROOT, 'web'), apiConfig);
  unlisted = await startStaticServer(path.join(ROOT, 'web'), apiConfig);
  qg = await startQuerygate(BIN, {
    HOST: '127.0.0.1',
    QUERYGATE_KEYS: KEYS,
    SQLITE_DIR: tmp,
    RATE_LIMIT_MAX_REQUESTS: '0',
    DB_ALLOWED_HOSTS: '127.0.0.1,localhost',
    MAX_EXPORT_ROWS: '20000',
    CORS_ALLOWED_ORIGINS: listed.origin,
    OPENAI_BASE_URL: model.baseUrl,
    OPENAI_API_KEY: 'test',
  });
  apiConfig.apiOrigin = qg.origin;
  // A second querygate with no model configured, serving its own console.
  tmpBare = await mkdtemp(path.join(os.tmpdir(), 'querygate-e2e-bare-'));
  bare = await startQuerygate(BIN, {
    HOST: '127.0.0.1',
    QUERYGATE_KEYS: KEYS,
    SQLITE_DIR: tmpBare,
    RATE_LIMIT_MAX_REQUESTS: '0',
    DB_ALLOWED_HOSTS: '127.0.0.1,localhost',
  });
  facts.servesConsole = (await fetch(`${qg.origin}/`)).status !== 404;
  const token = (await api('POST', '/api/database/connect', { dbType: 'sqlite', database: 'demo' })).token;
  facts.customers = String((await api('POST', '/api/database/execute',
    { sql: 'select count(*) as n from customers' }, token)).data[0].n);
  facts.badTokenError = (await api('GET', '/api/database/schema', undefined, 'not-a-token')).error;
  facts.readOnlyError = (await api('POST', '/api/database/execute', { sql: 'delete from customers' }, token)).error;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  await qg?.stop();
  await bare?.stop();
  if (tmpBare) await rm(tmpBare, { recursive: true, force: true });
  await Promise.all([model?.stop(), listed?.stop(), unlisted?.stop()]);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

async function api(method, route, body, token) {
  const headers = body === undefined ? {} : { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const res = await fetch(qg.origin + route, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(WAIT_MS),
  });
  return res.json();
}

const TARGETS = {
  same: { name: 'same origin', url: () => `${qg.origin}/`, skip: () => (facts.servesConsole ? null : 'querygate does not serve the console at / yet (GET / answered 404)') },
  cross: { name: 'cross origin', url: () => `${listed.origin}/`, skip: () => null },
};

/** A fresh browser context (its own sessionStorage) on the console, watching for CSP violations and script errors. */
async function openConsole(t, target, { width = 1280, height = 800, clock = false } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, acceptDownloads: true });
  t.after(() => context.close());
  context.setDefaultTimeout(WAIT_MS);
  await context.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const page = await context.newPage();
  if (clock) await page.clock.install();
  const seen = { requests: [], errors: [] };
  page.on('request', (r) => seen.requests.push(r));
  page.on('pageerror', (e) => seen.errors.push(e.message));
  const response = await page.goto(target.url());
  return { context, page, seen, response };
}

async function assertClean(page, seen) {
  assert.deepEqual(await page.evaluate(() => window.cspViolations), [], 'no Content-Security-Policy violation');
  assert.deepEqual(seen.errors, [], 'no uncaught script error');
}

async function connectDemo(page) {
  await page.getByRole('button', { name: 'Open the demo database (SQLite)' }).click();
  await tableInTree(page, 'customers').waitFor();
}

const tableInTree = (page, name) => page.locator('#schema-tree .tname').filter({ hasText: new RegExp(`^${name}$`) });
const tableDetails = (page, name) => page.locator('#schema-tree details')
  .filter({ has: page.locator('.tname').filter({ hasText: new RegExp(`^${name}$`) }) });
const storedSession = (page) => page.evaluate(() => JSON.parse(sessionStorage.getItem('querygate.session')));
const shot = (page, name, fullPage = false) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage });

/** Types `sql`, runs it with `key`, and answers the execute response. */
async function runSql(page, sql, key = 'Control+Enter') {
  await page.locator('#sql').fill(sql);
  const answer = page.waitForResponse((r) => r.url().includes('/api/database/execute') && r.request().method() === 'POST');
  await page.locator('#sql').press(key);
  return answer;
}

async function grid(page) {
  // Whichever comes first: the grid, or an error that says why there is none.
  await page.locator('#result:not([hidden]), #work-error:not([hidden])').first().waitFor();
  if (await page.locator('#work-error').isVisible()) {
    assert.fail(`the query failed: ${await page.locator('#work-error').textContent()}`);
  }
  return page.evaluate(() => ({
    columns: [...document.querySelectorAll('#grid thead th')].map((th) => th.firstChild.nodeValue),
    cells: [...document.querySelectorAll('#grid tbody tr')].map((tr) => [...tr.cells].map((td) => ({
      text: td.textContent, isNull: td.classList.contains('null'), align: getComputedStyle(td).textAlign,
    }))),
  }));
}

for (const key of ORIGINS) {
  const target = TARGETS[key];
  assert.ok(target, `unknown origin "${key}" in E2E_ORIGINS (use same, cross)`);
  const flow = (name, fn) => it(name, TEST, async (t) => {
    const reason = target.skip();
    if (reason) return t.skip(reason);
    return fn(t);
  });
  const tag = key === 'same' ? 'same-origin' : 'cross-origin';

  describe(`console, ${target.name}`, () => {
    flow('the connect form labels every field, runs no inline code and is keyboard usable', async (t) => {
      const { page, seen, response } = await openConsole(t, target);
      const csp = response.headers()['content-security-policy'] ?? '';
      assert.match(csp, /script-src 'self'/, `the page is served with a strict CSP, got "${csp}"`);
      assert.doesNotMatch(csp, /unsafe-(inline|eval)/);
      const audit = await page.evaluate(() => ({
        unlabelled: [...document.querySelectorAll('input, select, textarea')]
          .filter((f) => ![...f.labels].some((l) => l.textContent.trim())).map((f) => f.id),
        inline: [...document.querySelectorAll('[style], style, script:not([src])')].map((e) => e.outerHTML),
        handlers: [...document.querySelectorAll('*')].flatMap((e) => e.getAttributeNames().filter((a) => a.startsWith('on'))),
        fakeButtons: document.querySelectorAll('[role="button"], a:not([href]), [tabindex]:not([tabindex="0"]):not([tabindex="-1"])').length,
      }));
      assert.deepEqual(audit, { unlabelled: [], inline: [], handlers: [], fakeButtons: 0 });
      await shot(page, `${tag}-connect`);

      // Tab order follows the form; the focused field shows an outline.
      assert.equal(await page.evaluate(() => document.activeElement.id), 'demo', 'the demo button has the focus');
      const order = [];
      for (let i = 0; i < 8; i += 1) {
        await page.keyboard.press('Tab');
        order.push(await page.evaluate(() => document.activeElement.id));
      }
      assert.deepEqual(order, ['engine', 'host', 'port', 'username', 'password', 'ssl', 'database', 'connect']);
      assert.notEqual(await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle), 'none');
      // SQLite needs no server fields: they leave the form and the tab order.
      await page.locator('#engine').selectOption('sqlite');
      assert.equal(await page.locator('#host').isVisible(), false);
      // The demo opens from the keyboard alone.
      await page.locator('#demo').focus();
      await page.keyboard.press('Enter');
      await tableInTree(page, 'customers').waitFor();
      await assertClean(page, seen);
    });

    flow('one click opens the demo; Ctrl+Enter runs a count shown right-aligned', async (t) => {
      const { page, seen } = await openConsole(t, target);
      await connectDemo(page);
      assert.match(await page.locator('#session-db').textContent(), /demo \(sqlite\)/);
      assert.match(await page.locator('#session-expiry').textContent(), /Token valid for (59|60) min, renewed automatically/);
      // Columns with types and key markers: customers has a PK and a FK to employees.
      await tableInTree(page, 'customers').click();
      const customers = tableDetails(page, 'customers');
      await customers.locator('li', { hasText: 'customerNumber' }).locator('.pk').waitFor();
      assert.match(await customers.locator('li', { hasText: 'salesRepEmployeeNumber' }).textContent(), /INTEGER.*FK → employees\.employeeNumber/);
      assert.match(await tableDetails(page, 'customer_order_totals').textContent(), /view/);
      await page.locator('#schema-filter').fill('creditlim');
      assert.deepEqual(await page.locator('#schema-tree details:not([hidden]) .tname').allTextContents(), ['customers']);

      const answer = await runSql(page, 'select count(*) as n from customers');
      const { columns, cells } = await grid(page);
      assert.deepEqual(columns, ['n']);
      assert.deepEqual(cells, [[{ text: facts.customers, isNull: false, align: 'right' }]]);
      const status = await page.locator('#result-status').textContent();
      assert.match(status, /^1 row · \d+(\.\d+)? ms/);
      const servedBy = answer.headers()['x-served-by'];
      if (servedBy) assert.ok(status.includes(`served by ${servedBy}`), `X-Served-By "${servedBy}" shown (exposed by CORS?): "${status}"`);
      else assert.doesNotMatch(status, /served by/);
      const [schemaBox, queryBox] = [await page.locator('.schema').boundingBox(), await page.locator('.query').boundingBox()];
      assert.ok(schemaBox.x + schemaBox.width <= queryBox.x, 'schema beside the query column at 1280 px');
      assert.equal(await page.evaluate(() => document.documentElement.scrollWidth <= innerWidth), true, 'no sideways scrolling');
      await shot(page, `${tag}-connected`);
      await assertClean(page, seen);
    });

    flow('values keep their type: NULL, exact 64-bit integers, parameters, maxRows, CSV', async (t) => {
      const { page, seen } = await openConsole(t, target);
      await connectDemo(page);
      const answer = await runSql(page, "select null as empty, 9007199254740993 as big, 1.5 as ratio, 'NULL' as word", 'Meta+Enter');
      assert.equal(answer.request().postDataJSON().bigintAsString, true);
      const [row] = (await grid(page)).cells;
      assert.deepEqual(row, [
        { text: 'NULL', isNull: true, align: 'left' },
        { text: '9007199254740993', isNull: false, align: 'right' },
        { text: '1.5', isNull: false, align: 'right' },
        { text: 'NULL', isNull: false, align: 'left' },
      ]);
      assert.equal(await page.locator('#grid td.null').evaluate((td) => getComputedStyle(td).fontStyle), 'italic');

      await page.locator('#sql').fill('select customerNumber from customers where customerNumber > ? order by 1');
      await page.locator('#params').fill('[0]');
      await page.locator('#max-rows').fill('5');
      const bounded = page.waitForResponse((r) => r.url().includes('/api/database/execute'));
      await page.getByRole('button', { name: 'Run' }).click();
      const sent = (await bounded).request().postDataJSON();
      assert.deepEqual([sent.params, sent.maxRows], [[0], 5]);
      await page.locator('#result-status', { hasText: 'truncated' }).waitFor();
      const { cells } = await grid(page);
      assert.equal(cells.length, 5);

      // The download runs the statement again as CSV for every row, not only the five shown.
      const download = page.waitForEvent('download');
      const exported = page.waitForResponse((r) => r.url().includes('/api/database/execute'));
      await page.getByRole('button', { name: 'Download CSV' }).click();
      const exportRequest = (await exported).request();
      assert.equal(exportRequest.headers().accept, 'text/csv');
      assert.deepEqual(exportRequest.postDataJSON(), { sql: sent.sql, params: [0] });
      const csv = (await readFile(await (await download).path(), 'utf8')).split('\n');
      assert.equal(csv.length, 1 + Number(facts.customers) + 1, 'a header, every row, the final newline');
      assert.deepEqual(csv.slice(0, 6), ['customerNumber', ...cells.map(([c]) => c.text)]);
      await page.locator('#csv-note', { hasText: `Saved querygate-result.csv with ${facts.customers} rows.` }).waitFor();

      // A value that a spreadsheet would run as a formula is neutralised.
      await page.locator('#params').fill('');
      await runSql(page, "select '=HYPERLINK(\"http://x\")' as f, '-2-cmd' as t, -2 as n", 'Meta+Enter');
      await grid(page);
      const formulas = page.waitForEvent('download');
      await page.getByRole('button', { name: 'Download CSV' }).click();
      const safe = await readFile(await (await formulas).path(), 'utf8');
      assert.deepEqual(safe.split('\n'), ['f,t,n', `"'=HYPERLINK(""http://x"")",'-2-cmd,-2`, '']);

      await page.locator('#params').fill('{"not": "an array"}');
      await page.locator('#sql').press('Control+Enter');
      await page.locator('#work-error', { hasText: 'JSON array' }).waitFor();
      await assertClean(page, seen);
    });

    flow('a write is refused and the server\'s error is shown with its code', async (t) => {
      const { page, seen } = await openConsole(t, target);
      await connectDemo(page);
      const answer = await runSql(page, 'delete from customers');
      assert.equal(answer.status(), 403);
      const alert = page.locator('#work-error');
      await alert.waitFor();
      assert.match(await alert.textContent(), /sql_read_only_violation/);
      assert.ok((await alert.textContent()).includes(facts.readOnlyError));
      await shot(page, `${tag}-error`);
      await assertClean(page, seen);
    });

    flow('a running statement shows its time and Cancel stops it; a failed run clears the old result', async (t) => {
      const { page, seen } = await openConsole(t, target);
      await connectDemo(page);
      await runSql(page, 'select 1 as earlier');
      await page.locator('#result-status', { hasText: /^1 row/ }).waitFor();
      // Counts until its limit (30 s) unless cancelled.
      const endless = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c';
      const requested = page.waitForRequest((r) => r.url().includes('/api/database/execute'));
      const answer = runSql(page, endless);
      const sent = (await requested).postDataJSON();
      await page.locator('#run-status', { hasText: /^Running for \d+\.\d s/ }).waitFor();
      assert.match(sent.queryId, /^[0-9a-f-]{36}$/, 'the statement is named');
      const cancelled = page.waitForResponse((r) => r.url().includes('/api/database/cancel'));
      await page.getByRole('button', { name: 'Cancel' }).click();
      assert.equal((await cancelled).status(), 200);
      assert.deepEqual((await cancelled).request().postDataJSON(), { queryId: sent.queryId });
      assert.equal((await answer).status(), 409);
      const alert = page.locator('#work-error', { hasText: 'The statement was cancelled.' });
      await alert.waitFor();
      assert.match(await alert.textContent(), /sql_cancelled/);
      assert.equal(await page.locator('#result').isHidden(), true, 'the earlier result is gone');
      assert.equal(await page.locator('#cancel').isHidden(), true);
      assert.equal(await page.locator('#run-status').textContent(), '');
      await assertClean(page, seen);
    });

    flow('a large result that fails after its first rows shows the rows and the error', async (t) => {
      const { page, seen } = await openConsole(t, target);
      await connectDemo(page);
      // About 500 KB before row 1000 fails: past what the server holds back, so the
      // answer is streamed and the error arrives in its closing part.
      const answer = await runSql(page, "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 2000) "
        + "SELECT n, printf('%.500c', 'x') AS pad, CASE WHEN n = 1000 THEN abs(-9223372036854775807 - 1) END AS boom FROM g");
      assert.equal(answer.status(), 200);
      await page.locator('#result-status', { hasText: /stopped by an error after these rows/ }).waitFor();
      assert.match(await page.locator('#result-status').textContent(), /^999 rows .*\(sql_error\)/);
      assert.equal(await page.locator('#grid tbody tr').count(), 999);
      await assertClean(page, seen);
    });

    flow('a reload keeps the tab connected and its editor; the token is in sessionStorage only', async (t) => {
      const { page, seen } = await openConsole(t, target);
      await connectDemo(page);
      const before = await storedSession(page);
      await page.locator('#sql').fill('select ? as kept');
      await page.locator('#params').fill('[7]');
      await page.locator('#max-rows').fill('12');
      await page.reload();
      await tableInTree(page, 'customers').waitFor();
      assert.equal(await page.locator('#connect-view').isHidden(), true);
      assert.equal((await storedSession(page)).token, before.token);
      assert.deepEqual(
        [await page.locator('#sql').inputValue(), await page.locator('#params').inputValue(),
          await page.locator('#max-rows').inputValue()],
        ['select ? as kept', '[7]', '12'],
      );
      assert.equal(await page.evaluate(() => localStorage.length), 0);
      await assertClean(page, seen);
    });

    flow('an empty result says so under its column names', async (t) => {
      const { page, seen } = await openConsole(t, target);
      await connectDemo(page);
      await runSql(page, 'select customerNumber, country from customers where 1 = 0');
      await page.locator('#result-status', { hasText: /^0 rows/ }).waitFor();
      assert.deepEqual(await page.locator('#grid th').allTextContents(), ['customerNumberinteger', 'countrytext']);
      const empty = page.locator('#grid td.empty');
      assert.equal(await empty.textContent(), 'No rows.');
      assert.equal(await empty.getAttribute('colspan'), '2');
      await assertClean(page, seen);
    });

    flow('the system\'s dark mode is followed', async (t) => {
      const { page, seen } = await openConsole(t, target);
      const colors = () => page.evaluate(() => [getComputedStyle(document.documentElement).backgroundColor,
        getComputedStyle(document.documentElement).color]);
      await page.emulateMedia({ colorScheme: 'light' });
      const [lightBg, lightFg] = await colors();
      await page.emulateMedia({ colorScheme: 'dark' });
      const [darkBg, darkFg] = await colors();
      assert.equal(lightBg, 'rgb(255, 255, 255)');
      assert.equal(darkBg, 'rgb(13, 17, 23)');
      assert.notEqual(lightFg, darkFg);
      await connectDemo(page);
      await shot(page, `${tag}-dark`);
      await assertClean(page, seen);
    });

    flow('a download that fails part way saves nothing and says why; a capped one says so', async (t) => {
      const { page, seen } = await openConsole(t, target);
      await connectDemo(page);
      // Row 1000 fails, past what the server holds back: the CSV transfer is aborted.
      await runSql(page, "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 2000) "
        + "SELECT n, printf('%.500c', 'x') AS pad, CASE WHEN n = 1000 THEN abs(-9223372036854775807 - 1) END AS boom FROM g");
      await page.locator('#result-status', { hasText: /stopped by an error/ }).waitFor();
      let downloads = 0;
      page.on('download', () => { downloads += 1; });
      await page.getByRole('button', { name: 'Download CSV' }).click();
      const alert = page.locator('#work-error', { hasText: 'The download failed part way, so nothing was saved.' });
      await alert.waitFor();
      assert.match(await alert.textContent(), /integer overflow.*sql_error/);

      // More rows than the server's export cap (MAX_EXPORT_ROWS=20000 here).
      await runSql(page, 'WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 30000) SELECT n FROM g');
      await page.locator('#result-status', { hasText: 'truncated' }).waitFor();
      const download = page.waitForEvent('download');
      await page.getByRole('button', { name: 'Download CSV' }).click();
      const csv = (await readFile(await (await download).path(), 'utf8')).trimEnd().split('\n');
      assert.equal(csv.length, 1 + 20_000 + 1);
      assert.match(csv.at(-1), /^#querygate-truncated,20000,/);
      await page.locator('#csv-note', { hasText: 'only the first 20000 rows' }).waitFor();
      assert.equal(downloads, 1, 'only the whole download was saved');
      await assertClean(page, seen);
    });

    flow('a corrupted token leads back to the connect form with the server\'s message', async (t) => {
      const { page, seen } = await openConsole(t, target);
      await connectDemo(page);
      await page.evaluate(() => {
        const s = JSON.parse(sessionStorage.getItem('querygate.session'));
        sessionStorage.setItem('querygate.session', JSON.stringify({ ...s, token: `${s.token}x` }));
      });
      const answer = await runSql(page, 'select 1');
      assert.equal(answer.status(), 401);
      await page.locator('#connect-view').waitFor();
      const alert = await page.locator('#connect-error').textContent();
      assert.ok(alert.includes(facts.badTokenError), `"${alert}" shows "${facts.badTokenError}"`);
      assert.match(alert, /token_invalid/);
      assert.equal(await storedSession(page), null, 'the bad token is forgotten');
      await assertClean(page, seen);
    });

    flow('a question goes to the model and its SQL appears in the editor, not run', async (t) => {
      const { page, seen } = await openConsole(t, target);
      await connectDemo(page);
      const { token } = await storedSession(page);
      model.script.push(`Here you go:\n\`\`\`sql\n${MODEL_SQL};\n\`\`\``);
      const received = model.received.length;
      const generated = page.waitForResponse((r) => r.url().includes('/api/generate-sql'));
      await page.getByLabel('Ask a question in plain language').fill('how many customers per country?');
      await page.keyboard.press('Enter');
      const request = (await generated).request();
      assert.deepEqual(request.postDataJSON(), { userQuery: 'how many customers per country?', execute: false });
      assert.equal((await request.allHeaders()).authorization, `Bearer ${token}`);
      await page.waitForFunction((sql) => document.getElementById('sql').value === sql, MODEL_SQL);
      assert.equal(await page.locator('#result').isHidden(), true, 'nothing ran yet');
      assert.ok(!seen.requests.some((r) => r.url().includes('/execute')));
      const sentToModel = model.received.slice(received).map((r) => r.body).join('\n');
      assert.match(sentToModel, /how many customers per country/);
      assert.ok(!sentToModel.includes(token), 'the model never sees the token');
      await page.locator('#sql').press('Control+Enter');
      await page.locator('#grid thead th', { hasText: 'country' }).waitFor();
      await assertClean(page, seen);
    });

    flow('the token is renewed before it ends and travels only in the Authorization header', async (t) => {
      const { page, seen, context } = await openConsole(t, target, { clock: true });
      await connectDemo(page);
      const first = await storedSession(page);
      await runSql(page, 'select 1 as one');
      await page.locator('#grid tbody').waitFor();
      // 58.5 minutes later the one-hour token is due for renewal (two minutes ahead).
      const refreshed = page.waitForResponse((r) => r.url().includes('/api/database/refresh'));
      await page.clock.fastForward('58:30');
      assert.equal((await refreshed).status(), 200);
      await page.waitForFunction((old) => JSON.parse(sessionStorage.getItem('querygate.session')).token !== old, first.token);
      const second = await storedSession(page);
      await page.locator('#session-expiry', { hasText: /valid for (59|60) min/ }).waitFor();
      await runSql(page, 'select 2 as two');
      await page.locator('#grid thead th', { hasText: 'two' }).waitFor();

      const tokens = [first.token, second.token];
      const calls = seen.requests.filter((r) => new URL(r.url()).pathname.startsWith('/api/'));
      for (const r of seen.requests) assert.ok(!tokens.some((tok) => r.url().includes(tok)), `no token in ${r.url()}`);
      for (const r of calls.filter((c) => !c.url().includes('/connect') && c.method() !== 'OPTIONS')) {
        assert.match((await r.allHeaders()).authorization ?? '', /^Bearer /, `${r.url()} carries the token`);
      }
      assert.equal((await calls.find((c) => c.url().endsWith('/api/database/refresh')).allHeaders()).authorization, `Bearer ${first.token}`);
      assert.equal((await calls.findLast((c) => c.url().includes('/execute')).allHeaders()).authorization, `Bearer ${second.token}`);
      assert.deepEqual(await context.cookies(), []);
      assert.equal(await page.evaluate(() => document.cookie), '');
      await assertClean(page, seen);
    });

    flow('disconnect tells the server and forgets the token', async (t) => {
      const { page, seen } = await openConsole(t, target);
      await connectDemo(page);
      const { token } = await storedSession(page);
      const disconnected = page.waitForRequest((r) => r.url().includes('/api/database/disconnect'));
      await page.getByRole('button', { name: 'Disconnect' }).click();
      assert.equal((await (await disconnected).allHeaders()).authorization, `Bearer ${token}`);
      await page.locator('#connect-note', { hasText: 'Disconnected' }).waitFor();
      assert.equal(await storedSession(page), null);
      await assertClean(page, seen);
    });

    flow('a narrow window (400 px) stacks everything without sideways scrolling', async (t) => {
      const { page, seen } = await openConsole(t, target, { width: 400, height: 800 });
      const noSideways = () => page.evaluate(() => document.documentElement.scrollWidth <= innerWidth);
      assert.equal(await noSideways(), true);
      await shot(page, `${tag}-narrow-connect`, true);
      await connectDemo(page);
      await runSql(page, 'select customerNumber, customerName, country, creditLimit from customers order by creditLimit desc');
      await page.locator('#grid tbody tr').first().waitFor();
      assert.equal(await noSideways(), true, 'the grid scrolls inside its own box');
      const [schemaBox, queryBox] = [await page.locator('.schema').boundingBox(), await page.locator('.query').boundingBox()];
      assert.ok(schemaBox.y + schemaBox.height <= queryBox.y, 'schema above the query column');
      await shot(page, `${tag}-narrow-connected`, true);
      await assertClean(page, seen);
    });
  });
}

describe('console, server without a model', () => {
  it('explains plainly that natural language is off (503 ai_not_configured)', TEST, async (t) => {
    const { page, seen } = await openConsole(t, { url: () => `${bare.origin}/` });
    await connectDemo(page);
    const answer = page.waitForResponse((r) => r.url().includes('/api/generate-sql'));
    await page.getByLabel('Ask a question in plain language').fill('top customers');
    await page.getByRole('button', { name: 'Write SQL' }).click();
    const response = await answer;
    assert.equal(response.status(), 503, 'the real server answered');
    assert.equal((await response.json()).code, 'ai_not_configured');
    const alert = page.locator('#work-error');
    await alert.waitFor();
    assert.match(await alert.textContent(), /no language model configured.*write SQL yourself.*ai_not_configured/s);
    assert.equal(await page.locator('#work-view').isVisible(), true, 'still connected');
    await assertClean(page, seen);
  });
});

describe('CORS with credentials', () => {
  /** fetch() from a page on `origin`; answers what the page could read, or the error. */
  async function fetchFrom(t, origin, init) {
    const { page, seen } = await openConsole(t, { url: () => `${origin}/` });
    const result = await page.evaluate(async ([url, opts]) => {
      try {
        const res = await fetch(url, opts);
        return { status: res.status, body: await res.json() };
      } catch (e) {
        return { error: `${e.name}: ${e.message}` };
      }
    }, [`${qg.origin}/api/database/status`, init]);
    await assertClean(page, seen); // so a refusal below is CORS, not the page's CSP
    return result;
  }
  const withCredentials = { credentials: 'include', headers: { Authorization: 'Bearer not-a-token' } };

  it('a listed origin may call querygate with credentials: include', TEST, async (t) => {
    const result = await fetchFrom(t, listed.origin, withCredentials);
    const probe = await fetch(`${qg.origin}/api/health`, { headers: { origin: listed.origin } });
    assert.deepEqual(result, { status: 401, body: { success: false, error: facts.badTokenError, code: 'token_invalid' } },
      `Access-Control-Allow-Credentials is "${probe.headers.get('access-control-allow-credentials')}"`);
  });

  it('an unlisted origin is refused by CORS, with or without credentials', TEST, async (t) => {
    const probe = await fetch(`${qg.origin}/api/health`, { headers: { origin: unlisted.origin } });
    assert.equal(probe.headers.get('access-control-allow-origin'), null);
    assert.match((await fetchFrom(t, unlisted.origin, withCredentials)).error ?? '', /TypeError/);
    assert.match((await fetchFrom(t, unlisted.origin, { credentials: 'omit' })).error ?? '', /TypeError/);
  });
});
