/** A sandbox's files (`sb.files`): any path the sandbox can reach, resolved
 * inside it by hulld (…/fs/{path}). A relative path is under /tmp, as in
 * the older files API. */
import type { IncomingMessage } from "node:http";
import { Readable } from "node:stream";
import { NotFound } from "./errors.js";
import { type FileEntry, fileEntry, type Json, type WatchEvent } from "./models.js";
import { ndjsonResponse } from "./ndjson.js";
import type { Transport } from "./transport.js";
import { seg } from "./util.js";

/** What files.write() takes: bytes, text (UTF-8), or a stream (sent chunked). */
export type FileData = string | Uint8Array | Readable | AsyncIterable<Uint8Array>;

/** An absolute sandbox path for `path` (relative: under /tmp). */
export function sandboxPath(path: string): string {
  const p = String(path);
  if (!p || p.includes("\0")) throw new TypeError(`${JSON.stringify(path)}: not a path`);
  return p.startsWith("/") ? p : `/tmp/${p}`;
}

/** A running files.watch(): iterate its events; close() (or a break out of
 * the loop) ends it. close() while a loop elsewhere awaits the next event
 * ends that loop, as the end of the events (not an error). */
export class Watcher implements AsyncIterable<WatchEvent> {
  private readonly lines: AsyncGenerator<Json>;
  private closed = false;
  constructor(private readonly res: IncomingMessage) {
    this.lines = ndjsonResponse(res);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<WatchEvent> {
    try {
      for await (const d of this.lines) {
        yield {
          type: String(d.type) as WatchEvent["type"],
          path: typeof d.path === "string" ? d.path : "",
          dir: d.dir === true,
          raw: d,
        };
      }
    } catch (e) {
      if (!this.closed) throw e; // else: our own close() cut the connection
    } finally {
      this.close();
    }
  }

  close(): void {
    this.closed = true;
    this.res.destroy();
  }
}

export class Files {
  constructor(
    private readonly t: Transport,
    private readonly sandboxId: string,
  ) {}

  private url(path: string): string {
    const abs = sandboxPath(path);
    return `/v1/sandboxes/${seg(this.sandboxId)}/fs` + abs.split("/").map(seg).join("/");
  }

  /** Write a file (missing parents are made); it appears only once the
   * whole body arrived. `mode` is octal text ("0755") or a number (0o755). */
  async write(path: string, data: FileData, opts: { mode?: string | number } = {}): Promise<FileEntry> {
    const mode = typeof opts.mode === "number" ? opts.mode.toString(8).padStart(4, "0") : opts.mode;
    const d = await this.t.call("PUT", this.url(path), { data, query: { mode }, timeout: null });
    return fileEntry(d);
  }

  /** The whole file. */
  async read(path: string): Promise<Buffer> {
    return this.t.raw("GET", this.url(path));
  }

  async readText(path: string, encoding: BufferEncoding = "utf8"): Promise<string> {
    return (await this.read(path)).toString(encoding);
  }

  /** The file as a stream, for files too big to hold in memory. */
  async readStream(path: string): Promise<Readable> {
    return this.t.open("GET", this.url(path), { accept: "application/octet-stream", timeout: null });
  }

  /** Whether path exists (a dangling symlink counts). */
  async exists(path: string): Promise<boolean> {
    try {
      await this.stat(path);
      return true;
    } catch (e) {
      if (e instanceof NotFound) return false;
      throw e;
    }
  }

  /** A directory's entries (`depth` > 1 descends). */
  async list(path = "/tmp", opts: { depth?: number } = {}): Promise<FileEntry[]> {
    const d = await this.t.call("GET", this.url(path), { query: { op: "list", depth: opts.depth } });
    return (Array.isArray(d.entries) ? (d.entries as Json[]) : []).map(fileEntry);
  }

  async stat(path: string): Promise<FileEntry> {
    return fileEntry(await this.t.call("GET", this.url(path), { query: { op: "stat" } }));
  }

  /** mkdir -p. */
  async mkdir(path: string): Promise<FileEntry> {
    return fileEntry(await this.t.call("POST", this.url(path), { query: { op: "mkdir" } }));
  }

  async remove(path: string, opts: { recursive?: boolean } = {}): Promise<{ path: string; removed: boolean }> {
    const d = await this.t.call("DELETE", this.url(path), {
      query: { recursive: opts.recursive ? "true" : undefined },
    });
    return { path: String(d.path ?? sandboxPath(path)), removed: d.removed === true };
  }

  async rename(from: string, to: string): Promise<FileEntry> {
    return fileEntry(
      await this.t.call("POST", this.url(from), { query: { op: "rename" }, json: { to: sandboxPath(to) } }),
    );
  }

  /** Watch a directory: resolves once hulld answered (the watch is in
   * place), with a Watcher to iterate events from. */
  async watch(path = "/tmp", opts: { recursive?: boolean; signal?: AbortSignal } = {}): Promise<Watcher> {
    const res = await this.t.open("GET", this.url(path), {
      query: { op: "watch", recursive: opts.recursive ? "true" : undefined },
      accept: "application/x-ndjson",
      timeout: null,
      signal: opts.signal,
    });
    return new Watcher(res);
  }
}
