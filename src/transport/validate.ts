/**
 * Checks a decoded message batch from peer `from` before it may reach the Raft core. Shared by
 * the peer server (batches in request bodies) and the peer senders (batches carried back in
 * response bodies): both directions must refuse the same things.
 */

import { MessageType, type Message, type NodeId } from '../raft/types.js';
import { PATH_SNAPSHOT } from './types.js';

export type SenderStatus = 'member' | 'removed' | 'unknown';

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
): string | null {
  if (msgs.length === 0) return 'empty message batch';
  for (const m of msgs) {
    if (!BATCH_TYPES.has(m.type)) {
      const hint = m.type === MessageType.Snap ? ` (snapshots go to ${PATH_SNAPSHOT})` : '';
      return `message type ${MessageType[m.type] ?? m.type} not accepted${hint}`;
    }
    const problem = envelopeProblem(m, from, selfId, senderStatus);
    if (problem !== null) return problem;
  }
  return null;
}

/** The sender/addressee check alone (also used for snapshot messages). */
export function envelopeProblem(
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
