/** Shared helpers for the transport tests (real sockets on 127.0.0.1). */

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { MessageType, type Message, type NodeId } from '../../src/raft/types.js';
import { Transport } from '../../src/transport/index.js';
import type { TransportOptions } from '../../src/transport/index.js';

export const CLUSTER = 'test-cluster';

export function msg(type: MessageType, from: NodeId, to: NodeId, fields: Partial<Message> = {}): Message {
  return {
    type,
    from,
    to,
    term: 1,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    snapshot: null,
    context: new Uint8Array(0),
    ...fields,
  };
}

/** Everything a test node received or was told. */
export interface Inbox {
  messages: Message[];
  batches: number;
  unreachable: NodeId[];
  snapshotStatus: Array<{ id: NodeId; ok: boolean }>;
}

export function newInbox(): Inbox {
  return { messages: [], batches: 0, unreachable: [], snapshotStatus: [] };
}

export type TestNodeOptions = Partial<Omit<TransportOptions, 'id'>>;

/** A transport on 127.0.0.1:0 recording what it gets into an Inbox. */
export function makeNode(id: NodeId, inbox: Inbox, opts: TestNodeOptions = {}): Transport {
  return new Transport({
    clusterId: CLUSTER,
    peers: new Map(),
    listenPort: 0,
    onMessages: (msgs) => {
      inbox.batches++;
      inbox.messages.push(...msgs);
    },
    onUnreachable: (peer) => inbox.unreachable.push(peer),
    onSnapshotStatus: (peer, ok) => inbox.snapshotStatus.push({ id: peer, ok }),
    ...opts,
    id,
  });
}

export function urlOf(t: Transport): string {
  return `http://127.0.0.1:${t.address().port}`;
}

/** Makes every node a peer of every other one. */
export function connectAll(nodes: Transport[]): void {
  for (const a of nodes) for (const b of nodes) if (a !== b) a.addPeer(b.id, urlOf(b));
}

export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Waits for a condition (a liveness guard, not a timing assertion): fails after `ms`. */
export async function waitFor(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A bare HTTP server for tests that need to control the other end. */
export async function listen(handler: http.RequestListener): Promise<{ server: http.Server; url: string; port: number }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { server, url: `http://127.0.0.1:${port}`, port };
}

export async function closeServer(server: http.Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  await closed;
}

/**
 * Call inside a describe(): transports passed to `started` (which starts them) and bare
 * servers pushed to `servers` are stopped/closed after each test.
 */
export function stoppedAfterEach(): { started(t: Transport): Promise<Transport>; servers: http.Server[] } {
  const running: Transport[] = [];
  const servers: http.Server[] = [];
  afterEach(async function () {
    await Promise.all(running.splice(0).map((t) => t.stop()));
    await Promise.all(servers.splice(0).map((s) => closeServer(s)));
  });
  return {
    servers,
    async started(t: Transport): Promise<Transport> {
      running.push(t);
      await t.start();
      return t;
    },
  };
}
