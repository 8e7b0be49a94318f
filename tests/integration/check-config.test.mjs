// --check-config of both binaries: the environment validated exactly as
// start-up validates it, every problem named at once, exit 0 or 2, nothing
// started. And start-up itself refuses the same environment with the same
// problems, logged.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import path from "node:path";
import { describe, it } from "node:test";

const BIN = process.env.PD_BIN_DIR || path.resolve("build/bin");

// Only what the test sets: no inherited PD_* or REDIS_* from the caller.
function run(bin, args, env) {
  const base = { PATH: process.env.PATH };
  const r = spawnSync(path.join(BIN, bin), args, { env: { ...base, ...env }, encoding: "utf8", timeout: 20000 });
  assert.equal(r.error, undefined, `${bin} did not finish: ${r.error}`);
  return r;
}

// A Redis that is not there and a port nobody may bind: --check-config must
// answer from the environment alone.
const UNREACHABLE = { REDIS_HOST: "192.0.2.1", REDIS_PORT: "6379", PD_LISTEN_ADDR: "203.0.113.7" };

describe("--check-config", { timeout: 60000 }, () => {
  for (const bin of ["privydrop-signal", "privydrop-roomapi"]) {
    it(`${bin}: a sound environment → exit 0, "configuration ok", nothing started`, () => {
      const r = run(bin, ["--check-config"], UNREACHABLE);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `${bin}: configuration ok\n`);
      assert.equal(r.stderr, "");
    });

    it(`${bin}: every problem on stderr, one line each, exit 2`, () => {
      const env = {
        ...UNREACHABLE,
        PD_LOG_LEVEL: "loud",
        PD_LISTEN_ADDR: "localhost",
        REDIS_PORT: "1.048576e+06",
        PD_DRAIN_TIMEOUT_MS: "-1",
        PD_TRUSTED_PROXIES: "10.0.0.0/33",
        REDIS_PASSWORD: "never-shown-anywhere",
      };
      const r = run(bin, ["--check-config"], env);
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stdout, "");
      const lines = r.stderr.trimEnd().split("\n");
      assert.deepEqual(lines.sort(), [
        `${bin}: PD_DRAIN_TIMEOUT_MS="-1": out of range; expected an integer from 0 to 600000`,
        `${bin}: PD_LISTEN_ADDR="localhost": not an IPv4 or IPv6 address`,
        `${bin}: PD_LOG_LEVEL="loud": not one of debug, info, warn, error`,
        lines.find((l) => l.startsWith(`${bin}: PD_TRUSTED_PROXIES="10.0.0.0/33": `)) || "PD_TRUSTED_PROXIES missing",
        `${bin}: REDIS_PORT="1.048576e+06": not an integer; expected an integer from 1 to 65535`,
      ].sort());
      assert.ok(!r.stderr.includes("never-shown-anywhere"));
    });

    it(`${bin}: start-up refuses the same environment, logging every problem, exit 2`, () => {
      const r = run(bin, [], { ...UNREACHABLE, PD_MAX_BODY_BYTES: "x", PD_EVENT_RATE: "x", PD_DRAIN_TIMEOUT_MS: "1e4" });
      assert.equal(r.status, 2, r.stderr);
      const problems = r.stderr.trim().split("\n").map((l) => JSON.parse(l))
        .filter((o) => o.msg === "bad configuration").map((o) => o.problem.split("=")[0]);
      // Each binary reads its own variables; both read PD_DRAIN_TIMEOUT_MS.
      const want = bin === "privydrop-signal" ? ["PD_DRAIN_TIMEOUT_MS", "PD_EVENT_RATE"]
        : ["PD_DRAIN_TIMEOUT_MS", "PD_MAX_BODY_BYTES"];
      assert.deepEqual(problems.sort(), want);
    });

    it(`${bin}: Sentinel settings are checked; a sound set is accepted without reaching a sentinel`, () => {
      const ok = run(bin, ["--check-config"], {
        ...UNREACHABLE, REDIS_SENTINELS: "192.0.2.1:26379, [2001:db8::1]:26379,sentinel-2.example:26380",
        REDIS_SENTINEL_MASTER: "mymaster", REDIS_SENTINEL_PASSWORD: "sentinel-secret-never-shown",
      });
      assert.equal(ok.status, 0, ok.stderr);
      assert.equal(ok.stdout, `${bin}: configuration ok\n`);

      const bad = run(bin, ["--check-config"], {
        ...UNREACHABLE, REDIS_SENTINELS: "192.0.2.1:26379,192.0.2.2", REDIS_SENTINEL_MASTER: "my master",
        REDIS_SENTINEL_PASSWORD: "sentinel-secret-never-shown",
      });
      assert.equal(bad.status, 2);
      assert.deepEqual(bad.stderr.trimEnd().split("\n").sort(), [
        `${bin}: REDIS_SENTINELS="192.0.2.1:26379,192.0.2.2": each sentinel is host:port`,
        `${bin}: REDIS_SENTINEL_MASTER="my master": 1 to 128 printable characters without spaces`,
      ]);
      assert.ok(!bad.stderr.includes("sentinel-secret-never-shown"));

      const half = run(bin, ["--check-config"], { ...UNREACHABLE, REDIS_SENTINELS: "192.0.2.1:26379" });
      assert.equal(half.status, 2);
      assert.match(half.stderr, /^[a-z-]+: REDIS_SENTINEL_MASTER: required with REDIS_SENTINELS/);
      const other = run(bin, ["--check-config"], { ...UNREACHABLE, REDIS_SENTINEL_MASTER: "mymaster" });
      assert.equal(other.status, 2);
      assert.match(other.stderr, /REDIS_SENTINEL_MASTER="mymaster": set without REDIS_SENTINELS/);
    });

    it(`${bin}: REDIS_CLUSTER_NODES is checked; a sound list is accepted without reaching a node`, () => {
      const ok = run(bin, ["--check-config"], {
        ...UNREACHABLE, REDIS_CLUSTER_NODES: "192.0.2.1:7000, [2001:db8::1]:7001,node-2.example:7002",
      });
      assert.equal(ok.status, 0, ok.stderr);
      assert.equal(ok.stdout, `${bin}: configuration ok\n`);
      const bad = run(bin, ["--check-config"], { ...UNREACHABLE, REDIS_CLUSTER_NODES: "192.0.2.1:7000,192.0.2.2" });
      assert.equal(bad.status, 2);
      assert.equal(bad.stderr.trimEnd(),
        `${bin}: REDIS_CLUSTER_NODES="192.0.2.1:7000,192.0.2.2": 1 to 16 host:port entries, comma-separated (IPv6 as [addr]:port)`);
      const both = run(bin, ["--check-config"], {
        ...UNREACHABLE, REDIS_CLUSTER_NODES: "192.0.2.1:7000", REDIS_SENTINELS: "192.0.2.1:26379",
        REDIS_SENTINEL_MASTER: "mymaster",
      });
      assert.equal(both.status, 2);
      assert.match(both.stderr, /REDIS_CLUSTER_NODES="192.0.2.1:7000": set with REDIS_SENTINELS: a cluster or sentinels, not both/);
    });

    it(`${bin}: --check-config with anything after it is a usage error`, () => {
      const r = run(bin, ["--check-config", "extra"], {});
      assert.equal(r.status, 2);
      assert.match(r.stderr, /unknown argument 'extra'/);
    });
  }

  it("privydrop-roomapi: TURN settings are checked (the secret itself is never printed)", () => {
    const r = run("privydrop-roomapi", ["--check-config"], {
      ...UNREACHABLE, PD_TURN_HOST: "turn example", PD_TURN_SECRET: "a-secret-that-must-not-leak",
    });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /^privydrop-roomapi: PD_TURN_\*, PD_STUN_URLS: .+\n$/);
    assert.ok(!r.stderr.includes("a-secret-that-must-not-leak"));
  });

  it("privydrop-signal: PD_WORKER_ID is checked", () => {
    const r = run("privydrop-signal", ["--check-config"], { ...UNREACHABLE, PD_WORKER_ID: "a b" });
    assert.equal(r.status, 2);
    assert.equal(r.stderr, 'privydrop-signal: PD_WORKER_ID="a b": 1-80 characters of [A-Za-z0-9._-]\n');
  });
});
