import { describe, expect, it } from 'vitest';
import { decodeHead, encodeRecord, PAYLOAD_KEY, type NewRecord } from '../../agent/log/record.js';

const base: NewRecord = {
  topic: 'sensors/a/env',
  receivedAt: 1764496800123,
  clockSynced: true,
  payloadJson: '{"t":1,"payload":2}',
  clientId: 'pi-1',
  qos: 1,
};

function heads(seq: number, r: NewRecord) {
  const line = encodeRecord(seq, r);
  const at = line.indexOf(PAYLOAD_KEY);
  const { payload, ...parsed } = JSON.parse(line) as Record<string, unknown>;
  expect(JSON.parse(line.slice(at + PAYLOAD_KEY.length, -1))).toEqual(payload);
  return { fast: decodeHead(line, at), parsed };
}

describe('record heads read without JSON.parse', () => {
  it('reads every layout encodeRecord writes exactly as JSON.parse does', () => {
    const variants: NewRecord[] = [
      base,
      { ...base, clockSynced: false, qos: 0 },
      { ...base, clockSynced: false, boot: '55dacc46dec440f1', mono: 123456789, schema: 'env@2' },
      { ...base, deviceTime: 1764496800000, schema: 'env@2', qos: 2 },
      { ...base, encoding: 'base64', payloadJson: 'AAEC/w==' },
      { ...base, deviceTime: -5, encoding: 'base64', payloadJson: '', schema: 'raw@1' },
      { ...base, topic: 'ünïcode/🌡/+weird,topic=x y', clientId: '' },
    ];
    variants.forEach((r, i) => {
      const { fast, parsed } = heads(i + 1, r);
      expect(fast, `variant ${i}`).toEqual(parsed);
    });
  });

  it('leaves strings with escapes to JSON.parse (null), never misreads them', () => {
    expect(heads(9, { ...base, topic: 'plain' }).fast).toMatchObject({ topic: 'plain' }); // positive control: no escape, read by hand
    for (const topic of ['a"b', 'a\\b', 'a\nb', 'ends\\']) {
      expect(heads(9, { ...base, topic }).fast).toBeNull();
      expect(heads(9, { ...base, clientId: topic }).fast).toBeNull();
      expect(heads(9, { ...base, schema: topic }).fast).toBeNull();
    }
  });

  it('refuses lines of another layout', () => {
    const good = '{"seq":1,"topic":"a","receivedAt":2,"clockSynced":true,"clientId":"c","qos":1';
    expect(decodeHead(good, good.length)).toEqual({ seq: 1, topic: 'a', receivedAt: 2, clockSynced: true, clientId: 'c', qos: 1 }); // positive control
    expect(decodeHead('{"topic":"a","seq":1}', 21)).toBeNull();
    expect(decodeHead('{"seq":1,"topic":"a","receivedAt":2,"clockSynced":maybe,"clientId":"c","qos":1', 70)).toBeNull();
    expect(decodeHead('{"seq":x,"topic":"a","receivedAt":2,"clockSynced":true,"clientId":"c","qos":1', 75)).toBeNull();
  });
});
