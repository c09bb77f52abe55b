/**
 * What a message received from another node must look like before the core may step it.
 *
 * One function, used by both RawNode.step (which refuses a message it flags with StepError) and
 * the peer transport (which answers 400 with the same reason before the message gets anywhere
 * near the core), so the boundary and the core cannot drift apart. Everything checked here
 * depends on the message alone; checks that need the node's state (a heartbeat's commit index
 * beyond our log, an ack for an index we never had) live in the core, which ignores such a
 * message with a warning.
 *
 * The rules are facts about messages a correct node sends, not limits of this implementation:
 * a peer that breaks one is broken or hostile, and stepping the message would trip an
 * invariant of the core (and stop the node) or corrupt its log.
 */
import { decodeConfChange } from './codec.js';
import { EntryType, MessageType, type Entry, type Message } from './types.js';
import { mutations } from '../testing/mutations.js';

/**
 * Largest term or index accepted from the wire. A term the size of MAX_SAFE_INTEGER would leave
 * no room for the next election (term + 1 is no longer exact), and an index that large none
 * for appending; 2^52 still leaves 2^52 more of each.
 */
export const WIRE_NUMBER_MAX = 2 ** 52;

const LOCAL_TYPES: ReadonlySet<MessageType> = new Set([
  MessageType.Hup,
  MessageType.Beat,
  MessageType.Unreachable,
  MessageType.SnapStatus,
  MessageType.CheckQuorum,
]);

const KNOWN_TYPES: ReadonlySet<number> = new Set(
  Object.values(MessageType).filter((v): v is number => typeof v === 'number'),
);

function typeName(t: MessageType): string {
  return MessageType[t] ?? String(t);
}

function isWireNumber(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 && n <= WIRE_NUMBER_MAX;
}

function isNodeId(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n > 0;
}

/** Whether the message is a local input type that must never arrive from the network. */
export function isLocalMessageType(t: MessageType): boolean {
  return LOCAL_TYPES.has(t);
}

/**
 * Why `m` cannot have been sent by a correct node, or null. Message types that travel between
 * nodes only (local types are refused).
 */
export function messageProblem(m: Message): string | null {
  // (The peerMessageCheckOff mutation, test/simnode only: no check at all, the old bug.)
  if (mutations.peerMessageCheckOff) return null;
  if (m === null || typeof m !== 'object') return 'message must be an object';
  if (!KNOWN_TYPES.has(m.type)) return `unknown message type ${String(m.type)}`;
  if (LOCAL_TYPES.has(m.type)) return `local message type ${typeName(m.type)} cannot come from the network`;
  const problem = fieldProblem(m);
  return problem === null ? null : `${typeName(m.type)} from ${String(m.from)}: ${problem}`;
}

/** messageProblem without the prefix naming the message (built only when there is a problem:
 * every message from a peer passes here, twice). */
function fieldProblem(m: Message): string | null {
  if (!isNodeId(m.from)) return 'sender must be a positive safe integer';
  if (!isNodeId(m.to)) return `addressee must be a positive safe integer, got ${String(m.to)}`;
  // TransferLeader carries a node id (the transferee) in `index`, not a log position.
  const indexOk = m.type === MessageType.TransferLeader
    ? typeof m.index === 'number' && Number.isSafeInteger(m.index) && m.index >= 0
    : isWireNumber(m.index);
  if (!(isWireNumber(m.term) && isWireNumber(m.logTerm) && indexOk && isWireNumber(m.commit) && isWireNumber(m.rejectHint))) {
    return `term, logTerm, index, commit and rejectHint must be integers in [0, 2^52] ` +
      `(got ${m.term}, ${m.logTerm}, ${m.index}, ${m.commit}, ${m.rejectHint})`;
  }
  if (typeof m.reject !== 'boolean') return 'reject must be a boolean';
  if (!(m.context instanceof Uint8Array)) return 'context must be bytes';
  if (!Array.isArray(m.entries)) return 'entries must be an array';

  // A forwarded proposal or read request travels without a term (like a local one); every
  // other message carries its sender's term, which is at least 1 (a Vote response with term 0
  // would break the core's "term is set" invariant).
  const termless = m.type === MessageType.Prop || m.type === MessageType.ReadIndex;
  if (termless && m.term !== 0) return `must carry term 0, got ${m.term}`;
  if (!termless && m.term === 0) return 'term 0 (only a forwarded Prop or ReadIndex has none)';

  if (m.entries.length > 0 && m.type !== MessageType.App && m.type !== MessageType.Prop) {
    return `carries ${m.entries.length} entries; only App and Prop do`;
  }
  for (let i = 0; i < m.entries.length; i++) {
    const problem = entryProblem(m.entries[i]!);
    if (problem !== null) return `entry ${i}: ${problem}`;
  }
  if (m.type === MessageType.App) {
    const problem = appendProblem(m);
    if (problem !== null) return problem;
  }
  if ((m.type === MessageType.Vote || m.type === MessageType.PreVote) && m.logTerm > m.term) {
    // The candidate's last entry cannot be newer than the term it campaigns for.
    return `last log term ${m.logTerm} is above the campaign term ${m.term}`;
  }
  if (m.type === MessageType.Snap) {
    const problem = snapshotProblem(m);
    if (problem !== null) return problem;
  } else if (m.snapshot !== null) {
    return 'carries a snapshot; only Snap does';
  }
  return null;
}

function entryProblem(e: Entry): string | null {
  if (e === null || typeof e !== 'object') return 'not an object';
  if (!(isWireNumber(e.term) && isWireNumber(e.index))) {
    return `term and index must be integers in [0, 2^52] (got ${e.term}, ${e.index})`;
  }
  if (e.type !== EntryType.Normal && e.type !== EntryType.ConfChange) return `unknown entry type ${String(e.type)}`;
  if (!(e.data instanceof Uint8Array)) return 'data must be bytes';
  if (e.type === EntryType.ConfChange) {
    // Every node decodes it when applying; one that cannot be decoded would stop every node
    // that applies it, again after each restart (it is in their logs).
    try {
      decodeConfChange(e.data);
    } catch (err) {
      return `undecodable ConfChange: ${(err as Error).message}`;
    }
  }
  return null;
}

/**
 * An App carries a slice of its sender's log: the entries follow (index, logTerm) without a
 * gap, and as in every Raft log their terms never decrease and none is newer than the term the
 * leader sends in.
 */
function appendProblem(m: Message): string | null {
  if (m.logTerm > m.term) return `previous entry's term ${m.logTerm} is above the message term ${m.term}`;
  let prevIndex = m.index;
  let prevTerm = m.logTerm;
  for (let i = 0; i < m.entries.length; i++) {
    const e = m.entries[i]!;
    if (e.index !== prevIndex + 1) {
      return i === 0
        ? `entries start at ${e.index}, expected ${m.index + 1}`
        : `entries are not contiguous: ${e.index} after ${prevIndex}`;
    }
    if (e.term < prevTerm) return `entry ${e.index} has term ${e.term}, below the term ${prevTerm} before it`;
    if (e.term > m.term) return `entry ${e.index} has term ${e.term}, above the message term ${m.term}`;
    prevIndex = e.index;
    prevTerm = e.term;
  }
  return null;
}

function snapshotProblem(m: Message): string | null {
  const s = m.snapshot;
  if (s === null || typeof s !== 'object') return 'no snapshot';
  const md = s.metadata;
  if (md === null || typeof md !== 'object') return 'snapshot without metadata';
  if (!(isWireNumber(md.index) && isWireNumber(md.term))) return 'snapshot index and term must be integers in [0, 2^52]';
  if (md.index === 0 || md.term === 0) return `empty snapshot (index ${md.index}, term ${md.term})`;
  if (md.term > m.term) return `snapshot term ${md.term} is above the message term ${m.term}`;
  if (!(s.data instanceof Uint8Array)) return 'snapshot data must be bytes';
  const cs = md.confState;
  if (cs === null || typeof cs !== 'object' || !Array.isArray(cs.voters) || !Array.isArray(cs.learners)) {
    return 'snapshot without a configuration';
  }
  if (cs.voters.length === 0) return 'snapshot configuration has no voters';
  const seen = new Set<number>();
  for (const id of [...cs.voters, ...cs.learners]) {
    if (!isNodeId(id)) return `snapshot configuration lists invalid node id ${String(id)}`;
    if (seen.has(id)) return `snapshot configuration lists node ${id} twice`;
    seen.add(id);
  }
  return null;
}
