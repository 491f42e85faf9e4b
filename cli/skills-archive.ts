import { gunzipSync, inflateRawSync } from "node:zlib";
import { UsageError } from "./usage.ts";

/** One file from an archive: its path inside it (with `/`), content and whether it is executable. */
export interface ArchiveFile {
  path: string;
  content: Buffer;
  executable: boolean;
}

const MAX_UNPACKED_BYTES = 20 * 1024 * 1024;

/**
 * The regular files of a .tar.gz/.tgz or .zip, read in memory, never written by a general
 * extractor: links, devices and paths that climb out (`..`, absolute) are refused by name, so an
 * archive cannot place anything outside the skill's folder.
 */
export function readArchive(shown: string, data: Buffer): ArchiveFile[] {
  const lower = shown.toLowerCase();
  const files = lower.endsWith(".zip") ? readZip(shown, data) : readTarGz(shown, data);
  for (const file of files) checkPath(shown, file.path);
  return files;
}

export function isArchive(path: string): boolean {
  return /\.(?:tar\.gz|tgz|zip)$/i.test(path);
}

function checkPath(shown: string, path: string): void {
  if (path.startsWith("/") || /^[a-z]:/i.test(path) || path.split("/").some((part) => part === ".." ) || path.includes("\\") || path.includes("\0")) {
    throw new UsageError(`${shown}: holds a file at ${JSON.stringify(path)}, outside the skill's folder; such an archive is refused (ask its author for a plain one)`);
  }
}

function readTarGz(shown: string, data: Buffer): ArchiveFile[] {
  let tar: Buffer;
  try {
    tar = gunzipSync(data, { maxOutputLength: MAX_UNPACKED_BYTES + 1024 * 1024 });
  } catch (error) {
    throw new UsageError(`${shown}: is not a readable .tar.gz (${(error as Error).message}); check the download, or unpack it and add the folder`);
  }
  const files: ArchiveFile[] = [];
  let longName: string | undefined;
  let paxPath: string | undefined;
  for (let offset = 0; offset + 512 <= tar.length; ) {
    const header = tar.subarray(offset, offset + 512);
    if (header.every((byte) => byte === 0)) break;
    const field = (start: number, length: number) => header.subarray(start, start + length).toString("utf8").replace(/\0.*$/s, "");
    const size = parseInt(field(124, 12).trim() || "0", 8);
    if (!Number.isFinite(size) || size < 0) throw new UsageError(`${shown}: is a damaged tar archive; check the download`);
    const type = field(156, 1) || "0";
    const body = tar.subarray(offset + 512, offset + 512 + size);
    offset += 512 + Math.ceil(size / 512) * 512;
    const prefix = field(345, 155);
    const name = paxPath ?? longName ?? (prefix ? `${prefix}/${field(0, 100)}` : field(0, 100));
    if (type === "L") {
      longName = body.toString("utf8").replace(/\0.*$/s, "");
      continue;
    }
    if (type === "x") {
      paxPath = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(body.toString("utf8"))?.[1];
      continue;
    }
    if (type === "g") continue; // global pax header (git archive writes one): no file
    longName = paxPath = undefined;
    const path = name.replace(/^\.\//, "").replace(/\/+$/, "");
    if (type === "5" || path === "" || path === ".") continue;
    if (type !== "0" && type !== "7") throw new UsageError(`${shown}: ${path} is a ${type === "2" ? "symbolic link" : type === "1" ? "hard link" : "special file"}; a skill holds regular files only, so such an archive is refused`);
    files.push({ path, content: Buffer.from(body), executable: (parseInt(field(100, 8).trim() || "0", 8) & 0o111) !== 0 });
  }
  return files;
}

function readZip(shown: string, data: Buffer): ArchiveFile[] {
  const bad = (why: string) => new UsageError(`${shown}: ${why}; check the download, or unpack it and add the folder`);
  // The end-of-central-directory record sits in the last 64 KiB + 22 bytes.
  let end = -1;
  for (let index = data.length - 22; index >= Math.max(0, data.length - 65_557); index--) {
    if (data.readUInt32LE(index) === 0x06054b50) {
      end = index;
      break;
    }
  }
  if (end < 0) throw bad("is not a readable .zip");
  const count = data.readUInt16LE(end + 10);
  let offset = data.readUInt32LE(end + 16);
  const files: ArchiveFile[] = [];
  let total = 0;
  for (let entry = 0; entry < count; entry++) {
    if (offset + 46 > data.length || data.readUInt32LE(offset) !== 0x02014b50) throw bad("is a damaged .zip");
    const method = data.readUInt16LE(offset + 10);
    const compressed = data.readUInt32LE(offset + 20);
    const size = data.readUInt32LE(offset + 24);
    const nameLength = data.readUInt16LE(offset + 28);
    const extraLength = data.readUInt16LE(offset + 30);
    const commentLength = data.readUInt16LE(offset + 32);
    const unixMode = data.readUInt32LE(offset + 38) >>> 16;
    const local = data.readUInt32LE(offset + 42);
    const path = data.subarray(offset + 46, offset + 46 + nameLength).toString("utf8");
    offset += 46 + nameLength + extraLength + commentLength;
    if (path.endsWith("/")) continue;
    const kind = unixMode & 0o170000;
    if (kind === 0o120000) throw new UsageError(`${shown}: ${path} is a symbolic link; a skill holds regular files only, so such an archive is refused`);
    if (kind !== 0 && kind !== 0o100000) throw new UsageError(`${shown}: ${path} is a special file; a skill holds regular files only, so such an archive is refused`);
    total += size;
    if (total > MAX_UNPACKED_BYTES) throw new UsageError(`${shown}: unpacks to over ${MAX_UNPACKED_BYTES / 1024 / 1024} MiB; a skill should be a few instructions and scripts`);
    if (local + 30 > data.length || data.readUInt32LE(local) !== 0x04034b50) throw bad("is a damaged .zip");
    const start = local + 30 + data.readUInt16LE(local + 26) + data.readUInt16LE(local + 28);
    const raw = data.subarray(start, start + compressed);
    let content: Buffer;
    if (method === 0) content = Buffer.from(raw);
    else if (method === 8) {
      try {
        content = inflateRawSync(raw, { maxOutputLength: size + 1 });
      } catch {
        throw bad(`cannot unpack ${path}`);
      }
    } else throw bad(`packs ${path} with a method this reader does not know (${method}); repack it with plain zip`);
    if (content.length !== size) throw bad(`${path} unpacks to the wrong size`);
    files.push({ path, content, executable: (unixMode & 0o111) !== 0 });
  }
  return files;
}
