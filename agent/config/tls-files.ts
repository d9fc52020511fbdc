// TLS files are checked when the config is: each readable, a certificate and key that parse (the
// key with its passphrase), and a key that belongs to its certificate. Found at `config check`,
// not as "no start line" when a listener or a sink first starts.
import { accessSync, constants, readFileSync } from 'node:fs';
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';

/** Where a config names TLS files: its key path, and the files. */
export interface TlsFiles {
  at: string;
  cert?: string;
  key?: string;
  ca?: string;
  passphrase?: string;
}

export function tlsFileProblems(entries: TlsFiles[]): string[] {
  return entries.flatMap((e) => {
    if (!e.cert !== !e.key)
      return [`${e.at}.cert, ${e.at}.key: a certificate needs its private key and a key its certificate: give both, or neither`];
    const unreadable = (['cert', 'key', 'ca'] as const).flatMap((k) => (e[k] === undefined ? [] : cannotRead(`${e.at}.${k}`, e[k])));
    if (unreadable.length) return unreadable;
    return [...(e.ca ? caProblem(e) : []), ...(e.cert && e.key ? pairProblem(e, e.cert, e.key) : [])];
  });
}

function cannotRead(key: string, file: string): string[] {
  try {
    accessSync(file, constants.R_OK);
    return [];
  } catch (err) {
    return [`${key}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`];
  }
}

function caProblem(e: TlsFiles): string[] {
  try {
    new X509Certificate(readFileSync(e.ca!));
    return [];
  } catch {
    return [`${e.at}.ca: ${e.ca} holds no PEM certificate`];
  }
}

function pairProblem(e: TlsFiles, certFile: string, keyFile: string): string[] {
  let cert: X509Certificate;
  let key: KeyObject;
  try {
    cert = new X509Certificate(readFileSync(certFile));
  } catch {
    return [
      `${e.at}.cert: ${certFile} holds no PEM certificate${looksLikeKey(certFile) ? ' (it holds a private key: are cert and key swapped?)' : ''}`,
    ];
  }
  try {
    key = createPrivateKey({ key: readFileSync(keyFile), passphrase: e.passphrase });
  } catch (err) {
    const encrypted = /passphrase|decrypt|bad decrypt/i.test((err as Error).message);
    return [
      `${e.at}.key: ${keyFile} ${encrypted ? `cannot be opened with ${e.passphrase === undefined ? 'no passphrase (give passphrase or passphraseFile)' : 'the passphrase given'}` : 'holds no PEM private key'}`,
    ];
  }
  return cert.checkPrivateKey(key) ? [] : [`${e.at}.cert, ${e.at}.key: the key is not the certificate's (from another pair?)`];
}

function looksLikeKey(file: string): boolean {
  return /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(readFileSync(file, 'utf8'));
}
