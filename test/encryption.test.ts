// Encryption at rest: with buffer.encryption.keyFile set, no file in the data folder shows a
// reading, a dead letter or a queued message to `strings`; a wrong key fails start-up clearly.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../agent/consume/store/index.js';
import { cleanup, startAgent, tempDir } from './helpers/agent.js';
import { connect } from './helpers/mqtt.js';
import { batch, record } from './helpers/records.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach(cleanup));
const newDir = () => {
  const d = tempDir();
  dirs.push(d);
  return d;
};

/** Which of `markers` `strings` finds in any file under `root`. */
function stringsFind(root: string, markers: string[]): string[] {
  const files: string[] = [];
  const walk = (p: string) => {
    if (statSync(p).isDirectory()) readdirSync(p).forEach((c) => walk(join(p, c)));
    else if (statSync(p).isFile()) files.push(p);
  };
  walk(root);
  const text = files.map((f) => execFileSync('strings', ['-a', '-n', '6', f], { maxBuffer: 64 << 20 }).toString()).join('\n');
  return markers.filter((m) => text.includes(m));
}

const schema = { name: 'door', topics: ['strict/#'], mode: 'strict', fields: { open: { type: 'boolean', required: true } } };
const MARKERS = {
  reading: 'zebra-reading-7731',
  deadLetter: 'zebra-refused-7732',
  queued: 'zebra-queued-7733',
  retained: 'zebra-retained-7734',
};

/** An agent that leaves each kind of marker behind: stored, dead-lettered, queued for an offline session, retained. */
async function leaveMarkers(dir: string, extra: Record<string, unknown>): Promise<string> {
  const agent = await startAgent({ ingest: { schemas: [schema] }, store: { gatherMs: 50 }, ...extra }, dir);
  const offline = await connect(agent.mqttUrl, { clientId: 'offline-sub', clean: false });
  await offline.subscribeAsync('q/#', { qos: 1 });
  await offline.endAsync();
  const client = await connect(agent.mqttUrl);
  await client.publishAsync('plain/x', JSON.stringify({ note: MARKERS.reading }), { qos: 1 });
  // A dead letter keeps its payload as base64: its topic is the marker `strings` could read.
  await client.publishAsync(`strict/${MARKERS.deadLetter}`, JSON.stringify({ open: 'yes' }), { qos: 1 });
  await client.publishAsync('q/x', JSON.stringify({ note: MARKERS.queued }), { qos: 1 });
  await client.publishAsync('r/x', JSON.stringify({ note: MARKERS.retained }), { qos: 1, retain: true });
  await client.endAsync();
  expect(await agent.runtime.store!.caughtUp(agent.runtime.log.lastSeq)).toBe(true);
  expect((await agent.runtime.log.deadLetters(5)).length).toBe(1);
  await new Promise((r) => setTimeout(r, 200)); // the broker's session store writes behind
  await agent.stop();
  return join(dir, 'data');
}

describe('encryption at rest', () => {
  it('control: without a key, strings finds the markers in the data folder', async () => {
    const data = await leaveMarkers(newDir(), {});
    expect(stringsFind(data, Object.values(MARKERS)).sort()).toEqual(Object.values(MARKERS).sort());
  });

  it('with buffer.encryption.keyFile, strings finds none of them; the agent reads them back; a wrong key stops start-up', async () => {
    const dir = newDir();
    const keyFile = join(dir, 'at-rest.key');
    writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    const data = await leaveMarkers(dir, { buffer: { encryption: { keyFile } } });
    expect(stringsFind(data, Object.values(MARKERS))).toEqual([]);

    // The same key reads everything back: the store, the dead letter, the queued message.
    const again = await startAgent({ ingest: { schemas: [schema] }, buffer: { encryption: { keyFile } } }, dir);
    try {
      expect((await again.runtime.store!.target.query({ topic: 'plain/x' }))[0].payload).toEqual({ note: MARKERS.reading });
      expect((await again.runtime.log.deadLetters(1))[0].topic).toBe(`strict/${MARKERS.deadLetter}`);
      const back = await connect(again.mqttUrl, { clientId: 'offline-sub', clean: false });
      const got = await new Promise<string>((resolve) => back.once('message', (_t, p) => resolve(p.toString())));
      expect(got).toContain(MARKERS.queued);
      await back.endAsync();
    } finally {
      await again.stop();
    }

    const wrongKey = join(dir, 'wrong.key');
    writeFileSync(wrongKey, randomBytes(32).toString('hex'), { mode: 0o600 });
    await expect(startAgent({ buffer: { encryption: { keyFile: wrongKey } } }, dir)).rejects.toThrow(/does not hold the key/);
  });

  it('the files store: each line sealed; read back with the key, not without', async () => {
    const dir = join(newDir(), 'store');
    const key = randomBytes(32);
    let store = await openStore('files', dir, key);
    await store.write(batch([{ ...record(1), payload: { note: 'zebra-files-7736' } }, record(2)]));
    expect((await store.query({})).map((r) => r.seq)).toEqual([1, 2]);
    await store.close();
    expect(stringsFind(dir, ['zebra-files-7736'])).toEqual([]);
    store = await openStore('files', dir, key); // reopened: the tail is read back through the key
    expect(store.lastSeq()).toBe(2);
    await store.write(batch([record(2), record(3)]));
    expect((await store.query({})).map((r) => [r.seq, r.payload])).toEqual([
      [1, { note: 'zebra-files-7736' }],
      [2, record(2).payload],
      [3, record(3).payload],
    ]);
    await store.close();
    const plainDir = join(newDir(), 'store');
    const plain = await openStore('files', plainDir);
    await plain.write(batch([{ ...record(1), payload: { note: 'zebra-files-7737' } }]));
    await plain.close();
    expect(stringsFind(plainDir, ['zebra-files-7737'])).toEqual(['zebra-files-7737']); // control
  });

  it('the SQLite store: a plain store is encrypted in place once a key is set; a wrong or missing key is a clear error', async () => {
    const path = join(newDir(), 'store.db');
    const key = randomBytes(32);
    let store = await openStore('sqlite', path);
    // The topic, kept once as it is: the readings' blocks are deflated, so their text is not there to find.
    await store.write(batch([{ ...record(1, 'zebra/plain-7735'), payload: { note: 'zebra-note-7736' } }]));
    await store.close();
    expect(stringsFind(path, ['zebra/plain-7735'])).toEqual(['zebra/plain-7735']); // control
    store = await openStore('sqlite', path, key);
    expect((await store.query({}))[0]).toMatchObject({ topic: 'zebra/plain-7735', payload: { note: 'zebra-note-7736' } });
    await store.close();
    expect(stringsFind(path, ['zebra/plain-7735'])).toEqual([]);
    await expect(openStore('sqlite', path, randomBytes(32))).rejects.toThrow(
      /encrypted with another key than buffer.encryption.keyFile holds/,
    );
    await expect(openStore('sqlite', path)).rejects.toThrow(/is encrypted: set buffer.encryption.keyFile/);
  });
});
