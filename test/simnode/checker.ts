/**
 * What the whole-node simulator checks, as things happen:
 *
 *  - Apply order: every replica applies the same writes in the same order. The global history
 *    H is the sequence of client writes (write id, log index) as the first replica applied
 *    them; every replica's k-th applied write must be H[k] (a snapshot restores a replica to a
 *    position of H, checked too). A replica that applied an entry that was never committed
 *    diverges from H here, at the latest when the others apply the committed one.
 *  - Exactly once: a write id appears once in H (a forwarded proposal applied twice does not).
 *  - Acknowledged writes: a put acknowledged with revision r is H's write at index r; a put
 *    that failed definitely (not timed out, not unknown) is never applied.
 *  - Reads: a linearizable get returns a value at least as new (by position in H) as every put
 *    to its key acknowledged, and every linearizable get of it completed, before it started;
 *    a serializable get returns a value that was applied (never one not written).
 *  - Durability across restarts: a restarted node's recovered log reaches every index it
 *    acknowledged (a write or a read) before its crash.
 *  - Final state: after healing, every member's KV store equals H replayed.
 */
import type { NodeId } from '../../src/raft/types.js';
import { SimViolation, violation } from '../sim/checker.js';

// One violation type for both simulators (the core one's), so their runners treat them alike.
export { SimViolation, violation };

export interface HistoryEntry {
  writeId: number;
  key: string;
  index: number;
}

export type WriteOutcome = 'pending' | 'acked' | 'failed' | 'unknown';

export interface WriteRecord {
  writeId: number;
  key: string;
  via: NodeId;
  issuedAt: number;
  outcome: WriteOutcome;
  ackedAt: number;
  revision: number;
  error: string;
}

export class Checker {
  readonly history: HistoryEntry[] = [];
  private readonly positionOf = new Map<number, number>();
  /** Replica position in H, per node (reset when a node's disk is wiped). */
  private readonly replicaPosition = new Map<NodeId, number>();
  readonly writes = new Map<number, WriteRecord>();
  /** Per key: the newest H position a linearizable get must see from now on. */
  private readonly floor = new Map<string, number>();
  /** Per node: the highest log index it acknowledged to a client (write revision, read index). */
  private readonly ackedIndex = new Map<NodeId, number>();
  linearizableReads = 0;
  serializableReads = 0;
  acked = 0;

  /** The node's disk was wiped (re-added as a new member): it starts from nothing. */
  resetReplica(node: NodeId): void {
    this.replicaPosition.set(node, 0);
    this.ackedIndex.delete(node);
  }

  /** A new process of the node starts with an empty state machine (a snapshot restore then
   * moves it to the snapshot's position). */
  resetPosition(node: NodeId): void {
    this.replicaPosition.set(node, 0);
  }

  position(node: NodeId): number {
    return this.replicaPosition.get(node) ?? 0;
  }

  onApply(node: NodeId, index: number, writeId: number, key: string): void {
    const pos = this.position(node);
    const prev = pos > 0 ? this.history[pos - 1]! : null;
    if (prev !== null && index <= prev.index) {
      violation(`n${node} applied write ${writeId} at index ${index}, not after its previous write at ${prev.index}`);
    }
    if (pos < this.history.length) {
      const expected = this.history[pos]!;
      if (expected.index !== index || expected.writeId !== writeId) {
        violation(`replicas diverge: n${node}'s write #${pos + 1} is w${writeId}@${index}, ` +
          `but the first replica to apply it had w${expected.writeId}@${expected.index}`);
      }
    } else {
      const first = this.positionOf.get(writeId);
      if (first !== undefined) {
        violation(`write w${writeId} applied twice: at index ${this.history[first]!.index} and again at ${index} (n${node})`);
      }
      this.positionOf.set(writeId, this.history.length);
      this.history.push({ writeId, key, index });
    }
    this.replicaPosition.set(node, pos + 1);
  }

  /** A node restored a snapshot holding its first `count` writes, the last at `lastIndex`. */
  onRestore(node: NodeId, count: number, lastIndex: number): void {
    if (count > this.history.length) {
      violation(`n${node} restored a snapshot with ${count} writes; only ${this.history.length} were ever applied`);
    }
    const last = count > 0 ? this.history[count - 1]!.index : 0;
    if (last !== lastIndex) {
      violation(`n${node} restored a snapshot whose write #${count} is at index ${lastIndex}; it was applied at ${last}`);
    }
    this.replicaPosition.set(node, count);
  }

  writeIssued(w: WriteRecord): void {
    this.writes.set(w.writeId, w);
  }

  writeAcked(w: WriteRecord, now: number, revision: number): void {
    w.outcome = 'acked';
    w.ackedAt = now;
    w.revision = revision;
    this.acked++;
    const pos = this.positionOf.get(w.writeId);
    if (pos === undefined) violation(`put w${w.writeId} acknowledged (revision ${revision}) on n${w.via} but never applied anywhere`);
    const h = this.history[pos]!;
    if (h.index !== revision) violation(`put w${w.writeId} acknowledged with revision ${revision} but applied at index ${h.index}`);
    this.raiseFloor(w.key, pos);
    this.noteAcked(w.via, revision);
  }

  noteAcked(node: NodeId, index: number): void {
    if (index > (this.ackedIndex.get(node) ?? 0)) this.ackedIndex.set(node, index);
  }

  private raiseFloor(key: string, pos: number): void {
    if (pos > (this.floor.get(key) ?? -1)) this.floor.set(key, pos);
  }

  /** What a linearizable get of `key` starting now must see at least (an H position, -1: none). */
  readFloor(key: string): number {
    return this.floor.get(key) ?? -1;
  }

  /** A linearizable get of `key` on `node` that started with `floor` returned `writeId` (0: none). */
  linearizableRead(node: NodeId, key: string, floor: number, writeId: number, readIndex: number, startedAt: number): void {
    this.linearizableReads++;
    const pos = writeId === 0 ? -1 : this.positionOf.get(writeId);
    if (pos === undefined) violation(`linearizable get(${key}) on n${node} returned w${writeId}, which was never applied`);
    if (pos >= 0 && this.history[pos]!.key !== key) violation(`get(${key}) on n${node} returned w${writeId}, a write to ${this.history[pos]!.key}`);
    if (pos < floor) {
      const must = this.history[floor]!;
      violation(`stale linearizable read: get(${key}) on n${node} (started at ${startedAt.toFixed(3)} ms, read index ${readIndex}) returned ` +
        `${writeId === 0 ? 'nothing' : `w${writeId}@${this.history[pos]!.index}`}, but w${must.writeId}@${must.index} ` +
        `was acknowledged or read before it started`);
    }
    this.raiseFloor(key, pos);
    this.noteAcked(node, readIndex);
  }

  serializableRead(node: NodeId, key: string, writeId: number): void {
    this.serializableReads++;
    if (writeId === 0) return;
    const pos = this.positionOf.get(writeId);
    if (pos === undefined) violation(`serializable get(${key}) on n${node} returned w${writeId}, which was never applied`);
    if (this.history[pos]!.key !== key) violation(`get(${key}) on n${node} returned w${writeId}, a write to ${this.history[pos]!.key}`);
  }

  /** A restarted node recovered its log up to `lastIndex` (snapshot included). */
  onRecovered(node: NodeId, lastIndex: number): void {
    const acked = this.ackedIndex.get(node) ?? 0;
    if (lastIndex < acked) {
      violation(`n${node} restarted with its log ending at ${lastIndex}, but before the crash it acknowledged index ${acked}`);
    }
  }

  /** End of a run: definite failures were not applied. */
  finalChecks(): void {
    for (const w of this.writes.values()) {
      if (w.outcome === 'failed' && this.positionOf.has(w.writeId)) {
        violation(`put w${w.writeId} on n${w.via} failed with "${w.error}" but was applied at index ${this.history[this.positionOf.get(w.writeId)!]!.index}`);
      }
    }
  }

  /** The store a replica at the end of H must hold: key → write id. */
  expectedStore(): Map<string, number> {
    const m = new Map<string, number>();
    for (const h of this.history) m.set(h.key, h.writeId);
    return m;
  }
}
