/**
 * The simulated network, at the transport's level: what moves between nodes are message
 * batches as src/transport batches them (everything one node sends to one peer in one
 * synchronous run of code — one Ready pass — is one `POST /raft`, msgpack-encoded; a snapshot
 * is its own request), and every batch a node receives goes through the same boundary checks
 * as the real peer server (decodeMessages + batchProblem) before it reaches RaftNode.
 *
 * Faults: loss (a failed request: the sender reports the peer unreachable), delay, reordering
 * (independent latencies), partitions (requests fail), held replies (the receiver keeps the
 * answer to a batch open for replyHoldMs and sends its own next batch to that peer back in it),
 * and connection drops: every request sent on the dropped connection and not answered yet is
 * sent again on a new connection (undici retries idempotent requests, and the transport marks
 * every batch idempotent), so a batch the receiver already processed arrives twice; answers
 * held on the dropped connection are lost.
 *
 * Proposals (Prop) travel as the real transport sends them: in their own requests, never in a
 * held answer, never answered late, and not re-sent after a drop (a non-idempotent request
 * fails instead) — unless the run's `resendProposals` fault re-sends them anyway (a duplicate
 * the runtime's proposal de-dup must absorb), or the proposalDuplicates mutation is on.
 *
 * Snapshots go as the transport sends them: a descriptor message with its body streamed from
 * the sender's snapshot file (snapshotSource → onSnapshotStream), or whole (onSnapshot).
 */
import { decodeMessages, encodeMessages } from '../../src/raft/codec.js';
import { MessageType, type Message, type NodeId } from '../../src/raft/types.js';
import type { NodeTransport } from '../../src/node/runtime-io.js';
import { batchProblem, peerMessageProblem, type SenderStatus } from '../../src/transport/validate.js';
import { mutations } from '../../src/testing/mutations.js';
import type { TransportOptions, TransportStats } from '../../src/transport/types.js';
import type { EventLoop, ProcClock } from './loop.js';
import type { SimRandom } from '../sim/prng.js';
import type { Trace } from '../sim/trace.js';

export interface NetworkFaults {
  /** Probability that a request (or its answer) is lost: the connection fails. */
  loss: number;
  /** One-way latency range in ms. */
  minLatency: number;
  maxLatency: number;
  /** Probability of an extra delay of up to 10× maxLatency (a stall). */
  stall: number;
  /** Probability that an answer is held (replyHoldMs) to carry the receiver's next batch. */
  holdReply: number;
  replyHoldMs: number;
  /** Re-send unanswered proposal requests after a connection drop, as a transport that marked
   * them idempotent would (the real one does not): duplicates for the proposal de-dup. */
  resendProposals: boolean;
}

export const CALM_NETWORK: NetworkFaults = {
  loss: 0, minLatency: 0.1, maxLatency: 1, stall: 0, holdReply: 0.3, replyHoldMs: 5, resendProposals: false,
};

interface InFlightRequest {
  id: number;
  from: NodeId;
  to: NodeId;
  body: Uint8Array;
  snapshot: boolean;
  /** A streamed snapshot's body (null: sent whole). */
  snapshotBody: Uint8Array[] | null;
  hasProposals: boolean;
  /** The sender's connection generation it was sent on. */
  generation: number;
  answered: boolean;
  /** Processed by the receiver at least once. */
  delivered: boolean;
}

interface HeldAnswer {
  request: InFlightRequest;
  expires: number;
  used: boolean;
}

/** One node process's endpoint: the NodeTransport RaftNode uses. */
export class SimTransport implements NodeTransport {
  readonly id: NodeId;
  alive = true;
  private started = false;
  private readonly members = new Map<NodeId, string>();
  private readonly removed = new Set<NodeId>();
  private readonly queues = new Map<NodeId, Message[]>();
  private flushScheduled = false;
  /** Answers to peers' requests held open, per peer, oldest first. */
  readonly held = new Map<NodeId, HeldAnswer[]>();
  sentBatches = 0;
  receivedBatches = 0;
  rejectedBatches = 0;

  constructor(
    private readonly net: SimNetwork,
    readonly options: TransportOptions,
    readonly clock: ProcClock,
  ) {
    this.id = options.id;
    for (const [id, url] of options.peers) if (id !== this.id) this.members.set(id, url);
  }

  setMembers(members: ReadonlyMap<NodeId, string>, removed: ReadonlySet<NodeId>): void {
    this.members.clear();
    for (const [id, url] of members) if (id !== this.id) this.members.set(id, url);
    this.removed.clear();
    for (const id of removed) if (id !== this.id) this.removed.add(id);
    for (const id of [...this.queues.keys()]) if (!this.members.has(id)) this.queues.delete(id);
    for (const id of [...this.held.keys()]) if (!this.members.has(id)) this.held.delete(id);
  }

  async start(): Promise<void> {
    this.started = true;
    this.net.attach(this);
  }

  async stop(): Promise<void> {
    this.started = false;
    this.queues.clear();
    this.held.clear();
  }

  address(): { host: string; port: number } {
    return { host: `n${this.id}.sim`, port: 7000 };
  }

  stats(): TransportStats {
    return {
      peers: [],
      server: { receivedBatches: this.receivedBatches, receivedMessages: 0, receivedBytes: 0, receivedSnapshots: 0, rejected: { 400: this.rejectedBatches } },
      droppedUnknownPeer: 0,
    };
  }

  get running(): boolean {
    return this.alive && this.started;
  }

  send(messages: Message[]): void {
    if (!this.running) return;
    for (const m of messages) {
      if (!this.members.has(m.to)) continue;
      if (m.type === MessageType.Snap) {
        this.net.sendSnapshot(this, m);
        continue;
      }
      let q = this.queues.get(m.to);
      if (q === undefined) this.queues.set(m.to, (q = []));
      q.push(m);
    }
    if (this.queues.size > 0 && !this.flushScheduled) {
      // As the real transport: one batch per peer per synchronous run of sends.
      this.flushScheduled = true;
      queueMicrotask(() => {
        this.flushScheduled = false;
        this.flushNow();
      });
    }
  }

  flushNow(): void {
    if (!this.running) return;
    for (const [to, q] of this.queues) {
      this.queues.delete(to);
      if (q.length === 0 || !this.members.has(to)) continue;
      // As peer.ts: proposals in their own request, everything else in one batch (which may
      // ride back in a held answer).
      const proposals = q.filter((m) => m.type === MessageType.Prop);
      const rest = proposals.length === 0 ? q : q.filter((m) => m.type !== MessageType.Prop);
      if (rest.length > 0) {
        const answer = this.takeHeld(to);
        if (answer !== null) this.net.sendAnswer(this, answer.request, rest);
        else this.net.sendRequest(this, to, rest, null);
      }
      if (proposals.length > 0) this.net.sendRequest(this, to, proposals, null);
    }
  }

  senderStatus(from: NodeId): SenderStatus {
    if (from === this.id || this.members.has(from)) return 'member';
    return this.removed.has(from) ? 'removed' : 'unknown';
  }

  private takeHeld(peer: NodeId): HeldAnswer | null {
    const list = this.held.get(peer);
    if (list === undefined) return null;
    while (list.length > 0) {
      const a = list.shift()!;
      if (!a.used && a.expires > this.net.loop.now && !a.request.answered) {
        a.used = true;
        return a;
      }
    }
    return null;
  }

  /** Callbacks into RaftNode: only while this process lives and its transport runs. */
  callback(fn: () => void): void {
    if (this.running) fn();
  }
}

export class SimNetwork {
  faults: NetworkFaults = CALM_NETWORK;
  /** Blocked directed links "a>b". */
  private readonly blocked = new Set<string>();
  /** Current endpoint of each node id (the live process, or a dead one). */
  private readonly endpoints = new Map<NodeId, SimTransport>();
  /** Connection generation per directed link; a drop bumps it. */
  private readonly generations = new Map<string, number>();
  private readonly inFlight = new Map<string, InFlightRequest[]>();
  private nextRequestId = 1;
  stats = { requests: 0, lost: 0, resent: 0, rejected: 0, answersCarried: 0, drops: 0 };

  constructor(
    readonly loop: EventLoop,
    private readonly random: SimRandom,
    private readonly trace: Trace,
  ) {}

  attach(t: SimTransport): void {
    this.endpoints.set(t.id, t);
  }

  partition(a: NodeId, b: NodeId): void {
    this.blocked.add(`${a}>${b}`);
    this.blocked.add(`${b}>${a}`);
  }

  isolate(a: NodeId, all: readonly NodeId[]): void {
    for (const b of all) if (b !== a) this.partition(a, b);
  }

  healAll(): void {
    this.blocked.clear();
  }

  private isBlocked(a: NodeId, b: NodeId): boolean {
    return this.blocked.has(`${a}>${b}`);
  }

  private latency(): number {
    const f = this.faults;
    let ms = f.minLatency + this.random.next() * (f.maxLatency - f.minLatency);
    if (f.stall > 0 && this.random.chance(f.stall)) ms += this.random.next() * 10 * f.maxLatency;
    return ms;
  }

  private generation(from: NodeId, to: NodeId): number {
    return this.generations.get(`${from}>${to}`) ?? 0;
  }

  private live(id: NodeId): SimTransport | null {
    const t = this.endpoints.get(id);
    return t !== undefined && t.running ? t : null;
  }

  /**
   * A snapshot: a descriptor is streamed with its body read from the sender's snapshot file
   * (which takes disk I/O on the sender: the request leaves once it is read), else sent whole.
   */
  sendSnapshot(sender: SimTransport, m: Message): void {
    let source = null;
    try {
      source = sender.options.snapshotSource?.(m) ?? null;
    } catch {
      source = null; // the transport sends it whole then
    }
    if (source === null) {
      this.sendRequest(sender, m.to, [m], null);
      return;
    }
    const body = source;
    void (async () => {
      const chunks: Uint8Array[] = [];
      let bytes = 0;
      for await (const chunk of body.open()) {
        chunks.push(chunk);
        bytes += chunk.byteLength;
      }
      if (bytes !== body.bytes) throw new Error(`snapshot body is ${bytes} bytes, its descriptor says ${body.bytes}`);
      return chunks;
    })().then(
      (chunks) => {
        if (sender.running) this.sendRequest(sender, m.to, [m], chunks);
      },
      () => {
        // The sender could not read its file (it died, or the file went away): it fails.
        sender.callback(() => sender.options.onSnapshotStatus(m.to, false));
      },
    );
  }

  /** A request with `msgs`; with `snapshotBody` non-null, a snapshot (one Snap message) whose
   * body follows it. */
  sendRequest(sender: SimTransport, to: NodeId, msgs: Message[], snapshotBody: Uint8Array[] | null): void {
    this.stats.requests++;
    sender.sentBatches++;
    const snapshot = msgs.length === 1 && msgs[0]!.type === MessageType.Snap;
    const req: InFlightRequest = {
      id: this.nextRequestId++,
      from: sender.id,
      to,
      body: encodeMessages(msgs),
      snapshot,
      snapshotBody,
      hasProposals: msgs.some((m) => m.type === MessageType.Prop),
      generation: this.generation(sender.id, to),
      answered: false,
      delivered: false,
    };
    const key = `${sender.id}>${to}`;
    let list = this.inFlight.get(key);
    if (list === undefined) this.inFlight.set(key, (list = []));
    list.push(req);
    this.transmit(req);
  }

  /** Puts a request on the wire: it arrives, or its connection fails. */
  private transmit(req: InFlightRequest): void {
    const lost = this.random.chance(this.faults.loss);
    this.loop.after(this.latency(), () => {
      const receiver = this.live(req.to);
      if (req.answered || req.generation !== this.generation(req.from, req.to)) return; // superseded by a re-send
      if (lost || receiver === null || this.isBlocked(req.from, req.to)) {
        this.stats.lost++;
        this.trace.add('req-fail', req.from, null, `#${req.id} to n${req.to}${receiver === null ? ' (down)' : lost ? ' (lost)' : ' (partitioned)'}`);
        // A peer that is down refuses the connection: its proposals certainly never arrived.
        this.fail(req, receiver === null);
        return;
      }
      this.receive(receiver, req);
    });
  }

  /** The request failed (no answer will come): the sender reports the peer unreachable. */
  /** `refused`: the connection was refused, so the request certainly never arrived (its
   * proposals are reported not sent, as peer.ts does). */
  private fail(req: InFlightRequest, refused = false): void {
    req.answered = true;
    this.forget(req);
    const sender = this.endpoints.get(req.from);
    if (sender === undefined) return;
    const to = req.to;
    // The real sender learns of a failure after a timeout or a connection error.
    sender.clock.later(1 + this.random.next() * 5, () => {
      sender.callback(() => {
        if (req.snapshot) sender.options.onSnapshotStatus(to, false);
        if (refused && req.hasProposals && sender.options.onProposalsNotSent !== undefined) {
          sender.options.onProposalsNotSent(to, decodeMessages(req.body).filter((m) => m.type === MessageType.Prop));
        }
        sender.options.onUnreachable(to);
      });
    });
  }

  private forget(req: InFlightRequest): void {
    const list = this.inFlight.get(`${req.from}>${req.to}`);
    if (list === undefined) return;
    const i = list.indexOf(req);
    if (i >= 0) list.splice(i, 1);
  }

  /** The peer server's side of a request (src/transport/server.ts receiveBatch/receiveSnapshot). */
  private receive(receiver: SimTransport, req: InFlightRequest): void {
    const status = receiver.senderStatus(req.from);
    if (status !== 'member') {
      this.trace.add(status === 'removed' ? 'req-410' : 'req-403', receiver.id, null, `#${req.id} from n${req.from}`);
      this.answer(req, status === 'removed' ? 410 : 403, null);
      return;
    }
    let msgs: Message[];
    let problem: string | null;
    const check = receiver.options.checkMessage ?? null;
    try {
      msgs = decodeMessages(req.body);
      problem = req.snapshot
        ? msgs.length !== 1 || msgs[0]!.type !== MessageType.Snap || msgs[0]!.snapshot === null
          ? 'expected one Snap message'
          : peerMessageProblem(msgs[0]!, req.from, receiver.id, (id) => receiver.senderStatus(id), check)
        : batchProblem(msgs, req.from, receiver.id, (id) => receiver.senderStatus(id), check);
    } catch (err) {
      msgs = [];
      problem = `malformed batch: ${(err as Error).message}`;
    }
    if (problem !== null) {
      this.stats.rejected++;
      receiver.rejectedBatches++;
      this.trace.add('req-400', receiver.id, null, `#${req.id} from n${req.from}: ${problem}`);
      this.answer(req, 400, null);
      return;
    }
    if (req.delivered) this.trace.add('redelivered', receiver.id, null, `#${req.id} from n${req.from}${req.hasProposals ? ' (carries proposals)' : ''}`);
    req.delivered = true;
    receiver.receivedBatches++;
    if (req.snapshot) {
      this.receiveSnapshot(receiver, req, msgs[0]!);
      return;
    }
    try {
      receiver.options.onMessages(msgs);
    } catch (err) {
      this.answer(req, 500, null);
      return;
    }
    // A proposal request is answered at once (peer.ts does not ask for a held answer).
    if (!req.hasProposals && this.random.chance(this.faults.holdReply)) {
      let list = receiver.held.get(req.from);
      if (list === undefined) receiver.held.set(req.from, (list = []));
      const held: HeldAnswer = { request: req, expires: this.loop.now + this.faults.replyHoldMs, used: false };
      list.push(held);
      receiver.clock.later(this.faults.replyHoldMs, () => {
        if (!held.used) {
          held.used = true;
          this.answer(req, 204, null);
        }
      });
      return;
    }
    this.answer(req, 204, null);
  }

  /** server.ts receiveSnapshot / receiveSnapshotStream: answered once the receiver is done. */
  private receiveSnapshot(receiver: SimTransport, req: InFlightRequest, m: Message): void {
    const o = receiver.options;
    let done: Promise<void>;
    try {
      if (req.snapshotBody !== null) {
        if (o.onSnapshotStream === undefined) {
          this.answer(req, 400, null);
          return;
        }
        const chunks = req.snapshotBody;
        const bytes = chunks.reduce((n, c) => n + c.byteLength, 0);
        done = o.onSnapshotStream(m, (async function* () {
          for (const c of chunks) yield c;
        })(), bytes);
      } else if (o.onSnapshot !== undefined) {
        done = o.onSnapshot(m);
      } else {
        o.onMessages([m]);
        done = Promise.resolve();
      }
    } catch {
      this.answer(req, 500, null);
      return;
    }
    done.then(
      () => this.answer(req, 204, null),
      (err: unknown) => {
        // A receiver that died meanwhile answers nothing (the connection breaks).
        if (req.answered) return; // failed already: the receiver died (died())
        if (!receiver.running) this.fail(req);
        else this.answer(req, (err as { status?: number }).status ?? 500, null);
      },
    );
  }

  /** The receiver answers `req` carrying `msgs` (a held answer used for its next batch). */
  sendAnswer(receiver: SimTransport, req: InFlightRequest, msgs: Message[]): void {
    this.stats.answersCarried++;
    receiver.sentBatches++;
    this.answer(req, 200, encodeMessages(msgs));
  }

  private answer(req: InFlightRequest, status: number, body: Uint8Array | null): void {
    const lost = this.random.chance(this.faults.loss);
    const generation = req.generation;
    this.loop.after(this.latency(), () => {
      if (req.answered || generation !== this.generation(req.from, req.to)) return; // the connection dropped
      const sender = this.live(req.from);
      if (lost || sender === null || this.isBlocked(req.to, req.from)) {
        // The answer never arrives: the request fails (its body was processed).
        if (sender !== null) this.fail(req);
        return;
      }
      req.answered = true;
      this.forget(req);
      if (status === 410) {
        sender.callback(() => sender.options.onRemoved?.(req.to));
        return;
      }
      if (status >= 300) {
        sender.callback(() => sender.options.onUnreachable(req.to));
        if (req.snapshot) sender.callback(() => sender.options.onSnapshotStatus(req.to, false));
        return;
      }
      if (req.snapshot) sender.callback(() => sender.options.onSnapshotStatus(req.to, true));
      if (body !== null) {
        // A batch carried back in an answer is checked like a request (peer.ts does the same).
        let msgs: Message[];
        try {
          msgs = decodeMessages(body);
        } catch {
          return;
        }
        if (batchProblem(msgs, req.to, sender.id, (id) => sender.senderStatus(id), sender.options.checkMessage ?? null) !== null) {
          this.stats.rejected++;
          return;
        }
        sender.callback(() => sender.options.onMessages(msgs));
      }
    });
  }

  /**
   * The connection from `from` to `to` drops: answers in flight on it are lost, and every
   * request sent on it and not answered yet is sent again on a new connection (undici's retry
   * of idempotent requests), whether or not the receiver already processed it.
   */
  dropConnection(from: NodeId, to: NodeId): void {
    this.stats.drops++;
    const key = `${from}>${to}`;
    this.generations.set(key, this.generation(from, to) + 1);
    const unanswered = (this.inFlight.get(key) ?? []).filter((r) => !r.answered);
    this.inFlight.set(key, []);
    const receiver = this.endpoints.get(to);
    receiver?.held.delete(from);
    this.trace.add('conn-drop', from, null, `to n${to}: ${unanswered.length} unanswered`);
    const sender = this.live(from);
    for (const req of unanswered) {
      if (sender === null) continue;
      if (req.hasProposals && !this.faults.resendProposals && !mutations.proposalDuplicates) {
        req.answered = true;
        this.fail(req);
        continue;
      }
      this.stats.resent++;
      const again: InFlightRequest = { ...req, generation: this.generation(from, to), answered: false };
      this.inFlight.get(key)!.push(again);
      this.transmit(again);
    }
  }

  /**
   * The process behind `t` died: its connections break. A request it received and had not
   * answered yet (a held answer, a snapshot being written) fails at its sender, as a reset
   * connection does; without this a sender would wait forever for a snapshot's outcome.
   */
  died(t: SimTransport): void {
    t.alive = false;
    if (this.endpoints.get(t.id) !== t) return;
    for (const [key, list] of this.inFlight) {
      if (!key.endsWith(`>${t.id}`)) continue;
      for (const req of [...list]) if (!req.answered && req.delivered) this.fail(req);
    }
  }

  /** Links with requests in flight (candidates for a drop). */
  busyLinks(): [NodeId, NodeId][] {
    const out: [NodeId, NodeId][] = [];
    for (const [key, list] of this.inFlight) {
      if (list.some((r) => !r.answered)) {
        const [a, b] = key.split('>').map(Number) as [number, number];
        out.push([a, b]);
      }
    }
    return out;
  }

  /** Injects one message the sender's Raft core never made (a peer with a bug): it goes
   * through the receiver's boundary checks like any batch. */
  injectRaw(from: NodeId, to: NodeId, m: Message): void {
    const sender = this.endpoints.get(from);
    if (sender === undefined) return;
    const req: InFlightRequest = {
      id: this.nextRequestId++, from, to, body: encodeMessages([m]), snapshot: false, snapshotBody: null,
      // (Not the sender's own proposals: never reported back to it as not sent.)
      hasProposals: false, generation: this.generation(from, to), answered: false, delivered: false,
    };
    this.transmit(req);
  }
}
