/** Argument shapes shared by runs, execs, processes and sandboxes. */

/** A duration: a string with a unit ("500ms", "2s", "10m") or seconds. */
export type Duration = string | number;
/** A size: a string with a unit ("64M", "1G") or bytes. */
export type Size = string | number;

/** Per-command or per-sandbox limits, as the API takes them. */
export interface Limits {
  cpu_time?: Duration;
  wall_time?: Duration;
  output?: Size;
  memory?: Size;
  pids?: number;
  cpus?: number;
  tmp_size?: Size;
  open_files?: number;
  [name: string]: Duration | Size | undefined;
}

/** "none", "host", a network's name, or {name, egress, publish}. */
export type NetworkArg = string | { name?: string; egress?: string[]; publish?: string[]; [k: string]: unknown };

/** A list of arguments; a string is run by `sh -c`. */
export function cmdArg(cmd: string | readonly string[]): string[] {
  if (typeof cmd === "string") return ["sh", "-c", cmd];
  const out = cmd.map(String);
  if (out.length === 0) throw new TypeError("cmd: must not be empty");
  return out;
}

export function textArg(v: string | Uint8Array, what: string): string {
  if (typeof v === "string") return v;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(v);
  } catch {
    throw new TypeError(
      `${what}: bytes that are not UTF-8 cannot travel in a JSON request; ` +
        "write them to a sandbox with files.write()",
    );
  }
}

export function strMap(m: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m)) out[k] = String(v);
  return out;
}

export function limitsArg(l: Limits): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(l)) if (v !== undefined) out[k] = v;
  return out;
}

/** One path segment, URL-encoded. */
export function seg(s: string): string {
  return encodeURIComponent(String(s));
}

/** Seconds as the API's duration string ("1.5s"). */
export function secondsArg(s: number): string {
  return `${Math.max(0, s)}s`;
}
