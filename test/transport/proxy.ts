/**
 * A TCP proxy on 127.0.0.1 in front of a peer's server, for tests that must break a connection
 * at a chosen moment: requests always go through; the answers can be held back (as a peer's
 * held reply, or a stalled peer, keeps them), and every open connection can then be reset
 * (the connection dies) or closed (the peer restarts). Connections opened after a cut go
 * straight through again.
 */

import net from 'node:net';
import type { AddressInfo } from 'node:net';

interface Link {
  client: net.Socket;
  upstream: net.Socket;
  held: Buffer[];
}

export class CuttableProxy {
  private readonly links = new Set<Link>();
  private holding = false;
  /** Connections accepted so far. */
  connections = 0;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<CuttableProxy> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const proxy = new CuttableProxy(server, (server.address() as AddressInfo).port);
    server.on('connection', (client) => proxy.accept(client, targetPort));
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** From now on answers are kept back; requests still reach the peer. */
  holdAnswers(): void {
    this.holding = true;
  }

  /** Resets every open connection (RST), losing held answers; later connections pass. */
  resetConnections(): void {
    this.cut((l) => l.client.resetAndDestroy());
  }

  /** Closes every open connection as a restarting peer does (FIN), losing held answers;
   * later connections pass. */
  endConnections(): void {
    this.cut((l) => l.client.end());
  }

  async close(): Promise<void> {
    this.cut((l) => l.client.destroy());
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private cut(closeClient: (l: Link) => void): void {
    this.holding = false;
    for (const l of [...this.links]) {
      this.links.delete(l);
      l.held = [];
      l.upstream.destroy();
      closeClient(l);
    }
  }

  private accept(client: net.Socket, targetPort: number): void {
    this.connections++;
    const upstream = net.connect(targetPort, '127.0.0.1');
    const link: Link = { client, upstream, held: [] };
    this.links.add(link);
    client.on('data', (d: Buffer) => upstream.write(d));
    upstream.on('data', (d: Buffer) => {
      if (!this.links.has(link)) return;
      if (this.holding) link.held.push(d);
      else client.write(d);
    });
    const drop = () => {
      if (!this.links.delete(link)) return;
      upstream.destroy();
      client.destroy();
    };
    client.on('error', drop);
    client.on('close', drop);
    upstream.on('error', drop);
    upstream.on('close', drop);
  }
}
