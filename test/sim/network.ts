/**
 * The simulated network: a bag of in-flight messages. It drops, duplicates, delays and reorders
 * (delivery picks a random due message), and blocks directed links for partitions, so one-way
 * (asymmetric) partitions are just a subset of blocked links. All choices come from the run's
 * SimRandom.
 */
import type { Message, NodeId } from '../../src/raft/types.js';
import type { SimRandom } from './prng.js';

export interface NetworkFaults {
  /** Probability that a sent message is lost. */
  drop: number;
  /** Probability that a sent message is delivered twice. */
  duplicate: number;
  /** Probability that a message is held back for 1..maxDelay steps. */
  delay: number;
  maxDelay: number;
}

export const NO_FAULTS: NetworkFaults = { drop: 0, duplicate: 0, delay: 0, maxDelay: 1 };

/** A message with the node that physically sent it (a forwarded Prop keeps its origin in
 * `message.from`, but partitions apply to the forwarding hop). */
export interface Envelope {
  sender: NodeId;
  message: Message;
}

interface Delayed {
  due: number;
  seq: number;
  envelope: Envelope;
}

export type SendOutcome = 'queued' | 'dropped' | 'blocked';

export class Network {
  faults: NetworkFaults = NO_FAULTS;
  private readonly due: Envelope[] = [];
  private readonly delayed: Delayed[] = []; // binary min-heap by (due, seq)
  private seq = 0;
  private readonly blocked = new Set<number>();

  constructor(private readonly random: SimRandom) {}

  get inFlight(): number {
    return this.due.length + this.delayed.length;
  }

  get dueCount(): number {
    return this.due.length;
  }

  isBlocked(from: NodeId, to: NodeId): boolean {
    return this.blocked.size > 0 && this.blocked.has(linkKey(from, to));
  }

  block(from: NodeId, to: NodeId): void {
    this.blocked.add(linkKey(from, to));
  }

  /** Blocks both directions between every node of `a` and every node of `b`. */
  partition(a: readonly NodeId[], b: readonly NodeId[]): void {
    for (const x of a) {
      for (const y of b) {
        this.block(x, y);
        this.block(y, x);
      }
    }
  }

  healAll(): void {
    this.blocked.clear();
  }

  get partitioned(): boolean {
    return this.blocked.size > 0;
  }

  describePartition(): string {
    const links = [...this.blocked].map((k) => `${Math.floor(k / 65536)}->${k % 65536}`);
    return links.sort().join(' ');
  }

  send(sender: NodeId, message: Message, now: number): SendOutcome {
    if (this.isBlocked(sender, message.to)) return 'blocked';
    const f = this.faults;
    if (f.drop > 0 && this.random.chance(f.drop)) return 'dropped';
    const envelope: Envelope = { sender, message };
    this.enqueue(envelope, now);
    if (f.duplicate > 0 && this.random.chance(f.duplicate)) this.enqueue(envelope, now);
    return 'queued';
  }

  private enqueue(envelope: Envelope, now: number): void {
    const f = this.faults;
    if (f.delay > 0 && this.random.chance(f.delay)) {
      this.pushDelayed({ due: now + 1 + this.random.intn(f.maxDelay), seq: this.seq++, envelope });
    } else {
      this.due.push(envelope);
    }
  }

  /** Removes and returns a random message that is due at `now`, or null. */
  take(now: number): Envelope | null {
    this.promote(now);
    const n = this.due.length;
    if (n === 0) return null;
    const i = this.random.intn(n);
    const m = this.due[i] as Envelope;
    this.due[i] = this.due[n - 1] as Envelope;
    this.due.pop();
    return m;
  }

  /** Makes every delayed message due (the healing phase delivers without delay). */
  releaseAll(): void {
    while (this.delayed.length > 0) this.due.push(this.popDelayed().envelope);
  }

  /** Moves messages whose delay expired into the due set. */
  promote(now: number): void {
    while (this.delayed.length > 0 && (this.delayed[0] as Delayed).due <= now) {
      this.due.push(this.popDelayed().envelope);
    }
  }

  private pushDelayed(d: Delayed): void {
    const h = this.delayed;
    h.push(d);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i] as Delayed, h[p] as Delayed)) break;
      [h[i], h[p]] = [h[p] as Delayed, h[i] as Delayed];
      i = p;
    }
  }

  private popDelayed(): Delayed {
    const h = this.delayed;
    const top = h[0] as Delayed;
    const last = h.pop() as Delayed;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l] as Delayed, h[m] as Delayed)) m = l;
        if (r < h.length && before(h[r] as Delayed, h[m] as Delayed)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m] as Delayed, h[i] as Delayed];
        i = m;
      }
    }
    return top;
  }
}

function before(a: Delayed, b: Delayed): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq);
}

function linkKey(from: NodeId, to: NodeId): number {
  return from * 65536 + to;
}
