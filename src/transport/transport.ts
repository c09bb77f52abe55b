/**
 * Transport: the peer-to-peer messaging layer of a raftkv node.
 *
 * Outgoing: `send()` sorts messages by destination; each peer has a bounded queue flushed once
 * per synchronous run of sends (one Ready pass) as one msgpack batch (`POST /raft`) on a pipelined HTTP/1.1 connection,
 * forwarded proposals on a connection of their own that never re-sends a request, and a third
 * connection for streamed snapshots (`POST /raft/snapshot`). See peer.ts.
 * Incoming: a node:http server that validates and decodes what peers send. See server.ts.
 *
 * Answers (acks, vote and read-index responses) to a peer ride back in the held answer to that
 * peer's own request when there is one (reply.ts): one HTTP exchange per round trip.
 *
 * Delivery is best effort, as Raft expects: messages can be dropped (reported through
 * `onUnreachable`; forwarded proposals certainly never sent also through
 * `onProposalsNotSent`), duplicated (undici re-sends the unanswered requests of a closed pipelined
 * connection; never a proposal, which the leader would append twice) or, across connections
 * and between answers sent as requests and as replies, reordered.
 * Appends, heartbeats and everything else that is not an answer go on the batch connection to
 * the peer only, and arrive in the order they were sent unless one is lost.
 */

import { MessageType, type Message, type NodeId } from '../raft/types.js';
import { performance } from 'node:perf_hooks';
import { PeerSender, peerOrigin, type PeerSenderContext } from './peer.js';
import type { HeldReply } from './reply.js';
import { trace, traceOn } from './trace.js';
import { PeerServer } from './server.js';
import type { SenderStatus } from './validate.js';
import type { SnapshotBody } from './snapshot-stream.js';
import {
  DEFAULT_BACKOFF,
  DEFAULT_LIMITS,
  NOOP_LOGGER,
  type TransportLimits,
  type TransportOptions,
  type TransportStats,
} from './types.js';

type State = 'new' | 'started' | 'stopped';

export class Transport {
  readonly id: NodeId;
  readonly clusterId: string;
  private readonly opts: TransportOptions;
  private readonly limits: TransportLimits;
  private readonly senders = new Map<NodeId, PeerSender>();
  /** Members (other than this node) and their URLs; senders exist only while started. */
  private readonly members = new Map<NodeId, string>();
  private readonly removed = new Set<NodeId>();
  private readonly server: PeerServer;
  private readonly senderContext: PeerSenderContext;
  private readonly dirty = new Set<PeerSender>();
  private flushScheduled = false;
  /** Inside flushNow(): callbacks wait for a microtask (the caller is mid-Ready). */
  private deferCallbacks = false;
  /** Answers to peers' requests held open to carry our next batch to them (reply.ts). */
  private readonly heldReplies = new Map<NodeId, HeldReply[]>();
  private readonly replyHoldMs: number;
  private replySweep: NodeJS.Timeout | null = null;
  private state: State = 'new';
  private droppedUnknownPeer = 0;

  constructor(opts: TransportOptions) {
    assertNodeId(opts.id, 'id');
    if (typeof opts.clusterId !== 'string' || opts.clusterId.length === 0) {
      throw new TypeError('clusterId must be a non-empty string');
    }
    if (!Number.isInteger(opts.listenPort) || opts.listenPort < 0 || opts.listenPort > 65535) {
      throw new RangeError(`listenPort must be an integer in [0, 65535], got ${opts.listenPort}`);
    }
    this.id = opts.id;
    this.clusterId = opts.clusterId;
    this.opts = opts;
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    for (const [key, value] of Object.entries(this.limits)) {
      if (!Number.isSafeInteger(value) || value <= 0) {
        throw new RangeError(`limits.${key} must be a positive integer, got ${value}`);
      }
    }
    const backoff = { ...DEFAULT_BACKOFF, ...opts.backoff };
    if (!(backoff.initialMs > 0 && backoff.maxMs >= backoff.initialMs)) {
      throw new RangeError('backoff needs 0 < initialMs <= maxMs');
    }
    const pipelining = opts.pipelining ?? 8;
    if (!Number.isInteger(pipelining) || pipelining < 1) {
      throw new RangeError(`pipelining must be a positive integer, got ${pipelining}`);
    }
    this.replyHoldMs = opts.replyHoldMs ?? 20;
    if (!(Number.isFinite(this.replyHoldMs) && this.replyHoldMs >= 0)) {
      throw new RangeError(`replyHoldMs must be a non-negative number, got ${opts.replyHoldMs}`);
    }
    const logger = opts.logger ?? NOOP_LOGGER;
    this.senderContext = {
      selfId: opts.id,
      clusterId: opts.clusterId,
      limits: this.limits,
      pipelining,
      backoff,
      requestTimeoutMs: opts.requestTimeoutMs ?? 5000,
      snapshotTimeoutMs: opts.snapshotTimeoutMs ?? 60_000,
      connectTimeoutMs: opts.connectTimeoutMs ?? 2000,
      logger,
      onUnreachable: (id) => this.callback('onUnreachable', () => this.opts.onUnreachable(id)),
      onProposalsNotSent: (id, msgs) =>
        this.callback('onProposalsNotSent', () => this.opts.onProposalsNotSent?.(id, msgs)),
      onSnapshotStatus: (id, ok) =>
        this.callback('onSnapshotStatus', () => this.opts.onSnapshotStatus(id, ok)),
      onRemoved: (byPeer) => this.callback('onRemoved', () => this.opts.onRemoved?.(byPeer)),
      scheduleFlush: (peer) => this.scheduleFlush(peer),
      takeReply: (peer) => this.takeReply(peer),
      releaseReplies: (peer) => this.releaseReplies(peer, true),
      senderStatus: (id) => this.senderStatus(id),
      checkMessage: opts.checkMessage ?? null,
      onMessages: (msgs) => this.callback('onMessages', () => this.opts.onMessages(msgs)),
    };
    for (const [id, url] of opts.peers) {
      assertNodeId(id, 'peer id');
      peerOrigin(url); // validate early
      if (id !== this.id) this.members.set(id, url);
    }
    this.server = new PeerServer({
      id: opts.id,
      clusterId: opts.clusterId,
      bodyBytesMax: this.limits.bodyBytesMax,
      snapshotBytesMax: this.limits.snapshotBytesMax,
      logger,
      senderStatus: (from) => this.senderStatus(from),
      ...(opts.checkMessage !== undefined ? { checkMessage: opts.checkMessage } : {}),
      onMessages: (msgs) => this.opts.onMessages(msgs),
      onValidRequest: (from) => this.senders.get(from)?.peerIsUp(),
      ...(this.replyHoldMs > 0 ? { holdReply: (from: NodeId, r: HeldReply) => this.holdReply(from, r) } : {}),
      ...(opts.onSnapshot !== undefined ? { onSnapshot: (m: Message) => opts.onSnapshot!(m) } : {}),
      ...(opts.onSnapshotStream !== undefined
        ? { onSnapshotStream: (m: Message, body: AsyncIterable<Uint8Array>, bytes: number) => opts.onSnapshotStream!(m, body, bytes) }
        : {}),
    });
  }

  /** Starts listening for peers and creates the peer connections (lazily connected). */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`transport cannot start: it is ${this.state}`);
    await this.server.listen(this.opts.listenHost ?? '127.0.0.1', this.opts.listenPort);
    this.state = 'started';
    for (const [id, url] of this.members) this.senders.set(id, new PeerSender(id, url, this.senderContext));
  }

  /** The bound address of the peer server (the real port when listenPort was 0). */
  address(): { host: string; port: number } {
    return this.server.address();
  }

  /**
   * Queues messages for their destinations. Never blocks and never calls back synchronously;
   * messages to unknown peers or beyond a peer's queue bound are dropped and counted.
   */
  send(msgs: Message[]): void {
    if (this.state !== 'started') return;
    for (const m of msgs) {
      const sender = this.senders.get(m.to);
      if (sender === undefined) {
        this.droppedUnknownPeer++;
        this.senderContext.logger.debug('transport: message to unknown peer dropped', {
          to: m.to,
          type: MessageType[m.type],
        });
        continue;
      }
      if (m.type === MessageType.Snap) sender.sendSnapshot(m, this.snapshotBodyOf(m));
      else sender.enqueue(m);
    }
  }

  /**
   * Sends what send() queued so far now instead of once the current synchronous code is done.
   * A leader calls it before its own WAL append: that native call costs ~0.1-0.2 ms here, and
   * the followers' appends (the critical path of a write) should not wait for it. Callbacks
   * it causes (unreachable peers) still come later, from a microtask.
   */
  flushNow(): void {
    if (this.state !== 'started' || this.dirty.size === 0) return;
    this.deferCallbacks = true;
    try {
      this.flushDirty();
    } finally {
      this.deferCallbacks = false;
    }
  }

  /** Adds a member (or changes its URL). A re-added node is accepted as a sender again. */
  addPeer(id: NodeId, url: string): void {
    assertNodeId(id, 'peer id');
    peerOrigin(url);
    if (id === this.id) return;
    this.removed.delete(id);
    if (this.members.get(id) === url) return;
    this.members.set(id, url);
    if (this.state !== 'started') return;
    const old = this.senders.get(id);
    if (old !== undefined) void old.stop();
    this.senders.set(id, new PeerSender(id, url, this.senderContext));
  }

  /** Removes a member: its queue is dropped, its connections closed, and its requests answered
   * with 410 Gone from now on. */
  removePeer(id: NodeId): void {
    if (id === this.id) return;
    this.dropPeer(id);
    this.removed.add(id);
  }

  /**
   * Makes the member list exactly `members` (other than this node; id → URL) and the removed
   * set exactly `removed`: peers no longer listed are dropped (and answered 403, or 410 if
   * removed), new ones are added, changed URLs reconnect. The runtime calls it with the
   * applied configuration after every change, so the transport never drifts from it.
   */
  setMembers(members: ReadonlyMap<NodeId, string>, removed: ReadonlySet<NodeId>): void {
    for (const [id, url] of members) {
      assertNodeId(id, 'peer id');
      peerOrigin(url);
      if (removed.has(id)) throw new Error(`setMembers: node ${id} cannot be both a member and removed`);
    }
    for (const id of [...this.members.keys()]) {
      if (!members.has(id)) this.dropPeer(id);
    }
    this.removed.clear();
    for (const id of removed) if (id !== this.id) this.removed.add(id);
    for (const [id, url] of members) this.addPeer(id, url);
  }

  /** Current members (other than this node) and their URLs, and the removed ids. */
  memberList(): { members: Map<NodeId, string>; removed: Set<NodeId> } {
    return { members: new Map(this.members), removed: new Set(this.removed) };
  }

  private dropPeer(id: NodeId): void {
    this.members.delete(id);
    const sender = this.senders.get(id);
    if (sender !== undefined) {
      this.senders.delete(id);
      this.dirty.delete(sender);
      void sender.stop();
    }
    this.releaseReplies(id);
  }

  /** Closes the server and all peer connections; queued messages are dropped. Idempotent. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    const senders = [...this.senders.values()];
    this.senders.clear();
    this.dirty.clear();
    for (const id of [...this.heldReplies.keys()]) this.releaseReplies(id);
    if (this.replySweep !== null) clearTimeout(this.replySweep);
    await Promise.all([this.server.close(), ...senders.map((s) => s.stop())]);
  }

  stats(): TransportStats {
    return {
      peers: [...this.senders.values()].map((s) => s.stats()),
      server: this.server.stats(),
      droppedUnknownPeer: this.droppedUnknownPeer,
    };
  }

  /** The streamed body of an outgoing snapshot, or null to send it whole. */
  private snapshotBodyOf(m: Message): SnapshotBody | null {
    if (this.opts.snapshotSource === undefined) return null;
    try {
      return this.opts.snapshotSource(m);
    } catch (err) {
      this.senderContext.logger.warn('transport: snapshotSource threw; sending the snapshot whole', { to: m.to, error: String(err) });
      return null;
    }
  }

  private senderStatus(from: NodeId): SenderStatus {
    if (from === this.id || this.members.has(from)) return 'member';
    return this.removed.has(from) ? 'removed' : 'unknown';
  }

  /**
   * Coalesces flushes: everything sent during the current synchronous run of code (one Ready
   * pass) goes in one batch per peer. A microtask, not setImmediate: a flush deferred to the
   * check phase waits behind every other I/O callback of the turn (at 1 client that cost ~0.7
   * ms per hop, twice per write); sends are still never synchronous with send().
   */
  private scheduleFlush(peer: PeerSender): void {
    this.dirty.add(peer);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      if (traceOn) trace('flush', 0, 0);
      this.flushScheduled = false;
      this.flushDirty();
    });
  }

  /** Flushes every peer with queued messages (none once stopped). */
  private flushDirty(): void {
    const peers = [...this.dirty];
    this.dirty.clear();
    if (this.state !== 'started') return;
    for (const p of peers) p.flush();
  }

  private holdReply(from: NodeId, reply: HeldReply): void {
    if (this.state !== 'started' || !this.senders.has(from)) {
      reply.release();
      return;
    }
    const list = this.heldReplies.get(from);
    if (list === undefined) this.heldReplies.set(from, [reply]);
    else list.push(reply);
    this.armReplySweep(this.replyHoldMs);
  }

  private takeReply(peer: NodeId): HeldReply | undefined {
    const list = this.heldReplies.get(peer);
    if (list === undefined) return undefined;
    while (list.length > 0) {
      const r = list.shift()!;
      if (r.usable) return r;
    }
    return undefined;
  }

  /** Answers held requests from `peer` with 204; with `keepNewest` the latest one stays held
   * (it can still carry the reply to the newest request, and one open answer never fills the
   * peer's pipeline). */
  private releaseReplies(peer: NodeId, keepNewest = false): void {
    const list = this.heldReplies.get(peer);
    if (list === undefined) return;
    const kept = keepNewest ? list.pop() : undefined;
    for (const r of list) r.release();
    if (kept !== undefined && kept.usable) this.heldReplies.set(peer, [kept]);
    else this.heldReplies.delete(peer);
  }

  private armReplySweep(delayMs: number): void {
    if (this.replySweep !== null) return;
    this.replySweep = setTimeout(() => this.sweepReplies(), delayMs);
  }

  /** Answers 204 to requests held longer than replyHoldMs (nothing came to carry back). */
  private sweepReplies(): void {
    this.replySweep = null;
    const cutoff = performance.now() - this.replyHoldMs;
    let oldest = Infinity;
    for (const [peer, list] of this.heldReplies) {
      while (list.length > 0 && (list[0]!.heldAt <= cutoff || !list[0]!.usable)) list.shift()!.release();
      if (list.length === 0) this.heldReplies.delete(peer);
      else oldest = Math.min(oldest, list[0]!.heldAt);
    }
    if (oldest !== Infinity) this.armReplySweep(Math.max(1, oldest + this.replyHoldMs - performance.now()));
  }

  /** User callbacks must not break the transport's bookkeeping. */
  private callback(name: string, fn: () => void): void {
    if (this.state !== 'started') return;
    if (this.deferCallbacks) {
      queueMicrotask(() => this.callback(name, fn));
      return;
    }
    try {
      fn();
    } catch (err) {
      this.senderContext.logger.warn(`transport: ${name} callback threw`, { error: String(err) });
    }
  }
}

function assertNodeId(id: unknown, what: string): asserts id is NodeId {
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id <= 0) {
    throw new TypeError(`${what} must be a positive safe integer, got ${String(id)}`);
  }
}
