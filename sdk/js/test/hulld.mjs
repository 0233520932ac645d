// A real hulld for the SDK's tests: started on its own socket and state
// directory, tokens made by `hull token create`, stopped by its pid; then
// what its helpers left behind (processes, sandbox state, cgroups) is
// looked up on the host, as tests/integration/hulldlib.py does.
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SRC = path.resolve(HERE, "..", "..", "..");
export const HULL = process.env.HULL ?? path.join(SRC, "build", "hull");
export const HULLD = process.env.HULLD ?? path.join(path.dirname(path.resolve(HULL)), "hulld");
const SANDBOX_ROOT = "/run/hull/sandbox";

/** Why the end-to-end tests cannot run here, or undefined. */
export function cannotRun() {
  if (process.getuid?.() !== 0) return "needs root (hulld makes sandboxes)";
  if (!fs.existsSync(HULLD)) return `needs a built hulld (${HULLD}: make all)`;
  return undefined;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Poll fn until it is truthy; false after `seconds` (a generous bound). */
export async function waitUntil(fn, seconds = 60) {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    if (await fn()) return true;
    if (Date.now() > end) return false;
    await sleep(50);
  }
}

export function alive(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/\) Z /.test(stat);
  } catch {
    return false;
  }
}

function children(pid) {
  const out = [];
  let tasks = [];
  try {
    tasks = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    try {
      const s = fs.readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").trim();
      if (s) out.push(...s.split(/\s+/).map(Number));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

// Sandbox and session ids embed their supervisor's pid: sandbox-PID-...
function ours(name, pids) {
  const parts = name.split("-");
  return parts.length >= 2 && /^\d+$/.test(parts[1]) && pids.has(Number(parts[1]));
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export class Hulld {
  constructor(...extra) {
    this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hull-js-"));
    this.sock = path.join(this.tmp, "hulld.sock");
    this.state = path.join(this.tmp, "state");
    this.log = path.join(this.tmp, "hulld.log");
    this.extra = extra;
    this.proc = undefined;
    this.exit = undefined;
    this.helpersSeen = new Set();
  }

  token(role = "user", tenant = "acme", allow) {
    const args = ["token", "create", "--state-dir", this.state, "--role", role, "--tenant", tenant];
    if (allow) args.push("--allow", allow);
    const out = execFileSync(HULL, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    return out.trim().split("\n").pop();
  }

  async start() {
    const fd = fs.openSync(this.log, "a");
    this.proc = spawn(HULLD, ["--socket", this.sock, "--state-dir", this.state, ...this.extra], {
      stdio: ["ignore", fd, fd],
    });
    fs.closeSync(fd);
    this.exit = new Promise((resolve) => this.proc.on("exit", (code, sig) => resolve(sig ? 128 : code)));
    let exited = false;
    this.exit.then(() => (exited = true));
    const ok = await waitUntil(async () => exited || (await this.ready()), 60);
    if (!ok || exited) {
      if (!exited) await this.stop("SIGKILL");
      throw new Error(`hulld did not start:\n${this.logText()}`);
    }
    this.noteHelpers();
    return this;
  }

  logText() {
    try {
      return fs.readFileSync(this.log, "utf8");
    } catch {
      return "";
    }
  }

  ready() {
    return new Promise((resolve) => {
      const req = http.get({ socketPath: this.sock, path: "/healthz", agent: false }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      req.on("error", () => resolve(false));
    });
  }

  noteHelpers() {
    if (this.proc && this.proc.exitCode === null) for (const p of children(this.proc.pid)) this.helpersSeen.add(p);
  }

  /** SIGTERM by pid; resolves with hulld's exit code. */
  async stop(signal = "SIGTERM") {
    if (!this.proc) return undefined;
    this.noteHelpers();
    process.kill(this.proc.pid, signal);
    const rc = await this.exit;
    this.proc = undefined;
    return rc;
  }

  /** What hulld's helpers left: live processes, sandbox state, cgroups. */
  leaks() {
    const pids = this.helpersSeen;
    const procs = [...pids].filter(alive);
    let entries = [];
    try {
      entries = fs.readdirSync(SANDBOX_ROOT).filter((n) => ours(n, pids));
    } catch {
      // no sandbox root at all
    }
    const cgroups = [];
    for (const base of fs.readdirSync("/sys/fs/cgroup")) {
      const d = path.join("/sys/fs/cgroup", base, "hull");
      try {
        for (const n of fs.readdirSync(d)) if (ours(n, pids)) cgroups.push(path.join(d, n));
      } catch {
        // not a hierarchy with hull's cgroups
      }
    }
    return { procs, entries, cgroups };
  }

  cleanup() {
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }
}
