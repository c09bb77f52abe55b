/**
 * A held answer to a peer's `POST /raft`: instead of answering 204 at once and later opening a
 * request of our own to carry the reply (an AppResp, a HeartbeatResp, a VoteResp…), the peer
 * server keeps the response open and the next batch this node has for that peer travels in its
 * body. One HTTP exchange per round trip instead of two: half the socket writes, requests to
 * parse and wake-ups on both sides (each costs ~0.1 ms of CPU here), which is what bounds a
 * 3-node cluster on 2 cores.
 *
 * A peer opts in per request (header `x-raftkv-replies: 1`); a held answer that gets nothing
 * to carry is released as 204 after a short hold (Transport's `replyHoldMs`), so a request
 * whose messages produce no reply (TimeoutNow, a forwarded proposal…) never blocks the
 * pipelined responses behind it for long.
 */

import type http from 'node:http';
import { performance } from 'node:perf_hooks';
import { HEADER_CLUSTER_ID, HEADER_FROM } from './types.js';

export class HeldReply {
  readonly heldAt = performance.now();
  private answered = false;

  constructor(
    private readonly res: http.ServerResponse,
    private readonly selfId: number,
    private readonly clusterId: string,
  ) {}

  /** False once answered, or when the connection is gone (nothing can be sent on it). */
  get usable(): boolean {
    return !this.answered && !this.res.destroyed;
  }

  /** Answers 200 with an encoded message batch. The caller checked `usable`. */
  send(body: Buffer): void {
    this.answered = true;
    this.res.writeHead(200, {
      'content-type': 'application/x-msgpack',
      'content-length': String(body.byteLength),
      [HEADER_FROM]: String(this.selfId),
      [HEADER_CLUSTER_ID]: this.clusterId,
    });
    this.res.end(body);
  }

  /** Answers 204: the request was accepted and there is nothing to carry back. */
  release(): void {
    if (!this.usable) return;
    this.answered = true;
    this.res.writeHead(204).end();
  }
}
