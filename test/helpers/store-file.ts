// The SQLite store's file opened as a user would with the sqlite3 shell: its `readings` view works.
import Database from 'better-sqlite3-multiple-ciphers';
import { defineSqlarUncompress } from '../../agent/consume/store/sqlite-db.js';

export function openStoreFile(path: string): Database.Database {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  defineSqlarUncompress(db);
  return db;
}
