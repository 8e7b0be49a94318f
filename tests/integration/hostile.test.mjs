// Hostile input against real processes (issue 4): every bad frame, packet or
// request gets a clear answer, and the process keeps serving everyone else.
// After each case a well-behaved pair of socket.io clients on the same worker
// must still relay, the worker must still be alive and no sanitizer report
// may have appeared.
//
// Worker 1 (index 0) runs with tight limits; worker 2 (index 1) with a large
// message limit, no event limit and a small send queue (slow-reader and
// nesting cases). Short HTTP timeouts everywhere so slowloris cases are quick.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import { after, before, describe, it } from "node:test";

import { httpGet, startCluster } from "../lib/cluster.mjs";
import {
  EVENT_TIMEOUT_MS, RawWs, closeAll, connect, createRoom, eventually, join, postJson, request, sleep, uniqueIp,
  uniqueRoomId, waitFor,
} from "./helpers.mjs";
import {
  closeOf, closePayload, expectClose, metricValue, metrics, nextFrame, nextTextStarting, rawHttp, rawJoin,
  rawSession, wellBehavedPair, writeRaw, wsFrame,
} from "./wire.mjs";

const MAX0 = 4096; // PD_MAX_MESSAGE_BYTES of worker 1
const MAX1 = 262144; // PD_MAX_MESSAGE_BYTES of worker 2
const SENDQ1 = 262144; // PD_MAX_SEND_QUEUE_BYTES of worker 2
const HTTP_TIMEOUT_MS = 1500; // PD_HTTP_REQUEST_TIMEOUT_MS / PD_HTTP_IDLE_TIMEOUT_MS
const CONNECT_TIMEOUT_MS = 1500;
const BODY_MAX = 4096;
const ORIGINS = "http://good.example, https://also.example";

const W0 = {
  PD_MAX_MESSAGE_BYTES: String(MAX0),
  PD_EVENT_RATE: "50",
  PD_EVENT_BURST: "40",
  PD_MAX_CONNS_PER_IP: "4",
  PD_CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
  PD_MAX_ROOM_PEERS: "3",
  CORS_ORIGIN: ORIGINS,
};
const W1 = {
  PD_MAX_MESSAGE_BYTES: String(MAX1),
  PD_MAX_SEND_QUEUE_BYTES: String(SENDQ1),
  PD_EVENT_RATE: "1000000",
  PD_EVENT_BURST: "1000000",
  PD_TRUSTED_PROXIES: "127.0.0.1/32, 10.0.0.0/8",
};

const dropped = (reason) => `privydrop_signal_dropped_total{reason="${reason}"}`;
const closed = (reason) => `privydrop_signal_sessions_closed_total{reason="${reason}"}`;

describe("hostile input", { timeout: 300000 }, () => {
  let c;
  let api;
  let good = [];
  let p0;
  let p1;

  before(async () => {
    c = await startCluster({
      workers: 2,
      env: { PD_HTTP_REQUEST_TIMEOUT_MS: String(HTTP_TIMEOUT_MS), PD_HTTP_IDLE_TIMEOUT_MS: String(HTTP_TIMEOUT_MS) },
      workerEnv: [W0, W1],
      roomApiEnv: {
        PD_MAX_BODY_BYTES: String(BODY_MAX),
        PD_API_RATE: "5",
        PD_API_BURST: "40",
        PD_LOG_RATE: "1",
        PD_LOG_BURST: "5",
      },
    });
    api = c.roomApi.url;
    p0 = c.workers[0].port;
    p1 = c.workers[1].port;
    good = [await wellBehavedPair(c.workers[0].url, api), await wellBehavedPair(c.workers[1].url, api)];
  });
  after(async () => {
    for (const g of good) g?.close();
    await c?.stop();
  });

  /** Worker i is alive, healthy, without sanitizer report, and still relays for its well-behaved pair. */
  async function survived(i, what) {
    const w = c.workers[i];
    assert.ok(w.proc.running, `worker ${i + 1} still running after ${what}`);
    assert.deepEqual(c.currentProblems(), [], `no crash or sanitizer report after ${what}`);
    assert.equal((await httpGet(`${w.url}/healthz`)).status, 200);
    await good[i].check(`after ${what}`);
  }

  async function apiSurvived(what) {
    assert.ok(c.roomApi.proc.running, `room API still running after ${what}`);
    assert.deepEqual(c.currentProblems(), []);
    const r = await postJson(api, "/api/check_room", { roomId: uniqueRoomId() }, { headers: { "x-forwarded-for": uniqueIp() } });
    assert.equal(r.status, 200, `room API still answers after ${what}: ${r.status} ${r.body}`);
    assert.deepEqual(r.json, { available: true });
  }

  // -------------------------------------------------------------------------
  describe("WebSocket frames (RFC 6455)", () => {
    const f = (o) => wsFrame(o);
    const cases = [
      ["an unmasked client frame", () => [f({ mask: false, payload: '42["x",{}]' })], 1002],
      ["RSV1 set without an extension", () => [f({ rsv: 4, payload: "2" })], 1002],
      ["RSV3 set", () => [f({ rsv: 1, payload: "2" })], 1002],
      ["reserved data opcode 0x3", () => [f({ opcode: 3, payload: "x" })], 1002],
      ["reserved control opcode 0xB", () => [f({ opcode: 0xb, payload: "" })], 1002],
      ["a fragmented ping (FIN=0)", () => [f({ fin: false, opcode: 9, payload: "x" })], 1002],
      ["a ping with a 126-byte payload", () => [f({ opcode: 9, payload: "p".repeat(126) })], 1002],
      ["a close frame with a 126-byte payload", () => [f({ opcode: 8, payload: closePayload(1000, "r".repeat(124)) })], 1002],
      ["a continuation without a start", () => [f({ opcode: 0, payload: "42" })], 1002],
      ["a text frame inside a fragmented message", () => [f({ fin: false, payload: "4" }), f({ payload: "2" })], 1002],
      ["a 64-bit length with the top bit set", () => [f({ declaredLen: 1n << 63n })], 1002],
      ["a declared length of 2^40 (header only)", () => [f({ declaredLen: 1n << 40n })], 1009],
      ["a declared length of PD_MAX_MESSAGE_BYTES + 1 (header only)", () => [f({ declaredLen: BigInt(MAX0 + 1) })], 1009],
      ["fragments that add up beyond PD_MAX_MESSAGE_BYTES",
        () => [f({ fin: false, payload: "4" + "a".repeat(3000) }), f({ fin: false, opcode: 0, payload: "b".repeat(1500) })], 1009],
      ["invalid UTF-8 in a text frame", () => [f({ payload: Buffer.from([0x34, 0xff, 0xfe]) })], 1007],
      ["an overlong UTF-8 encoding", () => [f({ payload: Buffer.from([0x34, 0xc0, 0xaf]) })], 1007],
      ["a UTF-16 surrogate encoded in UTF-8", () => [f({ payload: Buffer.from([0x34, 0xed, 0xa0, 0x80]) })], 1007],
      ["invalid UTF-8 split across fragments",
        () => [f({ fin: false, payload: Buffer.from([0x34, 0xe2, 0x82]) }), f({ opcode: 0, payload: Buffer.from([0x28]) })], 1007],
      ["a close frame with a 1-byte payload", () => [f({ opcode: 8, payload: Buffer.from([3]) })], 1002],
      ["a close frame with code 999", () => [f({ opcode: 8, payload: closePayload(999) })], 1002],
      ["a close frame with code 1004", () => [f({ opcode: 8, payload: closePayload(1004) })], 1002],
      ["a close frame with code 1005", () => [f({ opcode: 8, payload: closePayload(1005) })], 1002],
      ["a close frame with code 1006", () => [f({ opcode: 8, payload: closePayload(1006) })], 1002],
      ["a close frame with code 2999", () => [f({ opcode: 8, payload: closePayload(2999) })], 1002],
      ["a close frame with code 5000", () => [f({ opcode: 8, payload: closePayload(5000) })], 1002],
      ["a close frame with an invalid UTF-8 reason", () => [f({ opcode: 8, payload: closePayload(1000, Buffer.from([0xc3, 0x28])) })], 1007],
      ["a binary frame", () => [f({ opcode: 2, payload: Buffer.from([1, 2, 3]) })], 1003],
    ];
    for (const [what, frames, code] of cases) {
      it(`${what} → close ${code}`, async () => {
        const ws = await rawSession(p0);
        try {
          writeRaw(ws, ...frames());
          await expectClose(ws, code, what);
        } finally {
          ws.close();
        }
        await survived(0, what);
      });
    }

    it("a valid close (1000) is answered with 1000 and the room hears peer-disconnected once", async () => {
      const roomId = await createRoom(api);
      const watcher = await connect(c.workers[0].url);
      const ws = await rawSession(p0);
      try {
        assert.equal((await join(watcher, roomId)).success, true);
        assert.equal((await rawJoin(ws, roomId)).success, true);
        writeRaw(ws, wsFrame({ opcode: 8, payload: closePayload(1000, "bye") }));
        await expectClose(ws, 1000, "client close");
        assert.deepEqual(await waitFor(watcher, "peer-disconnected"), { peerId: ws.sid });
        await sleep(300);
        assert.equal(watcher.received.get("peer-disconnected").length, 1, "peer-disconnected exactly once");
        assert.equal(await c.redisCli("EXISTS", `socket:${ws.sid}`), "0");
      } finally {
        ws.close();
        closeAll(watcher);
      }
      await survived(0, "a client close");
    });

    it("the declared length is refused before any payload is sent or buffered", async () => {
      const before = await metrics(c.workers[0].url);
      const ws = await rawSession(p0);
      try {
        writeRaw(ws, wsFrame({ declaredLen: 8n * 1024n * 1024n * 1024n })); // 8 GiB, no payload follows
        // 1009 is the verdict on the header alone: a wait for the payload
        // could only end in a ping timeout (1000), tens of seconds away.
        await expectClose(ws, 1009, "8 GiB declared", 15000);
      } finally {
        ws.close();
      }
      const m = await metrics(c.workers[0].url);
      assert.equal(metricValue(m, closed("message_too_big")) - metricValue(before, closed("message_too_big")), 1);
      await survived(0, "an 8 GiB declared length");
    });

    it("a ping between fragments is answered and the message is still reassembled", async () => {
      const roomId = await createRoom(api);
      const ws = await rawSession(p0);
      try {
        const msg = `2["join",{"roomId":"${roomId}"}]`;
        writeRaw(ws,
          wsFrame({ fin: false, payload: "4" }),
          wsFrame({ opcode: 9, payload: "are-you-there" }),
          wsFrame({ fin: false, opcode: 0, payload: msg.slice(0, 7) }),
          wsFrame({ opcode: 9, payload: "again" }),
          wsFrame({ opcode: 0xa, payload: "unsolicited pong" }),
          wsFrame({ opcode: 0, payload: msg.slice(7) }));
        const p1f = await nextFrame(ws, (x) => x.opcode === 0xa);
        assert.equal(p1f.data.toString(), "are-you-there");
        const p2f = await nextFrame(ws, (x) => x.opcode === 0xa);
        assert.equal(p2f.data.toString(), "again");
        const jr = JSON.parse((await nextTextStarting(ws, '42["joinResponse"')).slice(2))[1];
        assert.deepEqual(jr, { success: true, message: "Successfully joined room", roomId });
        assert.equal(ws.closed, false);
      } finally {
        ws.close();
      }
      await survived(0, "ping between fragments");
    });

    it("a message split across many TCP writes and fragments is reassembled (1 byte per write)", async () => {
      const ws = await rawSession(p0);
      try {
        const bytes = Buffer.concat([wsFrame({ fin: false, payload: "42" }), wsFrame({ opcode: 0, payload: '7["ping-me"]' })]);
        for (const b of bytes) {
          ws.sock.write(Buffer.from([b]));
          await sleep(1);
        }
        assert.equal(await nextTextStarting(ws, "43"), "437[]");
      } finally {
        ws.close();
      }
      await survived(0, "byte-wise writes");
    });

    // A text frame the worker's read cuts short is kept and finished from
    // the next reads (session.c, part_start/part_fill), not handed to the
    // frame library; whatever follows it in the same read goes on as usual.
    it("a text frame cut by reads (byte by byte; header cut; whole frames after it) is answered", async () => {
      const ws = await rawSession(p0);
      try {
        for (const b of wsFrame({ payload: '428["ping-me"]' })) {
          ws.sock.write(Buffer.from([b]));
          await sleep(1);
        }
        assert.equal(await nextTextStarting(ws, "438"), "438[]");
        const long = wsFrame({ payload: `429["ping-me",{"pad":"${"a".repeat(300)}"}]` }); // 16-bit length
        ws.sock.write(long.subarray(0, 3)); // inside the extended length
        await sleep(20);
        ws.sock.write(long.subarray(3, 200));
        await sleep(20);
        const last = wsFrame({ payload: '4211["ping-me"]' }); // cut inside its mask key
        ws.sock.write(Buffer.concat([long.subarray(200), wsFrame({ payload: '4210["ping-me"]' }), last.subarray(0, 5)]));
        await sleep(20);
        ws.sock.write(last.subarray(5));
        assert.equal(await nextTextStarting(ws, "439"), "439[]");
        assert.equal(await nextTextStarting(ws, "4310"), "4310[]");
        assert.equal(await nextTextStarting(ws, "4311"), "4311[]");
        assert.equal(ws.closed, false);
      } finally {
        ws.close();
      }
      await survived(0, "cut text frames");
    });

    for (const [what, frame, code] of [
      ["invalid UTF-8 in a text frame cut by reads", () => wsFrame({ payload: Buffer.from([0x34, 0x32, 0xff, 0xfe, 0x41, 0x42]) }), 1007],
      ["a cut frame whose length is beyond PD_MAX_MESSAGE_BYTES", () => wsFrame({ declaredLen: BigInt(MAX0 + 1) }), 1009],
      ["a cut frame that turns out unmasked", () => wsFrame({ mask: false, payload: '42["x",{}]' }), 1002],
    ]) {
      it(`${what} → close ${code}`, async () => {
        const ws = await rawSession(p0);
        try {
          const bytes = frame();
          ws.sock.write(bytes.subarray(0, 1));
          await sleep(20);
          ws.sock.write(bytes.subarray(1, 3));
          await sleep(20);
          ws.sock.write(bytes.subarray(3));
          await expectClose(ws, code, what);
        } finally {
          ws.close();
        }
        await survived(0, what);
      });
    }
  });

  // -------------------------------------------------------------------------
  describe("WebSocket handshake", () => {
    function upgrade(port, { key = "dGhlIHNhbXBsZSBub25jZQ==", version = "13", origin, extra = "", ip = uniqueIp(), path = "/socket.io/?EIO=4&transport=websocket" } = {}) {
      let req = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Forwarded-For: ${ip}\r\n`;
      if (key !== null) req += `Sec-WebSocket-Key: ${key}\r\n`;
      if (version !== null) req += `Sec-WebSocket-Version: ${version}\r\n`;
      if (origin) req += `Origin: ${origin}\r\n`;
      return rawHttp(port, `${req}${extra}\r\n`, { timeout: 3000 });
    }

    it("a good handshake gets 101 (control)", async () => {
      const r = await upgrade(p0);
      assert.equal(r.status, 101, r.text);
    });

    for (const [what, key] of [["missing", null], ["too short", "abc"], ["not base64", "!!!!!!!!!!!!!!!!!!!!!!=="],
      ["20 bytes, not 16", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="], ["without padding", "dGhlIHNhbXBsZSBub25jZQ"]]) {
      it(`a bad Sec-WebSocket-Key (${what}) → 400`, async () => {
        const r = await upgrade(p0, { key });
        assert.equal(r.status, 400, r.text);
        assert.ok(r.ended, "connection closed after the refusal");
        await survived(0, `bad key ${what}`);
      });
    }

    for (const version of ["8", "12", "14", null]) {
      it(`Sec-WebSocket-Version ${version ?? "(missing)"} → 426 with Sec-WebSocket-Version: 13`, async () => {
        const r = await upgrade(p0, { version });
        assert.equal(r.status, 426, r.text);
        assert.equal(r.headers["sec-websocket-version"], "13");
        await survived(0, `version ${version}`);
      });
    }

    for (const origin of ["http://evil.example", "http://good.example.evil.example", "null", "http://GOOD.example:80"]) {
      it(`Origin ${origin} outside CORS_ORIGIN → 403`, async () => {
        const r = await upgrade(p0, { origin });
        assert.equal(r.status, 403, r.text);
        assert.match(r.body, /Origin not allowed/);
      });
    }

    it("Origins in CORS_ORIGIN are accepted (101)", async () => {
      for (const origin of ["http://good.example", "https://also.example"]) {
        const r = await upgrade(p0, { origin });
        assert.equal(r.status, 101, `${origin}: ${r.text}`);
      }
      // The worker without CORS_ORIGIN accepts any origin.
      assert.equal((await upgrade(p1, { origin: "http://evil.example" })).status, 101);
    });

    it("too many headers → 431", async () => {
      const extra = Array.from({ length: 40 }, (_, i) => `X-Pad-${i}: ${i}\r\n`).join("");
      for (const port of [p0, p1]) {
        const r = await upgrade(port, { extra });
        assert.equal(r.status, 431, r.text);
        assert.ok(r.ended);
      }
      await survived(0, "too many headers");
    });

    it("too large headers → 431", async () => {
      for (const port of [p0, p1]) {
        const r = await upgrade(port, { extra: `X-Big: ${"b".repeat(9000)}\r\n` });
        assert.equal(r.status, 431, r.text);
        assert.ok(r.ended);
      }
      await survived(1, "too large headers");
    });

    it("per-IP connection cap (PD_MAX_CONNS_PER_IP=4) → 429; other addresses unaffected; a slot frees on close", async () => {
      const ip = uniqueIp();
      const held = [];
      try {
        // The client address is the rightmost untrusted X-Forwarded-For entry.
        for (let i = 0; i < 4; i++) held.push(await rawSession(p0, { ip: `203.0.113.${i + 1}, ${ip}` }));
        await assert.rejects(RawWs.connect(p0, undefined, { "X-Forwarded-For": ip }), (e) => {
          assert.equal(e.status, 429);
          assert.equal(e.headers["retry-after"], "5");
          return true;
        });
        const before = await metrics(c.workers[0].url);
        assert.ok(metricValue(before, dropped("ip_connection_cap")) >= 1);
        // A different rightmost address is a different client.
        const other = await rawSession(p0, { ip: `${ip}, ${uniqueIp()}` });
        other.close();
        // The other worker counts on its own.
        const elsewhere = await rawSession(p1, { ip });
        elsewhere.close();
        held.shift().close();
        await eventually("a freed slot is usable again", async () => {
          try {
            held.push(await rawSession(p0, { ip }));
            return true;
          } catch {
            return false;
          }
        });
      } finally {
        closeAll(held);
      }
      await survived(0, "the per-IP cap");
    });

    it("an upgrade that never completes its request is cut by the request timeout", async () => {
      const r = await rawHttp(p0, ["GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n", "Upgrade: websocket\r\n"],
        { timeout: HTTP_TIMEOUT_MS + 4000 });
      assert.equal(r.status, 408, r.text);
      assert.ok(r.ended);
      assert.ok(r.ms >= HTTP_TIMEOUT_MS - 200, `not before the timeout (${r.ms} ms)`);
      await survived(0, "an unfinished upgrade");
    });
  });

  // -------------------------------------------------------------------------
  describe("Engine.IO / Socket.IO packets", () => {
    const closing = [
      ["an unknown Engine.IO packet type '7'", "7", 1002],
      ["an unknown Engine.IO packet type '9'", "9x", 1002],
      ["a non-digit Engine.IO packet type", "a", 1002],
      ["an empty Engine.IO packet", "", 1002],
      ["an open packet from the client", "0{}", 1002],
      ["an empty Socket.IO packet", "4", 1002],
      ["an unknown Socket.IO packet type", "47[]", 1002],
      ["a Socket.IO CONNECT_ERROR from the client", '44{"message":"x"}', 1002],
      ["an ack id of 13 digits", `42${"1".repeat(13)}["join",{}]`, 1002],
      ["an event on a namespace with no data (the namespace ends the packet)", "42/admin", 1002],
      ["an event whose data is an empty array", "42[]", 1002],
      ["an event whose data is a lone '['", "42[", 1002],
      ["an event whose data is an object", '42{"a":1}', 1002],
      ["an event whose data is a bare string", '42"join"', 1002],
      ["an event with a negative ack id (data starting with '-')", '42-1["join",{"roomId":"abc"}]', 1002],
      ["a namespace with control characters", "40/a\u0001b,", 1002],
      ["a binary event with one attachment", '451-["offer",{"_placeholder":true,"num":0}]', 1003],
      ["an attachment bomb (99999999999 attachments)", '4599999999999-["offer",{}]', 1003],
      ["an attachment count of 13 digits", `45${"9".repeat(13)}-["offer",{}]`, 1002],
      ["a binary ack", "461-[]", 1003],
      ["a binary event without its dash", "451[]", 1002],
    ];
    for (const [what, pkt, code] of closing) {
      it(`${what} → close ${code}`, async () => {
        const ws = await rawSession(p0);
        try {
          ws.send(pkt);
          await expectClose(ws, code, what);
        } finally {
          ws.close();
        }
        await survived(0, what);
      });
    }

    // Refused (dropped and counted), socket kept: the next packet is still served.
    const droppedCases = [
      ["bad JSON after a valid prefix", '42["join",{"roomId":"abc"}]trailing', "bad_payload"],
      ["a non-string event name", "42[1,2]", "bad_payload"],
      ["42[\"offer\"] without payload", '42["offer"]', "bad_payload"],
      ["42[\"join\",null]", '42["join",null]', "bad_payload"],
      ["a numeric roomId", '42["join",{"roomId":123}]', "bad_payload"],
      ["an array roomId", '42["join",{"roomId":["a"]}]', "bad_payload"],
      ["a join without roomId", '42["join",{}]', "bad_payload"],
      ["a numeric peerId", '42["offer",{"peerId":12,"offer":{}}]', "bad_payload"],
      ["an offer without its offer field", '42["offer",{"peerId":"abcdefgh"}]', "bad_payload"],
      ["an ice-candidate as a string payload", '42["ice-candidate","str"]', "bad_payload"],
      ["initiator-online without roomId", '42["initiator-online",{}]', "bad_payload"],
      ["recipient-ready with a numeric roomId", '42["recipient-ready",{"roomId":5}]', "bad_payload"],
      ["a NUL inside the event name", '42["jo\\u0000in",{"roomId":"abc"}]', "bad_payload"],
      ["a NUL after a known event name", '42["join\\u0000evil",{"roomId":"abcdefgh"}]', "bad_payload"],
      ["a NUL inside the roomId", '42["join",{"roomId":"abcd\\u0000efgh"}]', "bad_payload"],
      ["an unknown event", '42["shutdown",{}]', "unknown_event"],
    ];
    for (const [what, pkt, reason] of droppedCases) {
      it(`${what} → dropped (${reason}), socket kept`, async () => {
        const before = await metrics(c.workers[0].url);
        const ws = await rawSession(p0);
        try {
          ws.send(pkt);
          // The socket is still served: an event with an ack id gets its ack.
          ws.send('4277["still-there"]');
          assert.equal(await nextTextStarting(ws, "43"), "4377[]");
          const extra = ws.frames.filter((x) => x.opcode === 1 && x.data.toString().startsWith("42"));
          assert.deepEqual(extra.map((x) => x.data.toString()), [], "no answer to a refused packet");
          assert.equal(ws.closed, false);
        } finally {
          ws.close();
        }
        const m = await metrics(c.workers[0].url);
        assert.ok(metricValue(m, dropped(reason)) > metricValue(before, dropped(reason)),
          `${dropped(reason)} counted (${metricValue(before, dropped(reason))} → ${metricValue(m, dropped(reason))})`);
        await survived(0, what);
      });
    }

    it("a roomId that is a string but not a valid id → 'Room does not exist' (echo bounded)", async () => {
      const ws = await rawSession(p0);
      try {
        for (const bad of ["has space", "é", "x".repeat(65), "../etc", ""]) {
          const r = await rawJoin(ws, bad);
          assert.equal(r.success, false);
          assert.equal(r.message, "Room does not exist");
        }
        ws.send(`42["join",{"roomId":"${"y".repeat(3000)}"}]`);
        const r = JSON.parse((await nextTextStarting(ws, '42["joinResponse"')).slice(2))[1];
        assert.equal(r.message, "Room does not exist");
        assert.ok(r.roomId.length <= 128, `echoed roomId bounded (${r.roomId.length})`);
      } finally {
        ws.close();
      }
      await survived(0, "bad room ids");
    });

    it("JSON nested 100 000 deep is refused (worker 2, within its message limit); the socket stays", async () => {
      const before = await metrics(c.workers[1].url);
      const ws = await rawSession(p1);
      try {
        const deep = "[".repeat(100000) + "]".repeat(100000);
        ws.send(`42["join",${deep}]`);
        ws.send(`42["offer",{"peerId":"abcdefgh","offer":${deep}}]`);
        ws.send('4278["still-there"]');
        assert.equal(await nextTextStarting(ws, "43", 20000), "4378[]");
      } finally {
        ws.close();
      }
      const m = await metrics(c.workers[1].url);
      assert.ok(metricValue(m, dropped("bad_payload")) >= metricValue(before, dropped("bad_payload")) + 2);
      await survived(1, "deep JSON");
    });

    it("JSON nested 100 000 deep on worker 1 is over its message limit → 1009", async () => {
      const ws = await rawSession(p0);
      try {
        ws.send(`42["join",${"[".repeat(100000)}${"]".repeat(100000)}]`);
        await expectClose(ws, 1009, "deep JSON over the limit");
      } finally {
        ws.close();
      }
      await survived(0, "deep JSON over the limit");
    });

    it("a 10 MB string is refused at the frame header (1009), the worker survives", async () => {
      const before = await metrics(c.workers[1].url);
      const ws = await rawSession(p1);
      try {
        ws.send(`42["offer",{"peerId":"abcdefgh","offer":"${"s".repeat(10 * 1024 * 1024)}"}]`);
        const cl = await closeOf(ws, 10000);
        // The close frame may be lost to a reset while we are still writing;
        // the counter says why the server closed.
        if (cl.code !== null) assert.equal(cl.code, 1009);
      } finally {
        ws.close();
      }
      const m = await metrics(c.workers[1].url);
      assert.equal(metricValue(m, closed("message_too_big")) - metricValue(before, closed("message_too_big")), 1);
      await survived(1, "a 10 MB string");
    });

    it("malformed signal payloads are never relayed; a good one after them is", async () => {
      const roomId = await createRoom(api);
      const ws = await rawSession(p1);
      const target = await connect(c.workers[1].url);
      try {
        assert.equal((await join(target, roomId)).success, true);
        assert.equal((await rawJoin(ws, roomId)).success, true);
        const t = target.id;
        for (const bad of [
          `42["offer",{"peerId":"${t}","offer":{"a":}}]`,
          `42["offer",{"peerId":"${t}","offer":{"a":1}`,
          `42["offer",{"peerId":"${t}","offer":{"a":1}}]]`,
          `42["offer",{"peerId":"${t}","offer":{"a":1},}]`,
          `42["offer",{"peerId":"${t}","offer":nul}]`,
          `42["answer",{"peerId":"${t}","answer":'x'}]`,
          `42["ice-candidate",{"peerId":"${t}","candidate":{"c":"\\x"}}]`,
          `42["offer",{"peerId":"${t}","offer":{"a":1} "b":2}]`,
          `42["offer",{"peerId":"${t}\\"","offer":{}}]`,
          `42["offer",{"peerId":"${t}","offer":${"[".repeat(40)}${"]".repeat(39)}}]`,
        ]) ws.send(bad);
        ws.send(`42["offer",{"peerId":"${t}","offer":{"type":"offer","sdp":"good"}}]`);
        const got = await waitFor(target, "offer");
        assert.deepEqual(got, { offer: { type: "offer", sdp: "good" }, from: ws.sid, peerId: ws.sid },
          "the first offer that arrives is the good one");
        await sleep(200);
        assert.equal(target.received.get("offer").length, 1, "nothing malformed was relayed");
      } finally {
        ws.close();
        closeAll(target);
      }
      await survived(1, "malformed signals");
    });

    it("a client that never sends 40 is closed after PD_CONNECT_TIMEOUT_MS with 1008", async () => {
      const ws = await rawSession(p0, { sio: false });
      const t0 = Date.now();
      try {
        await expectClose(ws, 1008, "connect timeout", CONNECT_TIMEOUT_MS + 5000);
        const ms = Date.now() - t0;
        assert.ok(ms >= CONNECT_TIMEOUT_MS - 300, `not before the timeout (${ms} ms)`);
      } finally {
        ws.close();
      }
      await survived(0, "a client that never connected");
    });

    it("an event flood is dropped, then closed with 1008; a socket under the burst is not", async () => {
      const before = await metrics(c.workers[0].url);
      const calm = await rawSession(p0);
      const ws = await rawSession(p0);
      try {
        for (let i = 0; i < 30; i++) calm.send('42["noop",{}]');
        calm.send('4279["still-there"]');
        assert.equal(await nextTextStarting(calm, "43"), "4379[]");
        writeRaw(ws, ...Array.from({ length: 200 }, () => wsFrame({ payload: '42["noop",{}]' })));
        await expectClose(ws, 1008, "event flood");
        const m = await metrics(c.workers[0].url);
        assert.ok(metricValue(m, dropped("event_rate")) > metricValue(before, dropped("event_rate")));
        assert.equal(metricValue(m, closed("event_flood")) - metricValue(before, closed("event_flood")), 1);
        assert.equal(calm.closed, false, "the calm socket is kept");
      } finally {
        ws.close();
        calm.close();
      }
      await survived(0, "an event flood");
    });
  });

  // -------------------------------------------------------------------------
  describe("abuse limits on the workers", () => {
    it("a room is bounded by PD_MAX_ROOM_PEERS (3): the 4th gets 'Room is full'; a freed seat is usable", async () => {
      const roomId = await createRoom(api);
      const socks = [];
      try {
        for (let i = 0; i < 3; i++) {
          socks.push(await connect(c.workers[0].url));
          assert.equal((await join(socks[i], roomId)).success, true);
        }
        const fourth = await connect(c.workers[0].url);
        socks.push(fourth);
        assert.deepEqual(await join(fourth, roomId), { success: false, message: "Room is full", roomId });
        assert.equal(await c.redisCli("SCARD", `room:${roomId}:sockets`), "3");
        assert.equal(await c.redisCli("EXISTS", `socket:${fourth.id}`), "0");
        socks[0].close();
        await eventually("seat freed in Redis", async () => (await c.redisCli("SCARD", `room:${roomId}:sockets`)) === "2");
        assert.equal((await join(fourth, roomId)).success, true);
      } finally {
        closeAll(socks);
      }
      await survived(0, "a full room");
    });

    it("X-Forwarded-For: the rightmost untrusted address is the client (join rate-limit key)", async () => {
      const cases = [
        // [worker, XFF, expected client address]
        [0, "203.0.113.60, 198.51.100.61", "198.51.100.61"],
        [0, "198.51.100.62, 127.0.0.1", "198.51.100.62"],
        [1, "203.0.113.63, 198.51.100.64, 10.1.2.3", "198.51.100.64"],
        [1, "10.1.1.1, 10.2.2.2", "10.1.1.1"],
        [1, "not-an-ip, 198.51.100.65", "198.51.100.65"],
      ];
      for (const [wi, xff, want] of cases) {
        await c.redisCli("DEL", `ratelimit:join:${want}`);
        const roomId = await createRoom(api);
        const ws = await RawWs.connect(c.workers[wi].port, undefined, { "X-Forwarded-For": xff });
        try {
          await ws.nextText();
          ws.send("40");
          await ws.nextText();
          assert.equal((await rawJoin(ws, roomId)).success, true, `join via ${xff}`);
          assert.equal(await c.redisCli("EXISTS", `ratelimit:join:${want}`), "1", `XFF "${xff}" → client ${want}`);
        } finally {
          ws.close();
        }
      }
      assert.equal(await c.redisCli("EXISTS", "ratelimit:join:203.0.113.60"), "0", "a spoofed left entry is never the key");
      assert.equal(await c.redisCli("EXISTS", "ratelimit:join:203.0.113.63"), "0");
    });

    it("a reader that stops reading is closed once its queue passes PD_MAX_SEND_QUEUE_BYTES; a reader that reads is not; others are not stalled", async () => {
      const roomId = await createRoom(api);
      const before = await metrics(c.workers[1].url);
      const slow = await rawSession(p1);
      const fast = await rawSession(p1);
      const sender = await rawSession(p1);
      try {
        for (const s of [slow, fast, sender]) assert.equal((await rawJoin(s, roomId)).success, true);
        slow.sock.pause(); // stop reading: the kernel buffers fill, then the server's queue
        const blob = "q".repeat(16000);
        const offer = (to) => wsFrame({ payload: `42["offer",{"peerId":"${to}","offer":{"sdp":"${blob}"}}]` });
        let gone = false;
        const goneP = nextTextStarting(sender, '42["peer-disconnected"', 90000).then((t) => {
          gone = true;
          return t;
        });
        let sent = 0;
        let fastGot = 0;
        const t0 = Date.now();
        // Each round carries 4 offers (64 kB) for each reader, and the next
        // round waits until the reading reader has its 4: the server's queue
        // towards it never grows, while the paused reader's does.
        const fastOffer = (x) => x.opcode === 1 && x.data.toString("latin1", 0, 9) === '42["offer';
        while (!gone && sent < 3000) {
          writeRaw(sender, offer(slow.sid), offer(slow.sid), offer(slow.sid), offer(slow.sid),
            offer(fast.sid), offer(fast.sid), offer(fast.sid), offer(fast.sid));
          sent += 4;
          for (let i = 0; i < 4; i++) {
            await nextFrame(fast, fastOffer, { timeout: 10000 });
            fastGot++;
          }
          if (sent % 80 === 0 && !gone) {
            // Others on the worker are served while the slow reader backs up.
            // The stuck reader is never drained, so a relay that waited on
            // it would not finish at all: finishing is the verdict.
            await good[1].check("while a reader is stuck");
          }
        }
        const t = await goneP;
        assert.deepEqual(JSON.parse(t.slice(2)), ["peer-disconnected", { peerId: slow.sid }]);
        const m = await metrics(c.workers[1].url);
        assert.equal(metricValue(m, closed("send_queue_full")) - metricValue(before, closed("send_queue_full")), 1,
          "exactly one socket closed for its send queue");
        assert.equal(await c.redisCli("EXISTS", `socket:${slow.sid}`), "0", "the slow reader's binding is cleaned");
        console.log(`# slow reader closed after ${sent} offers of 16 kB to each reader (${Date.now() - t0} ms)`);
        assert.ok(sent >= 16, "not closed by the first burst");
        assert.equal(fast.closed, false, "the reader that reads stays connected");
        assert.equal(fastGot, sent, "the reading reader got every offer");
        slow.sock.resume();
        assert.ok(await slow.waitClosed(10000), "the slow reader's connection ends");
      } finally {
        slow.close();
        fast.close();
        sender.close();
      }
      await survived(1, "a slow reader");
    });
  });

  // -------------------------------------------------------------------------
  describe("HTTP (room API and the workers' HTTP side)", () => {
    const ip = () => ({ "x-forwarded-for": uniqueIp() });

    it("malformed JSON and wrong types → 400 {error}", async () => {
      const bodies = ["{", "{\"roomId\":}", "[1,2]", "\"str\"", "42", "null", "{\"roomId\":\"a\",\"roomId\":\"b\"}",
        "{\"roomId\":123}", "{\"roomId\":[\"a\"]}", "{\"roomId\":{}}", "{\"roomId\":true}", "\u0000", "{\"roomId\":\"a\"}x"];
      for (const route of ["/api/create_room", "/api/check_room", "/api/leave_room"]) {
        for (const body of bodies) {
          const r = await request(api, "POST", route, { body, headers: ip() });
          assert.equal(r.status, 400, `${route} ${JSON.stringify(body)} → ${r.status} ${r.body}`);
          assert.equal(typeof r.json?.error, "string", `${route} ${JSON.stringify(body)}: JSON {error}`);
        }
      }
      await apiSurvived("malformed JSON");
    });

    it("ids outside [A-Za-z0-9_-]{1,64} → 400; the boundary ids are accepted", async () => {
      for (const id of ["", "a b", "é", "x".repeat(65), "../etc", "a\u0000b", "a.b", "a/b", "%41", "<script>", "a\nb"]) {
        for (const route of ["/api/create_room", "/api/check_room"]) {
          const r = await postJson(api, route, { roomId: id }, { headers: ip() });
          assert.equal(r.status, 400, `${route} ${JSON.stringify(id)} → ${r.status} ${r.body}`);
        }
        const r = await postJson(api, "/api/leave_room", { roomId: "abcdefgh", socketId: id }, { headers: ip() });
        assert.equal(r.status, 400, `leave_room socketId ${JSON.stringify(id)} → ${r.status}`);
      }
      for (const id of ["x".repeat(64), "a", "_-aZ09"]) {
        const r = await postJson(api, "/api/check_room", { roomId: id }, { headers: ip() });
        assert.equal(r.status, 200, `${JSON.stringify(id)} is valid`);
      }
      await apiSurvived("bad ids");
    });

    it("a body over PD_MAX_BODY_BYTES → 413 (declared: before it is sent; chunked: when it passes the limit)", async () => {
      const head = (extra) => `POST /api/logs_debug HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${extra}\r\n`;
      const declared = await rawHttp(c.roomApi.port, head(`Content-Length: ${BODY_MAX + 1}\r\n`));
      assert.equal(declared.status, 413, declared.text);
      assert.ok(declared.ended, "closed after 413");
      const big = `{"message":"${"m".repeat(BODY_MAX)}"}`;
      const sent = await rawHttp(c.roomApi.port, head(`Content-Length: ${big.length}\r\n`) + big);
      assert.equal(sent.status, 413);
      const chunk = "m".repeat(1000);
      const chunks = Array.from({ length: 6 }, () => `${chunk.length.toString(16)}\r\n${chunk}\r\n`).join("");
      const chunked = await rawHttp(c.roomApi.port, head("Transfer-Encoding: chunked\r\n") + chunks + "0\r\n\r\n");
      assert.equal(chunked.status, 413, chunked.text);
      assert.ok(chunked.ended);
      assert.match(chunked.body, /"error"/);
      await apiSurvived("413");
    });

    it("headers over the limit → 431 (count and size), on the room API and the workers", async () => {
      for (const port of [c.roomApi.port, p0]) {
        const many = Array.from({ length: 40 }, (_, i) => `X-H${i}: v\r\n`).join("");
        const r1 = await rawHttp(port, `GET /health HTTP/1.1\r\nHost: x\r\n${many}\r\n`);
        assert.equal(r1.status, 431, r1.text);
        assert.ok(r1.ended);
        const r2 = await rawHttp(port, `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${"b".repeat(9000)}\r\n\r\n`);
        assert.equal(r2.status, 431, r2.text);
        assert.ok(r2.ended);
        const r3 = await rawHttp(port, `GET /${"u".repeat(9000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
        assert.equal(r3.status, 431, `a request line over the limit: ${r3.text.slice(0, 80)}`);
      }
      await apiSurvived("431");
      await survived(0, "431");
    });

    const body = '{"roomId":"abcdefgh"}';
    const smuggling = [
      ["Content-Length with Transfer-Encoding",
        `POST /api/check_room HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`],
      ["Transfer-Encoding: identity", `POST /api/check_room HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n${body}`],
      ["Transfer-Encoding: chunked, identity", `POST /api/check_room HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n${body}`],
      ["a bad chunk size", `POST /api/check_room HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n${body}\r\n0\r\n\r\n`],
      ["a chunk with a bare LF", `POST /api/check_room HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\n${body}\r\n0\r\n\r\n`],
      ["bare LF line endings", `POST /api/check_room HTTP/1.1\nHost: x\nContent-Length: ${body.length}\n\n${body}`],
      ["obs-fold", `POST /api/check_room HTTP/1.1\r\nHost: x\r\nX-Fold: a\r\n  b\r\nContent-Length: ${body.length}\r\n\r\n${body}`],
      ["two different Content-Lengths", `POST /api/check_room HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\nContent-Length: 3\r\n\r\n${body}`],
      ["a space before the colon", `POST /api/check_room HTTP/1.1\r\nHost: x\r\nContent-Length : ${body.length}\r\n\r\n${body}`],
      ["a signed Content-Length", `POST /api/check_room HTTP/1.1\r\nHost: x\r\nContent-Length: +${body.length}\r\n\r\n${body}`],
      ["a Content-Length list", `POST /api/check_room HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}, ${body.length}\r\n\r\n${body}`],
      ["a NUL in a header value", `GET /health HTTP/1.1\r\nHost: x\r\nX-A: a\u0000b\r\n\r\n`],
      ["a bare CR", `GET /health HTTP/1.1\rHost: x\r\n\r\n`],
      ["an HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"],
      ["a garbage method", `G\u00c9T /health HTTP/1.1\r\nHost: x\r\n\r\n`],
    ];
    for (const [what, raw] of smuggling) {
      it(`request smuggling shape: ${what} → 400 and close`, async () => {
        for (const port of [c.roomApi.port, p1]) {
          const r = await rawHttp(port, raw);
          assert.equal(r.status, 400, `${what} on ${port === p1 ? "worker" : "room API"}: ${JSON.stringify(r.text.slice(0, 200))}`);
          assert.ok(r.ended, "the connection is closed");
          assert.equal(r.headers.connection, "close");
          assert.equal((r.text.match(/HTTP\/1\.1 /g) || []).length, 1, "exactly one response (nothing smuggled through)");
        }
        await apiSurvived(what);
      });
    }

    it("a well-formed chunked request is served (control for the shapes above)", async () => {
      const r = await rawHttp(c.roomApi.port,
        `POST /api/check_room HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`);
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(JSON.parse(r.body), { available: true });
    });

    it("slowloris: a request trickled byte by byte is cut with 408 after the request timeout", async () => {
      const pieces = "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".split("");
      // Cut while the trickle still goes on (a timer restarted by every byte
      // would wait for its end): judged by how much was sent, not by the
      // clock, which a busy machine stretches on both sides.
      const [a, w] = await Promise.all([
        rawHttp(c.roomApi.port, pieces, { gapMs: 100, timeout: 60000 }),
        rawHttp(p0, pieces, { gapMs: 100, timeout: 60000 }),
      ]);
      for (const r of [a, w]) {
        assert.equal(r.status, 408, r.text);
        assert.ok(r.ended);
        assert.ok(r.ms >= HTTP_TIMEOUT_MS - 200, `not before the timeout (${r.ms} ms)`);
        assert.ok(r.sent < pieces.length, `cut before the trickle ended (${r.sent} of ${pieces.length} pieces sent)`);
      }
      await apiSurvived("slowloris");
    });

    it("idle connections time out: silent from the start, and idle keep-alive after a response", async () => {
      // Nothing but these timeouts closes such a connection, so "closed"
      // (with a wait that is only a hang guard) and "not before the
      // timeout" are the verdicts; how late is the machine's business.
      const guard = { timeout: 60000 };
      const silent = rawHttp(c.roomApi.port, [], guard);
      const silentW = rawHttp(p0, [], guard);
      const keep = rawHttp(c.roomApi.port, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n", guard);
      const keepW = rawHttp(p0, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", guard);
      for (const r of await Promise.all([silent, silentW])) {
        assert.ok(r.ended, "a connection that never sends is closed");
        assert.ok(r.ms >= HTTP_TIMEOUT_MS - 200, `closed at the timeout, not before (${r.ms} ms)`);
      }
      for (const r of await Promise.all([keep, keepW])) {
        assert.equal(r.status, 200);
        assert.equal(r.headers.connection, "keep-alive");
        assert.ok(r.ended, "an idle keep-alive connection is closed");
        assert.ok(r.ms >= HTTP_TIMEOUT_MS - 200, `closed at the idle timeout, not before (${r.ms} ms)`);
      }
    });

    it("room routes are rate limited per client address (429 + Retry-After); other addresses are not", async () => {
      // Requests go in parallel batches until one is refused: one at a time
      // on a busy machine, the bucket (5/s) refilled as fast as it was
      // spent. The verdicts are the bucket's accounting: the burst is served
      // in full, and no more than the burst plus what the time taken refills.
      const who = uniqueIp();
      const statuses = [];
      const t0 = Date.now();
      for (let batch = 0; batch < 50 && !statuses.includes(429); batch++) {
        const rs = await Promise.all(Array.from({ length: 20 }, () =>
          postJson(api, "/api/check_room", { roomId: "abcdefgh" }, { headers: { "x-forwarded-for": `203.0.113.9, ${who}` } })));
        for (const r of rs) {
          statuses.push(r.status);
          if (r.status === 429) {
            assert.equal(r.headers["retry-after"], "1");
            assert.deepEqual(r.json, { error: "Too many requests" });
          } else {
            assert.equal(r.status, 200);
          }
        }
      }
      const seconds = (Date.now() - t0) / 1000;
      const served = statuses.filter((s) => s === 200).length;
      assert.ok(statuses.includes(429), "the burst runs out");
      assert.ok(served >= 40, `the burst (40) is served (${served})`);
      assert.ok(served <= 40 + Math.ceil(5 * seconds) + 1, `no more than the burst and the refill (${served} in ${seconds} s)`);
      await apiSurvived("a flood from one address");
    });

    it("set_track is bounded in size and rate, so it cannot fill Redis", async () => {
      const today = new Date().toISOString().slice(0, 10);
      const key = `referrers:daily:${today}`;
      const who = uniqueIp();
      const h = { headers: { "x-forwarded-for": who } };
      const tooLong = await postJson(api, "/api/set_track", { ref: "r".repeat(129), timestamp: Date.now() }, { headers: ip() });
      assert.equal(tooLong.status, 400);
      for (const ref of [123, null, "", ["a"], { a: 1 }]) {
        const r = await postJson(api, "/api/set_track", { ref, timestamp: Date.now() }, { headers: ip() });
        assert.equal(r.status, 400, `ref ${JSON.stringify(ref)}`);
      }
      const bad = await postJson(api, "/api/set_track", { ref: "x", timestamp: "yesterday" }, { headers: ip() });
      assert.equal(bad.status, 400);
      const fieldsBefore = Number(await c.redisCli("HLEN", key));
      // In parallel, so that the bucket (1/s) cannot refill as fast as a busy
      // machine sends; judged by the bucket's accounting, not the clock.
      const t0 = Date.now();
      const statuses = (await Promise.all(Array.from({ length: 15 }, (_, i) =>
        postJson(api, "/api/set_track", { ref: `flood-${who}-${i}`, timestamp: Date.now() }, h)))).map((r) => r.status);
      const seconds = (Date.now() - t0) / 1000;
      const ok = statuses.filter((s) => s === 200).length;
      assert.ok(ok >= 5 && ok <= 5 + Math.ceil(seconds) + 1,
        `PD_LOG_BURST (5) accepted, plus at most the refill of ${seconds} s; got ${ok}: ${statuses}`);
      assert.ok(statuses.includes(429));
      const fieldsAfter = Number(await c.redisCli("HLEN", key));
      assert.equal(fieldsAfter - fieldsBefore, ok, "only accepted refs reach Redis");
      const ttl = Number(await c.redisCli("TTL", key));
      assert.ok(ttl > 0 && ttl <= 2592000, `referrers key has the 30-day TTL (${ttl})`);
      await apiSurvived("set_track flood");
    });

    it("logs_debug lines are bounded in size and rate and cannot forge log lines", async () => {
      const who = uniqueIp();
      const marker = `mark${Date.now()}`;
      const h = { headers: { "x-forwarded-for": who } };
      const r1 = await postJson(api, "/api/logs_debug", { message: `${marker}${"L".repeat(3800)}`, timestamp: Date.now() }, h);
      assert.equal(r1.status, 200);
      const r2 = await postJson(api, "/api/logs_debug", { message: `${marker}\n{"level":"error","msg":"forged"}`, timestamp: "t".repeat(500) }, h);
      assert.equal(r2.status, 200);
      // Cut at the byte limit in the middle of a 3-byte character: the line keeps a valid prefix.
      let pre = marker;
      while ((2048 - Buffer.byteLength(pre)) % 3 === 0) pre += "x"; // make the byte limit fall inside a character
      const euro = `${pre}${"\u20ac".repeat(1200)}`;
      const r3 = await postJson(api, "/api/logs_debug", { message: euro }, h);
      assert.equal(r3.status, 200);
      const statuses = [];
      for (let i = 0; i < 10; i++) statuses.push((await postJson(api, "/api/logs_debug", { message: `${marker} flood ${i}` }, h)).status);
      assert.ok(statuses.includes(429), `rate limited: ${statuses}`);
      await sleep(100);
      const lines = fs.readFileSync(c.roomApi.stderrPath, "utf8").split("\n").filter((l) => l.includes(marker));
      assert.equal(lines.length, 3 + statuses.filter((s) => s === 200).length, "one line per accepted request, none forged");
      for (const l of lines) {
        const o = JSON.parse(l);
        assert.equal(typeof o.client_message, "string", `the line carries the message: ${l.slice(0, 200)}`);
        assert.ok(Buffer.byteLength(o.client_message) <= 2048, `message bounded (${Buffer.byteLength(o.client_message)} bytes)`);
        assert.ok((o.client_timestamp ?? "").length <= 64, "timestamp bounded");
        assert.ok(Buffer.byteLength(l) < 4096, `log line bounded (${Buffer.byteLength(l)})`);
      }
      const cut = lines.map((l) => JSON.parse(l).client_message).find((m) => m.includes("\u20ac"));
      assert.ok(cut, "the line of the cut multi-byte message is there");
      assert.ok(euro.startsWith(cut) && Buffer.byteLength(cut) > 2040, `a clean prefix of the message (${Buffer.byteLength(cut)} bytes)`);
      await apiSurvived("logs_debug flood");
    });

    it("/health/detailed and /health reveal no internal hosts, ports, ids or kernel versions", async () => {
      const r = await request(api, "GET", "/health/detailed");
      assert.equal(r.status, 200);
      const j = r.json;
      assert.deepEqual(Object.keys(j).sort(), ["dependencies", "environment", "rooms", "service", "status", "system", "timestamp", "uptime", "version"]);
      assert.deepEqual(j.rooms, { status: "open" });
      assert.deepEqual(Object.keys(j.dependencies).sort(), ["redis", "socketio"]);
      assert.deepEqual(Object.keys(j.dependencies.redis), ["status"]);
      assert.deepEqual(Object.keys(j.dependencies.socketio).sort(), ["connections", "status"]);
      assert.deepEqual(Object.keys(j.system).sort(), ["arch", "cpu", "memory", "platform"]);
      const secrets = [String(c.redisPort), "127.0.0.1", os.hostname(), os.release(), c.workers[0].id, c.workers[1].id,
        String(c.roomApi.proc.pid), "redis://", os.userInfo().username === "root" ? "/root" : os.homedir()];
      for (const path of ["/health/detailed", "/health", "/api/health"]) {
        const x = await request(api, "GET", path);
        const text = JSON.stringify(x.headers) + x.body;
        for (const s of secrets) assert.ok(!text.includes(s), `${path} must not reveal ${JSON.stringify(s)}`);
        assert.ok(!x.headers.server, `${path}: no Server header`);
      }
      for (const w of c.workers) {
        const x = await request(w.url, "GET", "/readyz");
        for (const s of [String(c.redisPort), os.hostname(), w.id]) assert.ok(!x.body.includes(s), `/readyz must not reveal ${s}`);
      }
    });
  });
});
