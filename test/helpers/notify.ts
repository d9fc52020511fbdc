// A datagram socket like systemd's NOTIFY_SOCKET, listened on by a small Python process (Node has no
// AF_UNIX datagram sockets): each message it gets, with when (its monotonic clock, ms).
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const RECEIVER = `
import json, socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print(json.dumps({"ready": True}), flush=True)
while True:
    data = s.recv(65536)  # no room for ancillary data: systemd-notify's barrier fd is closed, so it does not wait
    print(json.dumps({"at": time.monotonic() * 1000, "text": data.decode()}), flush=True)
`;

export interface NotifyMessage {
  at: number;
  text: string;
  /** Its assignments, e.g. { READY: '1', STATUS: '...' }. */
  fields: Record<string, string>;
}

export async function listenNotify(path: string): Promise<{ messages: NotifyMessage[]; close(): void }> {
  const proc = spawn('python3', ['-c', RECEIVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: NotifyMessage[] = [];
  const lines = createInterface({ input: proc.stdout });
  await new Promise<void>((resolve, reject) => {
    proc.once('error', reject);
    proc.once('exit', (code) => reject(new Error(`notify receiver exited (${code})`)));
    lines.on('line', (line) => {
      const m = JSON.parse(line) as { ready?: true; at: number; text: string };
      if (m.ready) return resolve();
      const fields = Object.fromEntries(
        m.text
          .split('\n')
          .filter(Boolean)
          .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
      );
      messages.push({ at: m.at, text: m.text, fields });
    });
  });
  return { messages, close: () => proc.kill() };
}
