// What a payload may hold before it is parsed. JSON.parse recurses: a payload nested 100,000 deep
// overflows the stack, and one nested past 1,000 is refused later by SQLite's JSON functions. One
// loop over the text, without recursion, finds such a payload first.

export interface JsonLimits {
  /** Deepest nesting of arrays and objects. */
  maxDepth: number;
  /** Longest string (a key or a value), bytes as sent (escapes included). */
  maxStringBytes: number;
  /** Most keys in one object. */
  maxKeys: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const OPEN_ARRAY = 0x5b;
const CLOSE_OBJECT = 0x7d;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;

/** UTF-8 length of a UTF-16 code unit (a surrogate pair counts 2 + 2). */
const utf8Bytes = (c: number) => (c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c <= 0xdfff ? 2 : 3);

/**
 * The first limit `text` breaks, as a reason for its dead letter; undefined when it keeps them all.
 * Syntax is not checked here (JSON.parse does that); brackets inside strings are skipped.
 */
export function breaksLimits(text: string, limits: JsonLimits): string | undefined {
  /** Per open container: its key count, or -1 for an array. */
  const keys: number[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const start = i;
      let bytes = 0;
      for (i++; i < text.length; i++) {
        const s = text.charCodeAt(i);
        if (s === QUOTE) break;
        if (s === BACKSLASH) {
          i++;
          bytes += 2;
        } else {
          bytes += utf8Bytes(s);
        }
      }
      if (bytes > limits.maxStringBytes) return `a string at offset ${start} is longer than ${limits.maxStringBytes} bytes`;
      if (expectKey) {
        expectKey = false;
        const depth = keys.length - 1;
        if (++keys[depth] > limits.maxKeys) return `an object at depth ${depth + 1} has more than ${limits.maxKeys} keys`;
      }
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (keys.push(c === OPEN_OBJECT ? 0 : -1) > limits.maxDepth) return `nested deeper than ${limits.maxDepth} levels`;
      expectKey = c === OPEN_OBJECT;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      keys.pop();
      expectKey = false;
    } else if (c === COMMA) {
      expectKey = keys.length > 0 && keys[keys.length - 1] >= 0;
    }
  }
  return undefined;
}
