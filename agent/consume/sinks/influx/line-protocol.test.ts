import { describe, expect, it } from 'vitest';
import { decodeRecord, encodeRecord } from '../../../log/record.js';
import type { SchemaInfo } from '../sink.js';
import { escapeKey, escapeMeasurement, escapeStringValue, pointTime, toLine } from './line-protocol.js';

const opts = { measurement: 'mqtt', agentTag: '', topicTag: '' };

function record(payload: unknown, extra: { topic?: string; deviceTime?: number; schema?: string } = {}) {
  const line = encodeRecord(7, {
    topic: extra.topic ?? 'sensors/a',
    receivedAt: 1465839830100,
    clockSynced: true,
    deviceTime: extra.deviceTime,
    payloadJson: JSON.stringify(payload),
    clientId: 'c',
    schema: extra.schema,
    qos: 1,
  });
  return decodeRecord(line, 'pi-1');
}

const schema = (s: Partial<SchemaInfo>): SchemaInfo => ({ measurement: 'weather', tags: [], fields: {}, ...s });

function lineOf(payload: unknown, info?: SchemaInfo, o = opts): string {
  const out = toLine(record(payload), info, o);
  if ('error' in out) throw new Error(out.error);
  return out.line;
}

describe('line protocol escaping (the InfluxDB reference examples)', () => {
  it('escapes commas and spaces in measurements', () => {
    expect(escapeMeasurement('wea,ther')).toBe('wea\\,ther');
    expect(escapeMeasurement('wea ther')).toBe('wea\\ ther');
    expect(escapeMeasurement('my Measurement')).toBe('my\\ Measurement');
    expect(escapeMeasurement('a=b')).toBe('a=b'); // an equals sign needs no escape in a measurement
  });

  it('escapes commas, equals signs and spaces in tag keys, tag values and field keys', () => {
    expect(escapeKey('location place')).toBe('location\\ place');
    expect(escapeKey('us,midwest')).toBe('us\\,midwest');
    expect(escapeKey('temp=rature')).toBe('temp\\=rature');
    expect(escapeKey('tag Key1')).toBe('tag\\ Key1');
    expect(escapeKey('🍭')).toBe('🍭');
  });

  it('escapes double quotes and backslashes in string field values', () => {
    expect(escapeStringValue('too"hot"')).toBe('"too\\"hot\\""');
    expect(escapeStringValue('"string" within a string')).toBe('"\\"string\\" within a string"');
    expect(escapeStringValue('C:\\dir')).toBe('"C:\\\\dir"');
    expect(escapeStringValue('Launch 🚀')).toBe('"Launch 🚀"');
    expect(escapeStringValue('too hot/cold')).toBe('"too hot/cold"');
  });

  it('writes the reference lines from readings', () => {
    const w = schema({ tags: ['location'], fields: { temperature: 'integer' } });
    expect(lineOf({ location: 'us,midwest', temperature: 82 }, w)).toBe(
      'weather,location=us\\,midwest temperature=82i 1465839830100000007',
    );
    expect(
      lineOf({ 'location place': 'us-midwest', temperature: 82 }, schema({ tags: ['location place'], fields: { temperature: 'integer' } })),
    ).toBe('weather,location\\ place=us-midwest temperature=82i 1465839830100000007');
    expect(lineOf({ location: 'us-midwest', 'temp=rature': 82 }, w)).toBe(
      'weather,location=us-midwest temp\\=rature=82 1465839830100000007',
    );
    expect(lineOf({ location: 'us-midwest', temperature: 'too"hot"' }, w)).toBe(
      'weather,location=us-midwest temperature="too\\"hot\\"" 1465839830100000007',
    );
    expect(lineOf({ tagKey: '🍭', fieldKey: 'Launch 🚀' }, schema({ measurement: 'myMeasurement', tags: ['tagKey'] }))).toBe(
      'myMeasurement,tagKey=🍭 fieldKey="Launch 🚀" 1465839830100000007',
    );
    expect(lineOf({ temperature: 82 }, schema({ measurement: 'wea ther' }))).toBe('wea\\ ther temperature=82 1465839830100000007');
  });
});

describe('readings as points', () => {
  it('types fields from the schema: integers get i, floats stay bare, booleans and strings', () => {
    const info = schema({ fields: { count: 'integer', temp: 'float', ok: 'boolean', note: 'string' } });
    expect(lineOf({ count: 3, temp: 21, ok: true, note: 'fine' }, info)).toBe(
      'weather count=3i,temp=21,ok=true,note="fine" 1465839830100000007',
    );
    // A value that is not an integer where the schema says integer is still written, as a float.
    expect(lineOf({ count: 2.5 }, info)).toBe('weather count=2.5 1465839830100000007');
  });

  it('adds the agent and topic tags, sorted by key, and uses the device time when there is one', () => {
    const out = toLine(record({ v: 1, zone: 'b' }, { deviceTime: 1700000000000, topic: 'site 1/x' }), schema({ tags: ['zone'] }), {
      measurement: 'mqtt',
      agentTag: 'agent',
      topicTag: 'topic',
    });
    expect(out).toEqual({ line: 'weather,agent=pi-1,topic=site\\ 1/x,zone=b v=1 1700000000000000007' });
  });

  it('without a schema: the configured measurement, numbers as floats, nested fields flattened', () => {
    expect(lineOf({ a: { b: 1, c: [true, 'x'] }, n: null }, undefined)).toBe('mqtt a_b=1,a_c_0=true,a_c_1="x" 1465839830100000007');
    expect(lineOf(21.5, undefined)).toBe('mqtt value=21.5 1465839830100000007');
  });

  it('leaves the timestamp field and tags out of the fields; empty tag values are dropped', () => {
    const info = schema({ tags: ['site'], timestampField: 'ts', fields: { ts: 'timestamp', v: 'integer' } });
    expect(lineOf({ ts: '2026-01-01T00:00:00Z', site: '', v: 4 }, info)).toBe('weather v=4i 1465839830100000007');
  });

  it('turns newlines into spaces in names and into \\n in string values (line protocol has no newlines)', () => {
    expect(lineOf({ 'a\nb': 'x\ny' }, undefined)).toBe('mqtt a\\ b="x\\ny" 1465839830100000007');
  });

  it('writes a raw (base64) reading as one string field, payload', () => {
    const line = encodeRecord(8, {
      topic: 'raw/x',
      receivedAt: 1465839830100,
      clockSynced: true,
      payloadJson: Buffer.from([0, 255, 7]).toString('base64'),
      encoding: 'base64',
      clientId: 'c',
      qos: 0,
    });
    expect(toLine(decodeRecord(line, 'pi-1'), undefined, opts)).toEqual({ line: 'mqtt payload="AP8H" 1465839830100000008' });
  });

  it('refuses a reading with nothing to write as a field', () => {
    expect(toLine(record({ only: null }), undefined, opts)).toEqual({ error: expect.stringMatching(/no field/) });
    expect(toLine(record({ site: 'x' }), schema({ tags: ['site'] }), opts)).toEqual({ error: expect.stringMatching(/no field/) });
  });
});

describe('a reading whose time was corrected after the clock synchronised', () => {
  it('is written at its corrected time, with the correction as an integer field', () => {
    const line = encodeRecord(8, {
      topic: 'sensors/a',
      receivedAt: 1000,
      clockSynced: false,
      boot: 'b1',
      mono: 500,
      payloadJson: '{"t":1}',
      clientId: 'c',
      qos: 1,
    });
    const corrected = toLine(decodeRecord(line, 'pi-1', { b1: 1465839830000 }), undefined, opts);
    expect(corrected).toEqual({ line: `mqtt t=1,clock_correction_ms=${1465839830500 - 1000}i 1465839830500000008` });
    // The control: no offset known, no correction.
    expect(toLine(decodeRecord(line, 'pi-1', {}), undefined, opts)).toEqual({ line: 'mqtt t=1 1000000008' });
  });
});

describe('point times', () => {
  it('are the millisecond in ns with the sequence (mod 10^6) below it', () => {
    expect(pointTime(1465839830100, 7)).toBe('1465839830100000007');
    expect(pointTime(1465839830100, 123_456_789)).toBe('1465839830100456789');
    expect(pointTime(0, 5)).toBe('5');
    expect(pointTime(-2, 5)).toBe('-1999995');
    expect(BigInt(pointTime(1465839830100, 999_999)) < BigInt(pointTime(1465839830101, 0))).toBe(true); // never past the next ms
  });
});
