/**
 * The peer server under bad input: wrong cluster, unknown/removed senders, wrong methods,
 * oversized and malformed bodies, and a little fuzzing. After each it must keep serving.
 */

import assert from 'node:assert/strict';
import http from 'node:http';
import { Client } from 'undici';
import { encodeMessage, encodeMessages } from '../../src/raft/codec.js';
import { MessageType, type Message } from '../../src/raft/types.js';
import {
  HEADER_CLUSTER_ID,
  HEADER_FROM,
  HEADER_TO,
  type Transport,
} from '../../src/transport/index.js';
import { makeRandom } from '../wal/fixtures/backends.js';
import { CLUSTER, makeNode, msg, newInbox, type Inbox } from './helpers.js';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

describe('peer server', function () {
  let node: Transport;
  let inbox: Inbox;
  let port: number;
  let throwOnDeliver = false;

  beforeEach(async function () {
    inbox = newInbox();
    throwOnDeliver = false;
    node = makeNode(1, inbox, {
      peers: new Map([[1, 'http://127.0.0.1:1'], [2, 'http://127.0.0.1:2'], [4, 'http://127.0.0.1:4']]),
      limits: { bodyBytesMax: 4096, snapshotBytesMax: 64 * 1024 },
      onMessages: (msgs) => {
        if (throwOnDeliver) throw new Error('state machine exploded');
        inbox.batches++;
        inbox.messages.push(...msgs);
      },
    });
    await node.start();
    node.removePeer(4);
    port = node.address().port;
  });

  afterEach(async function () {
    await node.stop();
  });

  function headers(over: Record<string, string | undefined> = {}): Record<string, string> {
    const h: Record<string, string | undefined> = {
      [HEADER_CLUSTER_ID]: CLUSTER,
      [HEADER_FROM]: '2',
      [HEADER_TO]: '1',
      ...over,
    };
    return Object.fromEntries(Object.entries(h).filter((e): e is [string, string] => e[1] !== undefined));
  }

  /** One request on its own connection; `body` may be written in parts. */
  function request(
    method: string,
    path: string,
    hdrs: Record<string, string>,
    body: Uint8Array | null,
  ): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method, path, headers: hdrs, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
        );
      });
      req.on('error', reject);
      req.end(body === null ? undefined : Buffer.from(body));
    });
  }

  const heartbeat = (fields: Partial<Message> = {}) => msg(MessageType.Heartbeat, 2, 1, fields);

  async function assertStillServing(): Promise<void> {
    const before = inbox.messages.length;
    const ok = await request('POST', '/raft', headers(), encodeMessages([heartbeat({ index: 777 })]));
    assert.equal(ok.status, 204, ok.body);
    assert.equal(inbox.messages.length, before + 1);
    assert.equal(inbox.messages.at(-1)!.index, 777);
  }

  it('accepts a valid batch with 204 and delivers it', async function () {
    const a = await request('POST', '/raft', headers(), encodeMessages([heartbeat({ index: 1 }), heartbeat({ index: 2 })]));
    assert.equal(a.status, 204);
    assert.deepEqual(inbox.messages.map((m) => m.index), [1, 2]);
  });

  it('answers GET /raft/health with id and cluster id', async function () {
    const a = await request('GET', '/raft/health', {}, null);
    assert.equal(a.status, 200);
    assert.deepEqual(JSON.parse(a.body), { id: 1, clusterId: CLUSTER });
    const b = await request('POST', '/raft/health', {}, null);
    assert.equal(b.status, 405);
    assert.equal(b.headers.allow, 'GET, HEAD');
  });

  it('rejects a wrong or missing cluster id with 412', async function () {
    const body = encodeMessages([heartbeat()]);
    const a = await request('POST', '/raft', headers({ [HEADER_CLUSTER_ID]: 'other' }), body);
    assert.equal(a.status, 412);
    assert.match(JSON.parse(a.body).error, /cluster id mismatch.*"other"/);
    const b = await request('POST', '/raft', headers({ [HEADER_CLUSTER_ID]: undefined }), body);
    assert.equal(b.status, 412);
    assert.equal(inbox.messages.length, 0);
    await assertStillServing();
  });

  it('rejects unknown (403), removed (410) and unidentified (400) senders', async function () {
    const body = encodeMessages([msg(MessageType.Heartbeat, 3, 1)]);
    const unknown = await request('POST', '/raft', headers({ [HEADER_FROM]: '3' }), body);
    assert.equal(unknown.status, 403);
    assert.match(JSON.parse(unknown.body).error, /node 3 is not a member/);
    const removed = await request('POST', '/raft', headers({ [HEADER_FROM]: '4' }), encodeMessages([msg(MessageType.Heartbeat, 4, 1)]));
    assert.equal(removed.status, 410);
    assert.match(JSON.parse(removed.body).error, /node 4 was removed/);
    for (const bad of [undefined, '', 'abc', '0', '-1', '1.5', '99999999999999999999']) {
      const a = await request('POST', '/raft', headers({ [HEADER_FROM]: bad }), body);
      assert.equal(a.status, 400, `from=${bad}`);
    }
    assert.equal(inbox.messages.length, 0);
    await assertStillServing();
  });

  it('rejects wrong methods with 405 and Allow, unknown paths with 404', async function () {
    for (const method of ['GET', 'PUT', 'DELETE']) {
      for (const path of ['/raft', '/raft/snapshot']) {
        const a = await request(method, path, headers(), null);
        assert.equal(a.status, 405, `${method} ${path}`);
        assert.equal(a.headers.allow, 'POST');
      }
    }
    const missing = await request('POST', '/raft/nope', headers(), null);
    assert.equal(missing.status, 404);
    await assertStillServing();
  });

  it('rejects a request addressed to another node, or messages not matching the envelope', async function () {
    const toOther = await request('POST', '/raft', headers({ [HEADER_TO]: '2' }), encodeMessages([heartbeat()]));
    assert.equal(toOther.status, 400);
    const msgToOther = await request('POST', '/raft', headers(), encodeMessages([heartbeat(), msg(MessageType.Heartbeat, 2, 3)]));
    assert.equal(msgToOther.status, 400);
    assert.match(JSON.parse(msgToOther.body).error, /addressed to node 3/);
    const spoofed = await request('POST', '/raft', headers(), encodeMessages([msg(MessageType.Heartbeat, 4, 1)]));
    assert.equal(spoofed.status, 400);
    assert.match(JSON.parse(spoofed.body).error, /message from 4 inside a request from node 2/);
    assert.equal(inbox.messages.length, 0, 'a batch with one bad message is refused whole');
    await assertStillServing();
  });

  it('accepts proposals, reads and transfer requests forwarded on behalf of another member', async function () {
    // A follower forwards to the leader keeping the requester in `from`.
    node.addPeer(3, 'http://127.0.0.1:3');
    for (const type of [MessageType.Prop, MessageType.ReadIndex, MessageType.TransferLeader]) {
      // A forwarded proposal or read carries no term (TransferLeader carries the forwarder's).
      const term = type === MessageType.TransferLeader ? 1 : 0;
      const a = await request('POST', '/raft', headers(), encodeMessages([msg(type, 3, 1, { term })]));
      assert.equal(a.status, 204, MessageType[type]);
    }
    assert.deepEqual(inbox.messages.map((m) => m.from), [3, 3, 3]);
    const notForwardable = await request('POST', '/raft', headers(), encodeMessages([msg(MessageType.Heartbeat, 3, 1)]));
    assert.equal(notForwardable.status, 400);
    const fromRemoved = await request('POST', '/raft', headers(), encodeMessages([msg(MessageType.Prop, 4, 1, { term: 0 })]));
    assert.equal(fromRemoved.status, 400, 'a removed node cannot be the requester');
    await assertStillServing();
  });

  it('rejects local message types and snapshots on the batch endpoint', async function () {
    for (const type of [MessageType.Hup, MessageType.Beat, MessageType.Unreachable, MessageType.SnapStatus, MessageType.CheckQuorum, MessageType.Snap]) {
      const a = await request('POST', '/raft', headers(), encodeMessages([msg(type, 2, 1)]));
      assert.equal(a.status, 400, MessageType[type]);
      assert.match(JSON.parse(a.body).error, /not accepted/);
    }
    const notSnap = await request('POST', '/raft/snapshot', headers(), encodeMessage(heartbeat()));
    assert.equal(notSnap.status, 400);
    assert.equal(inbox.messages.length, 0);
    await assertStillServing();
  });

  it('rejects oversized bodies with 413 without reading them, declared or streamed', async function () {
    // Declared too large: answered from the headers while the body is still being sent.
    const declared = await new Promise<number>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1', port, method: 'POST', path: '/raft', agent: false,
        headers: { ...headers(), 'content-length': String(10 * 1024 * 1024) },
      }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      req.on('error', (err) => reject(err));
      req.write(Buffer.alloc(1024));
    });
    assert.equal(declared, 413);

    // Chunked (no length): the cap is enforced while reading.
    const streamed = await new Promise<Answer>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/raft', agent: false, headers: headers() }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() });
          req.destroy();
        });
      });
      req.on('error', (err) => reject(err));
      req.write(Buffer.alloc(5000)); // > bodyBytesMax (4096); the request is never ended
    });
    assert.equal(streamed.status, 413);
    assert.match(JSON.parse(streamed.body).error, /exceeds the limit of 4096/);
    assert.equal(streamed.headers.connection, 'close');

    const snap = msg(MessageType.Snap, 2, 1, {
      snapshot: { metadata: { index: 5, term: 1, confState: { voters: [1, 2], learners: [] } }, data: new Uint8Array(100 * 1024) },
    });
    const bigSnap = await request('POST', '/raft/snapshot', headers(), encodeMessage(snap));
    assert.equal(bigSnap.status, 413);
    assert.equal(node.stats().server.rejected[413], 3);
    await assertStillServing();

    // A snapshot under its (larger) cap is fine even though it exceeds bodyBytesMax.
    const small = msg(MessageType.Snap, 2, 1, {
      snapshot: { metadata: { index: 5, term: 1, confState: { voters: [1, 2], learners: [] } }, data: new Uint8Array(20 * 1024).fill(9) },
    });
    const okSnap = await request('POST', '/raft/snapshot', headers(), encodeMessage(small));
    assert.equal(okSnap.status, 204, okSnap.body);
    const delivered = inbox.messages.at(-1)!;
    assert.equal(delivered.type, MessageType.Snap);
    assert.equal(delivered.snapshot!.data.byteLength, 20 * 1024);
  });

  it('rejects malformed, truncated and empty bodies with 400 and a reason', async function () {
    const valid = encodeMessages([heartbeat({ index: 1 }), heartbeat({ index: 2, context: new Uint8Array([1, 2, 3]) })]);
    const cases: Array<[string, Uint8Array]> = [
      ['empty', new Uint8Array(0)],
      ['garbage', Buffer.from('this is not msgpack at all')],
      ['truncated', valid.subarray(0, valid.length - 3)],
      ['one byte', valid.subarray(0, 1)],
      ['empty batch', encodeMessages([])],
    ];
    for (const [name, body] of cases) {
      const a = await request('POST', '/raft', headers(), body);
      assert.equal(a.status, 400, `${name}: ${a.body}`);
      const reason = JSON.parse(a.body).error as string;
      assert.ok(reason.length > 0, name);
    }
    const truncatedSnap = encodeMessage(msg(MessageType.Snap, 2, 1, {
      snapshot: { metadata: { index: 5, term: 1, confState: { voters: [1, 2], learners: [] } }, data: new Uint8Array(1000) },
    }));
    const ts = await request('POST', '/raft/snapshot', headers(), truncatedSnap.subarray(0, 700));
    assert.equal(ts.status, 400);
    assert.match(JSON.parse(ts.body).error, /malformed snapshot/);
    assert.equal(inbox.messages.length, 0);
    await assertStillServing();
  });

  it('answers 500 when the receiver throws, and keeps serving', async function () {
    throwOnDeliver = true;
    const a = await request('POST', '/raft', headers(), encodeMessages([heartbeat()]));
    assert.equal(a.status, 500);
    assert.match(JSON.parse(a.body).error, /state machine exploded/);
    throwOnDeliver = false;
    await assertStillServing();
  });

  it('survives fuzzed bodies (random bytes, truncations, bit flips) on one pipelined connection', async function () {
    const seed = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
    const random = makeRandom(seed);
    const client = new Client(`http://127.0.0.1:${port}`, { pipelining: 8 });
    const valid = encodeMessages([
      heartbeat({ index: 3, commit: 2 }),
      msg(MessageType.App, 2, 1, { index: 4, entries: [{ term: 1, index: 5, type: 0, data: new Uint8Array([1, 2, 3]) }] }),
    ]);
    const statuses = new Map<number, number>();
    try {
      const pending: Array<Promise<void>> = [];
      for (let i = 0; i < 300; i++) {
        let body: Uint8Array;
        const kind = i % 3;
        if (kind === 0) {
          body = new Uint8Array(Math.floor(random() * 200));
          for (let j = 0; j < body.length; j++) body[j] = Math.floor(random() * 256);
        } else if (kind === 1) {
          body = valid.subarray(0, Math.floor(random() * valid.length));
        } else {
          body = Uint8Array.from(valid);
          const flips = 1 + Math.floor(random() * 4);
          for (let f = 0; f < flips; f++) body[Math.floor(random() * body.length)]! ^= 1 << Math.floor(random() * 8);
        }
        const path = random() < 0.2 ? '/raft/snapshot' : '/raft';
        pending.push(
          client
            .request({ path, method: 'POST', headers: headers(), body: Buffer.from(body), idempotent: true, blocking: false })
            .then(async (res) => {
              await res.body.dump();
              statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
            }),
        );
      }
      await Promise.all(pending);
    } catch (err) {
      throw new Error(`fuzz failed with FUZZ_SEED=${seed}: ${String(err)}`);
    } finally {
      await client.close();
    }
    for (const status of statuses.keys()) {
      assert.ok(status === 204 || status === 400, `FUZZ_SEED=${seed}: unexpected status ${status} (${JSON.stringify([...statuses])})`);
    }
    assert.ok((statuses.get(400) ?? 0) > 100, `FUZZ_SEED=${seed}: ${JSON.stringify([...statuses])}`);
    for (const m of inbox.messages) {
      assert.equal(m.to, 1, `FUZZ_SEED=${seed}`);
      assert.equal(m.from, 2, `FUZZ_SEED=${seed}`);
    }
    await assertStillServing();
  });
});
