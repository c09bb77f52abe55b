/** Free TCP ports on 127.0.0.1, for benchmarks and tests that start real servers. */

import { createServer, type AddressInfo, type Server } from 'node:net';

/** Ports the kernel just handed out and released (a small race, acceptable on 127.0.0.1). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () =>
      new Promise<Server>((resolve, reject) => {
        const s = createServer();
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve(s));
      }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}
