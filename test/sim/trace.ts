/**
 * A ring buffer of the most recent simulator events. Recording is cheap (no string building);
 * lines are formatted only when a run fails, so tracing stays on for every run.
 */
import { MessageType, type Message, type NodeId } from '../../src/raft/types.js';

interface TraceRecord {
  step: number;
  event: string;
  node: NodeId;
  message: Message | null;
  detail: string;
}

export class Trace {
  private readonly records: (TraceRecord | undefined)[];
  private next = 0;
  private count = 0;
  /** The step number stamped on records; the engine updates it. */
  step = 0;

  constructor(readonly capacity = 200) {
    this.records = new Array<TraceRecord | undefined>(capacity);
  }

  add(event: string, node: NodeId, message: Message | null = null, detail = ''): void {
    const slot = this.records[this.next];
    if (slot === undefined) {
      this.records[this.next] = { step: this.step, event, node, message, detail };
    } else {
      slot.step = this.step;
      slot.event = event;
      slot.node = node;
      slot.message = message;
      slot.detail = detail;
    }
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
  }

  /** The recorded events, oldest first, one line each. */
  lines(): string[] {
    const out: string[] = [];
    const start = (this.next - this.count + this.capacity) % this.capacity;
    for (let i = 0; i < this.count; i++) {
      const r = this.records[(start + i) % this.capacity] as TraceRecord;
      const parts = [`#${r.step}`.padEnd(7), r.event.padEnd(12), `n${r.node}`.padEnd(4)];
      if (r.message !== null) parts.push(describeMessage(r.message));
      if (r.detail !== '') parts.push(r.detail);
      out.push(parts.join(' '));
    }
    return out;
  }
}

export function describeMessage(m: Message): string {
  const name = MessageType[m.type] ?? `type${m.type}`;
  let s = `${name} ${m.from}->${m.to} t=${m.term}`;
  switch (m.type) {
    case MessageType.App:
      s += ` prev=${m.index}/${m.logTerm} n=${m.entries.length}`;
      if (m.entries.length > 0) {
        const last = m.entries[m.entries.length - 1]!;
        s += ` [${m.entries[0]!.index}..${last.index}]@${last.term}`;
      }
      s += ` c=${m.commit}`;
      break;
    case MessageType.AppResp:
      s += ` i=${m.index}${m.reject ? ` REJECT hint=${m.rejectHint} lt=${m.logTerm}` : ''}`;
      break;
    case MessageType.Vote:
    case MessageType.PreVote:
      s += ` last=${m.index}/${m.logTerm}`;
      break;
    case MessageType.VoteResp:
    case MessageType.PreVoteResp:
      s += m.reject ? ' REJECT' : ' GRANT';
      break;
    case MessageType.Heartbeat:
      s += ` c=${m.commit}${m.context.length > 0 ? ' ctx' : ''}`;
      break;
    case MessageType.Snap:
      if (m.snapshot !== null) {
        s += ` snap=${m.snapshot.metadata.index}/${m.snapshot.metadata.term}`;
      }
      break;
    case MessageType.Prop:
      s += ` n=${m.entries.length}`;
      break;
    case MessageType.ReadIndexResp:
      s += ` i=${m.index}`;
      break;
    default:
      if (m.index !== 0) s += ` i=${m.index}`;
  }
  return s;
}
