/**
 * The peer server: receives message batches (`POST /raft`) and snapshots
 * (`POST /raft/snapshot`) from other members, and answers `GET /raft/health`.
 *
 * Every request is checked before its body is read (method, cluster id, sender membership,
 * addressee, declared size), bodies are read with a hard cap, and decoded messages are
 * validated before they reach the Raft core. Anything wrong gets a 4xx with a JSON
 * `{ "error": reason }`; nothing a peer sends can throw out of the handler.
 */

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeMessage, decodeMessages } from '../raft/codec.js';
import { MessageType, type Message, type NodeId } from '../raft/types.js';
import { HeldReply } from './reply.js';
import { batchProblem, peerMessageProblem, type MessageCheck, type SenderStatus } from './validate.js';
import {
  HEADER_ACCEPT_REPLIES,
  HEADER_CLUSTER_ID,
  HEADER_FROM,
  HEADER_TO,
  PATH_HEALTH,
  PATH_MESSAGES,
  PATH_SNAPSHOT,
  type ServerStats,
  type TransportLogger,
} from './types.js';
import { trace, traceOn } from './trace.js';
import { HEADER_SNAPSHOT_STREAM, SnapshotStreamError, readSnapshotStream } from './snapshot-stream.js';

export interface PeerServerOptions {
  id: NodeId;
  clusterId: string;
  bodyBytesMax: number;
  snapshotBytesMax: number;
  logger: TransportLogger;
  /** Whether `from` may talk to us: a current member, a removed one (410) or unknown (403). */
  senderStatus(from: NodeId): SenderStatus;
  /** The receiver's own check of each message (see TransportOptions.checkMessage). */
  checkMessage?: MessageCheck;
  onMessages(msgs: Message[]): void;
  /** A valid request from member `from` arrived (checked headers and messages): proof that
   * it is up now. Called before its messages are delivered. */
  onValidRequest?(from: NodeId): void;
  onSnapshot?(msg: Message): Promise<void>;
  /** A streamed snapshot (snapshot-stream.ts): the receiver must read `body` to its end (or
   * throw) before it resolves; 204 goes back once it has. */
  onSnapshotStream?(msg: Message, body: AsyncIterable<Uint8Array>, bodyBytes: number): Promise<void>;
  /** Takes the answer to an accepted batch from a peer that accepts replies in responses
   * (see reply.ts). Without it every accepted batch is answered 204 at once. */
  holdReply?(from: NodeId, reply: HeldReply): void;
}

/** A request was refused; `status` and `reason` go back to the sender. */
class Rejection extends Error {
  constructor(
    readonly status: number,
    reason: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(reason);
  }
}

export class PeerServer {
  private readonly opts: PeerServerOptions;
  private readonly server: http.Server;
  private readonly counters: ServerStats = {
    receivedBatches: 0,
    receivedMessages: 0,
    receivedBytes: 0,
    receivedSnapshots: 0,
    rejected: {},
  };

  constructor(opts: PeerServerOptions) {
    this.opts = opts;
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        // Only a bug gets here: answer if still possible, never crash.
        this.opts.logger.warn('transport: peer request handler failed', { error: String(err) });
        if (!res.headersSent) this.reply(res, 500, `internal error: ${String(err)}`);
        else res.destroy();
      });
    });
    this.server.on('clientError', (err, socket) => {
      // Malformed HTTP (or a reset): answer 400 when the socket is still usable.
      this.opts.logger.debug('transport: peer connection error', { error: String(err) });
      if (socket.writable && !socket.writableEnded) {
        socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      }
      socket.destroy();
    });
  }

  listen(host: string, port: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
  }

  address(): { host: string; port: number } {
    const addr = this.server.address() as AddressInfo | null;
    if (addr === null) throw new Error('peer server is not listening');
    return { host: addr.address, port: addr.port };
  }

  async close(): Promise<void> {
    if (!this.server.listening) return;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    await closed;
  }

  stats(): ServerStats {
    return { ...this.counters, rejected: { ...this.counters.rejected } };
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (traceOn) trace('srv', 0, 0);
    const path = (req.url ?? '').split('?', 1)[0];
    try {
      if (path === PATH_HEALTH) {
        if (req.method !== 'GET' && req.method !== 'HEAD') {
          throw new Rejection(405, `method ${req.method} not allowed`, { allow: 'GET, HEAD' });
        }
        const body = JSON.stringify({ id: this.opts.id, clusterId: this.opts.clusterId });
        res.writeHead(200, { 'content-type': 'application/json' }).end(body);
        return;
      }
      if (path !== PATH_MESSAGES && path !== PATH_SNAPSHOT) {
        throw new Rejection(404, `no such endpoint ${JSON.stringify(path)}`);
      }
      if (req.method !== 'POST') {
        throw new Rejection(405, `method ${req.method} not allowed`, { allow: 'POST' });
      }
      const from = this.checkHeaders(req);
      const isSnapshot = path === PATH_SNAPSHOT;
      if (isSnapshot && req.headers[HEADER_SNAPSHOT_STREAM] !== undefined) {
        await this.receiveSnapshotStream(from, req, res);
        return;
      }
      const cap = isSnapshot ? this.opts.snapshotBytesMax : this.opts.bodyBytesMax;
      const body = await readBody(req, cap);
      if (body === null) return; // the sender went away; nobody to answer
      if (isSnapshot) await this.receiveSnapshot(from, body, res);
      else this.receiveBatch(from, body, req, res);
    } catch (err) {
      if (!(err instanceof Rejection)) throw err;
      this.reject(req, res, err);
    }
  }

  /** Checks cluster id, sender and addressee; returns the sender's id. */
  private checkHeaders(req: http.IncomingMessage): NodeId {
    const clusterId = req.headers[HEADER_CLUSTER_ID];
    if (clusterId !== this.opts.clusterId) {
      throw new Rejection(
        412,
        `cluster id mismatch: request has ${JSON.stringify(clusterId ?? null)}, ` +
          `this node belongs to ${JSON.stringify(this.opts.clusterId)}`,
      );
    }
    const from = parseNodeId(req.headers[HEADER_FROM]);
    if (from === null) throw new Rejection(400, `missing or invalid ${HEADER_FROM} header`);
    if (from === this.opts.id) throw new Rejection(400, `request claims to come from this node (${from})`);
    const status = this.opts.senderStatus(from);
    if (status === 'removed') throw new Rejection(410, `node ${from} was removed from the cluster`);
    if (status === 'unknown') throw new Rejection(403, `node ${from} is not a member of the cluster`);
    const to = parseNodeId(req.headers[HEADER_TO]);
    if (to !== this.opts.id) {
      throw new Rejection(400, `request addressed to node ${to ?? '(none)'}, this is node ${this.opts.id}`);
    }
    return from;
  }

  private receiveBatch(from: NodeId, body: Buffer, req: http.IncomingMessage, res: http.ServerResponse): void {
    let msgs: Message[];
    try {
      msgs = decodeMessages(body);
    } catch (err) {
      throw new Rejection(400, `malformed message batch: ${errorMessage(err)}`);
    }
    const problem = batchProblem(msgs, from, this.opts.id, (id) => this.opts.senderStatus(id), this.opts.checkMessage ?? null);
    if (problem !== null) throw new Rejection(400, problem);
    this.opts.onValidRequest?.(from);
    this.counters.receivedBatches++;
    this.counters.receivedMessages += msgs.length;
    this.counters.receivedBytes += body.byteLength;
    try {
      this.opts.onMessages(msgs);
    } catch (err) {
      this.opts.logger.warn('transport: onMessages threw', { from, error: errorMessage(err) });
      throw new Rejection(500, `receiver failed: ${errorMessage(err)}`);
    }
    if (this.opts.holdReply !== undefined && req.headers[HEADER_ACCEPT_REPLIES] === '1') {
      this.opts.holdReply(from, new HeldReply(res, this.opts.id, this.opts.clusterId));
    } else {
      res.writeHead(204).end();
    }
  }

  /** Decodes and checks the Snap message that heads a snapshot request (400 if it is not one
   * this node may step); a valid one proves the sender is up. */
  private acceptSnapshotMessage(from: NodeId, bytes: Uint8Array): Message {
    let m: Message;
    try {
      m = decodeMessage(bytes);
    } catch (err) {
      throw new Rejection(400, `malformed snapshot message: ${errorMessage(err)}`);
    }
    if (m.type !== MessageType.Snap || m.snapshot === null) {
      throw new Rejection(400, `expected a Snap message with a snapshot, got ${MessageType[m.type] ?? m.type}`);
    }
    const problem = peerMessageProblem(m, from, this.opts.id, (id) => this.opts.senderStatus(id), this.opts.checkMessage ?? null);
    if (problem !== null) throw new Rejection(400, problem);
    this.opts.onValidRequest?.(from);
    return m;
  }

  private async receiveSnapshot(from: NodeId, body: Buffer, res: http.ServerResponse): Promise<void> {
    const m = this.acceptSnapshotMessage(from, body);
    this.counters.receivedSnapshots++;
    this.counters.receivedBytes += body.byteLength;
    try {
      if (this.opts.onSnapshot !== undefined) await this.opts.onSnapshot(m);
      else this.opts.onMessages([m]);
    } catch (err) {
      if (err instanceof SnapshotStreamError) throw new Rejection(err.status, err.message);
      this.opts.logger.warn('transport: snapshot receiver failed', { from, error: errorMessage(err) });
      throw new Rejection(500, `snapshot receiver failed: ${errorMessage(err)}`);
    }
    res.writeHead(204).end();
  }

  /** A streamed snapshot: the body goes through to the receiver chunk by chunk, never whole. */
  private async receiveSnapshotStream(from: NodeId, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const receiver = this.opts.onSnapshotStream;
    if (receiver === undefined) throw new Rejection(400, 'this node does not accept streamed snapshots');
    let stream;
    try {
      stream = await readSnapshotStream(req, { messageBytesMax: this.opts.bodyBytesMax, bodyBytesMax: this.opts.snapshotBytesMax });
    } catch (err) {
      if (err instanceof SnapshotStreamError) throw new Rejection(err.status, err.message);
      return; // the sender went away; nobody to answer
    }
    const m = this.acceptSnapshotMessage(from, stream.message);
    try {
      await receiver(m, stream.body, stream.bodyBytes);
    } catch (err) {
      if (err instanceof SnapshotStreamError) throw new Rejection(err.status, err.message);
      if (req.destroyed && !req.complete) return; // the sender went away mid-body
      this.opts.logger.warn('transport: snapshot receiver failed', { from, error: errorMessage(err) });
      throw new Rejection(500, `snapshot receiver failed: ${errorMessage(err)}`);
    }
    if (!stream.complete) throw new Rejection(500, 'the receiver did not read the whole snapshot');
    this.counters.receivedSnapshots++;
    this.counters.receivedBytes += stream.bodyBytes + stream.message.byteLength;
    res.writeHead(204).end();
  }

  private reject(req: http.IncomingMessage, res: http.ServerResponse, r: Rejection): void {
    this.counters.rejected[r.status] = (this.counters.rejected[r.status] ?? 0) + 1;
    this.opts.logger.debug('transport: peer request rejected', {
      status: r.status,
      reason: r.message,
      from: req.headers[HEADER_FROM],
    });
    // If the body was not read, Node would drain it to keep the connection usable; do not
    // spend bandwidth on a large or unbounded one: close the connection instead.
    const declared = Number(req.headers['content-length'] ?? NaN);
    const unread = !req.complete && !(declared >= 0 && declared <= this.opts.bodyBytesMax);
    this.reply(res, r.status, r.message, unread ? { ...r.headers, connection: 'close' } : r.headers);
  }

  private reply(
    res: http.ServerResponse,
    status: number,
    reason: string,
    headers: Record<string, string> = {},
  ): void {
    const body = JSON.stringify({ error: reason });
    res.writeHead(status, {
      ...headers,
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
    });
    res.end(body);
  }
}

/**
 * Reads a request body of at most `cap` bytes. Throws a 413 Rejection as soon as the declared
 * or received size exceeds the cap (what was read is released, the rest is never buffered).
 * Returns null when the sender aborted.
 */
function readBody(req: http.IncomingMessage, cap: number): Promise<Buffer | null> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > cap) {
    return Promise.reject(
      new Rejection(413, `body of ${declared} bytes exceeds the limit of ${cap} bytes`),
    );
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onAbort);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.byteLength;
      if (total > cap) {
        cleanup();
        chunks.length = 0;
        // Keep the stream flowing into nothing until the connection closes.
        req.on('error', () => {});
        req.resume();
        reject(new Rejection(413, `body exceeds the limit of ${cap} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, total));
    };
    const onAbort = () => {
      cleanup();
      resolve(null);
    };
    const onClose = () => {
      if (!req.complete) onAbort();
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onAbort);
    req.on('close', onClose);
  });
}

function parseNodeId(value: string | string[] | undefined): NodeId | null {
  if (typeof value !== 'string' || !/^[1-9][0-9]{0,15}$/.test(value)) return null;
  const id = Number(value);
  return Number.isSafeInteger(id) ? id : null;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
