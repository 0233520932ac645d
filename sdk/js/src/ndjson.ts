/** NDJSON answers (application/x-ndjson): one JSON object per line. */
import type { IncomingMessage } from "node:http";
import { HullError, TransportError } from "./errors.js";
import type { Json, OutputChunk } from "./models.js";

/** The objects of an NDJSON byte stream, split on "\n" as bytes (a newline
 * byte never occurs inside a UTF-8 sequence, so chunks may split anywhere). */
export async function* ndjson(src: AsyncIterable<Buffer>): AsyncGenerator<Json> {
  let parts: Buffer[] = [];
  const parse = (line: Buffer): Json | undefined => {
    const text = line.toString("utf8").trim();
    if (!text) return undefined;
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new TransportError(`NDJSON line is not JSON: ${(e as Error).message}: ${text.slice(0, 200)}`);
    }
    if (!v || typeof v !== "object" || Array.isArray(v)) {
      throw new TransportError(`NDJSON line is not an object: ${text.slice(0, 200)}`);
    }
    return v as Json;
  };
  for await (const chunk of src) {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) {
        if (start < chunk.length) parts.push(chunk.subarray(start));
        break;
      }
      parts.push(chunk.subarray(start, nl));
      const line = parts.length === 1 ? parts[0] : Buffer.concat(parts);
      parts = [];
      start = nl + 1;
      const obj = parse(line);
      if (obj) yield obj;
    }
  }
  if (parts.length) {
    const obj = parse(Buffer.concat(parts));
    if (obj) yield obj;
  }
}

/** The lines of a streamed answer; the connection is closed when the
 * consumer stops early (break, return, throw). */
export async function* ndjsonResponse(res: IncomingMessage): AsyncGenerator<Json> {
  try {
    yield* ndjson(res);
  } catch (e) {
    if (e instanceof HullError) throw e;
    // The connection went away mid-stream (hulld stopped, a network cut).
    throw new TransportError(`the stream was cut: ${(e as Error)?.message ?? e}`, { cause: e });
  } finally {
    res.destroy();
  }
}

/** An output line (`stdout`/`stderr` with `data` or `data_b64`, or `cut`)
 * as a chunk; undefined for other line types. */
export function outputChunk(line: Json): OutputChunk | undefined {
  const offset = typeof line.offset === "number" ? line.offset : 0;
  if (line.type === "stdout" || line.type === "stderr") {
    let data: Buffer;
    if (typeof line.data_b64 === "string") data = Buffer.from(line.data_b64, "base64");
    else data = Buffer.from(typeof line.data === "string" ? line.data : "", "utf8");
    const text = typeof line.data === "string" ? line.data : data.toString("utf8");
    return { stream: line.type, offset, data, text, end: offset + data.length };
  }
  if (line.type === "cut") {
    const lost = typeof line.lost === "number" ? line.lost : 0;
    return { stream: "cut", offset, data: Buffer.alloc(0), text: "", lost, end: offset + lost };
  }
  return undefined;
}
