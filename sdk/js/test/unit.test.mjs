// The SDK against a stub server on a unix socket (node:http): what it
// sends (method, path, query, headers, bodies, chunked uploads) and how it
// reads what comes back (JSON, error bodies, NDJSON split anywhere, UTF-8
// vs base64 chunks, cuts, error lines). No root, no hulld.
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http from "node:http";
import * as os from "node:os";
import * as path from "node:path";
import { Readable } from "node:stream";
import { after, before, beforeEach, test } from "node:test";
import * as hull from "../dist/index.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "hull-js-unit-"));
const sock = path.join(tmp, "stub.sock");
const seen = [];
let handler;
const server = http.createServer(async (req, res) => {
  const parts = [];
  for await (const c of req) parts.push(c);
  const r = { method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(parts) };
  seen.push(r);
  await handler(r, res);
});

before(() => new Promise((resolve) => server.listen(sock, resolve)));
after(() => {
  server.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});
beforeEach(() => {
  seen.length = 0;
  handler = (_r, res) => json(res, 200, {});
});

function json(res, status, doc, headers = {}) {
  res.writeHead(status, { "Content-Type": "application/json", ...headers });
  res.end(JSON.stringify(doc));
}

/** An NDJSON answer written in pieces of `step` bytes (split anywhere). */
async function ndjson(res, lines, step = 7) {
  res.writeHead(200, { "Content-Type": "application/x-ndjson" });
  const all = Buffer.from(lines.map((l) => JSON.stringify(l) + "\n").join(""));
  for (let i = 0; i < all.length; i += step) {
    res.write(all.subarray(i, i + step));
    await new Promise((r) => setImmediate(r));
  }
  res.end();
}

const client = () => new hull.Client({ socketPath: sock, token: "tok" });
const SB = { id: "s-1", state: "running", metadata: { a: "b" } };
const RES = { verdict: "ok", exit_code: 0, stdout: "hi\n", stderr: "" };

test("a run sends the token and the body, and types the result", async () => {
  handler = (_r, res) => json(res, 200, { id: "r-1", ...RES, stdout_base64: Buffer.from([0xff]).toString("base64") });
  const r = await client().run("echo hi", { limits: { cpu_time: 2, memory: "64M" }, env: { A: 1 } });
  assert.equal(seen[0].headers.authorization, "Bearer tok");
  assert.deepEqual(JSON.parse(seen[0].body), {
    cmd: ["sh", "-c", "echo hi"],
    env: { A: "1" },
    limits: { cpu_time: 2, memory: "64M" },
  });
  assert.deepEqual(r.stdoutBytes, Buffer.from([0xff]));
  assert.equal(r.check(), r);
});

test("each error status has its class", async () => {
  const cases = [
    [400, { error: { code: "invalid_request", field: "limits.memory", message: "m" } }, hull.ValidationError],
    [400, { error: { code: "invalid_json", message: "m" } }, hull.BadRequest],
    [401, { error: { code: "unauthorized" } }, hull.AuthError],
    [403, { error: { code: "forbidden", permission: "host-network" } }, hull.PermissionDenied],
    [404, { error: { code: "not_found" } }, hull.NotFound],
    [405, { error: { code: "method_not_allowed" } }, hull.MethodNotAllowed],
    [409, { error: { code: "conflict" } }, hull.Conflict],
    [413, { error: { code: "payload_too_large", field: "limits.tmp_size" } }, hull.PayloadTooLarge],
    [429, { error: { code: "quota_exceeded" } }, hull.RateLimited],
    [501, { error: { code: "not_implemented" } }, hull.NotImplementedByServer],
    [502, { error: { code: "registry_error" } }, hull.RegistryError],
    [503, { error: { code: "shutting_down" } }, hull.Unavailable],
    [500, { error: { code: "internal" } }, hull.ServerError],
  ];
  for (const [status, body, cls] of cases) {
    handler = (_r, res) => json(res, status, body, status === 429 ? { "Retry-After": "3" } : {});
    await assert.rejects(client().health(), (e) => {
      assert.ok(e instanceof cls, `${status}: ${e.name}`);
      assert.ok(e instanceof hull.APIError && e instanceof hull.HullError);
      assert.equal(e.status, status);
      assert.equal(e.code, body.error.code);
      if (body.error.field) assert.equal(e.field, body.error.field);
      if (status === 413) assert.equal(e.limit, "limits.tmp_size");
      if (status === 429) assert.equal(e.retryAfter, 3);
      if (status === 403) assert.equal(e.permission, "host-network");
      return true;
    });
  }
  const gone = new hull.Client({ socketPath: path.join(tmp, "none.sock") });
  await assert.rejects(gone.health(), hull.TransportError);
});

test("a streamed exec calls back in order and returns the result", async () => {
  const lines = [
    { type: "start", process: { id: "p-1", sandbox: "s-1", cmd: ["x"], state: "running", pty: false } },
    { type: "stdout", offset: 0, data: "héllo " },
    { type: "stderr", offset: 7, data: "warn\n" },
    { type: "stdout", offset: 12, data_b64: Buffer.from([0xff, 0x00]).toString("base64") },
    { type: "cut", offset: 14, lost: 100 },
    { type: "stdout", offset: 114, data: "end\n" },
    { type: "result", result: { verdict: "ok", exit_code: 0 } },
  ];
  handler = (r, res) => (r.method === "POST" && r.url === "/v1/sandboxes" ? json(res, 201, SB) : ndjson(res, lines));
  const sb = await client().sandbox({ metadata: { a: "b" }, lifetime: "5m" });
  assert.deepEqual(JSON.parse(seen[0].body), { lifetime: "5m", metadata: { a: "b" } });
  assert.deepEqual(sb.metadata, { a: "b" });
  const got = [];
  let started;
  const r = await sb.exec(["x"], {
    onStart: (p) => (started = p.id),
    onStdout: async (text, c) => got.push(["out", text, c.offset, c.data]),
    onStderr: (text, c) => got.push(["err", text, c.offset, c.data]),
    onCut: (offset, lost) => got.push(["cut", lost, offset]),
  });
  assert.match(seen[1].headers.accept, /^application\/x-ndjson/);
  assert.equal(started, "p-1");
  assert.deepEqual(got.map((g) => g.slice(0, 3)).filter((g) => g[0] !== "cut"), [
    ["out", "héllo ", 0],
    ["err", "warn\n", 7],
    ["out", Buffer.from([0xff, 0]).toString("utf8"), 12],
    ["out", "end\n", 114],
  ]);
  assert.deepEqual(got[3], ["cut", 100, 14]);
  assert.deepEqual(got[2][3], Buffer.from([0xff, 0x00]));
  // The result carries the streamed output when hulld does not repeat it.
  assert.deepEqual(r.stdoutBytes, Buffer.concat([Buffer.from("héllo "), Buffer.from([0xff, 0]), Buffer.from("end\n")]));
  assert.equal(r.stderr, "warn\n");
});

test("an error line after the 200 throws its class; a cut stream is a TransportError", async () => {
  const sb = new hull.Sandbox(client().transport, { id: "s-1", state: "running", metadata: {}, raw: {} });
  handler = (_r, res) => ndjson(res, [{ type: "stdout", offset: 0, data: "a" }, { type: "error", error: { code: "conflict", message: "paused" } }]);
  await assert.rejects(sb.exec("x", { onStdout: () => {} }), (e) => e instanceof hull.Conflict && e.status === 409);
  handler = (_r, res) => ndjson(res, [{ type: "stdout", offset: 0, data: "a" }]);
  await assert.rejects(sb.exec("x", { onStdout: () => {} }), hull.TransportError);
  // timeout is the command's wall-clock limit.
  handler = (_r, res) => json(res, 200, RES);
  await sb.exec("x", { timeout: 5 });
  assert.deepEqual(JSON.parse(seen.at(-1).body).limits, { wall_time: 5 });
  await sb.exec("x", { timeout: "1m", limits: { wall_time: "2m", cpu_time: 1 } });
  assert.deepEqual(JSON.parse(seen.at(-1).body).limits, { wall_time: "2m", cpu_time: 1 });
  // Without streaming support hulld answers with the result: still called back.
  handler = (_r, res) => json(res, 200, RES);
  let out = "";
  assert.equal((await sb.exec("x", { onStdout: (t) => (out += t) })).stdout, "hi\n");
  assert.equal(out, "hi\n");
});

test("processes: start, stdin, signal, resize, wait, output, re-attach", async () => {
  const P = { id: "p-9", sandbox: "s-1", cmd: ["cat"], state: "running", pty: true, started: "t" };
  let waits = 0;
  handler = async (r, res) => {
    const u = new URL(r.url, "http://x");
    if (u.pathname.endsWith("/stdin")) return json(res, 200, { written: r.body.length });
    if (u.pathname.endsWith("/wait")) {
      waits++;
      return json(res, 200, waits < 2 ? P : { ...P, state: "exited", result: { verdict: "ok", exit_code: 0 } });
    }
    if (u.pathname.endsWith("/output")) {
      return ndjson(res, [{ type: "stdout", offset: 5, data: "x" }, { type: "result", result: { verdict: "ok", exit_code: 7 } }], 3);
    }
    if (u.pathname.endsWith("/processes") && r.method === "GET") return json(res, 200, { processes: [P] });
    return json(res, r.method === "POST" && u.pathname.endsWith("/processes") ? 201 : 200, P);
  };
  const sb = new hull.Sandbox(client().transport, { id: "s-1", state: "running", metadata: {}, raw: {} });
  const p = await sb.start(["cat"], { stdin: true, pty: [30, 90], env: { K: "v" }, limits: { wall_time: "1m" } });
  assert.deepEqual(JSON.parse(seen[0].body), {
    cmd: ["cat"], stdin: true, pty: { rows: 30, cols: 90 }, env: { K: "v" }, limits: { wall_time: "1m" },
  });
  assert.equal(p.id, "p-9");
  assert.equal(await p.sendStdin(Buffer.from([0, 1, 2])), 3);
  assert.equal(seen.at(-1).headers["content-type"], "application/octet-stream");
  assert.deepEqual(seen.at(-1).body, Buffer.from([0, 1, 2]));
  await p.closeStdin();
  assert.equal(seen.at(-1).url, "/v1/sandboxes/s-1/processes/p-9/close_stdin");
  await p.signal(9);
  assert.deepEqual(JSON.parse(seen.at(-1).body), { signal: 9 });
  await p.kill();
  assert.deepEqual(JSON.parse(seen.at(-1).body), { signal: "KILL" });
  await p.signal("sigint");
  assert.deepEqual(JSON.parse(seen.at(-1).body), { signal: "INT" });
  await p.resize(50, 120);
  assert.deepEqual(JSON.parse(seen.at(-1).body), { rows: 50, cols: 120 });
  assert.equal((await p.wait()).exitCode, 0);
  assert.equal(waits, 2);
  const chunks = [];
  for await (const c of await sb.process("p-9")) chunks.push(c);
  assert.match(seen.at(-1).url, /\/output\?offset=0&follow=true$/);
  assert.deepEqual(chunks.map((c) => [c.stream, c.offset, c.text, c.end]), [["stdout", 5, "x", 6]]);
  const again = (await sb.processes())[0];
  for await (const _ of again.output({ offset: 3, follow: false }));
  assert.match(seen.at(-1).url, /offset=3&follow=false/);
  assert.equal(again.result.exitCode, 7);
  assert.equal(again.info.state, "exited");
  for await (const _ of again); // resumes where the last read ended
  assert.match(seen.at(-1).url, /offset=6&follow=true/);
  // stdin given as data: sent, then closed.
  const before = seen.length;
  await sb.start(["cat"], { stdin: "abc" });
  assert.deepEqual(JSON.parse(seen[before].body), { cmd: ["cat"], stdin: true });
  assert.deepEqual(seen.slice(before + 1).map((r) => r.url.split("/").pop()), ["stdin", "close_stdin"]);
});

test("files: paths, modes, a chunked upload, list, watch", async () => {
  handler = async (r, res) => {
    const u = new URL(r.url, "http://x");
    const op = u.searchParams.get("op");
    if (op === "list") return json(res, 200, { entries: [{ name: "a b", path: "/tmp/d/a b", type: "file", size: 1, mode: "0644", mtime: "t" }] });
    if (op === "watch") return ndjson(res, [{ type: "create", path: "/tmp/d/x", dir: false }, { type: "delete", path: "/tmp/d/x", dir: false }]);
    if (r.method === "DELETE") return json(res, 200, { path: decodeURIComponent(u.pathname), removed: true });
    if (r.method === "GET" && !op) {
      res.writeHead(200, { "Content-Type": "application/octet-stream" });
      return res.end(Buffer.from([1, 2, 3]));
    }
    return json(res, r.method === "PUT" ? 201 : 200, { name: "f", path: "/p", type: "file", size: r.body.length, mode: "0600", mtime: "t" });
  };
  const sb = new hull.Sandbox(client().transport, { id: "s-1", state: "running", metadata: {}, raw: {} });
  const f = sb.files;
  assert.equal((await f.write("/tmp/a dir/ü?.txt", "text", { mode: 0o600 })).size, 4);
  assert.equal(seen.at(-1).url, "/v1/sandboxes/s-1/fs/tmp/a%20dir/%C3%BC%3F.txt?mode=0600");
  assert.equal(seen.at(-1).headers["content-length"], "4");
  async function* gen() {
    for (let i = 0; i < 5; i++) yield Buffer.alloc(100000, i);
  }
  assert.equal((await f.write("rel/x.bin", Readable.from(gen()))).size, 500000);
  assert.equal(seen.at(-1).url, "/v1/sandboxes/s-1/fs/tmp/rel/x.bin");
  assert.equal(seen.at(-1).headers["transfer-encoding"], "chunked");
  assert.deepEqual(await f.read("/etc/hostname"), Buffer.from([1, 2, 3]));
  const [e] = await f.list("/tmp/d", { depth: 2 });
  assert.equal(seen.at(-1).url, "/v1/sandboxes/s-1/fs/tmp/d?op=list&depth=2");
  assert.deepEqual([e.name, e.type, e.size, e.mode], ["a b", "file", 1, "0644"]);
  await f.rename("/tmp/d/x", "y");
  assert.equal(seen.at(-1).url, "/v1/sandboxes/s-1/fs/tmp/d/x?op=rename");
  assert.deepEqual(JSON.parse(seen.at(-1).body), { to: "/tmp/y" });
  await f.mkdir("/tmp/n");
  assert.equal(seen.at(-1).method, "POST");
  assert.equal((await f.remove("/tmp/n", { recursive: true })).removed, true);
  assert.equal(seen.at(-1).url, "/v1/sandboxes/s-1/fs/tmp/n?recursive=true");
  const w = await f.watch("/tmp/d", { recursive: true });
  const evs = [];
  for await (const ev of w) evs.push([ev.type, ev.path, ev.dir]);
  assert.deepEqual(evs, [["create", "/tmp/d/x", false], ["delete", "/tmp/d/x", false]]);
  await assert.rejects(f.read("a\0b"), TypeError);
});

test("a watch closed while a loop awaits its next event ends that loop, without an error", async () => {
  let quiet;
  handler = async (_r, res) => {
    res.writeHead(200, { "Content-Type": "application/x-ndjson" });
    res.write(JSON.stringify({ type: "create", path: "/tmp/a", dir: false }) + "\n");
    await new Promise((r) => {
      quiet = r;
      res.on("close", r);
    }); // a quiet watch: open until the client goes
    res.end();
  };
  const sb = new hull.Sandbox(client().transport, { id: "s-1", state: "running", metadata: {}, raw: {} });
  const w = await sb.files.watch("/tmp");
  const got = [];
  let first;
  const seenFirst = new Promise((r) => (first = r));
  const loop = (async () => {
    for await (const ev of w) {
      got.push(ev.path);
      first();
    }
    got.push("end");
  })();
  await seenFirst;
  w.close();
  await loop; // rejected (a TransportError) before
  quiet?.();
  assert.deepEqual(got, ["/tmp/a", "end"]);
});

test("sandboxes(metadata) filters by query; setTimeout sends the lifetime", async () => {
  handler = (r, res) => (r.method === "GET" ? json(res, 200, { sandboxes: [SB] }) : json(res, 200, { ...SB, lifetime_s: 1800 }));
  const list = await client().sandboxes({ metadata: { team: "a b", k: "v" } });
  assert.equal(seen[0].url, "/v1/sandboxes?metadata.team=a+b&metadata.k=v");
  assert.equal(list[0].id, "s-1");
  const sb = new hull.Sandbox(client().transport, { id: "s-1", state: "running", metadata: {}, raw: {} });
  assert.equal((await sb.setTimeout("30m")).lifetimeS, 1800);
  assert.equal(seen.at(-1).url, "/v1/sandboxes/s-1/timeout");
  assert.deepEqual(JSON.parse(seen.at(-1).body), { lifetime: "30m" });
});

test("the NDJSON reader takes lines split anywhere, and refuses non-objects", async () => {
  const text = '{"a":"é"}\n\n{"b":2}\n{"c":3}';
  const bytes = Buffer.from(text);
  for (let step = 1; step <= bytes.length; step++) {
    const pieces = [];
    for (let i = 0; i < bytes.length; i += step) pieces.push(bytes.subarray(i, i + step));
    const got = [];
    for await (const o of hull.ndjson(Readable.from(pieces))) got.push(o);
    assert.deepEqual(got, [{ a: "é" }, { b: 2 }, { c: 3 }], `step ${step}`);
  }
  await assert.rejects(async () => {
    for await (const _ of hull.ndjson(Readable.from([Buffer.from("[1]\n")])));
  }, hull.TransportError);
});

test("a client needs a socket or an https url, not both", () => {
  assert.throws(() => new hull.Client({ socketPath: "/x", url: "https://h:1" }), TypeError);
  assert.throws(() => new hull.Client({ url: "ftp://h" }), TypeError);
  assert.throws(() => new hull.Client({ url: "nonsense" }), TypeError);
  process.env.HULL_TOKEN = "from-env";
  assert.equal(new hull.Client({ socketPath: sock }).token, "from-env");
  delete process.env.HULL_TOKEN;
});
