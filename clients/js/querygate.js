// querygate's browser client: everything a single page app needs to talk to
// querygate, with no dependency (plain fetch; an ES module for any bundler or a
// <script type="module">). Copy this file into the app (docs/migrating.md).
//
// - connect() keeps the bearer token from `POST /api/database/connect`;
// - fetchWithToken() / currentToken() send it as `Authorization: Bearer <token>`
//   and refresh it once, when half of its life is gone (whatever TOKEN_TTL is),
//   never while the user is idle: an idle session ends at the token's expiry
//   (on this browser's clock; the handlers hear 'token_expired');
// - restore() brings the session back after a reload (`GET /api/database/status`);
// - a token that the server refuses (401 token_*) ends the session: the handlers
//   given to onSessionEnd() are told why;
// - disconnect() tells the server and forgets the token;
// - cancel() stops a running statement that was sent with a queryId (newQueryId()),
//   through any instance;
// - schemaToLegacy() maps the schema answer to information_schema field names.
//
// The token lives in memory and in sessionStorage (this tab only, so a reload keeps
// it and closing the tab forgets it); never in localStorage, a cookie or a URL.
// Times come from the answer's `expiresIn` counted on this browser's clock, so a
// clock that disagrees with the server's does not matter.

const KEY = 'querygate.session';
const TOKEN_CODES = ['token_missing', 'token_invalid', 'token_expired', 'token_revoked'];

let baseURL = '/api';
let storage = typeof sessionStorage === 'undefined' ? null : sessionStorage;
let session; // undefined: not read yet; null: none
let refreshing = null;
const endHandlers = new Set();

/**
 * `baseURL`: the API root ending in `/api` (default `'/api'`, the same origin);
 * `storage`: a Storage, or `null` to keep the token in memory only.
 */
export function configure(options = {}) {
  if (options.baseURL !== undefined) baseURL = options.baseURL.replace(/\/+$/, '');
  if (options.storage !== undefined) storage = options.storage;
  session = undefined;
}

function load() {
  if (session === undefined) {
    try {
      session = JSON.parse(storage?.getItem(KEY) ?? 'null');
    } catch {
      session = null;
    }
  }
  return session;
}

/** Keeps a token answer (`connect` or `refresh`), its times on this clock. */
function save(answer) {
  const now = Date.now();
  const lifetime = answer.expiresIn * 1000;
  const refreshableFor = Date.parse(answer.refreshableUntil) - Date.parse(answer.expiresAt);
  session = {
    token: answer.token,
    refreshAt: now + lifetime / 2,
    expiresAt: now + lifetime,
    refreshableUntil: now + lifetime + (Number.isFinite(refreshableFor) ? refreshableFor : 0),
  };
  storage?.setItem(KEY, JSON.stringify(session));
}

function clear() {
  session = null;
  storage?.removeItem(KEY);
}

function end(code) {
  if (!load()) return false;
  clear();
  endHandlers.forEach((handler) => handler(code));
  return true;
}

/** True while a token is kept (it may still turn out expired or revoked). */
export function hasSession() {
  return Boolean(load());
}

/** Calls `handler(code)` when the server refuses the kept token; returns an unsubscribe. */
export function onSessionEnd(handler) {
  endHandlers.add(handler);
  return () => endHandlers.delete(handler);
}

/**
 * For answers that did not go through fetchWithToken (an axios interceptor): ends
 * the session when `status`/`body` say the kept token was refused. True if it did.
 */
export function checkTokenRejected(status, body) {
  return status === 401 && TOKEN_CODES.includes(body?.code) && end(body.code);
}

/**
 * The token to send (refreshed first once half its life is gone); null if none.
 * A token past its expiry ends the session here, without asking the server: the
 * user was idle for its whole life (the server's TOKEN_LEEWAY only covers the
 * trip of a request sent in time).
 */
export async function currentToken() {
  const current = load();
  if (!current) return null;
  const now = Date.now();
  if (now >= current.expiresAt) {
    end('token_expired');
    return null;
  }
  if (now >= current.refreshAt && now < current.refreshableUntil) {
    refreshing ??= refresh(current.token).finally(() => {
      refreshing = null;
    });
    await refreshing;
  }
  return load()?.token ?? null;
}

async function refresh(token) {
  try {
    const response = await fetch(`${baseURL}/database/refresh`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}` },
    });
    if (response.ok) {
      save(await response.json());
    } else if (load()) {
      // Not refreshable (the chain's end, a revocation): try again only when
      // the token itself is refused.
      session.refreshAt = session.expiresAt;
    }
  } catch {
    // Keep the token we have; if it no longer works its request gets the 401.
  }
}

/**
 * `POST /database/connect` with the connection fields. Answers the fetch Response
 * with its body still unread (the caller reads `response.ok`, `status` and
 * `await response.json()` as with fetch); keeps the token on success.
 */
export async function connect(params) {
  const response = await fetch(`${baseURL}/database/connect`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(params),
  });
  if (response.ok) {
    const answer = await response.clone().json().catch(() => null);
    if (answer?.success && answer.token) save(answer);
  }
  return response;
}

/** `fetch(baseURL + path)` with the bearer token; a refused token ends the session. */
export async function fetchWithToken(path, init = {}) {
  const token = await currentToken();
  const headers = new Headers(init.headers);
  if (token) headers.set('Authorization', `Bearer ${token}`);
  const response = await fetch(`${baseURL}${path}`, { ...init, headers });
  if (response.status === 401) {
    checkTokenRejected(401, await response.clone().json().catch(() => null));
  }
  return response;
}

/**
 * After a reload: what the kept token connects to (`GET /database/status`:
 * `dbType`, `host`, `port`, `database`, `username`, `ssl`, …), or null when there
 * is no token or it no longer works (it is dropped; onSessionEnd hears why).
 */
export async function restore() {
  if (!(await currentToken())) return null;
  try {
    const response = await fetchWithToken('/database/status');
    const body = await response.json().catch(() => null);
    return response.ok && body?.connected ? body : null;
  } catch {
    return null; // server unreachable: the token is kept for the next try
  }
}

/** `POST /database/disconnect` with the token (if any); the token is forgotten first. */
export async function disconnect() {
  const token = load()?.token;
  clear();
  if (!token) return { success: true };
  try {
    const response = await fetch(`${baseURL}/database/disconnect`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}` },
    });
    return await response.json().catch(() => ({ success: response.ok }));
  } catch {
    return { success: false };
  }
}

/**
 * Stops the statement (or batch) sent with `{queryId}`; any instance that shares
 * the keys may be asked. True when it was found and stopped (its own request then
 * answers 409 sql_cancelled), false when nothing with that id runs (404
 * query_not_found: it finished, or on SQLite it runs on another instance).
 */
export async function cancel(queryId) {
  const response = await fetchWithToken('/database/cancel', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ queryId }),
  });
  const body = await response.json().catch(() => null);
  if (response.ok) return true;
  if (response.status === 404 && body?.code === 'query_not_found') return false;
  const error = new Error(body?.error ?? `querygate answered HTTP ${response.status}`);
  error.status = response.status;
  error.code = body?.code;
  throw error;
}

/** A fresh queryId for `execute` and `cancel`. */
export function newQueryId() {
  // (Not globalThis: older linters, such as create-react-app's, do not know it.)
  if (typeof crypto !== 'undefined' && crypto.randomUUID) return crypto.randomUUID();
  return `q-${Date.now()}-${Math.random().toString(36).slice(2)}`;
}

const TABLE_TYPES = {
  table: 'BASE TABLE',
  view: 'VIEW',
  materialized_view: 'MATERIALIZED VIEW',
  foreign_table: 'FOREIGN TABLE',
};

/**
 * querygate's schema answer with each table and column also under MySQL's
 * information_schema names (`TABLE_NAME`, `COLUMN_NAME`, `DATA_TYPE`,
 * `IS_NULLABLE`, `COLUMN_KEY`, …), as the replaced app's components read them.
 * A PostgreSQL table outside `public` is named `schema.table`.
 */
export function schemaToLegacy(answer) {
  return {
    ...answer,
    tables: (answer?.tables ?? []).map((table) => ({
      ...table,
      TABLE_NAME:
        answer.dbType === 'postgresql' && table.schema !== 'public'
          ? `${table.schema}.${table.name}`
          : table.name,
      TABLE_TYPE: TABLE_TYPES[table.type] ?? table.type,
      TABLE_COMMENT: table.comment ?? '',
      COLUMN_COUNT: table.columns.length,
      columns: table.columns.map((column) => ({
        ...column,
        COLUMN_NAME: column.name,
        DATA_TYPE: column.dataType,
        IS_NULLABLE: column.nullable ? 'YES' : 'NO',
        COLUMN_KEY: column.primaryKey ? 'PRI' : '',
        COLUMN_DEFAULT: column.default,
        COLUMN_COMMENT: column.comment ?? '',
      })),
    })),
  };
}
