// How the log names what it keeps in LevelDB: c!<seq> chunks, d!<id> dead letters, q!... damaged
// chunks moved aside, m!... its metadata (cursors, drop counts, the last seq, the journal's number).
export type Op = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string };

export const hex = (n: number) => n.toString(16).padStart(16, '0');
export const utf8 = (s: string | number) => Buffer.from(String(s));
export const text = (v: Uint8Array) => Buffer.from(v).toString();
export const chunkKey = (firstSeq: number) => `c!${hex(firstSeq)}`;
export const deadLetterKey = (id: number) => `d!${hex(id)}`;
