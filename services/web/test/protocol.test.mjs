// Unit tests of the data-channel protocol codecs (src/protocol.ts).
import assert from "node:assert/strict";
import { describe, it, before } from "node:test";
import { loadSources } from "./load.mjs";

let P;
before(async () => {
  P = await loadSources("protocol.ts");
});

describe("chunk frames", () => {
  it("round-trip id, offset and payload, offsets beyond 4 GiB included", () => {
    for (const offset of [0, 1, 65536, 2 ** 32 - 1, 2 ** 32, 5 * 2 ** 40 + 12345, Number.MAX_SAFE_INTEGER - 10]) {
      const payload = Uint8Array.from({ length: 100 }, (_, i) => (i * 7 + offset) & 255);
      const frame = P.makeFrame(42, offset, payload.length);
      frame.set(payload, P.FRAME_HEADER_BYTES);
      const f = P.decodeFrame(frame.buffer);
      assert.equal(f.id, 42);
      assert.equal(f.offset, offset);
      assert.deepEqual(Array.from(f.payload), Array.from(payload));
    }
  });

  it("has the documented 16-byte header", () => {
    const frame = P.makeFrame(0x01020304, 2 ** 32 + 5, 1);
    assert.deepEqual(Array.from(frame.subarray(0, 16)), [0x50, 2, 0, 0, 1, 2, 3, 4, 0, 0, 0, 1, 0, 0, 0, 5]);
  });

  it("refuses frames that are empty, of another version or not ours", () => {
    assert.equal(P.decodeFrame(new ArrayBuffer(16)), null);
    const f = P.makeFrame(1, 0, 4);
    f[1] = 1;
    assert.equal(P.decodeFrame(f.buffer), null);
    const g = P.makeFrame(1, 0, 4);
    g[0] = 0x51;
    assert.equal(P.decodeFrame(g.buffer), null);
  });
});

describe("control messages", () => {
  it("round-trip every message type", () => {
    const msgs = [
      { type: "hello", version: 2, role: "sender", clientId: "c", session: "s" },
      { type: "manifest", session: "s", revision: 2, part: 0, parts: 1, items: [{ id: 1, kind: "file", path: "a/b.txt", size: 3, mime: "text/plain", lastModified: 5 }] },
      { type: "request", id: 1, offset: 10 },
      { type: "cancel", id: 1 },
      { type: "ack", id: 1, offset: 1048576 },
      { type: "end", id: 1, size: 3, sha256: "ab" },
      { type: "result", id: 1, ok: true, sha256: "ab" },
      { type: "error", id: 1, code: "not-found", message: "gone" },
    ];
    for (const m of msgs) assert.deepEqual(P.decodeControl(P.encodeControl(m)), m);
  });

  it("rejects malformed or unknown messages", () => {
    for (const bad of ["", "null", "[]", "{}", '{"type":"nope"}', '{"type":"request","id":-1,"offset":0}',
      '{"type":"request","id":1,"offset":1.5}', '{"type":"ack","id":"1","offset":0}',
      '{"type":"manifest","session":"s","revision":1,"part":1,"parts":1,"items":[]}',
      '{"type":"manifest","session":"s","revision":1,"part":0,"parts":1,"items":[{"id":1}]}',
      '{"type":"hello","version":0,"role":"sender","clientId":"c"}', "{not json"]) {
      assert.equal(P.decodeControl(bad), null, bad);
    }
  });
});

describe("manifest parts", () => {
  it("split a large manifest into parts below the limit and keep every item in order", () => {
    const items = Array.from({ length: 5000 }, (_, i) => ({ id: i + 1, kind: "file", path: `folder/sub/file-${i}.bin`, size: i, mime: "application/octet-stream", lastModified: 0 }));
    const parts = P.manifestParts("s", 7, items);
    assert.ok(parts.length > 1);
    for (const [i, p] of parts.entries()) {
      assert.equal(p.part, i);
      assert.equal(p.parts, parts.length);
      assert.ok(P.encodeControl(p).length < P.MANIFEST_PART_BYTES + 1024);
    }
    assert.deepEqual(parts.flatMap((p) => p.items), items);
  });

  it("send an empty manifest as one part", () => {
    assert.deepEqual(P.manifestParts("s", 1, []), [{ type: "manifest", session: "s", revision: 1, part: 0, parts: 1, items: [] }]);
  });
});

describe("safePath", () => {
  it("keeps ordinary and non-ASCII paths", () => {
    assert.equal(P.safePath("album/photos/2024/a.jpg"), "album/photos/2024/a.jpg");
    assert.equal(P.safePath("Grüße/日本語.txt"), "Grüße/日本語.txt");
  });
  it("removes traversal, absolute and empty segments and replaces reserved characters", () => {
    assert.equal(P.safePath("../../etc/passwd"), "etc/passwd");
    assert.equal(P.safePath("/abs//x/./y"), "abs/x/y");
    assert.equal(P.safePath("a\\..\\b"), "a/b");
    assert.equal(P.safePath('we<i>rd:"na|me?*'), "we_i_rd__na_me__");
    assert.equal(P.safePath("a\u0000b"), "a_b");
    assert.equal(P.safePath("../.."), null);
  });
});
