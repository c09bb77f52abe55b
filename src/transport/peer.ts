/**
 * The sending side for one remote peer: a bounded queue, one pipelined undici `Client` for
 * message batches, one for forwarded proposals, a separate `Client` for streamed snapshots,
 * and a reconnect backoff gate.
 *
 * Why this shape (see docs: undici Client pipelining; etcd rafthttp peer.send):
 * - undici pipelines a request only when it is `idempotent: true`, `blocking: false` and has a
 *   Buffer body. Raft messages tolerate duplication, so batches are sent that way, and undici
 *   re-sends them: when a connection closes it fails the first request of the pipeline and
 *   sends every other written-but-unanswered one again on a new connection (also after a
 *   response timeout, which closes the connection).
 * - Except proposals (Prop): the leader appends a re-sent Prop again, and the state machine
 *   would apply it twice. They go on their own connection, one request at a time, `idempotent:
 *   false`: undici writes such a request only when nothing else is running on its connection,
 *   so it is always the head of the pipeline and fails instead of being sent again. Kept off
 *   the batch connection because that waiting would stall the appends and heartbeats behind
 *   it. Not asking for a held answer (reply.ts), the request is answered at once. (The runtime
 *   also skips a proposal applied twice; see node/proposal-dedup.ts.)
 * - undici's own queue is unbounded, so this class keeps the queue: at most `pipelining`
 *   requests are handed to undici; the rest wait here, bounded by count and bytes, and whatever
 *   does not fit is dropped and reported as unreachable, like etcd's non-blocking channel send.
 * - A snapshot is a streamed body, which undici never pipelines; on the batch connection it
 *   would hold up every heartbeat behind it, so it gets its own connection.
 */

import { Readable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { Client } from 'undici';
import { decodeMessages, encodeMessage, encodeMessages } from '../raft/codec.js';
import { MessageType, type Message, type NodeId } from '../raft/types.js';
import type { HeldReply } from './reply.js';
import { trace, traceOn } from './trace.js';
import { mutations } from '../testing/mutations.js';
import { batchProblem, type MessageCheck, type SenderStatus } from './validate.js';
import { postSnapshotStream, type SnapshotBody } from './snapshot-stream.js';
import {
  HEADER_ACCEPT_REPLIES,
  HEADER_CLUSTER_ID,
  HEADER_FROM,
  HEADER_TO,
  PATH_MESSAGES,
  PATH_SNAPSHOT,
  type BackoffOptions,
  type PeerStats,
  type TransportLimits,
  type TransportLogger,
} from './types.js';

/** Conservative upper estimate of a message's encoded size, used for queue byte accounting
 * before the batch is encoded (encoding every message twice would cost more than it saves). */
export function estimateMessageBytes(m: Message): number {
  let bytes = 64 + m.context.byteLength;
  for (const e of m.entries) bytes += 24 + e.data.byteLength;
  if (m.snapshot !== null) {
    const cs = m.snapshot.metadata.confState;
    bytes += 64 + m.snapshot.data.byteLength + 10 * (cs.voters.length + cs.learners.length);
  }
  return bytes;
}

/** Everything a PeerSender needs from its Transport. */
export interface PeerSenderContext {
  selfId: NodeId;
  clusterId: string;
  limits: TransportLimits;
  pipelining: number;
  backoff: BackoffOptions;
  requestTimeoutMs: number;
  snapshotTimeoutMs: number;
  connectTimeoutMs: number;
  logger: TransportLogger;
  onUnreachable(id: NodeId): void;
  /** Forwarded proposals (Prop) that certainly never reached peer `id` (see TransportOptions). */
  onProposalsNotSent(id: NodeId, msgs: Message[]): void;
  onSnapshotStatus(id: NodeId, ok: boolean): void;
  /** Peer `byPeer` answered 410 Gone: it has applied this node's removal. */
  onRemoved(byPeer: NodeId): void;
  /** Ask for `flush()` to be called once the current synchronous code is done (coalesced). */
  scheduleFlush(peer: PeerSender): void;
  /** The oldest usable held answer to a request from `peer`, removed from the holder. */
  takeReply(peer: NodeId): HeldReply | undefined;
  /** Answer older held requests from `peer` with 204 (nothing more to carry now). */
  releaseReplies(peer: NodeId): void;
  /** Membership as the peer server sees it, to validate batches carried back in answers. */
  senderStatus(id: NodeId): SenderStatus;
  /** The receiver's own message check, applied to answers as to requests. */
  checkMessage: MessageCheck | null;
  /** Delivers a batch the peer carried back in an answer (validated). */
  onMessages(msgs: Message[]): void;
}

const SNAPSHOT_CHUNK_BYTES = 64 * 1024;
/** Error answers carry a short reason; cap what we read of them (snapshot connection). Batch
 * answers may carry a message batch, capped like a request body. */
const MAX_RESPONSE_BYTES = 64 * 1024;

/** Messages that answer a peer's message (and so may travel in the answer to its request). */
function isAnswer(type: MessageType): boolean {
  return (
    type === MessageType.AppResp ||
    type === MessageType.HeartbeatResp ||
    type === MessageType.VoteResp ||
    type === MessageType.PreVoteResp ||
    type === MessageType.ReadIndexResp
  );
}

interface BatchOutcome {
  status: number;
  reason: string;
  /** The connection was refused: nothing of the request was written. */
  refused: boolean;
  /** The body of a 200 answer: a message batch from the peer. */
  reply: Buffer | null;
}

/** Statuses that say "this peer will not take anything from us right now": back off. Other
 * failures (400, 413) concern one batch only. */
function statusMeansBackoff(status: number): boolean {
  return status === 403 || status === 404 || status === 410 || status === 412 || status >= 500;
}

/** Parses and checks a peer base URL; only plain http is supported. */
export function peerOrigin(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`invalid peer URL ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== 'http:') {
    throw new TypeError(`peer URL ${JSON.stringify(url)}: only http:// is supported`);
  }
  return parsed.origin;
}

/** Messages not yet handed to undici, with their size estimates. */
class SendQueue {
  messages: Message[] = [];
  sizes: number[] = [];
  bytes = 0;

  get length(): number {
    return this.messages.length;
  }

  push(m: Message, size: number): void {
    this.messages.push(m);
    this.sizes.push(size);
    this.bytes += size;
  }

  /** How many messages from the front fit in `bodyMax` by estimate (at least one). */
  prefixFitting(bodyMax: number): number {
    let count = 0;
    let bytes = 0;
    while (count < this.messages.length && (count === 0 || bytes + this.sizes[count]! <= bodyMax)) {
      bytes += this.sizes[count]!;
      count++;
    }
    return count;
  }

  remove(count: number): void {
    if (count === 0) return;
    for (let i = 0; i < count; i++) this.bytes -= this.sizes[i]!;
    this.messages = this.messages.slice(count);
    this.sizes = this.sizes.slice(count);
    if (this.messages.length === 0) this.bytes = 0;
  }
}

export class PeerSender {
  readonly id: NodeId;
  readonly url: string;
  private readonly ctx: PeerSenderContext;
  private readonly origin: string;
  private readonly client: Client;
  private proposalClient: Client | null = null;
  private snapshotClient: Client | null = null;
  private readonly headers: Record<string, string>;
  private readonly proposalHeaders: Record<string, string>;

  private readonly queue = new SendQueue();
  /** Prop messages, sent on proposalClient (see the module comment). */
  private readonly proposals = new SendQueue();
  private inflight = 0;
  private proposalInFlight = false;
  private snapshotInFlight = false;
  /** Drops happened since the last flush: report unreachable once, from the flush. */
  private unreachablePending = false;
  /** Proposals dropped before they were sent, reported from the next flush. */
  private notSentProposals: Message[] = [];

  private backoffUntil = 0;
  private consecutiveFailures = 0;
  private stopped = false;

  private sentMessages = 0;
  private sentBatches = 0;
  private sentBytes = 0;
  private sentAsReplies = 0;
  private receivedReplyMessages = 0;
  private badReplies = 0;
  private droppedMessages = 0;
  private failures = 0;
  private snapshotsSent = 0;
  private snapshotsFailed = 0;

  constructor(id: NodeId, url: string, ctx: PeerSenderContext) {
    this.id = id;
    this.url = url;
    this.ctx = ctx;
    this.origin = peerOrigin(url);
    this.client = new Client(this.origin, {
      pipelining: ctx.pipelining,
      headersTimeout: ctx.requestTimeoutMs,
      bodyTimeout: ctx.requestTimeoutMs,
      connect: { timeout: ctx.connectTimeoutMs },
      maxResponseSize: ctx.limits.bodyBytesMax,
    });
    this.headers = {
      'content-type': 'application/x-msgpack',
      [HEADER_CLUSTER_ID]: ctx.clusterId,
      [HEADER_FROM]: String(ctx.selfId),
      [HEADER_TO]: String(id),
      [HEADER_ACCEPT_REPLIES]: '1',
    };
    // No held answer: nothing travels back to a proposal, and the next one waits for this.
    const { [HEADER_ACCEPT_REPLIES]: _replies, ...proposalHeaders } = this.headers;
    this.proposalHeaders = proposalHeaders;
  }

  /** Queue a (non-snapshot) message; drops it when backing off or when the queue is full. */
  enqueue(m: Message): void {
    if (this.stopped) return;
    if (this.isBackingOff()) {
      this.dropUnsent(m);
      return;
    }
    const size = estimateMessageBytes(m);
    const { queueMessagesMax, queueBytesMax } = this.ctx.limits;
    if (
      this.queue.length + this.proposals.length >= queueMessagesMax ||
      this.queue.bytes + this.proposals.bytes + size > queueBytesMax
    ) {
      this.dropUnsent(m);
      return;
    }
    (m.type === MessageType.Prop ? this.proposals : this.queue).push(m, size);
    this.ctx.scheduleFlush(this);
  }

  /**
   * Sends queued messages as batches: first in held answers to the peer's own requests (no
   * request of ours needed), then as requests while pipeline slots are free.
   */
  flush(): void {
    if (this.stopped) return;
    if (this.unreachablePending) {
      this.unreachablePending = false;
      this.ctx.onUnreachable(this.id);
    }
    this.reportNotSentProposals();
    let replied = false;
    while (this.queue.length > 0) {
      // Take the longest prefix that is estimated to fit in one body (at least one message).
      const count = this.queue.prefixFitting(this.ctx.limits.bodyBytesMax);
      // Only answers (acks, votes…) ride in held answers: they may overtake each other, which
      // Raft shrugs off (stale acks are ignored), while appends and heartbeats keep the
      // strict order of this connection's pipeline.
      let answersOnly = true;
      for (let i = 0; i < count && answersOnly; i++) answersOnly = isAnswer(this.queue.messages[i]!.type);
      const reply = answersOnly ? this.ctx.takeReply(this.id) : undefined;
      if (reply === undefined && this.inflight >= this.ctx.pipelining) break;
      const encoded = this.takeBatch(this.queue, count);
      if (encoded === null) {
        reply?.release();
        continue;
      }
      if (reply !== undefined) {
        this.sendAsReply(reply, encoded.batch, encoded.bytes);
        replied = true;
      } else {
        this.dispatch(encoded.batch, encoded.bytes, false);
      }
    }
    // Held answers we did not use would hold up the peer's pipeline until their hold expires;
    // having just answered, answer the older ones too (the peer's next requests bring new ones).
    if (replied) this.ctx.releaseReplies(this.id);
    // Proposals: one request at a time (see the module comment); what queues meanwhile goes
    // in the next one.
    while (this.proposals.length > 0 && !this.proposalInFlight) {
      const encoded = this.takeBatch(this.proposals, this.proposals.prefixFitting(this.ctx.limits.bodyBytesMax));
      if (encoded !== null) this.dispatch(encoded.batch, encoded.bytes, true);
    }
  }

  /**
   * Removes the first `count` messages (fewer if their encoding is larger than estimated) from
   * `queue` and encodes them; null when the first one alone is too large to send (dropped).
   */
  private takeBatch(queue: SendQueue, count: number): { batch: Message[]; bytes: Uint8Array } | null {
    const bodyMax = this.ctx.limits.bodyBytesMax;
    let batch = queue.messages.slice(0, count);
    let encoded = encodeMessages(batch);
    // The estimate can be off; halve until the encoding fits.
    while (encoded.byteLength > bodyMax && batch.length > 1) {
      batch = batch.slice(0, Math.ceil(batch.length / 2));
      encoded = encodeMessages(batch);
    }
    queue.remove(batch.length);
    if (encoded.byteLength <= bodyMax) return { batch, bytes: encoded };
    this.ctx.logger.warn('transport: message larger than bodyBytesMax dropped', {
      peer: this.id,
      type: batch[0]!.type,
      bytes: encoded.byteLength,
      bodyBytesMax: bodyMax,
    });
    this.drop(1);
    this.reportUnreachableNow();
    return null;
  }

  private sendAsReply(reply: HeldReply, batch: Message[], encoded: Uint8Array): void {
    if (traceOn) traceBatch('out', batch, this.id);
    reply.send(Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength));
    // Like a request, a written answer may still be lost with its connection; Raft copes.
    this.sentMessages += batch.length;
    this.sentBatches++;
    this.sentAsReplies++;
    this.sentBytes += encoded.byteLength;
  }

  /**
   * Send a Snap message on the snapshot connection. With `body` (the snapshot's state, read from
   * its file) the message carries only a descriptor and the body follows it as a chunked,
   * CRC-checked stream (snapshot-stream.ts); without it the whole message is the request body.
   */
  sendSnapshot(m: Message, body: SnapshotBody | null = null): void {
    if (this.stopped) return;
    if (this.snapshotInFlight) {
      this.failSnapshotLater('a snapshot to this peer is already in flight');
      return;
    }
    if (this.isBackingOff()) {
      this.failSnapshotLater('peer is unreachable (backing off)');
      return;
    }
    const encoded = encodeMessage(m);
    const bytes = body !== null ? body.bytes : encoded.byteLength;
    if (bytes > this.ctx.limits.snapshotBytesMax) {
      this.failSnapshotLater(
        `snapshot of ${bytes} bytes exceeds snapshotBytesMax ${this.ctx.limits.snapshotBytesMax}`,
      );
      return;
    }
    if (body !== null && encoded.byteLength > this.ctx.limits.bodyBytesMax) {
      this.failSnapshotLater(`snapshot message of ${encoded.byteLength} bytes exceeds bodyBytesMax ${this.ctx.limits.bodyBytesMax}`);
      return;
    }
    this.snapshotClient ??= new Client(this.origin, {
      pipelining: 1,
      headersTimeout: this.ctx.snapshotTimeoutMs,
      bodyTimeout: this.ctx.snapshotTimeoutMs,
      connect: { timeout: this.ctx.connectTimeoutMs },
      maxResponseSize: MAX_RESPONSE_BYTES,
    });
    this.snapshotInFlight = true;
    const started = performance.now();
    const sent = body !== null
      ? postSnapshotStream(this.snapshotClient, PATH_SNAPSHOT, this.headers, encoded, body)
      : this.postWholeSnapshot(this.snapshotClient, encoded);
    void sent.then((failure) => {
      this.snapshotInFlight = false;
      if (this.stopped) return;
      if (failure === null) {
        this.snapshotsSent++;
        this.ctx.logger.info('transport: snapshot sent', {
          peer: this.id,
          bytes,
          streamed: body !== null,
          ms: Math.round(performance.now() - started),
        });
        this.ctx.onSnapshotStatus(this.id, true);
      } else {
        this.snapshotFailed(failure);
      }
    });
  }

  /** The whole encoded message as the body (snapshots whose data is all in the message). */
  private postWholeSnapshot(client: Client, encoded: Uint8Array): Promise<string | null> {
    const body = Readable.from(chunksOf(encoded, SNAPSHOT_CHUNK_BYTES), { objectMode: false });
    return client
      .request({
        path: PATH_SNAPSHOT,
        method: 'POST',
        headers: { ...this.headers, 'content-length': String(encoded.byteLength) },
        body,
      })
      .then(async (res) => {
        if (res.statusCode === 204) {
          await res.body.dump();
          return null;
        }
        return `HTTP ${res.statusCode}: ${await readReason(res.body)}`;
      })
      .catch((err: unknown) => errorText(err));
  }

  stats(): PeerStats {
    return {
      id: this.id,
      url: this.url,
      sentMessages: this.sentMessages,
      sentBatches: this.sentBatches,
      sentBytes: this.sentBytes,
      sentAsReplies: this.sentAsReplies,
      receivedReplyMessages: this.receivedReplyMessages,
      badReplies: this.badReplies,
      droppedMessages: this.droppedMessages,
      failures: this.failures,
      queuedMessages: this.queue.length + this.proposals.length,
      queuedBytes: this.queue.bytes + this.proposals.bytes,
      inflightRequests: this.inflight + (this.proposalInFlight ? 1 : 0),
      backingOff: this.isBackingOff(),
      snapshotsSent: this.snapshotsSent,
      snapshotsFailed: this.snapshotsFailed,
      snapshotInFlight: this.snapshotInFlight,
    };
  }

  /** Drop the queues and close every connection; no callbacks fire afterwards. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.dropQueued();
    const closing = [this.client.destroy()];
    if (this.proposalClient !== null) closing.push(this.proposalClient.destroy());
    if (this.snapshotClient !== null) closing.push(this.snapshotClient.destroy());
    await Promise.all(closing);
  }

  /** Sends a batch as a request: on the batch connection, or (`proposals`) on the proposal
   * connection, where undici never sends it twice (see the module comment). */
  private dispatch(batch: Message[], encoded: Uint8Array, proposals: boolean): void {
    if (proposals) this.proposalInFlight = true;
    else this.inflight++;
    if (traceOn) traceBatch('out', batch, this.id);
    const body = Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength);
    const client = proposals
      ? (this.proposalClient ??= new Client(this.origin, {
          pipelining: 1,
          headersTimeout: this.ctx.requestTimeoutMs,
          bodyTimeout: this.ctx.requestTimeoutMs,
          connect: { timeout: this.ctx.connectTimeoutMs },
          maxResponseSize: MAX_RESPONSE_BYTES,
        }))
      : this.client;
    client
      .request({
        path: PATH_MESSAGES,
        method: 'POST',
        headers: proposals ? this.proposalHeaders : this.headers,
        body,
        // (The proposalDuplicates mutation, test/simnode only: proposals re-sendable, the old bug.)
        idempotent: !proposals || mutations.proposalDuplicates,
        blocking: proposals,
      })
      .then(async (res): Promise<BatchOutcome> => {
        if (res.statusCode === 204) {
          await res.body.dump();
          return { status: 204, reason: '', refused: false, reply: null };
        }
        if (res.statusCode === 200) {
          const from = res.headers[HEADER_FROM];
          if (from !== String(this.id) || res.headers[HEADER_CLUSTER_ID] !== this.ctx.clusterId) {
            await res.body.dump();
            return { status: 200, reason: `answer from node ${String(from)} of another cluster or node`, refused: false, reply: null };
          }
          return { status: 200, reason: '', refused: false, reply: Buffer.from(await res.body.arrayBuffer()) };
        }
        return { status: res.statusCode, reason: await readReason(res.body), refused: false, reply: null };
      })
      .catch((err: unknown): BatchOutcome => ({ status: 0, reason: errorText(err), refused: errorCode(err) === 'ECONNREFUSED', reply: null }))
      .then(({ status, reason, refused, reply }) => {
        if (proposals) this.proposalInFlight = false;
        else this.inflight--;
        if (this.stopped) return;
        if (status === 204 || status === 200) {
          this.sentMessages += batch.length;
          this.sentBatches++;
          this.sentBytes += body.byteLength;
          if (this.consecutiveFailures > 0) {
            this.ctx.logger.info('transport: peer reachable again', { peer: this.id, url: this.url });
          }
          this.consecutiveFailures = 0;
          this.backoffUntil = 0;
          if (status === 200) this.receiveReply(reply, reason);
        } else {
          // A refused connection carried nothing: the peer never saw these proposals.
          if (proposals && refused) this.notSentProposals.push(...batch);
          this.batchFailed(batch.length, status, reason);
          this.reportNotSentProposals();
        }
        if (this.queue.length > 0 || this.proposals.length > 0) this.ctx.scheduleFlush(this);
      });
  }

  /** A batch the peer carried back in its answer: checked exactly like a request body. */
  private receiveReply(body: Buffer | null, reason: string): void {
    let problem: string | null = reason !== '' ? reason : null;
    let msgs: Message[] = [];
    if (problem === null && body !== null) {
      try {
        msgs = decodeMessages(body);
        problem = batchProblem(msgs, this.id, this.ctx.selfId, (id) => this.ctx.senderStatus(id), this.ctx.checkMessage);
      } catch (err) {
        problem = `malformed message batch: ${errorText(err)}`;
      }
    }
    if (problem !== null) {
      this.badReplies++;
      this.ctx.logger.warn('transport: answer from peer refused', { peer: this.id, reason: problem });
      return;
    }
    this.receivedReplyMessages += msgs.length;
    this.ctx.onMessages(msgs);
  }

  private batchFailed(messages: number, status: number, reason: string): void {
    this.failures++;
    this.droppedMessages += messages;
    const backoff = status === 0 || statusMeansBackoff(status);
    const fields = { peer: this.id, url: this.url, status, reason, messages };
    // A dead peer fails every request and every probe: warn once per outage.
    const ongoingOutage = backoff && (this.consecutiveFailures > 0 || this.isBackingOff());
    if (ongoingOutage) this.ctx.logger.debug('transport: send failed', fields);
    else this.ctx.logger.warn('transport: send failed', fields);
    if (backoff) this.enterBackoff();
    this.reportUnreachableNow();
    if (status === 410) this.ctx.onRemoved(this.id);
  }

  private snapshotFailed(reason: string): void {
    this.failures++;
    this.snapshotsFailed++;
    this.droppedMessages++;
    this.ctx.logger.warn('transport: snapshot send failed', { peer: this.id, reason });
    this.ctx.onSnapshotStatus(this.id, false);
    this.ctx.onUnreachable(this.id);
  }

  /** Callbacks never run inside `send()`: the runtime may be in the middle of handling a Ready. */
  private failSnapshotLater(reason: string): void {
    setImmediate(() => {
      if (!this.stopped) this.snapshotFailed(reason);
    });
  }

  private enterBackoff(): void {
    const now = performance.now();
    // Every in-flight request of a dead connection fails at about the same time: that is one
    // outage, not many, so only the first failure of a backoff period lengthens the delay.
    if (now < this.backoffUntil) return;
    const { initialMs, maxMs } = this.ctx.backoff;
    const delay = Math.min(maxMs, initialMs * 2 ** Math.min(this.consecutiveFailures, 30));
    this.consecutiveFailures++;
    this.backoffUntil = now + delay;
    // What is queued would only go stale while we wait.
    this.dropQueued();
  }

  /**
   * The peer just sent us a valid request: it is up, whatever made our sends fail before (it
   * was down, or not started yet). Stop backing off now instead of dropping what we send it
   * (forwarded proposals, answers to its appends) for the rest of the delay. The failure
   * count stays until one of our requests succeeds: if our way to it is still broken, the
   * next failure backs off longer than the last one.
   */
  peerIsUp(): void {
    if (this.stopped || !this.isBackingOff()) return;
    this.ctx.logger.info('transport: peer is up (it sent us a request): backoff ended', { peer: this.id, url: this.url });
    this.backoffUntil = 0;
  }

  private isBackingOff(): boolean {
    return this.backoffUntil !== 0 && performance.now() < this.backoffUntil;
  }

  /** Drops `m` unsent; a proposal is reported back with the next flush. */
  private dropUnsent(m: Message): void {
    if (m.type === MessageType.Prop) this.notSentProposals.push(m);
    this.drop(1);
  }

  /**
   * Tells the runtime which forwarded proposals never left this node (or met a refused
   * connection): the leader never appended them, so proposing them again cannot apply one
   * twice (and the apply-time de-duplication would skip a repeat anyway).
   */
  private reportNotSentProposals(): void {
    if (this.notSentProposals.length === 0) return;
    const msgs = this.notSentProposals;
    this.notSentProposals = [];
    this.ctx.onProposalsNotSent(this.id, msgs);
  }

  private drop(messages: number): void {
    this.droppedMessages += messages;
    if (!this.unreachablePending) {
      this.unreachablePending = true;
      this.ctx.scheduleFlush(this);
    }
  }

  private reportUnreachableNow(): void {
    this.unreachablePending = false;
    this.ctx.onUnreachable(this.id);
  }

  private dropQueued(): void {
    if (!this.stopped && this.proposals.length > 0) {
      this.notSentProposals.push(...this.proposals.messages);
      this.ctx.scheduleFlush(this);
    }
    this.droppedMessages += this.queue.length + this.proposals.length;
    this.queue.remove(this.queue.length);
    this.proposals.remove(this.proposals.length);
  }
}

function* chunksOf(bytes: Uint8Array, chunkBytes: number): Generator<Buffer> {
  for (let offset = 0; offset < bytes.byteLength; offset += chunkBytes) {
    const end = Math.min(bytes.byteLength, offset + chunkBytes);
    yield Buffer.from(bytes.buffer, bytes.byteOffset + offset, end - offset);
  }
}

async function readReason(body: { text(): Promise<string> }): Promise<string> {
  try {
    return (await body.text()).slice(0, 500);
  } catch (err) {
    return `(unreadable answer: ${errorText(err)})`;
  }
}

function errorCode(err: unknown): string | null {
  const code = err instanceof Error ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : null;
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/** Trace appends (with entries) and their acknowledgements in a batch. */
export function traceBatch(prefix: string, batch: Message[], peer: NodeId): void {
  for (const m of batch) {
    if (m.type === MessageType.App && m.entries.length > 0) {
      trace(`${prefix}App`, m.entries[0]!.index, m.entries[m.entries.length - 1]!.index, peer);
    } else if (m.type === MessageType.AppResp && !m.reject) {
      trace(`${prefix}Ack`, m.index, m.index, peer);
    }
  }
}
