// A sandbox's ports through the SDK (docs/api.md "Ports"): create with
// ports, portUrl, ports, closePort, accessToken; a server in the sandbox
// (python3 -m http.server on its loopback) reached through the URL with
// the token, not without. Against a real hulld started here, stopped by
// its pid, the host checked afterwards. Needs root and build/hulld.
import assert from "node:assert/strict";
import * as http from "node:http";
import * as net from "node:net";
import { after, test } from "node:test";
import * as hull from "../dist/index.js";
import { cannotRun, Hulld, waitUntil } from "./hulld.mjs";

const why = cannotRun();
const d = why ? undefined : new Hulld();

after(async () => {
  if (d?.proc) await d.stop("SIGKILL");
  d?.cleanup();
});

function get(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false }, (res) => {
      const parts = [];
      res.on("data", (b) => parts.push(b));
      res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(parts).toString() }));
    });
    req.on("error", reject);
  });
}

function refused(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.on("connect", () => {
      s.destroy();
      resolve(false);
    });
    s.on("error", (e) => resolve(e.code === "ECONNREFUSED"));
  });
}

test("ports: portUrl reaches the sandbox's server with the token only", { skip: why }, async () => {
  await d.start();
  const c = new hull.Client({ socketPath: d.sock, token: d.token("user", "acme") });
  const sb = await c.sandbox({ ports: [8000] });
  let hostPort;
  try {
    assert.match(sb.accessToken ?? "", /^[0-9a-f]{64}$/);
    const url = await sb.portUrl(8000);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    hostPort = Number(new URL(url).port);
    assert.deepEqual([...(await sb.ports()).entries()], [[8000, url]]);
    await sb.files.write("/tmp/www/hello.txt", "hello from the sandbox\n");
    await sb.start(["python3", "-m", "http.server", "8000", "--bind", "127.0.0.1", "--directory", "/tmp/www"]);
    const tok = { "X-Hull-Access-Token": sb.accessToken };
    assert.ok(await waitUntil(async () => (await get(url + "hello.txt", tok)).status === 200, 120));
    const r = await get(url + "hello.txt", tok);
    assert.equal(r.body, "hello from the sandbox\n");
    const withTok = await sb.portUrl(8000, { withToken: true });
    assert.equal(withTok, `${url}?token=${sb.accessToken}`);
    assert.equal((await get(withTok)).status, 200);
    assert.equal((await get(url + "hello.txt")).status, 401);
    assert.equal((await get(url + "hello.txt", { "X-Hull-Access-Token": "f".repeat(64) })).status, 403);
    // another tenant does not see the sandbox's ports
    const other = new hull.Client({ socketPath: d.sock, token: d.token("user", "globex") });
    const theirs = await other.attach(sb.id).catch((e) => e);
    assert.ok(theirs instanceof hull.NotFound);
    await sb.closePort(8000);
    assert.ok(await refused(hostPort));
    assert.equal((await sb.ports()).size, 0);
    await sb.portUrl(8000); // again, on a new host port
  } finally {
    await sb.delete();
  }
  for (const p of (await sb.ports().catch(() => new Map())).values()) assert.fail(`still listed: ${p}`);
  assert.ok(await refused(hostPort));
  assert.equal(await d.stop(), 0);
  assert.deepEqual(d.leaks(), { procs: [], entries: [], cgroups: [] });
});
