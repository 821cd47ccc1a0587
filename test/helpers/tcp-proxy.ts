/**
 * A TCP proxy in the test process, to take a server "away" and bring it back without touching
 * the server itself (the machine's PostgreSQL is shared: never stopped by a test).
 *
 * `down()` closes the listening socket and cuts every open connection (clients see the
 * connection end, as when a server restarts; new connections are refused: ECONNREFUSED);
 * `up()` listens again on the same port. Only 127.0.0.1.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** `url` with its host and port replaced by the proxy's. */
  via(url: string): string;
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const srv = createServer((inbound) => {
        const outbound = connect(targetPort, targetHost);
        sockets.add(inbound).add(outbound);
        const cut = () => {
          inbound.destroy();
          outbound.destroy();
          sockets.delete(inbound);
          sockets.delete(outbound);
        };
        inbound.on('error', cut).on('close', cut);
        outbound.on('error', cut).on('close', cut);
        inbound.pipe(outbound);
        outbound.pipe(inbound);
      });
      srv.once('error', reject);
      srv.listen(port, '127.0.0.1', () => {
        port = (srv.address() as { port: number }).port;
        server = srv;
        resolve();
      });
    });
  const down = async () => {
    const srv = server;
    server = undefined;
    for (const s of sockets) s.destroy();
    sockets.clear();
    if (srv) await new Promise<void>((r) => srv.close(() => r()));
  };
  await listen();
  return {
    get port() {
      return port;
    },
    via(url: string) {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    down,
    up: async () => {
      if (!server) await listen();
    },
    close: down,
  };
}
