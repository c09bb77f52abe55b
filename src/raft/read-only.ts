import type { Message, NodeId } from './types.js';
import type { ReadOnlyOption } from './config.js';
import { bytesKey } from './util.js';

export interface ReadIndexStatus {
  /** The original MsgReadIndex (from this node or forwarded by a follower). */
  req: Message;
  /** The commit index when the request arrived: the read may be served once applied ≥ it. */
  index: number;
  /** Voters that acknowledged a heartbeat carrying this request's context. */
  acks: Map<NodeId, boolean>;
}

/**
 * Pending safe ReadIndex requests on the leader, in arrival order. A request is confirmed
 * when a quorum acknowledges a heartbeat carrying its context; confirming one confirms all
 * earlier ones too (their heartbeats were sent before).
 *
 * Requests are keyed by context: a second request with the same context while the first is
 * pending is ignored, so callers must use unique contexts.
 */
export class ReadOnly {
  readonly option: ReadOnlyOption;
  private readonly pending = new Map<string, ReadIndexStatus>();
  private queue: string[] = [];

  constructor(option: ReadOnlyOption) {
    this.option = option;
  }

  addRequest(index: number, m: Message): void {
    const key = bytesKey(m.context);
    if (this.pending.has(key)) return;
    this.pending.set(key, { req: m, index, acks: new Map() });
    this.queue.push(key);
  }

  /** Records an ack; returns the acks so far, or null if the context is unknown. */
  recvAck(id: NodeId, context: Uint8Array): Map<NodeId, boolean> | null {
    const rs = this.pending.get(bytesKey(context));
    if (rs === undefined) return null;
    rs.acks.set(id, true);
    return rs.acks;
  }

  /** Dequeues the request with this context and every earlier one, in order. */
  advance(context: Uint8Array): ReadIndexStatus[] {
    const key = bytesKey(context);
    const at = this.queue.indexOf(key);
    if (at < 0) return [];
    const done = this.queue.slice(0, at + 1);
    this.queue = this.queue.slice(at + 1);
    const out: ReadIndexStatus[] = [];
    for (const k of done) {
      const rs = this.pending.get(k);
      if (rs !== undefined) {
        out.push(rs);
        this.pending.delete(k);
      }
    }
    return out;
  }

  /** Context of the newest pending request (carried by heartbeats), or null. */
  lastPendingRequestContext(): Uint8Array | null {
    if (this.queue.length === 0) return null;
    return this.pending.get(this.queue[this.queue.length - 1]!)!.req.context;
  }

  pendingCount(): number {
    return this.queue.length;
  }
}
