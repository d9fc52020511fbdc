// Schemas changed over the API (checked, versioned, swapped in, kept across a restart), dead
// letters (list, inspect, replay after a fix, purge), and operations (stats, buffer, sync retry,
// config reload).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../agent/config-schema.js';
import { createLogger } from '../../agent/lib/logger.js';

import { startStages } from '../../agent/runtime/index.js';
import { cleanup, portOf, startAgent, tempDir, type InProcessAgent } from '../helpers/agent.js';
import { connect } from '../helpers/mqtt.js';
import { adminClient, WebClient, type WebClient as Client } from '../helpers/web.js';

describe('schemas and dead letters over the API', () => {
  let agent: InProcessAgent;
  let api: Client;

  beforeAll(async () => {
    agent = await startAgent();
    api = adminClient(agent);
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(agent.dir);
  });

  it('creates, versions, swaps in and removes schemas; bad ones change nothing; a restart keeps them', async () => {
    const bad = await api.post('/api/schemas', { name: 'room', topics: ['rooms/#'], fields: { t: 'kelvin' } });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/fields\.t|fields\/t/);
    // A field fitting none of its possible shapes: the one problem deepest inside, not one per shape.
    const badMax = await api.post('/api/schemas', { name: 'room', topics: ['rooms/#'], fields: { t: { type: 'float', max: 'hot' } } });
    expect(badMax.body).toMatchObject({
      message: 'body.fields.t.max: must be number',
      details: [{ parameter: 'body.fields.t.max', in: 'body', message: 'must be number' }],
    });
    const badRegex = await api.post('/api/schemas', {
      name: 'room',
      topics: ['rooms/#'],
      fields: { id: { type: 'string', pattern: '([' } },
    });
    expect(badRegex.status).toBe(400);
    // A pattern only a backtracking engine runs (a lookbehind): refused, naming the field.
    const backtracking = await api.post('/api/schemas', {
      name: 'room',
      topics: ['rooms/#'],
      fields: { id: { type: 'string', pattern: '(?<=a)b' } },
    });
    expect(backtracking.status).toBe(400);
    expect(backtracking.body.message).toMatch(/fields\.id\.pattern: .*no backreferences or lookarounds/);
    expect((await api.get('/api/schemas')).body).toEqual([]);

    const created = await api.post('/api/schemas', { name: 'room', topics: ['rooms/#'], fields: { t: { type: 'float', required: true } } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: 'room', version: 1, id: 'room@1', editable: true });
    expect((await api.post('/api/schemas', { name: 'room', topics: ['x'], fields: { v: 'float' } })).status).toBe(409);

    const mqtt = await connect(agent.mqttUrl);
    await mqtt.publishAsync('rooms/1', JSON.stringify({ rh: 40 }), { qos: 1 }); // refused by v1: no t
    const changed = await api.put('/api/schemas/room', { name: 'room', topics: ['rooms/#'], fields: { t: 'float', rh: 'float' } });
    expect(changed.body).toMatchObject({ version: 2, id: 'room@2' });
    await mqtt.publishAsync('rooms/1', JSON.stringify({ rh: 41 }), { qos: 1 }); // taken by v2, no restart
    await agent.runtime.store!.caughtUp(agent.runtime.log.lastSeq, 10_000);
    const stored = (await api.get('/api/data?topic=rooms/%23')).body.readings as { schema: string; payload: unknown }[];
    expect(stored).toEqual([expect.objectContaining({ schema: 'room@2', payload: { rh: 41 } })]);

    const versions = (await api.get('/api/schemas/room')).body;
    expect(versions.versions).toEqual([
      { version: 2, current: true },
      { version: 1, current: false },
    ]);
    expect((await api.get('/api/schemas/room?version=1')).body).toMatchObject({
      version: 1,
      doc: { fields: { t: { type: 'float', required: true } } },
    });
    expect((await api.get('/api/schemas/room?version=7')).status).toBe(404);
    const file = JSON.parse(readFileSync(join(agent.dir, 'data', 'schemas', 'room.json'), 'utf8')) as { version: number };
    expect(file.version).toBe(2);
    expect((await api.put('/api/schemas/room', { name: 'other', topics: ['x'], fields: { v: 'float' } })).status).toBe(400);
    expect((await api.put('/api/schemas/ghost', { name: 'ghost', topics: ['x'], fields: { v: 'float' } })).status).toBe(404);

    // The dead letter from v1: listed, inspected, then replayed against v2, which takes it.
    const letters = (await api.get('/api/dead-letters?topic=rooms/%23&reason=required')).body.deadLetters as {
      id: number;
      payloadText: string;
      time: string | number;
    }[];
    expect(letters).toHaveLength(1);
    expect(letters[0].payloadText).toBe('{"rh":40}');
    expect((await api.get(`/api/dead-letters/${letters[0].id}`)).body.reasons).toEqual([
      { path: '/t', message: "must have required property 't'" },
    ]);
    expect((await api.get('/api/dead-letters?topic=elsewhere/%23')).body.deadLetters).toEqual([]);
    const replayedAt = Date.now();
    const replay = await api.post('/api/dead-letters/replay', { ids: [letters[0].id] });
    expect(replay.body.replayed).toEqual([{ id: letters[0].id, seq: agent.runtime.log.lastSeq }]);
    expect((await api.get(`/api/dead-letters/${letters[0].id}`)).status).toBe(404);
    // Stored at the time it first arrived, not at the replay's.
    await agent.runtime.store!.caughtUp(agent.runtime.log.lastSeq, 10_000);
    const [replayed] = await agent.runtime.store!.target.query({ afterSeq: agent.runtime.log.lastSeq - 1 });
    expect(replayed.receivedAt).toBe(new Date(letters[0].time).getTime());
    expect(replayed.receivedAt).toBeLessThan(replayedAt);

    // Purge: by filter, and one by id.
    for (const n of [1, 2, 3]) await mqtt.publishAsync(`rooms/${n}`, 'not json', { qos: 1 });
    await mqtt.publishAsync('misc/1', 'not json', { qos: 1 });
    expect((await api.del('/api/dead-letters?topic=rooms/%23')).body).toEqual({ purged: 3 });
    const [misc] = (await api.get('/api/dead-letters')).body.deadLetters as { id: number; topic: string }[];
    expect(misc.topic).toBe('misc/1');
    expect((await api.del(`/api/dead-letters/${misc.id}`)).status).toBe(204);
    expect((await api.get('/api/dead-letters')).body.deadLetters).toEqual([]);
    await mqtt.endAsync();

    expect((await api.del('/api/schemas/room')).status).toBe(204);
    expect((await api.get('/api/schemas')).body).toEqual([]);
    await api.post('/api/schemas', { name: 'kept', topics: ['kept/#'], fields: { v: 'integer' } });
    // A restart reads the schema directory: what the API wrote is there.
    await agent.stop();
    const { config } = loadConfig(agent.configPath, {});
    const again = await startStages(config, createLogger('silent'));
    try {
      const client = new WebClient(`http://127.0.0.1:${portOf(again.listeners.http)}`, api.creds);
      expect(((await client.get('/api/schemas')).body as { id: string }[]).map((s) => s.id)).toEqual(['kept@1']);
      expect((await client.get('/api/schemas/room')).body.versions).toEqual([
        { version: 2, current: false },
        { version: 1, current: false },
      ]);
    } finally {
      await again.close();
    }
  });
});

describe('a schema change tried first (dry run)', () => {
  let agent: InProcessAgent;
  let api: Client;
  beforeAll(async () => {
    agent = await startAgent();
    api = adminClient(agent);
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(agent.dir);
  });

  it('says how many of the latest stored readings on its topics a schema would refuse, and why, changing nothing', async () => {
    const readings = [
      ...Array.from({ length: 6 }, (_, i) => ({ topic: `farm/${i}`, payload: { t: 20 + i } })),
      { topic: 'farm/x', payload: { t: 'warm' } },
      { topic: 'other/1', payload: { q: 1 } },
    ];
    expect((await api.post('/api/data', { readings })).status).toBe(201);
    await agent.runtime.store!.caughtUp(agent.runtime.log.lastSeq, 10_000);
    const tried = await api.post('/api/schemas/check', { name: 'farm', topics: ['farm/#'], fields: { t: 'float' } });
    expect(tried.status).toBe(200);
    expect(tried.body).toMatchObject({
      checked: 7,
      refused: 1,
      examples: [{ topic: 'farm/x', reasons: [{ path: '/t', message: expect.stringMatching(/number/) }] }],
    });
    const stricter = await api.post('/api/schemas/check', {
      name: 'farm',
      topics: ['farm/#'],
      mode: 'strict',
      fields: { t: 'float', h: { type: 'float', required: true } },
    });
    expect(stricter.body).toMatchObject({ checked: 7, refused: 7 });
    expect((await api.post('/api/schemas/check', { name: 'farm', topics: ['farm/#'], fields: { t: 'kelvin' } })).status).toBe(400);
    expect((await api.get('/api/schemas')).body).toEqual([]); // nothing was saved
    expect((await api.as({ basic: ['nobody', 'x'] }).post('/api/schemas/check', { name: 'farm', topics: ['farm/#'] })).status).toBe(401);
  });
});

describe('schema names are file names, never paths', () => {
  let agent: InProcessAgent;
  let api: Client;
  const outside = tempDir();

  beforeAll(async () => {
    agent = await startAgent();
    api = adminClient(agent);
    mkdirSync(join(outside, 'x'));
    writeFileSync(join(outside, 'x', 'secret@1.json'), '{"secret":"s3"}');
    writeFileSync(join(outside, 'x', 'plain@1.json'), 'PLAINTEXT-SECRET');
  });
  afterAll(async () => {
    await agent.stop();
    cleanup(agent.dir);
    cleanup(outside);
  });

  it('GraphQL and REST refuse a name with a path (400 naming `name`), reading nothing and telling nothing of what exists; a plain name still works', async () => {
    const up = '../'.repeat(12) + outside.slice(1);
    const answers: string[] = [];
    for (const file of ['x/secret', 'x/plain', 'x/missing']) {
      const r = await api.post('/graphql', {
        query: `query($n: String!) { schema(name: $n, version: 1) { doc } }`,
        variables: { n: `${up}/${file}` },
      });
      expect(r.body.data?.schema ?? null).toBeNull();
      expect(r.body.errors[0].message).toMatch(/^name: a schema name is/);
      answers.push(r.body.errors[0].message.replace(/not ".*"$/, ''));
    }
    expect(new Set(answers).size).toBe(1); // the same answer whether the file exists or not
    expect(JSON.stringify(answers)).not.toMatch(/s3|PLAINTEXT/);
    const rest = await api.get(`/api/schemas/${encodeURIComponent(`${up}/x/secret`)}?version=1`);
    expect(rest.status).toBe(400);
    expect((await api.post('/api/schemas', { name: 'n'.repeat(300), topics: ['long/#'], fields: { t: 'float' } })).status).toBe(400);
    expect((await api.post('/api/schemas', { name: '..', topics: ['dots/#'], fields: { t: 'float' } })).status).toBe(400);
    // Control: a plain name, created and read back both ways.
    expect((await api.post('/api/schemas', { name: 'room_1.v2', topics: ['rooms/#'], fields: { t: 'float' } })).status).toBe(201);
    const ok = await api.post('/graphql', { query: '{ schema(name: "room_1.v2") { version doc } }' });
    expect(ok.body.data.schema.version).toBe(1);
    expect((await api.get('/api/schemas/room_1.v2')).status).toBe(200);
    // Viewers see the file by its name in the schema folder, not the machine's paths.
    const listed = (await api.get('/api/schemas')).body as { name: string; source: string }[];
    expect(listed.find((x) => x.name === 'room_1.v2')!.source).toBe('room_1.v2.json');
    expect(JSON.stringify(listed)).not.toContain(agent.dir);
  });

  it("GraphQL answers the agent's own failures with a generic error and logs the real one (no paths, no contents)", async () => {
    // A history file broken on disk: reading it fails inside the agent, not because of the request.
    mkdirSync(join(agent.dataDir, 'schemas', '.history'), { recursive: true });
    writeFileSync(join(agent.dataDir, 'schemas', '.history', 'room_1.v2@7.json'), 'garbage-contents');
    const r = await api.post('/graphql', { query: '{ schema(name: "room_1.v2", version: 7) { version } }' });
    expect(r.body.errors[0]).toMatchObject({
      message: 'internal error (the agent logged it)',
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    });
    expect(JSON.stringify(r.body)).not.toMatch(/garbage|\/tmp\//);
    expect((await api.post('/graphql', { query: '{ schema(name: "room_1.v2") { version } }' })).body.data.schema.version).toBe(1); // control
  });
});

describe('operations', () => {
  it('stats, buffer, sync with a retry, config with a reload that names what needs a restart', async () => {
    const agent = await startAgent({
      sinks: [{ name: 'cloud', type: 'influx', url: 'http://127.0.0.1:9', database: 'x', retry: { initialMs: 60000, maxMs: 60000 } }],
    });
    const api = adminClient(agent);
    try {
      expect((await api.post('/api/data', { topic: 'ops/a', payload: { v: 1 } })).status).toBe(201);
      const stats = (await api.get('/api/stats')).body;
      expect(stats.ingest.accepted).toBe(1);
      expect(stats.log.lastSeq).toBe(1);
      const buffer = (await api.get('/api/buffer')).body;
      expect(buffer.consumers).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'sink:cloud', lagRecords: 1 })]));

      // The sink fails and waits a minute; a retry makes it try again at once.
      let sink: { state: string; failures: number } | undefined;
      for (let i = 0; i < 100 && sink?.state !== 'retrying'; i++) {
        [sink] = (await api.get('/api/sync')).body;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(sink!.state).toBe('retrying');
      expect((await api.get('/api/health')).body).toMatchObject({
        status: 'buffering',
        version: expect.any(String),
        parts: expect.arrayContaining([expect.objectContaining({ name: 'sink:cloud', state: 'retrying' })]),
      });
      const failures = sink!.failures;
      const retry = await api.post('/api/sync/cloud/retry');
      expect(retry.status).toBe(202);
      expect(retry.body).toEqual({ sink: 'cloud', wasFailing: true });
      for (let i = 0; i < 100 && sink!.failures === failures; i++) {
        [sink] = (await api.get('/api/sync')).body;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(sink!.failures).toBe(failures + 1);
      expect((await api.post('/api/sync/nowhere/retry')).status).toBe(404);

      // Reload: without a config file to read, a clear 400; with one (the CLI's way), below.
      const noFile = await api.post('/api/config/reload');
      expect(noFile.status).toBe(400);
      expect(noFile.body.message).toMatch(/without a config file/);
    } finally {
      await agent.stop();
      cleanup(agent.dir);
    }
  });

  it('config reload: a bad file changes nothing (400 naming the key); schemas apply, other keys need a restart', async () => {
    const agent = await startAgent();
    await agent.stop();
    const read = () => loadConfig(agent.configPath, {}).config;
    const runtime = await startStages(read(), createLogger('silent'), { reloadConfig: read });
    try {
      const api = new WebClient(`http://127.0.0.1:${portOf(runtime.listeners.http)}`, adminClient(agent).creds);
      const original = readFileSync(agent.configPath, 'utf8');
      type FileConfig = { broker: { mqtt: { port: unknown } }; ingest?: { schemas: unknown[] } };
      const edit = (change: (c: FileConfig) => void) => {
        const raw = parse(original) as FileConfig;
        change(raw);
        writeFileSync(agent.configPath, stringify(raw));
      };
      edit((c) => (c.broker.mqtt.port = 'many'));
      const bad = await api.post('/api/config/reload');
      expect(bad.status).toBe(400);
      expect(bad.body.message).toMatch(/broker\.mqtt\.port/);
      edit((c) => {
        c.ingest = { schemas: [{ name: 'live', topics: ['live/#'], fields: { v: 'integer' } }] };
        c.broker.mqtt.port = 1884;
      });
      const ok = await api.post('/api/config/reload');
      expect(ok.status).toBe(200);
      expect(ok.body.applied).toEqual(['ingest.schemas']);
      expect(ok.body.restartRequired).toEqual(['broker.mqtt.port']);
      expect(((await api.get('/api/schemas')).body as { id: string }[]).map((s) => s.id)).toEqual(['live@1']);
      const refused = await api.post('/api/data', { topic: 'live/x', payload: { v: 'text' } });
      expect(refused.status).toBe(422);
      writeFileSync(agent.configPath, original);
    } finally {
      await runtime.close();
      cleanup(agent.dir);
    }
  });
});
