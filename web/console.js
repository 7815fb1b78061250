// querygate console: connect, browse the schema, run read-only SQL, ask questions.
//
// Runs under a strict Content-Security-Policy (script-src 'self'; style-src 'self'),
// so there is no inline script or style and no eval; values from the database or the
// server only ever reach the page through textContent, never as HTML.
//
// The token lives in sessionStorage only (gone with the tab), is read from there for
// every request (so the tab has one source of truth) and travels only in the
// Authorization header: never in a URL, never in a cookie (fetch runs with
// credentials: 'omit').

const STORE_KEY = 'querygate.session';
const EDITOR_KEY = 'querygate.editor';
const TICK_MS = 1000;
const REFRESH_RETRY_MS = 15_000;

const $ = (id) => document.getElementById(id);

// Empty means "this page's origin"; see the comment on the meta tag in index.html.
const API_BASE = (document.querySelector('meta[name="querygate-api"]')?.content ?? '')
  .trim().replace(/\/+$/, '');

/** A failed call, carrying the server's envelope {error, code, details}. */
class ApiError extends Error {
  constructor(status, body) {
    super(body?.error ?? `The server answered HTTP ${status} without an explanation.`);
    this.status = status;
    this.code = body?.code ?? 'unexpected_response';
    this.details = body?.details;
  }
}

async function request(method, path, { body, token } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  let res;
  try {
    res = await fetch(API_BASE + path, {
      method, headers, credentials: 'omit', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    // fetch hides the reason (CORS, refused, offline) from scripts on purpose.
    throw new ApiError(0, {
      error: `The API at ${API_BASE || location.origin} could not be reached (network error, or this origin is not allowed by its CORS settings).`,
      code: 'network_error',
    });
  }
  const { text, cut } = await readBody(res);
  let data = null;
  try {
    data = JSON.parse(text);
  } catch {
    // Not JSON, or a transfer cut before the end of its document.
  }
  if (cut && !data?.error) {
    throw new ApiError(0, { error: 'The answer was cut off before its end (the connection failed).', code: 'transfer_failed' });
  }
  if (!res.ok || !data || data.success === false) throw new ApiError(res.status, data);
  // X-Served-By names the instance; cross-origin it is readable only when exposed by CORS.
  return { data, servedBy: res.headers.get('X-Served-By') };
}

/**
 * A body as text, and whether its transfer was cut. A large result is streamed; when it
 * fails after its first rows the server writes the error in the closing part and then
 * aborts the transfer, so what arrived before the cut is still the whole document.
 */
async function readBody(res) {
  if (!res.body) return { text: '', cut: false };
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const parts = [];
  let cut = false;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(decoder.decode(value, { stream: true }));
    }
  } catch {
    cut = true;
  }
  parts.push(decoder.decode());
  return { text: parts.join(''), cut };
}

// ---- the session (token + what connect/refresh said about it) ----

function loadSession() {
  try {
    const s = JSON.parse(sessionStorage.getItem(STORE_KEY));
    return s && typeof s.token === 'string' ? s : null;
  } catch {
    return null;
  }
}

/** Keep a connect/refresh answer. Server times are moved onto this browser's clock
 * through `expiresIn`, so a skewed client clock neither refreshes late nor in a loop. */
function adoptToken(answer) {
  const ttlMs = answer.expiresIn * 1000;
  const expiresAt = Date.now() + ttlMs;
  const skew = expiresAt - Date.parse(answer.expiresAt);
  const session = {
    token: answer.token, dbType: answer.dbType, database: answer.database, host: answer.host,
    ttlMs, expiresAt, refreshableUntil: Date.parse(answer.refreshableUntil) + skew,
  };
  // Renew a quarter of the lifetime before the end, at most two minutes before.
  session.refreshDue = expiresAt - Math.min(120_000, ttlMs / 4);
  sessionStorage.setItem(STORE_KEY, JSON.stringify(session));
  return session;
}

/** A refresh only helps while the chain's end lies beyond this token's own end. */
const canRefresh = (s) => s.refreshableUntil > s.expiresAt + 1000;

/** A request with the token; any 401 ends the session and shows the connect form. */
async function authed(method, path, body) {
  const session = loadSession();
  if (!session) {
    const err = new ApiError(401, { error: 'Not connected. Connect first.', code: 'token_missing' });
    showConnect(err);
    throw err;
  }
  try {
    return await request(method, path, { body, token: session.token });
  } catch (e) {
    if (e.status === 401) showConnect(e);
    throw e;
  }
}

/** Runs a user action, showing its failure in `target` (a 401 already went to the connect form). */
async function act(target, button, fn) {
  showError(target, null);
  if (button) button.disabled = true;
  try {
    await fn();
  } catch (e) {
    if (e.status !== 401) showError(target, e);
  } finally {
    if (button) button.disabled = false;
  }
}

function showError(target, err) {
  const box = $(target);
  box.replaceChildren();
  box.hidden = !err;
  if (!err) return;
  box.append(el('p', {}, err.message, ' ', el('code', {}, err.code ?? 'error')));
  const d = err.details ?? {};
  if (d.hint) box.append(el('p', {}, `Hint: ${d.hint}`));
  if (d.position) box.append(el('p', {}, `At character ${d.position} of the statement.`));
  if (d.sql) box.append(el('pre', {}, d.sql));
}

/** document.createElement with properties and children (strings become text). */
function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

// ---- the two views ----

let ticker = null;
let refreshing = false;

function showConnect(err, note = '') {
  clearInterval(ticker);
  ticker = null;
  sessionStorage.removeItem(STORE_KEY);
  $('work-view').hidden = true;
  $('session-bar').hidden = true;
  $('skip').hidden = true;
  $('connect-view').hidden = false;
  $('connect-note').textContent = note;
  showError('connect-error', err);
  $('demo').focus();
}

function showWorkspace() {
  const s = loadSession();
  $('connect-view').hidden = true;
  $('work-view').hidden = false;
  $('session-bar').hidden = false;
  $('skip').hidden = false;
  $('session-db').textContent = `${s.database} (${s.dbType}${s.host ? ` on ${s.host}` : ''})`;
  clearInterval(ticker);
  ticker = setInterval(tick, TICK_MS);
  tick();
  loadSchema();
}

/** Every second: show the time left, renew the token when due, notice when it ran out. */
function tick() {
  const s = loadSession();
  if (!s) return;
  const left = s.expiresAt - Date.now();
  if (left <= 0) {
    showConnect(new ApiError(401, { error: 'The token has expired. Connect again.', code: 'token_expired' }));
    return;
  }
  const secs = Math.ceil(left / 1000);
  const when = secs > 120 ? `${Math.floor(secs / 60)} min` : `${secs} s`;
  $('session-expiry').textContent = `Token valid for ${when}, ${canRefresh(s)
    ? 'renewed automatically' : 'then connect again'}`;
  if (!refreshing && canRefresh(s) && Date.now() >= s.refreshDue) refreshToken();
}

async function refreshToken() {
  refreshing = true;
  try {
    const { data } = await authed('POST', '/api/database/refresh');
    adoptToken(data);
  } catch (e) {
    // Keep the current token (still valid) and try again a little later.
    const s = loadSession();
    if (e.status !== 401 && s) {
      s.refreshDue = Date.now() + REFRESH_RETRY_MS;
      sessionStorage.setItem(STORE_KEY, JSON.stringify(s));
    }
  } finally {
    refreshing = false;
  }
}

// ---- connect ----

async function connect(body) {
  const { data } = await request('POST', '/api/database/connect', { body });
  adoptToken(data);
  showError('connect-error', null);
  $('password').value = '';
  showWorkspace();
  $('sql').focus();
}

function connectFormBody() {
  const f = $('connect-form').elements;
  const dbType = f.dbType.value;
  if (dbType === 'sqlite') return { dbType, database: f.database.value.trim() };
  return {
    dbType, host: f.host.value.trim(), port: f.port.value.trim() || null,
    username: f.username.value.trim(), password: f.password.value || null,
    database: f.database.value.trim(), ssl: f.ssl.value,
  };
}

/** SQLite needs only the database name: the server fields are disabled (and hidden). */
function syncEngine() {
  const engine = $('engine').value;
  const fields = $('server-fields');
  fields.disabled = fields.hidden = engine === 'sqlite';
  $('port').placeholder = engine === 'mysql' ? '3306' : '5432';
}

// ---- schema ----

async function loadSchema() {
  await act('work-error', null, async () => {
    $('schema-count').textContent = 'Loading…';
    const { data } = await authed('GET', '/api/database/schema');
    renderSchema(data.tables);
  });
}

function renderSchema(tables) {
  const manySchemas = new Set(tables.map((t) => t.schema)).size > 1;
  const items = tables.map((t) => {
    const refs = new Map();
    for (const fk of t.foreignKeys) {
      fk.columns.forEach((c, i) => refs.set(c, `${fk.referencedTable}.${fk.referencedColumns[i]}`));
    }
    const columns = t.columns.map((c) => el('li', {},
      el('span', { className: 'col' }, c.name), ' ',
      el('span', { className: 'type' }, c.dataType || '—'),
      c.primaryKey ? el('abbr', { className: 'key pk', title: 'primary key' }, 'PK') : null,
      refs.has(c.name)
        ? el('span', { className: 'key fk', title: 'foreign key' }, `FK → ${refs.get(c.name)}`) : null));
    const name = manySchemas ? `${t.schema}.${t.name}` : t.name;
    const details = el('details', { className: 'table' },
      el('summary', {}, el('span', { className: 'tname' }, name),
        t.type === 'table' ? null : el('span', { className: 'badge' }, t.type.replace('_', ' '))),
      el('ul', {}, ...columns));
    details.dataset.search = [name, ...t.columns.map((c) => c.name)].join(' ').toLowerCase();
    return details;
  });
  $('schema-tree').replaceChildren(...items);
  filterSchema();
}

function filterSchema() {
  const q = $('schema-filter').value.trim().toLowerCase();
  const all = [...$('schema-tree').children];
  let shown = 0;
  for (const d of all) {
    d.hidden = q !== '' && !d.dataset.search.includes(q);
    if (!d.hidden) shown += 1;
  }
  $('schema-count').textContent = q ? `${shown} of ${all.length} tables and views`
    : `${all.length} tables and views`;
}

// ---- run SQL and show the grid ----

// The statement whose rows the grid shows: "Download CSV" runs it again for every row.
let lastStatement = null;

// Engine type names that hold numbers (PostgreSQL, MySQL/MariaDB, SQLite storage classes).
const NUMERIC_TYPE = /^(int[248]?|integer|smallint|mediumint|tinyint|bigint|oid|serial\d?|bigserial|numeric|decimal|money|real|float[48]?|double( precision)?|year)\b/i;

function readParams() {
  const raw = $('params').value.trim();
  if (!raw) return [];
  let params;
  try {
    params = JSON.parse(raw);
  } catch {
    params = null;
  }
  if (!Array.isArray(params)) {
    throw new ApiError(0, { error: 'Parameters must be a JSON array, e.g. [42, "text", null].', code: 'invalid_params' });
  }
  return params;
}

// The statement running now: its queryId (for Cancel) and when it started.
let running = null;

/** A fresh id for a statement, so that Cancel can name it (from any instance). */
const newQueryId = () => (crypto.randomUUID ? crypto.randomUUID()
  : `q-${Date.now()}-${Math.random().toString(36).slice(2)}`);

async function runSql() {
  const sql = $('sql').value;
  if (!sql.trim()) throw new ApiError(0, { error: 'Write a statement first.', code: 'empty_sql' });
  const body = { sql, params: readParams(), bigintAsString: true, queryId: newQueryId() };
  const maxRows = Number.parseInt($('max-rows').value, 10);
  if (maxRows > 0) body.maxRows = maxRows;
  $('result').setAttribute('aria-busy', 'true');
  startRunning(body.queryId);
  try {
    // Arrays keep duplicate column names; bigintAsString keeps 64-bit integers exact.
    const { data, servedBy } = await authed('POST', '/api/database/execute?format=arrays', body);
    lastStatement = { sql: body.sql, params: body.params };
    renderResult(data, servedBy);
  } catch (e) {
    // A failed run leaves no earlier result under its error.
    clearResult();
    if (e.code === 'sql_cancelled') e.message = 'The statement was cancelled. Nothing was changed.';
    throw e;
  } finally {
    stopRunning();
    $('result').removeAttribute('aria-busy');
  }
}

/** Shows the time a statement has run, and its Cancel button. */
function startRunning(queryId) {
  running = { queryId, started: performance.now(), timer: null };
  const show = () => {
    const seconds = (performance.now() - running.started) / 1000;
    $('run-status').textContent = `Running for ${seconds.toFixed(1)} s…`;
  };
  show();
  running.timer = setInterval(show, 100);
  $('cancel').hidden = false;
  $('cancel').disabled = false;
}

function stopRunning() {
  if (running) clearInterval(running.timer);
  running = null;
  $('run-status').textContent = '';
  $('cancel').hidden = true;
}

/** Asks the server to stop the running statement; its own request then answers. */
async function cancelRunning() {
  if (!running) return;
  $('cancel').disabled = true;
  $('run-status').textContent = 'Cancelling…';
  try {
    await authed('POST', '/api/database/cancel', { queryId: running.queryId });
  } catch (e) {
    // Finished in the meantime (query_not_found): its answer is on its way.
    if (e.code !== 'query_not_found') throw e;
  }
}

function clearResult() {
  $('result').hidden = true;
  $('grid').replaceChildren();
  $('result-status').textContent = '';
  $('csv-note').textContent = '';
}

function renderResult(res, servedBy) {
  $('csv-note').textContent = '';
  const numeric = res.columns.map((_, i) => NUMERIC_TYPE.test(res.columnTypes[i]?.type ?? '')
    || res.rows.some((r) => typeof r[i] === 'number'));
  const head = el('tr', {}, ...res.columns.map((name, i) => el('th', {
    scope: 'col', className: numeric[i] ? 'num' : '',
  }, name, el('span', { className: 'type' }, res.columnTypes[i]?.type ?? ''))));
  const rows = res.rows.map((r) => el('tr', {}, ...r.map((v, i) => (v === null
    ? el('td', { className: 'null' }, 'NULL')
    : el('td', { className: numeric[i] ? 'num' : '' }, display(v))))));
  if (rows.length === 0) {
    // An empty result still names its columns; the grid says there is nothing under them.
    const text = res.columns.length ? 'No rows.' : 'The statement returned no rows and no columns.';
    rows.push(el('tr', {}, el('td', { className: 'empty', colSpan: Math.max(1, res.columns.length) }, text)));
  }
  $('grid').replaceChildren(el('thead', {}, head), el('tbody', {}, ...rows));
  const parts = [`${res.rowCount} ${res.rowCount === 1 ? 'row' : 'rows'}`, `${res.elapsedMs} ms`];
  if (res.truncated) parts.push('truncated: more rows exist than were returned');
  // A large result is streamed: an error after its first rows arrives at its end.
  if (res.error) parts.push(`stopped by an error after these rows: ${res.error.error} (${res.error.code})`);
  if (servedBy) parts.push(`served by ${servedBy}`);
  $('result-status').textContent = parts.join(' · ');
  $('result-status').classList.toggle('warn', Boolean(res.truncated || res.error));
  $('result').hidden = false;
}

/** Text of a non-NULL value; JSON values (objects, arrays) as JSON. */
const display = (v) => (typeof v === 'object' ? JSON.stringify(v) : String(v));

/**
 * Saves the whole result of the grid's statement as CSV, as the server writes it: every
 * row up to the server's export cap (not only the rows on screen), text a spreadsheet
 * would run as a formula neutralised. A result cut by a cap ends with a
 * `#querygate-truncated` record, which the note repeats; a result that fails part way
 * saves nothing.
 */
async function downloadCsv() {
  if (!lastStatement) return;
  const session = loadSession();
  if (!session) return;
  $('csv-note').textContent = 'Running the statement again for every row…';
  let res;
  try {
    res = await fetch(`${API_BASE}/api/database/execute`, {
      method: 'POST',
      headers: { Accept: 'text/csv', 'Content-Type': 'application/json', Authorization: `Bearer ${session.token}` },
      credentials: 'omit',
      cache: 'no-store',
      body: JSON.stringify(lastStatement),
    });
  } catch {
    $('csv-note').textContent = '';
    throw new ApiError(0, { error: 'The API could not be reached for the download.', code: 'network_error' });
  }
  const { text, cut } = await readBody(res);
  $('csv-note').textContent = '';
  if (!res.ok) {
    let body = null;
    try {
      body = JSON.parse(text);
    } catch {
      // Not the server's JSON error.
    }
    const err = new ApiError(res.status, body);
    if (err.status === 401) showConnect(err);
    throw err;
  }
  const lines = text.trimEnd().split('\n');
  const last = lines[lines.length - 1] ?? '';
  if (cut) {
    const failure = last.startsWith('#querygate-error,') ? last.split(',').slice(2).join(',') : '';
    throw new ApiError(0, {
      error: `The download failed part way, so nothing was saved. ${failure}`.trim(),
      code: last.split(',')[1] || 'transfer_failed',
    });
  }
  const url = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
  const a = el('a', { href: url, download: 'querygate-result.csv' });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  const count = res.headers.get('x-row-count');
  const parts = [`Saved querygate-result.csv${count === null ? '' : ` with ${count} ${count === '1' ? 'row' : 'rows'}`}`];
  if (last.startsWith('#querygate-truncated,')) {
    parts.push(`only the first ${last.split(',')[1]} rows: the server's export limit cut it (its last line says so)`);
  }
  $('csv-note').textContent = `${parts.join('; ')}.`;
}

// ---- the editor survives a reload (this tab only, like the token) ----

function saveEditor() {
  const editor = { sql: $('sql').value, params: $('params').value, maxRows: $('max-rows').value };
  sessionStorage.setItem(EDITOR_KEY, JSON.stringify(editor));
}

function restoreEditor() {
  try {
    const editor = JSON.parse(sessionStorage.getItem(EDITOR_KEY));
    if (!editor) return;
    $('sql').value = String(editor.sql ?? '');
    $('params').value = String(editor.params ?? '');
    $('max-rows').value = String(editor.maxRows ?? '');
  } catch {
    // Nothing kept, or not ours: start empty.
  }
}

// ---- questions in plain language ----

async function ask() {
  const userQuery = $('question').value.trim();
  if (!userQuery) throw new ApiError(0, { error: 'Type a question first.', code: 'empty_question' });
  $('ask-note').textContent = 'Asking the model…';
  try {
    const { data } = await authed('POST', '/api/generate-sql', { userQuery, execute: false });
    // Shown, not run: the person reads the statement before running it.
    $('sql').value = data.sql;
    saveEditor();
    $('sql').focus();
    $('ask-note').textContent = `SQL written by ${data.model}${data.retried ? ' (second try)' : ''}. Check it, then run it.`;
  } catch (e) {
    $('ask-note').textContent = '';
    if (e.code === 'ai_not_configured') {
      e.message = 'Questions in plain language are not available: this server has no language model configured. '
        + 'You can still write SQL yourself. (The operator turns this on with OPENAI_API_KEY or OPENAI_BASE_URL.)';
    }
    throw e;
  }
}

// ---- wiring ----

function submitOn(formId, fn, buttonId, target) {
  $(formId).addEventListener('submit', (ev) => {
    ev.preventDefault();
    act(target, $(buttonId), fn);
  });
}

function init() {
  syncEngine();
  $('engine').addEventListener('change', syncEngine);
  $('demo').addEventListener('click', () => act('connect-error', $('demo'),
    () => connect({ dbType: 'sqlite', database: 'demo' })));
  submitOn('connect-form', () => connect(connectFormBody()), 'connect', 'connect-error');
  submitOn('sql-form', runSql, 'run', 'work-error');
  submitOn('ask-form', ask, 'ask', 'work-error');
  $('sql-form').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      $('sql-form').requestSubmit();
    }
  });
  $('schema-filter').addEventListener('input', filterSchema);
  $('csv').addEventListener('click', () => act('work-error', $('csv'), downloadCsv));
  $('cancel').addEventListener('click', () => act('work-error', null, cancelRunning));
  for (const id of ['sql', 'params', 'max-rows']) $(id).addEventListener('input', saveEditor);
  restoreEditor();
  $('disconnect').addEventListener('click', async () => {
    // Best effort: the token is forgotten whatever the server answers.
    const session = loadSession();
    if (session) await request('POST', '/api/database/disconnect', { token: session.token }).catch(() => {});
    showConnect(null, 'Disconnected. This tab no longer holds a token.');
  });
  if (loadSession()) showWorkspace(); else showConnect(null);
}

init();
