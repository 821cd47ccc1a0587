/**
 * A webhook receiver for tests: a tiny HTTP server on 127.0.0.1 that records every request and
 * answers as told — a status code, or `hang` (keep the request open, never answer). It can be
 * closed and reopened on the same port, to play a receiver that is down for a while.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitUntil } from './process.ts';

export interface Received {
  headers: Record<string, string>;
  body: string;
  /** Date.now() when the body had arrived. */
  at: number;
  /** Whether it was answered with a 2xx. */
  accepted: boolean;
}

export interface Receiver {
  port: number;
  url: string;
  received: Received[];
  /** How the next requests are answered. */
  answer: number | 'hang';
  /** Resolves once `n` requests have arrived. */
  waitFor(n: number, timeoutMs?: number): Promise<Received[]>;
  stop(): Promise<void>;
  /** Listens again on the same port. */
  restart(): Promise<void>;
}

export async function startReceiver(path = '/hook'): Promise<Receiver> {
  const held: ServerResponse[] = [];
  let server: Server;
  const receiver: Receiver = {
    port: 0,
    url: '',
    received: [],
    answer: 200,
    waitFor: (n, timeoutMs = 60_000) => waitUntil(`${n} webhook requests (got ${receiver.received.length})`, async () => receiver.received.length >= n && receiver.received, timeoutMs, 50),
    async stop() {
      for (const res of held.splice(0)) res.destroy();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
    async restart() {
      await listen(receiver.port);
    },
  };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const answer = receiver.answer;
      receiver.received.push({
        headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)])),
        body: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
        accepted: answer !== 'hang' && answer >= 200 && answer < 300,
      });
      if (answer === 'hang') {
        held.push(res);
        return;
      }
      res.writeHead(answer, { 'content-type': 'text/plain' }).end(answer < 300 ? 'thanks' : 'not now');
    });
  };
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server = createServer(handle);
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        receiver.port = (server.address() as AddressInfo).port;
        receiver.url = `http://127.0.0.1:${receiver.port}${path}`;
        resolve();
      });
    });
  await listen(0);
  return receiver;
}
