// MQTT over TCP and over TLS. Each accepted socket is tagged with what auth needs, then handed to Aedes.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { setConnectionInfo } from './connection-info.js';

export interface TcpListenerOptions {
  host: string;
  port: number;
}

export interface TlsListenerOptions extends TcpListenerOptions {
  cert: string;
  key: string;
  ca?: string;
  passphrase?: string;
  clientCertificates: 'none' | 'optional' | 'required';
}

export interface Listener {
  name: string;
  address: string;
  close(): Promise<void>;
}

type Handle = (conn: Duplex) => void;

export async function listenTcp(name: string, opts: TcpListenerOptions, maxConnections: number, handle: Handle): Promise<Listener> {
  const server = net.createServer((socket) => {
    setConnectionInfo(socket, { listener: name, remoteAddress: socket.remoteAddress ?? '' });
    handle(socket);
  });
  return start(name, server, opts, maxConnections);
}

export async function listenTls(name: string, opts: TlsListenerOptions, maxConnections: number, handle: Handle): Promise<Listener> {
  const server = tls.createServer(
    {
      cert: readFileSync(opts.cert),
      key: readFileSync(opts.key),
      ca: opts.ca ? readFileSync(opts.ca) : undefined,
      passphrase: opts.passphrase,
      requestCert: opts.clientCertificates !== 'none',
      rejectUnauthorized: opts.clientCertificates === 'required',
    },
    (socket) => {
      const cn = socket.authorized ? socket.getPeerCertificate().subject?.CN : undefined;
      setConnectionInfo(socket, {
        listener: name,
        remoteAddress: socket.remoteAddress ?? '',
        certIdentity: typeof cn === 'string' ? cn : undefined,
      });
      handle(socket);
    },
  );
  server.on('tlsClientError', () => {}); // a failed handshake concerns that client only
  return start(name, server, opts, maxConnections);
}

async function start(name: string, server: net.Server, opts: TcpListenerOptions, maxConnections: number): Promise<Listener> {
  server.maxConnections = maxConnections;
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as net.AddressInfo;
  return {
    name,
    address: formatAddress(addr.address, addr.port),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
