// k6 load script for the room API of a deployed privydrop-c cluster:
// constant-arrival-rate scenarios on check_room and get_room (the two routes
// every visitor hits), with latency and error thresholds.
//
//   k6 run -e BASE_URL=https://drop.example.org loadtest/k6/roomapi.js
// Environment: BASE_URL (origin serving /api/), CHECK_RATE (requests/s, 500),
// GET_RATE (100), DURATION_S (120), MAX_VUS (400).
import http from 'k6/http';
import { check } from 'k6';
import { Trend } from 'k6/metrics';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1').replace(/\/$/, '');
const CHECK_RATE = Number(__ENV.CHECK_RATE || 500);
const GET_RATE = Number(__ENV.GET_RATE || 100);
const DURATION = `${Number(__ENV.DURATION_S || 120)}s`;
const MAX_VUS = Number(__ENV.MAX_VUS || 400);

const checkLatency = new Trend('check_room_latency', true);
const getLatency = new Trend('get_room_latency', true);

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    check_room: {
      executor: 'constant-arrival-rate',
      exec: 'checkRoom',
      rate: CHECK_RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: Math.min(50, MAX_VUS),
      maxVUs: MAX_VUS,
    },
    get_room: {
      executor: 'constant-arrival-rate',
      exec: 'getRoom',
      rate: GET_RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: Math.min(20, MAX_VUS),
      maxVUs: MAX_VUS,
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    check_room_latency: ['p(99)<100'],
    get_room_latency: ['p(99)<150'],
    checks: ['rate>0.99'],
  },
};

const JSON_HEADERS = { headers: { 'Content-Type': 'application/json' } };

/** Rooms created once for the check_room scenario to look up. */
export function setup() {
  const rooms = [];
  for (let i = 0; i < 20; i++) {
    const roomId = `k6check-${i}-${Date.now().toString(36)}`;
    const res = http.post(`${BASE_URL}/api/create_room`, JSON.stringify({ roomId }), JSON_HEADERS);
    if (res.status === 200) rooms.push(roomId);
  }
  return { rooms };
}

/** @param {{ rooms: string[] }} data */
export function checkRoom(data) {
  const roomId = data.rooms.length ? data.rooms[__ITER % data.rooms.length] : 'k6-missing';
  const res = http.post(`${BASE_URL}/api/check_room`, JSON.stringify({ roomId }), {
    ...JSON_HEADERS,
    tags: { name: 'check_room' },
  });
  checkLatency.add(res.timings.duration);
  check(res, {
    'check_room 200': (r) => r.status === 200,
    'check_room answers available': (r) => typeof r.json('available') === 'boolean',
  });
}

export function getRoom() {
  const res = http.get(`${BASE_URL}/api/get_room`, { tags: { name: 'get_room' } });
  getLatency.add(res.timings.duration);
  check(res, {
    'get_room 200': (r) => r.status === 200,
    'get_room gives a room id': (r) => typeof r.json('roomId') === 'string',
  });
}
