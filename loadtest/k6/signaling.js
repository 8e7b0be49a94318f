// k6 load script for the signaling path of a deployed privydrop-c cluster
// (or anything wire-compatible). Each iteration is one room of two peers:
// create the room through the room API, open two WebSockets speaking
// Engine.IO v4 / Socket.IO v5, join, exchange offer/answer, then ICE
// candidates; the relay latency of every candidate goes into a Trend.
//
//   k6 run -e BASE_URL=https://drop.example.org loadtest/k6/signaling.js
// Environment: BASE_URL (origin serving /socket.io/ and /api/), WS_URL and
// API_URL to override either, CANDIDATES (per peer, 20), GAP_MS (between
// candidates, 50), MAX_VUS (200), RAMP_S (60), HOLD_S (120).
import http from 'k6/http';
import { check } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import { WebSocket } from 'k6/websockets';
import { setTimeout, clearTimeout } from 'k6/timers';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1').replace(/\/$/, '');
const WS_URL = __ENV.WS_URL || `${BASE_URL.replace(/^http/, 'ws')}/socket.io/?EIO=4&transport=websocket`;
const API_URL = (__ENV.API_URL || BASE_URL).replace(/\/$/, '');
const CANDIDATES = Number(__ENV.CANDIDATES || 20);
const GAP_MS = Number(__ENV.GAP_MS || 50);
const MAX_VUS = Number(__ENV.MAX_VUS || 200);
const RAMP_S = Number(__ENV.RAMP_S || 60);
const HOLD_S = Number(__ENV.HOLD_S || 120);

const relayLatency = new Trend('relay_latency', true);
const signalsRelayed = new Counter('signals_relayed');
const joinSuccess = new Rate('join_success');
const roomsCompleted = new Rate('rooms_completed');

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    rooms: {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: [
        { duration: `${RAMP_S}s`, target: MAX_VUS },
        { duration: `${HOLD_S}s`, target: MAX_VUS },
        { duration: '15s', target: 0 },
      ],
      gracefulRampDown: '20s',
    },
  },
  thresholds: {
    relay_latency: ['p(99)<250', 'p(50)<50'],
    join_success: ['rate>0.99'],
    rooms_completed: ['rate>0.98'],
    checks: ['rate>0.99'],
  },
};

const CANDIDATE = 'candidate:842163049 1 udp 1677729535 203.0.113.7 51234 typ srflx raddr 10.0.0.5 rport 51234 generation 0';

/**
 * @typedef {{ ws: WebSocket, sid: string, joined: boolean, sent: number, received: number, peer: Peer | null }} Peer
 */

/** @param {string} name @param {unknown} payload */
function event(name, payload) {
  return `42${JSON.stringify([name, payload])}`;
}

/** @param {string} roomId */
function createRoom(roomId) {
  const res = http.post(`${API_URL}/api/create_room`, JSON.stringify({ roomId }), {
    headers: { 'Content-Type': 'application/json' },
    tags: { name: 'create_room' },
  });
  return check(res, { 'create_room 200': (r) => r.status === 200 });
}

export default function () {
  const roomId = `k6-${__VU}-${__ITER}-${Date.now().toString(36)}`;
  if (!createRoom(roomId)) return;

  /** @type {Peer[]} */
  const peers = [];
  let finished = false;
  /** @type {any} */
  let deadline = null;

  const done = (/** @type {boolean} */ ok) => {
    if (finished) return;
    finished = true;
    roomsCompleted.add(ok);
    if (deadline !== null) clearTimeout(deadline);
    for (const p of peers) p.ws.close();
  };
  deadline = setTimeout(() => done(false), 30000 + CANDIDATES * GAP_MS * 2);

  /** @param {Peer} p */
  const sendCandidates = (p) => {
    const tick = () => {
      if (finished || !p.peer || p.sent >= CANDIDATES) return;
      p.sent++;
      p.ws.send(event('ice-candidate', {
        peerId: p.peer.sid,
        candidate: { candidate: CANDIDATE, sdpMid: '0', sdpMLineIndex: 0, t: Date.now() },
        from: p.sid,
      }));
      setTimeout(tick, GAP_MS);
    };
    tick();
  };

  const maybeAllDone = () => {
    if (peers.every((p) => p.received >= CANDIDATES)) done(true);
  };

  for (let i = 0; i < 2; i++) {
    /** @type {Peer} */
    const me = { ws: new WebSocket(WS_URL), sid: '', joined: false, sent: 0, received: 0, peer: null };
    peers.push(me);
    me.ws.onerror = () => done(false);
    me.ws.onmessage = (ev) => {
      const data = /** @type {string} */ (ev && ev.data);
      if (typeof data !== 'string' || data.length === 0) return;
      switch (data[0]) {
        case '0': // Engine.IO open → Socket.IO connect
          me.ws.send('40');
          return;
        case '2': // ping → pong
          me.ws.send('3');
          return;
        case '4':
          break;
        default:
          return;
      }
      if (data.startsWith('40')) {
        me.sid = JSON.parse(data.slice(2)).sid;
        me.ws.send(event('join', { roomId }));
        return;
      }
      if (!data.startsWith('42')) return;
      const [name, payload] = JSON.parse(data.slice(2));
      if (name === 'joinResponse') {
        joinSuccess.add(payload.success === true);
        if (!payload.success) return done(false);
        me.joined = true;
        if (peers.length === 2 && peers.every((p) => p.joined)) {
          peers[0].peer = peers[1];
          peers[1].peer = peers[0];
          peers[0].ws.send(event('offer', { peerId: peers[1].sid, offer: { type: 'offer', sdp: 'v=0\r\n' }, from: peers[0].sid }));
        }
      } else if (name === 'offer') {
        check(payload, { 'offer comes from the peer': (p) => !!me.peer && p.peerId === me.peer.sid });
        me.ws.send(event('answer', { peerId: payload.peerId, answer: { type: 'answer', sdp: 'v=0\r\n' }, from: me.sid }));
        sendCandidates(me);
      } else if (name === 'answer') {
        sendCandidates(me);
      } else if (name === 'ice-candidate') {
        relayLatency.add(Date.now() - payload.candidate.t);
        signalsRelayed.add(1);
        me.received++;
        maybeAllDone();
      }
    };
  }
}
