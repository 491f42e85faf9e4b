import assert from "node:assert/strict";
import { createHash, scryptSync } from "node:crypto";

/**
 * Asserts that a stored pairing record (its JSON text) holds neither the code nor a fast hash of
 * it (any spelling: with or without its dash, either case), and that its hash is scrypt of the code
 * under the record's own salt.
 */
export function assertOnlySlowHash(text: string, code: string): void {
  const spellings = [code, code.replace("-", "")].flatMap((spelling) => [spelling, spelling.toLowerCase()]);
  for (const spelling of spellings) {
    assert.ok(!text.includes(spelling), `the code (${spelling}) is not stored in clear`);
    for (const algorithm of ["md5", "sha1", "sha256", "sha512", "sha3-256"]) {
      const digest = createHash(algorithm).update(spelling).digest();
      for (const encoding of ["hex", "base64", "base64url"] as const) assert.ok(!text.includes(digest.toString(encoding)), `no ${algorithm} of the code (${encoding})`);
    }
  }
  const record = JSON.parse(text) as Record<string, unknown>;
  assert.equal(record.code_sha256, undefined, "no unsalted SHA-256 field");
  assert.match(String(record.salt), /^[0-9a-f]{32}$/, "a 16-byte salt");
  const expected = scryptSync(code.replace("-", ""), Buffer.from(String(record.salt), "hex"), 32, { N: 16_384, r: 8, p: 1 }).toString("hex");
  assert.equal(record.code_scrypt, expected, "the hash is scrypt (N=16384) of the code with the record's salt");
}

/** A record as Nightshift wrote it before its pairing code was hashed with scrypt: an unsalted SHA-256. */
export const oldRecord = (code: string, expiresAt: number) => ({ code_sha256: createHash("sha256").update(code.replace("-", "")).digest("hex"), expires_at: expiresAt, attempts: [] });
