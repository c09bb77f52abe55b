/**
 * The key-value HTTP API (raftexample's, made safe):
 *
 *   PUT    /<key>     body = value → 204 once committed AND applied on this node
 *   GET    /<key>     → 200 value | 404; linearizable (ReadIndex) unless ?consistency=serializable
 *   POST   /<id>      body = peer URL → 204 once the new member is in the applied configuration
 *                     (?learner=true adds a learner; POST of a learner's id promotes it)
 *   DELETE /<id>      → 204 once the member is removed from the applied configuration
 *   GET    /status    → this node's status as JSON
 *
 * Membership changes are checked for safety on the leader (RaftNode.addVoter): 409
 * {error: "membership", reason} when the change would leave the cluster without a quorum of
 * active, caught-up voters; `?force=true` skips the check.
 *
 * What the status of a PUT (or POST/DELETE) promises about the write:
 *
 *   204            committed and applied (on this node, before the answer).
 *   400 404 405 409 413 431
 *                  refused: nothing was proposed, nothing will change.
 *   503 + Retry-After
 *                  nothing took effect and nothing will: not proposed (no_leader, not_leader,
 *                  rejected, starting, stopping) or overwritten by a new leader (lost). Safe to
 *                  retry (on the `leader` named, if any).
 *   504            outcome unknown: it was proposed, and may or may not be applied later
 *                  (timeout, outcome_unknown — e.g. the node stopped with it in flight). Check
 *                  before retrying unless the write is idempotent.
 *   500            internal: e.g. committed but the store could not apply it.
 *
 * Keys are the percent-decoded path after the first `/` (so `/a%2Fb` and `/a/b` are the same
 * key `a/b`); the query string is never part of the key. Successful PUTs and GETs carry the
 * value's revision (the Raft index of the write) in `X-Raftkv-Revision`, and
 * `Server-Timing: raft;dur=<ms>` says how long the Raft part (commit+apply, or the read barrier)
 * took, so a client can tell consensus time from HTTP and queueing time.
 *
 * Errors are JSON `{error, message, leader?, leaderId?}`. Nothing a client sends can throw out of
 * the handler: every failure path ends in a response.
 */

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';

import {
  InvalidArgumentError,
  MembershipError,
  NoLeaderError,
  NotLeaderError,
  OutcomeUnknownError,
  ProposalLostError,
  ProposalRejectedError,
  StoppedError,
  TimeoutError,
  type NodeLogger,
  type RaftNode,
} from '../node/index.js';
import { trace, traceOn } from '../node/index.js';
import { encodePut, KEY_BYTES_MAX, type ApplyResult, type KvStore } from './store.js';

/** Largest PUT value (and any request body) accepted. */
export const BODY_BYTES_MAX = 1024 * 1024;
/** A peer URL in a POST body is short; anything longer is not one. */
const MEMBER_BODY_BYTES_MAX = 2048;
export const REVISION_HEADER = 'x-raftkv-revision';
const KEY_METHODS = 'PUT, GET, POST, DELETE';

/** A response that is not a success: status, machine-readable code, human message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
    /** More fields of the JSON error body. */
    readonly fields: Record<string, string | number> = {},
  ) {
    super(message);
  }
}

class BodyTooLarge extends ApiError {
  constructor(limit: number) {
    super(413, 'body_too_large', `request body exceeds ${limit} bytes`);
  }
}

export interface KvHttpApiOptions {
  store: KvStore;
  logger: NodeLogger;
  /** Timeout of proposals, read barriers and membership changes. */
  requestTimeoutMs: number;
}

interface ParsedTarget {
  /** Path without the leading '/', not yet decoded. */
  rawPath: string;
  query: URLSearchParams;
}

/** `Server-Timing` value: how long the Raft part (propose / read barrier) took, in ms. */
function serverTiming(name: string, since: number): string {
  return `${name};dur=${(performance.now() - since).toFixed(2)}`;
}

function parseTarget(url: string | undefined): ParsedTarget {
  if (url === undefined || !url.startsWith('/')) throw new ApiError(400, 'bad_request', 'request target must be an absolute path');
  const q = url.indexOf('?');
  const rawPath = (q === -1 ? url : url.slice(0, q)).slice(1);
  const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1));
  return { rawPath, query };
}

function checkQuery(query: URLSearchParams, allowed: Record<string, readonly string[]>): void {
  for (const [name, value] of query) {
    const values = allowed[name];
    if (values === undefined) {
      const known = Object.keys(allowed);
      throw new ApiError(400, 'bad_query', `unknown query parameter ${JSON.stringify(name)}` +
        (known.length > 0 ? ` (allowed here: ${known.join(', ')})` : ' (none allowed here)'));
    }
    if (!values.includes(value)) {
      throw new ApiError(400, 'bad_query', `query parameter ${name} must be one of ${values.join(', ')}, got ${JSON.stringify(value)}`);
    }
  }
  for (const name of new Set(query.keys())) {
    if (query.getAll(name).length > 1) throw new ApiError(400, 'bad_query', `query parameter ${name} given more than once`);
  }
}

function parseKey(rawPath: string): string {
  if (rawPath === '') throw new ApiError(400, 'bad_key', 'empty key: use /<key>');
  let key: string;
  try {
    key = decodeURIComponent(rawPath);
  } catch {
    throw new ApiError(400, 'bad_key', 'key is not valid percent-encoded UTF-8');
  }
  if (key === '') throw new ApiError(400, 'bad_key', 'empty key');
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > KEY_BYTES_MAX) throw new ApiError(400, 'bad_key', `key is ${bytes} bytes; the limit is ${KEY_BYTES_MAX}`);
  if (key === 'status') throw new ApiError(400, 'bad_key', 'the key "status" is reserved (GET /status is the node status)');
  return key;
}

function parseMemberId(rawPath: string): number {
  if (!/^[1-9][0-9]{0,15}$/.test(rawPath) || !Number.isSafeInteger(Number(rawPath))) {
    throw new ApiError(400, 'bad_id', `member id must be a positive decimal integer, got ${JSON.stringify(rawPath.slice(0, 64))}`);
  }
  return Number(rawPath);
}

function parsePeerUrl(body: Buffer): string {
  const text = body.toString('utf8').trim();
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ApiError(400, 'bad_url', `body must be the new member's peer URL (http://host:port), got ${JSON.stringify(text.slice(0, 200))}`);
  }
  if (url.protocol !== 'http:' || url.port === '' || (url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    throw new ApiError(400, 'bad_url', `peer URL must be http://host:port, got ${JSON.stringify(text.slice(0, 200))}`);
  }
  return `${url.protocol}//${url.host}`;
}

/** Past the body limit we keep reading (and discarding) up to this many bytes so the client
 * can finish sending and read our 413; a larger upload is cut off. */
const DISCARD_BYTES_MAX = 16 * 1024 * 1024;

/**
 * Reads the whole body. Past `limit` nothing more is stored: the rest is read and discarded
 * and the promise rejects with 413 once the client has finished (clients that write the whole
 * body before reading the answer would otherwise see a reset instead of the 413). Beyond
 * DISCARD_BYTES_MAX, or when the declared length is that large, it answers at once and the
 * connection is closed.
 */
function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? '0');
  if (declared > DISCARD_BYTES_MAX) return Promise.reject(new BodyTooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (err: Error | null): void => {
      if (done) return;
      done = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
      if (err !== null) reject(err);
      else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        chunks.length = 0; // drop what we held: this body is refused
        if (size > DISCARD_BYTES_MAX) finish(new BodyTooLarge(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => finish(size > limit ? new BodyTooLarge(limit) : null);
    const onError = (err: Error): void => finish(new ApiError(400, 'bad_request', `reading the body failed: ${err.message}`));
    const onAborted = (): void => finish(new ApiError(400, 'bad_request', 'client aborted the request'));
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}

export class KvHttpApi {
  private readonly opts: KvHttpApiOptions;
  readonly server: http.Server;
  private closing = false;
  /** Null until the node has started: the API listens first (so a busy port fails before any
   * storage is created) and answers 503 meanwhile. */
  private node: RaftNode<ApplyResult> | null = null;

  constructor(opts: KvHttpApiOptions) {
    this.opts = opts;
    this.server = http.createServer({ keepAlive: true }, (req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        // handle() answers every error itself; this is a last resort, never a crash.
        this.opts.logger.error('unexpected error in the HTTP handler', { error: err instanceof Error ? err.message : String(err) });
        if (!res.headersSent) this.sendError(res, new ApiError(500, 'internal', 'internal error'));
        else res.destroy();
      });
    });
    this.server.keepAliveTimeout = 30_000;
    this.server.headersTimeout = 20_000;
    this.server.requestTimeout = 60_000;
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      // Malformed HTTP (bad request line, headers too large): answer 400/431 if we still can.
      if (!socket.writable) return socket.destroy();
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
      const body = JSON.stringify({ error: 'bad_request', message: `malformed HTTP request: ${err.code ?? err.message}` });
      socket.end(
        `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    });
  }

  attach(node: RaftNode<ApplyResult>): void {
    this.node = node;
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  /** Stops accepting connections; requests in flight still get their answer (when the node
   * stops they fail with StoppedError: 503 if not proposed yet, else 504 outcome_unknown), idle
   * keep-alive connections close now, the rest after `graceMs`. */
  async close(graceMs = 2000): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    const timer = setTimeout(() => this.server.closeAllConnections(), graceMs);
    await closed;
    clearTimeout(timer);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      const { rawPath, query } = parseTarget(req.url);
      const method = req.method ?? '';
      if (rawPath === 'status') {
        if (method !== 'GET') throw new ApiError(405, 'method_not_allowed', `${method} is not allowed on /status`, { Allow: 'GET' });
        checkQuery(query, {});
        await this.drain(req);
        return this.sendJson(res, 200, this.statusBody());
      }
      switch (method) {
        case 'PUT':
          return await this.put(req, res, rawPath, query);
        case 'GET':
          return await this.get(req, res, rawPath, query);
        case 'POST':
          return await this.addMember(req, res, rawPath, query);
        case 'DELETE':
          return await this.removeMember(req, res, rawPath, query);
        default:
          throw new ApiError(405, 'method_not_allowed', `method ${method} is not allowed`, { Allow: KEY_METHODS });
      }
    } catch (err) {
      this.sendError(res, err);
    }
  }

  private async put(req: http.IncomingMessage, res: http.ServerResponse, rawPath: string, query: URLSearchParams): Promise<void> {
    const key = parseKey(rawPath);
    checkQuery(query, {});
    if (traceOn) trace('hreq', 0, 0);
    const value = await readBody(req, BODY_BYTES_MAX);
    this.checkServing();
    const t0 = performance.now();
    const result = await this.serving().propose(encodePut(key, value), { timeoutMs: this.opts.requestTimeoutMs });
    if ('error' in result) throw new ApiError(500, 'internal', `the write was committed but could not be applied: ${result.error}`);
    res.writeHead(204, { [REVISION_HEADER]: String(result.revision), 'Server-Timing': serverTiming('raft', t0) });
    res.end();
    if (traceOn) trace('hres', result.revision, result.revision);
  }

  private async get(req: http.IncomingMessage, res: http.ServerResponse, rawPath: string, query: URLSearchParams): Promise<void> {
    const key = parseKey(rawPath);
    checkQuery(query, { consistency: ['linearizable', 'serializable'] });
    await this.drain(req);
    this.checkServing();
    const t0 = performance.now();
    if (query.get('consistency') !== 'serializable') {
      await this.serving().readBarrier({ timeoutMs: this.opts.requestTimeoutMs });
    }
    const stored = this.opts.store.get(key);
    if (stored === undefined) throw new ApiError(404, 'not_found', `key ${JSON.stringify(key)} not found`);
    res.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': stored.value.length,
      [REVISION_HEADER]: String(stored.revision),
      'Server-Timing': serverTiming('raft', t0),
    });
    res.end(stored.value);
  }

  private async addMember(req: http.IncomingMessage, res: http.ServerResponse, rawPath: string, query: URLSearchParams): Promise<void> {
    const id = parseMemberId(rawPath);
    checkQuery(query, { learner: ['true', 'false'], force: ['true', 'false'] });
    const url = parsePeerUrl(await readBody(req, MEMBER_BODY_BYTES_MAX));
    this.checkServing();
    const options = { timeoutMs: this.opts.requestTimeoutMs, force: query.get('force') === 'true' };
    const conf = query.get('learner') === 'true'
      ? await this.serving().addLearner(id, url, options)
      : await this.serving().addVoter(id, url, options);
    this.opts.logger.info('member added over the API', { member: id, url, learner: query.get('learner') === 'true', voters: conf.voters, learners: conf.learners });
    res.writeHead(204);
    res.end();
  }

  private async removeMember(req: http.IncomingMessage, res: http.ServerResponse, rawPath: string, query: URLSearchParams): Promise<void> {
    const id = parseMemberId(rawPath);
    checkQuery(query, { force: ['true', 'false'] });
    await this.drain(req);
    this.checkServing();
    const conf = await this.serving().removeMember(id, { timeoutMs: this.opts.requestTimeoutMs, force: query.get('force') === 'true' });
    this.opts.logger.info('member removed over the API', { member: id, voters: conf.voters, learners: conf.learners });
    res.writeHead(204);
    res.end();
  }

  /** Bodies of GET/DELETE are ignored, but read (capped) so keep-alive connections stay usable. */
  private async drain(req: http.IncomingMessage): Promise<void> {
    if (req.readableEnded) return;
    await readBody(req, BODY_BYTES_MAX);
  }

  private checkServing(): void {
    this.serving();
  }

  /** The node, if it is running and we are not closing; else a 503. */
  private serving(): RaftNode<ApplyResult> {
    if (this.node === null) throw new ApiError(503, 'starting', 'this node is still starting');
    if (this.closing || this.node.nodeState !== 'running') throw new ApiError(503, 'stopping', 'this node is stopping');
    return this.node;
  }

  private statusBody(): unknown {
    if (this.node === null) throw new ApiError(503, 'starting', 'this node is still starting');
    const s = this.node.status();
    return { ...s, keys: this.opts.store.size };
  }

  /** The leader as this node knows it, for 503 answers; never this node once it is stopping
   * (a client told to retry there would only get another 503). */
  private leaderFields(): { leader?: string; leaderId?: number } {
    if (this.node === null) return {};
    const s = this.node.status();
    if (s.leader === 0) return {};
    if (s.leader === s.id && (this.closing || s.state !== 'running')) return {};
    return s.leaderUrl !== null ? { leader: s.leaderUrl, leaderId: s.leader } : { leaderId: s.leader };
  }

  private sendError(res: http.ServerResponse, err: unknown): void {
    const api = this.toApiError(err);
    if (api.status >= 500 && api.status !== 503 && api.status !== 504) {
      this.opts.logger.error('request failed', { status: api.status, error: api.message });
    } else {
      this.opts.logger.debug('request refused', { status: api.status, error: api.code, message: api.message });
    }
    const body: Record<string, unknown> = { ...api.fields, error: api.code, message: api.message };
    if (api.status === 503) Object.assign(body, this.leaderFields());
    const headers: Record<string, string> = { ...api.headers };
    // Unread request bytes would be parsed as the next request: close instead.
    if (!res.req.complete) headers.Connection = 'close';
    if (api.status === 503) headers['Retry-After'] = '1';
    this.sendJson(res, api.status, body, headers);
  }

  private toApiError(err: unknown): ApiError {
    if (err instanceof ApiError) return err;
    if (err instanceof NoLeaderError) return new ApiError(503, 'no_leader', err.message);
    if (err instanceof NotLeaderError) return new ApiError(503, 'not_leader', err.message);
    if (err instanceof StoppedError) {
      // Proposed before the node stopped: the rest of the cluster may still apply it.
      return err.outcome === 'unknown'
        ? new ApiError(504, 'outcome_unknown', err.message)
        : new ApiError(503, 'stopping', err.message);
    }
    if (err instanceof ProposalRejectedError) return new ApiError(503, 'rejected', err.message);
    if (err instanceof ProposalLostError) return new ApiError(503, 'lost', err.message);
    if (err instanceof TimeoutError) return new ApiError(504, 'timeout', err.message);
    if (err instanceof OutcomeUnknownError) return new ApiError(504, 'outcome_unknown', err.message);
    if (err instanceof InvalidArgumentError) return new ApiError(400, 'bad_request', err.message);
    if (err instanceof MembershipError) {
      const hint = err.reason === 'invalid' ? '' : ' (?force=true skips this check)';
      return new ApiError(409, 'membership', err.message + hint, {}, { reason: err.reason });
    }
    return new ApiError(500, 'internal', err instanceof Error ? err.message : String(err));
  }

  private sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    if (res.headersSent || res.destroyed) return;
    const text = JSON.stringify(body);
    res.writeHead(status, {
      ...headers,
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(text),
    });
    res.end(text);
  }
}
