// What a reading adds to the rollups: its series (topic, or topic and tag values) and its numeric fields.
import { topicMatches } from '../../../mqtt-topic/topic.js';

export interface SeriesRule {
  topics: string[];
  tags: string[];
}

export interface Sample {
  /** Tag values as canonical JSON (keys sorted), '{}' for none. */
  tags: string;
  fields: [name: string, value: number][];
  /** Numeric fields past the cap, not rolled up. */
  ignored: number;
}

const NO_TAGS = '{}';

/** Nested objects deeper than this are not looked into. */
const MAX_DEPTH = 4;

export class Extractor {
  private readonly tagsOf = new Map<string, string[]>();

  constructor(
    private readonly rules: SeriesRule[],
    private readonly maxFields: number,
  ) {}

  /** The series' tags and numeric fields of a parsed payload; null when it is not a JSON object. */
  sample(topic: string, payload: unknown): Sample | null {
    if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) return null;
    const object = payload as Record<string, unknown>;
    const tagNames = this.tags(topic);
    let tags = NO_TAGS;
    if (tagNames.length) {
      const values: Record<string, string> = {};
      for (const name of tagNames) {
        const v = object[name];
        if (v !== undefined && v !== null && typeof v !== 'object') values[name] = String(v);
      }
      tags = JSON.stringify(values, Object.keys(values).sort());
    }
    const fields: [string, number][] = [];
    let ignored = 0;
    const walk = (o: Record<string, unknown>, prefix: string, depth: number) => {
      for (const key of Object.keys(o)) {
        if (depth === 0 && tagNames.includes(key)) continue;
        const v = o[key];
        if (typeof v === 'number' && Number.isFinite(v)) {
          if (fields.length < this.maxFields) fields.push([prefix + key, v]);
          else ignored++;
        } else if (v !== null && typeof v === 'object' && !Array.isArray(v) && depth < MAX_DEPTH) {
          walk(v as Record<string, unknown>, `${prefix}${key}.`, depth + 1);
        }
      }
    };
    walk(object, '', 0);
    return { tags, fields, ignored };
  }

  private tags(topic: string): string[] {
    let tags = this.tagsOf.get(topic);
    if (!tags) {
      tags = this.rules.find((r) => r.topics.some((f) => topicMatches(f, topic)))?.tags ?? [];
      if (this.tagsOf.size > 10_000) this.tagsOf.clear();
      this.tagsOf.set(topic, tags);
    }
    return tags;
  }
}

/** The start of the bucket of width `width` ms holding `at` (UTC, multiples of the width since the epoch). */
export const bucketStart = (at: number, width: number) => Math.floor(at / width) * width;
