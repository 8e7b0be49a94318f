// The time a signal takes to a long-polling client whose requests all reach
// the worker that does not own its session (so every POST and GET is
// forwarded), on an otherwise quiet cluster, with the links between workers
// on and off (docs/architecture.md §Direct links between workers). A quiet
// cluster matters: a flush that waits for the loop's next wake-up only shows
// when nothing else wakes it.
//   make c && node bench/peer-links-latency.mjs [rounds]   (PD_BIN_DIR as for the tests)
import { startCluster } from "../tests/lib/cluster.mjs";
import { startRoundRobinFront } from "../tests/lib/rrfront.mjs";
import { closeAll, connect, createRoom, join, sleep, waitFor } from "../tests/integration/helpers.mjs";
import { metricValue, metrics } from "../tests/integration/wire.mjs";

const ROUNDS = Number(process.argv[2] || 40);
const OFFER = { type: "offer", sdp: "v=0\r\n" };

async function run(env) {
  const c = await startCluster({ workers: 2, signalEnv: env });
  const fronts = [];
  try {
    // The handshake on worker 1 (the owner), every later request on worker 2.
    const client = async () => {
      const f = await startRoundRobinFront([c.workers[0].port, c.workers[1].port], { route: (n) => (n < 1 ? 0 : 1) });
      fronts.push(f);
      return connect(f.url, { transports: ["polling"] });
    };
    const p = await client();
    const q = await client();
    const room = await createRoom(c.roomApi.url);
    await join(p, room);
    await join(q, room);
    const ms = [];
    for (let i = 0; i < ROUNDS; i++) {
      await sleep(150);
      const t = process.hrtime.bigint();
      const got = waitFor(q, "offer");
      p.emit("offer", { peerId: q.id, offer: OFFER });
      await got;
      ms.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    closeAll(p, q);
    const m = await metrics(c.workers[1].url);
    const path = (k) => metricValue(m, `privydrop_signal_poll_forward_path_total{path="${k}"}`);
    ms.sort((a, b) => a - b);
    const at = (f) => ms[Math.min(ms.length - 1, Math.floor(f * ms.length))].toFixed(1);
    console.log(`${env.PD_PEER_LINKS === "0" ? "links off" : "links on "}: median ${at(0.5)} ms, p90 ${at(0.9)} ms, ` +
      `max ${at(1)} ms (forwarded: ${path("link")} on the link, ${path("redis")} through Redis)`);
  } finally {
    for (const f of fronts) await f.close();
    await c.stop();
  }
}

await run({});
await run({ PD_PEER_LINKS: "0" });
