/**
 * The runtime's check of a message from a peer, beyond what the Raft core requires
 * (messageProblem): the transport applies it to every received message
 * (TransportOptions.checkMessage) and answers 400 with the reason.
 *
 * What the runtime decodes when it applies an entry or installs a snapshot must decode: a
 * ConfChange whose context names a peer URL this node cannot use, or a snapshot whose metadata
 * this runtime did not write, is refused at the door and never appended. Once committed, an
 * entry that cannot be applied would stop every node that applies it, and again after each
 * restart (it is in its log). (A snapshot's state machine bytes are the state machine's
 * business: they are not looked at here.)
 */

import { decodeConfChange } from '../raft/codec.js';
import { EntryType, MessageType, type Message } from '../raft/types.js';
import { decodeSnapshotData } from './envelope.js';
import { usablePeerUrl } from './membership.js';
import { decodeSnapshotRef } from './snapshot-ref.js';

/** Why a ConfChange context this runtime would act on names a peer URL it cannot use, or null.
 * A bare string that is not JSON (another runtime's context) is left alone unless it looks
 * like a URL, as decodeConfChangeContext reads it. */
export function confChangeContextProblem(bytes: Uint8Array): string | null {
  if (bytes.length === 0) return null;
  const text = new TextDecoder().decode(bytes);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return /^[a-z][a-z0-9+.-]*:/i.test(text) ? urlProblem(text) : null;
  }
  if (typeof parsed !== 'object' || parsed === null) return null;
  const url = (parsed as { url?: unknown }).url;
  if (url === undefined) return null;
  if (typeof url !== 'string') return 'context url must be a string';
  return urlProblem(url);
}

function urlProblem(url: string): string | null {
  return usablePeerUrl(url) === null ? `peer URL ${JSON.stringify(url)} is not an http:// URL` : null;
}

export function peerMessageCheck(m: Message): string | null {
  for (let i = 0; i < m.entries.length; i++) {
    const e = m.entries[i]!;
    if (e.type !== EntryType.ConfChange) continue;
    let problem: string | null;
    try {
      problem = confChangeContextProblem(decodeConfChange(e.data).context);
    } catch (err) {
      problem = (err as Error).message;
    }
    if (problem !== null) return `${MessageType[m.type]} from ${m.from}: entry ${i}: ConfChange context: ${problem}`;
  }
  if (m.snapshot !== null) {
    try {
      // A descriptor (the state follows as a stream) or the whole envelope inline.
      const ref = decodeSnapshotRef(m.snapshot.data);
      decodeSnapshotData(ref === null ? m.snapshot.data : ref.head);
    } catch (err) {
      return `${MessageType[m.type]} from ${m.from}: snapshot data: ${(err as Error).message}`;
    }
  }
  return null;
}
