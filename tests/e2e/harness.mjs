// What the console tests run against: the querygate binary, a scripted
// OpenAI-compatible model server and a static server for web/ on other origins.
// Everything listens on 127.0.0.1 on a port the system picks, and every wait is
// bounded, so a broken build fails quickly with its log instead of hanging.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';

/** Resolves once `server` listens on 127.0.0.1; answers its origin. */
async function listen(server) {
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return `http://127.0.0.1:${server.address().port}`;
}

function close(server) {
  server.closeAllConnections?.();
  return new Promise((resolve) => server.close(() => resolve()));
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * A scripted OpenAI-compatible server: answers `POST /v1/chat/completions` with the
 * next scripted SQL (or `fallbackSql`) and records what it received.
 */
export async function startFakeModel({ fallbackSql = 'SELECT 1' } = {}) {
  const script = [];
  const received = [];
  const server = http.createServer(async (req, res) => {
    const body = await readBody(req);
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
      return;
    }
    received.push({ body, authorization: req.headers.authorization ?? null });
    const content = script.length ? script.shift() : fallbackSql;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
      id: 'chatcmpl-e2e',
      object: 'chat.completion',
      model: 'fake',
      choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
    }));
  });
  const origin = await listen(server);
  return { baseUrl: `${origin}/v1`, script, received, stop: () => close(server) };
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };
const API_META = /(<meta name="querygate-api" content=")[^"]*(")/;

/** The CSP the console needs, as querygate is asked to send it for `/`. */
export function consoleCsp(apiOrigin = '') {
  return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    + `connect-src 'self'${apiOrigin ? ` ${apiOrigin}` : ''}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;
}

/**
 * Serves the files of `webDir` on its own origin, as a deployment outside querygate
 * would: index.html gets the API origin in its `querygate-api` meta, and every answer
 * carries the strict CSP (with the API origin in connect-src). `config.apiOrigin` is
 * read per request, because querygate starts after this server (it needs our origin
 * for CORS_ALLOWED_ORIGINS).
 */
export async function startStaticServer(webDir, config) {
  const server = http.createServer(async (req, res) => {
    const headers = {
      'content-security-policy': consoleCsp(config.apiOrigin),
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-store',
    };
    const { pathname } = new URL(req.url, 'http://static.invalid');
    const file = path.join(webDir, pathname === '/' ? 'index.html' : path.normalize(pathname));
    const type = TYPES[path.extname(file)];
    if (!['GET', 'HEAD'].includes(req.method) || !file.startsWith(webDir + path.sep) || !type) {
      res.writeHead(404, { ...headers, 'content-type': 'text/plain' }).end('not found');
      return;
    }
    let body;
    try {
      body = await readFile(file, 'utf8');
    } catch {
      res.writeHead(404, { ...headers, 'content-type': 'text/plain' }).end('not found');
      return;
    }
    if (file.endsWith('index.html')) {
      if (!API_META.test(body)) {
        res.writeHead(500, { 'content-type': 'text/plain' }).end('index.html has no querygate-api meta');
        return;
      }
      body = body.replace(API_META, `$1${config.apiOrigin}$2`);
    }
    res.writeHead(200, { ...headers, 'content-type': type }).end(req.method === 'HEAD' ? undefined : body);
  });
  const origin = await listen(server);
  return { origin, stop: () => close(server) };
}

// Log lines may carry ANSI colours (the pretty format colours even without a TTY).
const stripAnsi = (s) => s.replace(/\x1b\[[0-9;]*m/g, '');

/**
 * Starts querygate with exactly `env` (no inherited variables), `PORT=0` unless
 * `env.PORT` says otherwise (so the system picks a free port), and waits for "listening on http://ADDR" and then for
 * `GET /api/health` to answer 200.
 */
export async function startQuerygate(bin, env, { readyMs = 30_000 } = {}) {
  if (!existsSync(bin)) {
    throw new Error(`querygate binary not found at ${bin}: build it (cargo build) or set QUERYGATE_BIN`);
  }
  const child = spawn(bin, [], { env: { PORT: '0', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  const origin = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`querygate did not report "listening on" within ${readyMs} ms:\n${log}`)), readyMs);
    const onData = (chunk) => {
      log = (log + stripAnsi(chunk.toString('utf8'))).slice(-20_000);
      const m = log.match(/listening on (http:\/\/[0-9.:[\]]+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', (e) => { clearTimeout(timer); reject(e); });
    exited.then((how) => { clearTimeout(timer); reject(new Error(`querygate exited (${how}) before listening:\n${log}`)); });
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  };
  // Make sure no querygate outlives this process, even when the runner crashes.
  process.once('exit', () => child.kill('SIGKILL'));
  try {
    await waitForHealth(origin, readyMs);
  } catch (e) {
    await stop();
    throw new Error(`${e.message}\n${log}`);
  }
  return { origin, stop, log: () => log };
}

async function waitForHealth(origin, withinMs) {
  const deadline = Date.now() + withinMs;
  for (let attempt = 1; attempt <= 100 && Date.now() < deadline; attempt += 1) {
    try {
      const res = await fetch(`${origin}/api/health`, { signal: AbortSignal.timeout(1_000) });
      if (res.ok) return;
    } catch {
      // Not answering yet: try again below.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`GET ${origin}/api/health did not answer 200 within ${withinMs} ms`);
}
