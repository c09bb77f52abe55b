/**
 * Checks a decoded message batch from peer `from` before it may reach the Raft core. Shared by
 * the peer server (batches in request bodies) and the peer senders (batches carried back in
 * response bodies): both directions must refuse the same things.
 *
 * What a message must look like is the Raft core's own rule (messageProblem, which RawNode.step
 * applies too), so nothing the core would refuse or trip over gets past this point; the
 * runtime may add checks of the bytes it puts in entries and snapshots (`MessageCheck`).
 */

import { messageProblem } from '../raft/message-check.js';
import { MessageType, type Message, type NodeId } from '../raft/types.js';
import { PATH_SNAPSHOT } from './types.js';

export type SenderStatus = 'member' | 'removed' | 'unknown';

/** An extra check of a message the core would accept: why it must be refused, or null. */
export type MessageCheck = (m: Message) => string | null;

/** Message types a peer may send in a batch. Local-only types would make RawNode.step throw;
 * Snap must come through the snapshot endpoint, which has its own size cap. */
const BATCH_TYPES: ReadonlySet<MessageType> = new Set([
  MessageType.Prop,
  MessageType.App,
  MessageType.AppResp,
  MessageType.Vote,
  MessageType.VoteResp,
  MessageType.PreVote,
  MessageType.PreVoteResp,
  MessageType.Heartbeat,
  MessageType.HeartbeatResp,
  MessageType.TimeoutNow,
  MessageType.ReadIndex,
  MessageType.ReadIndexResp,
  MessageType.TransferLeader,
]);

/**
 * Returns why the batch must be refused, or null when every message may be stepped.
 * A follower forwards proposals, reads and transfer requests to the leader with the
 * requester's id kept in `from` (the leader answers the requester); such a message may have
 * passed through a node that no longer knew the leader, so it arrives via another member.
 * Everything else must come from the node that sent it.
 */
export function batchProblem(
  msgs: readonly Message[],
  from: NodeId,
  selfId: NodeId,
  senderStatus: (id: NodeId) => SenderStatus,
  check: MessageCheck | null = null,
): string | null {
  if (msgs.length === 0) return 'empty message batch';
  for (const m of msgs) {
    if (!BATCH_TYPES.has(m.type)) {
      const hint = m.type === MessageType.Snap ? ` (snapshots go to ${PATH_SNAPSHOT})` : '';
      return `message type ${MessageType[m.type] ?? m.type} not accepted${hint}`;
    }
    const problem = peerMessageProblem(m, from, selfId, senderStatus, check);
    if (problem !== null) return problem;
  }
  return null;
}

/** Every check of one message from peer `from` (also used for snapshot messages). */
export function peerMessageProblem(
  m: Message,
  from: NodeId,
  selfId: NodeId,
  senderStatus: (id: NodeId) => SenderStatus,
  check: MessageCheck | null,
): string | null {
  return messageProblem(m) ?? envelopeProblem(m, from, selfId, senderStatus) ?? (check !== null ? check(m) : null);
}

/** The sender/addressee check alone. */
function envelopeProblem(
  m: Message,
  from: NodeId,
  selfId: NodeId,
  senderStatus: (id: NodeId) => SenderStatus,
): string | null {
  const forwardable =
    m.type === MessageType.Prop || m.type === MessageType.ReadIndex || m.type === MessageType.TransferLeader;
  if (m.from !== from && !(forwardable && senderStatus(m.from) === 'member')) {
    return `message from ${m.from} inside a request from node ${from}`;
  }
  if (m.to !== selfId) return `message addressed to node ${m.to}, this is node ${selfId}`;
  return null;
}
