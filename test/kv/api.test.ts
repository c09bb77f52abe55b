/**
 * The KV server as real processes: put/get semantics, every node proposing, membership over
 * the API, malformed client and peer requests, graceful stop, and the CLI's flag handling.
 */

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';

import { parseArgs, UsageError } from '../../src/kv/config.js';
import { KvCluster, runCli, waitFor } from './fixtures/cluster.js';

/** A raw HTTP exchange, for requests fetch refuses to send. */
function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(text));
    let out = '';
    socket.on('data', (d) => (out += d.toString()));
    socket.on('end', () => resolve(out));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('raw request timed out')));
  });
}

function httpRequest(
  port: number,
  opts: http.RequestOptions,
  body?: Buffer,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, ...opts }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

describe('kv: the HTTP API on a 3-node cluster of processes', function () {
  let cluster: KvCluster;

  before(async function () {
    cluster = await KvCluster.start({ size: 3, spare: 1 });
  });

  after(async function () {
    await cluster?.stop();
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') console.error(cluster.dumpLogs());
  });

  it('put then get returns the value on every node, with no sleep in between', async function () {
    for (const writer of [1, 2, 3]) {
      const key = `put-get-${writer}`;
      const rev = await cluster.putOk(writer, key, `value from ${writer}`);
      assert.ok(rev > 0);
      // Linearizable reads: the acknowledged write is visible immediately, on every node.
      for (const reader of [1, 2, 3]) {
        const r = await cluster.node(reader).get(key);
        assert.equal(r.status, 200, `GET ${key} on node ${reader}: ${r.body}`);
        assert.equal(r.body, `value from ${writer}`);
        assert.equal(r.headers.get('x-raftkv-revision'), String(rev));
      }
    }
    const missing = await cluster.node(2).get('never-written');
    assert.equal(missing.status, 404);
    assert.equal(JSON.parse(missing.body).error, 'not_found');
  });

  it('keys are percent-decoded paths; values are bytes; overwrites bump the revision', async function () {
    const n1 = cluster.node(1);
    const binary = Buffer.from([0, 1, 2, 255, 254, 10, 13]);
    let r = await n1.request('PUT', '/dir/sub%20key', binary);
    assert.equal(r.status, 204);
    const rev1 = Number(r.headers.get('x-raftkv-revision'));
    const got = await fetch(`${cluster.node(3).apiUrl}/dir/sub%20key`);
    assert.equal(got.status, 200);
    assert.deepEqual(Buffer.from(await got.arrayBuffer()), binary);
    r = await n1.request('PUT', '/dir/sub%20key', 'second');
    assert.equal(r.status, 204);
    assert.ok(Number(r.headers.get('x-raftkv-revision')) > rev1);
    r = await cluster.node(2).request('GET', '/dir%2Fsub%20key?consistency=serializable');
    // A serializable read may lag, but never goes backwards past what this node applied.
    assert.ok(r.status === 200);
    const empty = await n1.request('PUT', '/empty-value', '');
    assert.equal(empty.status, 204);
    assert.equal((await cluster.node(3).get('empty-value')).body, '');
  });

  it('every node proposes concurrently and every node applies every write in the same order', async function () {
    const perNode = 40;
    const revisions = new Map<string, number>();
    await Promise.all(
      [1, 2, 3].map(async (writer) => {
        // Several writes in flight per node, so proposals from different nodes interleave.
        const lanes = 4;
        await Promise.all(
          Array.from({ length: lanes }, async (_, lane) => {
            for (let i = lane; i < perNode; i += lanes) {
              const key = `every-${writer}-${i}`;
              revisions.set(key, await cluster.putOk(writer, key, `v${writer}.${i}`));
            }
          }),
        );
      }),
    );
    assert.equal(revisions.size, 3 * perNode);
    assert.equal(new Set(revisions.values()).size, revisions.size, 'two writes got the same log index');
    // After a barrier on each node, every node has every key with the same revision (log position).
    for (const reader of [1, 2, 3]) {
      for (const [key, rev] of revisions) {
        const r = await cluster.node(reader).get(key);
        assert.equal(r.status, 200, `node ${reader} GET ${key}: ${r.body}`);
        assert.equal(r.body, `v${key.split('-')[1]}.${key.split('-')[2]}`);
        assert.equal(r.headers.get('x-raftkv-revision'), String(rev), `node ${reader} applied ${key} at another index`);
      }
    }
    const statuses = await Promise.all([1, 2, 3].map((id) => cluster.node(id).status()));
    const maxRev = Math.max(...revisions.values());
    for (const s of statuses) assert.ok(s.applied >= maxRev, `node ${s.id} applied ${s.applied} < ${maxRev}`);
  });

  it('malformed client requests get 4xx with a JSON reason and the node keeps serving', async function () {
    const n = cluster.node(2);
    const cases: [string, string, string | undefined, number, string][] = [
      ['PUT', '/', 'x', 400, 'bad_key'],
      ['PUT', '/%E0%A4%A', 'x', 400, 'bad_key'],
      ['PUT', `/${'k'.repeat(5000)}`, 'x', 400, 'bad_key'],
      ['PUT', '/status', 'x', 405, 'method_not_allowed'],
      ['PUT', '/%73tatus', 'x', 400, 'bad_key'],
      ['PUT', '/k?consistency=serializable', 'x', 400, 'bad_query'],
      ['GET', '/k?consistency=eventual', undefined, 400, 'bad_query'],
      ['GET', '/k?consistency=serializable&consistency=linearizable', undefined, 400, 'bad_query'],
      ['GET', '/k?x=1', undefined, 400, 'bad_query'],
      ['POST', '/abc', 'http://127.0.0.1:1', 400, 'bad_id'],
      ['POST', '/0', 'http://127.0.0.1:1', 400, 'bad_id'],
      ['POST', '/99999999999999999999', 'http://127.0.0.1:1', 400, 'bad_id'],
      ['POST', '/7', 'not a url', 400, 'bad_url'],
      ['POST', '/7', 'ftp://127.0.0.1:21', 400, 'bad_url'],
      ['POST', '/7', 'http://127.0.0.1', 400, 'bad_url'],
      ['POST', '/7?learner=maybe', 'http://127.0.0.1:1', 400, 'bad_query'],
      ['DELETE', '/-1', undefined, 400, 'bad_id'],
      ['DELETE', '/9', undefined, 409, 'membership'],
      ['POST', '/1', cluster.node(1).peerUrl, 409, 'membership'],
      ['PATCH', '/k', 'x', 405, 'method_not_allowed'],
      ['POST', '/status', 'x', 405, 'method_not_allowed'],
    ];
    for (const [method, target, body, status, code] of cases) {
      const r = await n.request(method, target, body);
      assert.equal(r.status, status, `${method} ${target.slice(0, 40)}: ${r.body}`);
      assert.equal(JSON.parse(r.body).error, code, `${method} ${target.slice(0, 40)}`);
      if (status === 405) assert.ok(r.headers.get('allow'), 'a 405 names the allowed methods');
    }

    // Too large, with a length: 413 (the body is discarded, not buffered).
    const big = await httpRequest(n.apiPort, { method: 'PUT', path: '/big' }, Buffer.alloc(2 * 1024 * 1024, 1));
    assert.equal(big.status, 413);
    assert.equal(JSON.parse(big.body).error, 'body_too_large');
    // Declared far too large: refused before any of it is read.
    const huge = await httpRequest(n.apiPort, { method: 'PUT', path: '/huge', headers: { 'content-length': String(1 << 30) } });
    assert.equal(huge.status, 413);
    // Too large, chunked (no length): refused once the cap is passed.
    const chunked = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: n.apiPort, method: 'PUT', path: '/big-chunked' }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      const chunk = Buffer.alloc(64 * 1024, 7);
      let sent = 0;
      const pump = (): void => {
        while (sent < 2 * 1024 * 1024) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    });
    assert.equal(chunked, 413);

    // Not HTTP at all, and a header block that is too large.
    const garbage = await rawRequest(n.apiPort, 'HELLO THERE\r\n\r\n');
    assert.match(garbage, /^HTTP\/1\.1 400/);
    const hugeHeader = await rawRequest(n.apiPort, `GET /k HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    assert.match(hugeHeader, /^HTTP\/1\.1 431/);

    // Still serving, and the values of the earlier tests are intact.
    assert.equal((await cluster.node(2).get('put-get-1')).body, 'value from 1');
    assert.equal(await cluster.putOk(2, 'after-garbage', 'ok') > 0, true);
  });

  it('malformed peer requests get 4xx and the cluster keeps serving', async function () {
    const peerPort = cluster.node(3).peerPort;
    const statuses: number[] = [];
    const send = async (opts: http.RequestOptions, body?: Buffer): Promise<void> => {
      const r = await httpRequest(peerPort, opts, body);
      statuses.push(r.status);
      assert.ok(r.status >= 400 && r.status < 500, `peer answered ${r.status} to ${opts.method} ${opts.path}: ${r.body}`);
    };
    await send({ method: 'POST', path: '/raft' }, Buffer.from('not msgpack at all'));
    await send({ method: 'POST', path: '/raft', headers: { 'content-type': 'application/octet-stream' } }, Buffer.from([0xc1, 0xff, 0x00]));
    await send({ method: 'GET', path: '/raft' });
    await send({ method: 'POST', path: '/nope' }, Buffer.from('x'));
    await send({ method: 'POST', path: '/raft/snapshot' }, Buffer.from('garbage'));
    const garbage = await rawRequest(peerPort, 'GARBAGE\r\n\r\n');
    assert.match(garbage, /^HTTP\/1\.1 4\d\d/);
    assert.equal(statuses.length, 5);
    // The node and the cluster are fine.
    const rev = await cluster.putOk(3, 'after-peer-garbage', 'ok');
    assert.equal((await cluster.node(1).get('after-peer-garbage')).headers.get('x-raftkv-revision'), String(rev));
    const s = await cluster.node(3).status();
    assert.equal(s.state, 'running');
  });

  it('adds a fourth node over the API (POST /4) and it catches up, then removes it (DELETE /4)', async function () {
    const n4 = cluster.node(4);
    const added = await cluster.node(1).request('POST', '/4', n4.peerUrl);
    assert.equal(added.status, 204, added.body);
    n4.start({ join: true });
    // It catches up on everything written before it existed...
    const before = await cluster.node(1).status();
    await waitFor('node 4 to catch up', 60_000, async () => {
      const s = await n4.status();
      return s.applied >= before.applied ? s : undefined;
    });
    assert.equal((await n4.get('put-get-3', 'serializable')).body, 'value from 3');
    assert.equal((await n4.get('every-2-7')).body, 'v2.7');
    // ... takes writes itself and counts as a voter.
    const rev = await cluster.putOk(4, 'from-node-4', 'hello');
    assert.equal((await cluster.node(1).get('from-node-4')).headers.get('x-raftkv-revision'), String(rev));
    const s1 = await cluster.node(1).status();
    assert.deepEqual(s1.members.voters.map((v) => v.id).sort(), [1, 2, 3, 4]);

    // Remove it again: the cluster keeps serving with three, and node 4 exits by itself.
    const removed = await cluster.node(2).request('DELETE', '/4');
    assert.equal(removed.status, 204, removed.body);
    const exit = await n4.waitExit(30_000);
    assert.equal(exit.code, 0, `node 4 exited with ${JSON.stringify(exit)}`);
    assert.ok(n4.hasLog((l) => l.msg === 'stopped' && l.reason === 'removed'));
    await cluster.putOk(1, 'after-removal', 'ok');
    assert.deepEqual((await cluster.node(3).status()).members.voters.map((v) => v.id).sort(), [1, 2, 3]);
  });

  it('SIGTERM with writes in flight: they get 204, 503 (not proposed) or 504 (outcome unknown), the node exits 0 and restarts with every acknowledged write', async function () {
    const n = cluster.node(3);
    const acked = new Map<string, string>();
    const answers: number[] = [];
    let writing = true;
    const writers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; writing; i++) {
        const key = `inflight-${w}-${i}`;
        try {
          const r = await n.put(key, `v${i}`);
          answers.push(r.status);
          if (r.status === 204) acked.set(key, `v${i}`);
        } catch {
          return; // the listener is closed: no more requests reach this node
        }
      }
    });
    await waitFor('writes flowing through node 3', 30_000, () => (acked.size >= 20 ? true : undefined), 10);
    const exit = await n.kill('SIGTERM');
    writing = false;
    await Promise.all(writers);
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(n.hasLog((l) => l.msg === 'node stopped'));
    for (const status of answers) assert.ok([204, 503, 504].includes(status), `a write in flight got ${status}`);
    await cluster.putOk(1, 'while-3-down', 'x');

    // SIGTERM during start-up (storage opened, before it serves): still a clean exit.
    const logsBefore = n.logs.length;
    n.start();
    await waitFor('node 3 to begin starting', 30_000, () => (n.logs.length > logsBefore ? true : undefined), 5);
    const early = await n.kill('SIGTERM');
    assert.deepEqual(early, { code: 0, signal: null }, 'SIGTERM during start-up');

    n.start();
    await waitFor('node 3 to serve again', 60_000, async () => ((await n.get('while-3-down')).status === 200 ? true : undefined), 200);
    for (const [key, value] of acked) assert.equal((await n.get(key)).body, value, `acknowledged ${key} lost`);
    assert.equal((await n.get('put-get-2')).body, 'value from 2');
    // Every log line of every node was structured JSON with a level.
    for (const node of cluster.nodes) {
      assert.deepEqual(node.rawLines, [], `node ${node.id} wrote non-JSON log lines`);
      for (const l of node.logs) assert.ok(['debug', 'info', 'warn', 'error'].includes(l.level));
    }
  });
});

describe('kv: the raftkv command line', function () {
  it('--help explains every flag and exits 0', async function () {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0);
    for (const flag of ['--id', '--cluster', '--port', '--join', '--data-dir', '--wal-mode', '--read-index-fanout', '--idle-spin-us', '--snapshot-count', '--snapshot-bytes-max', '--listen-host']) {
      assert.ok(r.stdout.includes(flag), `--help does not mention ${flag}`);
    }
  });

  it('bad flags give a clear error and exit code 2', async function () {
    const cluster = '--cluster=http://127.0.0.1:1,http://127.0.0.1:2';
    const cases: [string[], RegExp][] = [
      [['--bogus'], /unknown flag --bogus/],
      [['--id', '1', '--port', '3'], /--cluster is required/],
      [['--id', '3', cluster, '--port', '9'], /--id must be between 1 and 2/],
      [['--id', 'x', cluster, '--port', '9'], /--id must be an integer/],
      [['--id', '1', cluster, '--port', '70000'], /--port must be between/],
      [['--id', '1', '--cluster', 'nope', '--port', '9'], /not a URL/],
      [['--id', '1', '--cluster', 'http://a:1,http://a:1', '--port', '9'], /lists http:\/\/a:1 twice/],
      [['--id', '1', cluster, '--port', '9', '--wal-mode', 'fast'], /--wal-mode must be/],
      [['--id', '1', cluster, '--port', '9', '--read-index-fanout', 'some'], /--read-index-fanout must be quorum or all/],
      [['--id', '1', cluster, '--port', '9', '--idle-spin-us', '-5'], /--idle-spin-us must be an integer/],
      [['--id', '1', cluster, '--port', '9', '--idle-spin-us', '500000'], /--idle-spin-us must be between 0 and 100000/],
      [['--id', '1', cluster, '--port', '9', '--snapshot-count'], /--snapshot-count needs a value/],
      [['--id', '1', cluster, '--port', '9', '--log-level', 'loud'], /--log-level must be/],
      [['--id', '1', cluster, '--port', '9', '--snapshot-bytes-max', '1G'], /--snapshot-bytes-max must be an integer/],
      [['--id', '1', cluster, '--port', '9', 'stray'], /unexpected argument/],
    ];
    for (const [args, expected] of cases) {
      assert.throws(() => parseArgs(args), (err: unknown) => err instanceof UsageError && expected.test(err.message), args.join(' '));
    }
    const defaults = parseArgs(['--id', '2', cluster, '--port', '9']);
    assert.equal(defaults?.dataDir, 'raftkv-2');
    assert.equal(defaults?.listenHost, '127.0.0.1');
    assert.equal(defaults?.join, false);
    assert.equal(defaults?.readIndexFanout, 'quorum');
    assert.equal(defaults?.idleSpinUs, 1000);
    assert.equal(defaults?.snapshotBytesMax, 8 * 1024 * 1024 * 1024);
    assert.equal(parseArgs(['--id', '2', cluster, '--port', '9', '--snapshot-bytes-max', '0'])?.snapshotBytesMax, 0);
    // The real binary: message on stderr, exit code 2, no stack trace.
    const r = await runCli(['--id', '1', cluster, '--port', '9', '--wal-mode', 'fast']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /--wal-mode must be auto, buffered, direct or dsync/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace for a usage error');
  });
});
