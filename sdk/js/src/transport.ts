/** HTTP to hulld: a unix socket (node:http with socketPath) or TCP+TLS
 * (node:https), bearer-token auth, JSON in and out, raw and streamed
 * bodies, NDJSON answers. One connection per request (no keep-alive), so
 * nothing stays open after a call returns. */
import * as http from "node:http";
import * as https from "node:https";
import { Readable } from "node:stream";
import { fromResponse, HullError, TransportError } from "./errors.js";
import type { Json } from "./models.js";

export const DEFAULT_SOCKET = "/run/hull/hulld.sock";

export interface ConnectOptions {
  /** The unix socket (default /run/hull/hulld.sock unless `url` is given). */
  socketPath?: string;
  /** "https://HOST:PORT" (or http://) for a TCP listener. */
  url?: string;
  /** The bearer token; default $HULL_TOKEN. */
  token?: string;
  /** Seconds a call may wait for hulld before a TransportError (default 120). */
  timeout?: number;
  /** CA certificate(s) (PEM) to trust for https. */
  ca?: string | Buffer | Array<string | Buffer>;
  /** false accepts any server certificate (tests only). */
  rejectUnauthorized?: boolean;
  /** Further node:https options (cert, key, servername, ...). */
  tls?: https.RequestOptions;
}

/** A request body: JSON (an object), or raw bytes, or a stream sent chunked. */
export type BodyData = Buffer | Uint8Array | string | Readable | AsyncIterable<Uint8Array>;

export interface CallOptions {
  query?: Record<string, string | number | boolean | undefined | null>;
  /** A JSON body. */
  json?: unknown;
  /** A raw body (application/octet-stream). */
  data?: BodyData;
  /** Seconds of silence before giving up; null: none; default: the client's. */
  timeout?: number | null;
  accept?: string;
  headers?: Record<string, string>;
  /** Aborts the call (and closes a stream). */
  signal?: AbortSignal;
}

function isStream(v: unknown): v is Readable | AsyncIterable<Uint8Array> {
  return (
    v instanceof Readable ||
    (typeof v === "object" && v !== null && Symbol.asyncIterator in (v as object))
  );
}

export class Transport {
  readonly token?: string;
  readonly timeout: number;
  readonly where: string;
  private readonly socketPath?: string;
  private readonly base: string;
  private readonly mod: typeof http | typeof https;
  private readonly endpoint: http.RequestOptions;
  /** Connections kept open between calls (hulld starts a thread per
   * connection); idle ones do not keep the process alive. */
  private agent?: http.Agent;

  constructor(o: ConnectOptions = {}) {
    if (o.socketPath && o.url) throw new TypeError("give socketPath or url, not both");
    this.token = o.token ?? process.env.HULL_TOKEN;
    this.timeout = o.timeout ?? 120;
    if (!o.url) {
      this.socketPath = o.socketPath ?? DEFAULT_SOCKET;
      this.mod = http;
      this.base = "";
      this.endpoint = { socketPath: this.socketPath, host: "hulld" };
      this.where = this.socketPath;
      return;
    }
    let u: URL;
    try {
      u = new URL(o.url);
    } catch {
      throw new TypeError(`url ${JSON.stringify(o.url)}: want https://HOST:PORT (or http://)`);
    }
    if ((u.protocol !== "https:" && u.protocol !== "http:") || !u.hostname) {
      throw new TypeError(`url ${JSON.stringify(o.url)}: want https://HOST:PORT (or http://)`);
    }
    const tls = u.protocol === "https:";
    this.mod = tls ? https : http;
    this.base = u.pathname.replace(/\/+$/, "");
    const hostname = u.hostname.replace(/^\[(.*)\]$/, "$1");
    this.endpoint = { host: hostname, port: Number(u.port) || (tls ? 443 : 80) };
    if (tls) {
      Object.assign(this.endpoint, o.tls ?? {}, {
        ...(o.ca !== undefined ? { ca: o.ca } : {}),
        ...(o.rejectUnauthorized !== undefined
          ? { rejectUnauthorized: o.rejectUnauthorized }
          : {}),
      });
    }
    this.where = `${u.protocol}//${u.host}`;
  }

  private keptAlive(): http.Agent {
    this.agent ??= new this.mod.Agent({ keepAlive: true, maxFreeSockets: 4 });
    return this.agent;
  }

  /** Close the idle connections kept for the next calls (the transport
   * stays usable). */
  close(): void {
    this.agent?.destroy();
    this.agent = undefined;
  }

  private path(path: string, query?: CallOptions["query"]): string {
    let p = this.base + path;
    if (query) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) q.set(k, String(v));
      const s = q.toString();
      if (s) p += (p.includes("?") ? "&" : "?") + s;
    }
    return p;
  }

  /** Send a request; resolves with the response once its head arrived and
   * its status is below 400 (else throws the matching APIError). The
   * caller reads (or destroys) the response. */
  open(method: string, path: string, o: CallOptions = {}): Promise<http.IncomingMessage> {
    const headers: Record<string, string> = { Accept: o.accept ?? "application/json", ...o.headers };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    let payload: Buffer | undefined;
    let streamed: Readable | AsyncIterable<Uint8Array> | undefined;
    if (o.json !== undefined) {
      payload = Buffer.from(JSON.stringify(o.json), "utf8");
      headers["Content-Type"] = "application/json";
    } else if (o.data !== undefined) {
      headers["Content-Type"] = "application/octet-stream";
      if (typeof o.data === "string") payload = Buffer.from(o.data, "utf8");
      else if (o.data instanceof Uint8Array) payload = Buffer.from(o.data.buffer, o.data.byteOffset, o.data.byteLength);
      else if (isStream(o.data)) streamed = o.data;
    }
    if (payload) headers["Content-Length"] = String(payload.length);
    else if (streamed) headers["Transfer-Encoding"] = "chunked";
    else if (method !== "GET" && method !== "HEAD") headers["Content-Length"] = "0";
    const timeout = o.timeout === undefined ? this.timeout : o.timeout;
    const what = `${method} ${path}`;

    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (e: unknown) => {
        if (settled) return;
        settled = true;
        reject(
          e instanceof HullError || (e as Error)?.name === "AbortError"
            ? e
            : new TransportError(`hulld at ${this.where}: ${what}: ${(e as Error)?.message ?? e}`, { cause: e }),
        );
      };
      const req = this.mod.request({
        ...this.endpoint,
        method,
        path: this.path(path, o.query),
        headers,
        agent: this.keptAlive(),
        signal: o.signal,
      });
      if (timeout !== null && timeout > 0) {
        req.setTimeout(timeout * 1000, () =>
          req.destroy(new TransportError(`hulld at ${this.where}: ${what}: no answer for ${timeout} s`)),
        );
      }
      req.on("error", fail);
      req.on("response", (res) => {
        if (settled) {
          res.destroy();
          return;
        }
        const status = res.statusCode ?? 0;
        if (status < 400) {
          settled = true;
          resolve(res);
          return;
        }
        readAll(res).then(
          (body) => fail(fromResponse(status, body, res.headers as Record<string, string>)),
          fail,
        );
      });
      if (streamed) {
        const src = streamed instanceof Readable ? streamed : Readable.from(streamed);
        src.on("error", (e) => req.destroy(e));
        src.pipe(req);
      } else {
        req.end(payload);
      }
    });
  }

  /** One call: the decoded JSON answer (undefined for an empty body). */
  async call(method: string, path: string, o: CallOptions = {}): Promise<Json> {
    const res = await this.open(method, path, o);
    const body = await readAll(res).catch((e) => {
      throw new TransportError(`hulld at ${this.where}: ${method} ${path}: ${e.message}`, { cause: e });
    });
    if (body.length === 0) return {};
    try {
      return JSON.parse(body.toString("utf8")) as Json;
    } catch (e) {
      throw new TransportError(`${method} ${path}: answer is not JSON: ${(e as Error).message}`);
    }
  }

  /** One call whose answer is bytes. */
  async raw(method: string, path: string, o: CallOptions = {}): Promise<Buffer> {
    const res = await this.open(method, path, o);
    return readAll(res).catch((e) => {
      throw new TransportError(`hulld at ${this.where}: ${method} ${path}: ${e.message}`, { cause: e });
    });
  }
}

export async function readAll(res: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of res) parts.push(c);
  return Buffer.concat(parts);
}
