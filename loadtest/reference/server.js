'use strict';
// The Node baseline for benchmarks: what a user would deploy instead of the
// C services — Socket.IO 4 with the Redis adapter for the signaling workers,
// Express for the room API, ioredis for Redis. Same events and join rules
// (docs/wire-protocol.md §Events, §Join), same routes (§Room API) and the
// same Redis keys (docs/architecture.md §Redis schema), so the same load
// generator drives both stacks.
//
//   ROLE=signal PORT=3001 node server.js     one signaling process
//   ROLE=api    PORT=3002 node server.js     the room API
// Environment: REDIS_HOST, REDIS_PORT, DISABLE_JOIN_RATE_LIMIT, CORS_ORIGIN,
// NODE_ENV, PD_TURN_SECRET, PD_TURN_HOST.
// It is a baseline, not a product: no cluster bookkeeping (pd:* keys) and no
// reaper; a process that dies leaves its sockets bound until their TTL.

const http = require('http');
const crypto = require('crypto');
const Redis = require('ioredis');

const ROLE = process.env.ROLE || 'signal';
const PORT = Number(process.env.PORT || (ROLE === 'api' ? 3002 : 3001));
const REDIS = { host: process.env.REDIS_HOST || '127.0.0.1', port: Number(process.env.REDIS_PORT || 6379) };
const RATE_LIMIT = process.env.DISABLE_JOIN_RATE_LIMIT !== '1';
const ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
const ROOM_TTL = 86400;
const EMPTY_ROOM_TTL = 900;
const started = Date.now();

const redis = new Redis({ ...REDIS, lazyConnect: false, maxRetriesPerRequest: 2 });

// The join decision in one round trip, with the same order of rules as the
// C worker: bound elsewhere, rate limit (unless a re-join), room exists, bind.
// KEYS room, room sockets, socket:<sid>, ratelimit:join:<ip>
// ARGV sid, room id, now ms, limit on, unique member
redis.defineCommand('pdJoin', {
  numberOfKeys: 4,
  lua: `
local cur = redis.call('GET', KEYS[3])
if cur and cur ~= ARGV[2] then return {2} end
local rejoin = (cur == ARGV[2])
if (not rejoin) and ARGV[4] == '1' then
  local now = tonumber(ARGV[3])
  redis.call('ZADD', KEYS[4], now, ARGV[5])
  redis.call('ZREMRANGEBYSCORE', KEYS[4], 0, now - 5000)
  redis.call('EXPIRE', KEYS[4], 5)
  local count = redis.call('ZCARD', KEYS[4])
  if count > 2 then
    local oldest = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
    local reset = math.ceil(((tonumber(oldest[2]) or now) + 5000 - now) / 1000)
    if reset < 0 then reset = 0 end
    return {3, 0, reset}
  end
end
if redis.call('HEXISTS', KEYS[1], 'created_at') == 0 then return {4} end
if not rejoin then
  redis.call('SET', KEYS[3], ARGV[2], 'EX', 90000)
  redis.call('SADD', KEYS[2], ARGV[1])
end
redis.call('EXPIRE', KEYS[1], ${ROOM_TTL})
redis.call('EXPIRE', KEYS[2], ${ROOM_TTL})
return {rejoin and 1 or 0}`,
});

// KEYS room, room sockets, socket:<sid>  ARGV sid, room id
redis.defineCommand('pdLeave', {
  numberOfKeys: 3,
  lua: `
local removed = redis.call('SREM', KEYS[2], ARGV[1])
if redis.call('GET', KEYS[3]) == ARGV[2] then redis.call('DEL', KEYS[3]) end
local exists = redis.call('EXISTS', KEYS[1])
if exists == 1 and redis.call('SCARD', KEYS[2]) == 0 then redis.call('EXPIRE', KEYS[1], ${EMPTY_ROOM_TTL}) end
return removed + 2 * exists`,
});

const leaveKeys = (room, sid) => [`room:${room}`, `room:${room}:sockets`, `socket:${sid}`, sid, room];

function corsOrigins() {
  const v = process.env.CORS_ORIGIN;
  return v ? v.split(',').map((s) => s.trim()).filter(Boolean) : null;
}

// ---- signaling --------------------------------------------------------------

function startSignal() {
  const { Server } = require('socket.io');
  const { createAdapter } = require('@socket.io/redis-adapter');
  const httpServer = http.createServer((req, res) => {
    if (req.url === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"status":"ok"}');
      return;
    }
    res.writeHead(404, { 'Content-Type': 'application/json' });
    res.end('{"error":"Not found"}');
  });
  const origins = corsOrigins();
  const io = new Server(httpServer, {
    // WebSocket only, as PrivyDrop's client; the bench's polling scenario
    // sets PD_REF_TRANSPORTS=polling,websocket (and gives each client one
    // worker for all its requests: polling on Node needs sticky sessions).
    transports: (process.env.PD_REF_TRANSPORTS || 'websocket').split(','),
    serveClient: false,
    pingInterval: 25000,
    pingTimeout: 20000,
    maxHttpBufferSize: 65536,
    cors: origins ? { origin: origins, credentials: true } : undefined,
  });
  const pub = new Redis(REDIS);
  const sub = pub.duplicate();
  io.adapter(createAdapter(pub, sub));

  function clientIp(socket) {
    const xff = socket.handshake.headers['x-forwarded-for'];
    const peer = socket.handshake.address || '';
    const trusted = peer === '127.0.0.1' || peer === '::1' || peer === '::ffff:127.0.0.1';
    if (trusted && typeof xff === 'string' && xff) return xff.split(',')[0].trim();
    return peer;
  }

  function joinResponse(socket, success, message, roomId) {
    socket.emit('joinResponse', { success, message, roomId });
  }

  io.on('connection', (socket) => {
    socket.data.room = '';
    const ip = clientIp(socket);

    socket.on('join', async (data) => {
      const roomId = data && data.roomId;
      if (typeof roomId !== 'string') return;
      if (!ID_RE.test(roomId)) return joinResponse(socket, false, 'Room does not exist', roomId);
      if (socket.data.room && socket.data.room !== roomId)
        return joinResponse(socket, false, 'Socket is already bound to another room', roomId);
      let r;
      try {
        const now = Date.now();
        r = await redis.pdJoin(`room:${roomId}`, `room:${roomId}:sockets`, `socket:${socket.id}`,
          `ratelimit:join:${ip}`, socket.id, roomId, now, RATE_LIMIT ? '1' : '0', `${now}-${socket.id}`);
      } catch (err) {
        socket.emit('joinResponse', { success: false, message: 'Server error while joining room', error: String(err.message || err) });
        return;
      }
      switch (r[0]) {
        case 0:
        case 1:
          if (socket.data.room && socket.data.room !== roomId)
            return joinResponse(socket, false, 'Socket is already bound to another room', roomId);
          socket.data.room = roomId;
          // The room itself for broadcasts, and room:sid so that a signal
          // reaches its target only inside the sender's room.
          socket.join([roomId, `${roomId}:${socket.id}`]);
          joinResponse(socket, true, 'Successfully joined room', roomId);
          socket.to(roomId).emit('ready', { peerId: socket.id });
          return;
        case 2:
          return joinResponse(socket, false, 'Socket is already bound to another room', roomId);
        case 3:
          return joinResponse(socket, false, `Rate limit exceeded. Try again in ${r[2]}s. Attempts left: ${r[1]}.`, roomId);
        default:
          return joinResponse(socket, false, 'Room does not exist', roomId);
      }
    });

    const relay = (event, field) => (data) => {
      const room = socket.data.room;
      if (!room || !data || typeof data.peerId !== 'string' || data[field] === undefined) return;
      if (!ID_RE.test(data.peerId)) return;
      io.to(`${room}:${data.peerId}`).emit(event, { [field]: data[field], from: socket.id, peerId: socket.id });
    };
    socket.on('offer', relay('offer', 'offer'));
    socket.on('answer', relay('answer', 'answer'));
    socket.on('ice-candidate', relay('ice-candidate', 'candidate'));

    socket.on('initiator-online', (data) => {
      const room = socket.data.room;
      if (!room || !data || data.roomId !== room) return;
      socket.to(room).emit('initiator-online', { roomId: room });
    });
    socket.on('recipient-ready', (data) => {
      const room = socket.data.room;
      if (!room || !data || data.roomId !== room) return;
      if (data.peerId !== undefined && data.peerId !== socket.id) return;
      socket.to(room).emit('recipient-ready', { peerId: socket.id });
    });

    socket.on('disconnect', () => {
      const room = socket.data.room;
      if (!room) return;
      socket.to(room).emit('peer-disconnected', { peerId: socket.id });
      socket.data.room = '';
      redis.pdLeave(...leaveKeys(room, socket.id)).catch(() => {});
    });
  });

  httpServer.listen(PORT, process.env.PD_LISTEN_ADDR || '0.0.0.0', () => {
    console.log(JSON.stringify({ msg: 'listening', role: 'signal', port: PORT, pid: process.pid }));
  });
  return () => io.close();
}

// ---- room API ------------------------------------------------------------------

function startApi() {
  const express = require('express');
  const { Emitter } = require('@socket.io/redis-emitter');
  const emitter = new Emitter(redis.duplicate());
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const origins = corsOrigins();
  if (origins) {
    app.use((req, res, next) => {
      const o = req.headers.origin;
      if (o && (origins.includes('*') || origins.includes(o))) {
        res.set('Access-Control-Allow-Origin', o);
        res.set('Access-Control-Allow-Credentials', 'true');
        res.set('Vary', 'Origin');
      }
      if (req.method === 'OPTIONS') {
        res.set('Access-Control-Allow-Methods', 'GET, POST, OPTIONS');
        res.set('Access-Control-Allow-Headers', 'Content-Type');
        return res.sendStatus(204);
      }
      next();
    });
  }
  app.use(express.json({ limit: '16kb' }));

  const validId = (v) => typeof v === 'string' && ID_RE.test(v);
  const fail503 = (res) => res.status(503).json({ error: 'Service temporarily unavailable' });

  async function createIfFree(id) {
    const ok = await redis.hsetnx(`room:${id}`, 'created_at', Date.now());
    if (ok) await redis.expire(`room:${id}`, ROOM_TTL);
    return ok === 1;
  }
  function randomCode(n, alphabet) {
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[crypto.randomInt(alphabet.length)];
    return s;
  }

  app.get('/api/get_room', async (req, res) => {
    try {
      for (let i = 0; i < 10; i++) {
        const id = randomCode(4, '0123456789');
        if (await createIfFree(id)) return res.json({ roomId: id });
      }
      for (let i = 0; i < 50; i++) {
        const id = randomCode(4, 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789');
        if (await createIfFree(id)) return res.json({ roomId: id });
      }
      res.status(503).json({ error: 'No free room id' });
    } catch {
      fail503(res);
    }
  });

  app.post('/api/create_room', async (req, res) => {
    const roomId = req.body && req.body.roomId;
    if (roomId === undefined || roomId === null || roomId === '') return res.status(400).json({ error: 'Room ID is required' });
    if (!validId(roomId)) return res.status(400).json({ error: 'Invalid room ID' });
    try {
      if (await createIfFree(roomId)) return res.json({ success: true, message: 'create room success' });
      if (roomId.length >= 8) return res.json({ success: true, message: 'room exists (rejoin allowed)' });
      res.json({ success: false, message: 'roomId is already exists' });
    } catch {
      fail503(res);
    }
  });

  app.post('/api/check_room', async (req, res) => {
    const roomId = req.body && req.body.roomId;
    if (roomId === undefined || roomId === null || roomId === '') return res.status(400).json({ error: 'Room ID is required' });
    if (!validId(roomId)) return res.json({ available: true });
    try {
      const exists = await redis.exists(`room:${roomId}`);
      res.json({ available: exists === 0 });
    } catch {
      fail503(res);
    }
  });

  app.post('/api/leave_room', async (req, res) => {
    const { roomId, socketId } = req.body || {};
    if (!roomId || !socketId) return res.status(400).json({ error: 'Room ID and Socket ID are required' });
    if (!validId(roomId) || !validId(socketId)) return res.json({ success: true, message: 'Room does not exist.' });
    try {
      const r = await redis.pdLeave(...leaveKeys(roomId, socketId));
      if (r < 2) return res.json({ success: true, message: 'Room does not exist.' });
      emitter.to(roomId).emit('peer-disconnected', { peerId: socketId });
      res.json({ success: true, message: 'Successfully left the room' });
    } catch {
      fail503(res);
    }
  });

  app.post('/api/set_track', async (req, res) => {
    const ref = req.body && req.body.ref;
    if (typeof ref !== 'string' || !ref || ref.length > 256) return res.status(400).json({ error: 'ref is required' });
    const key = `referrers:daily:${new Date().toISOString().slice(0, 10)}`;
    try {
      await redis.multi().hincrby(key, ref, 1).expire(key, 30 * 86400).exec();
      res.json({ success: true });
    } catch {
      fail503(res);
    }
  });

  app.post('/api/logs_debug', (req, res) => {
    const m = req.body && req.body.message;
    console.log(JSON.stringify({ msg: 'client log', message: String(m).slice(0, 2048) }));
    res.json({ success: true });
  });

  const health = () => ({
    status: 'healthy',
    timestamp: new Date().toISOString(),
    uptime: Math.floor((Date.now() - started) / 1000),
    service: 'privydrop-backend',
    version: '0.1.0',
    environment: process.env.NODE_ENV || 'production',
  });
  app.get(['/health', '/api/health'], (req, res) => res.json(health()));
  app.get('/health/detailed', async (req, res) => {
    let up = false;
    try {
      up = (await redis.ping()) === 'PONG';
    } catch {}
    res.status(up ? 200 : 503).json({
      ...health(),
      status: up ? 'healthy' : 'unhealthy',
      dependencies: { redis: { status: up ? 'connected' : 'disconnected' }, socketio: { status: 'running', connections: 0 } },
      system: { memory: process.memoryUsage(), pid: process.pid },
    });
  });

  app.get('/api/ice_servers', (req, res) => {
    const secret = process.env.PD_TURN_SECRET;
    const host = process.env.PD_TURN_HOST || '127.0.0.1';
    const ttl = Number(process.env.PD_TURN_TTL_S || 86400);
    const iceServers = [{ urls: [`stun:${host}:3478`] }];
    if (secret) {
      const username = `${Math.floor(Date.now() / 1000) + ttl}:${crypto.randomBytes(6).toString('hex')}`;
      const credential = crypto.createHmac('sha1', secret).update(username).digest('base64');
      iceServers.push({ urls: [`turn:${host}:3478?transport=udp`, `turn:${host}:3478?transport=tcp`], username, credential });
    }
    res.json({ iceServers, ttl });
  });

  app.get('/metrics', (req, res) => {
    res.type('text/plain').send(`process_resident_memory_bytes ${process.memoryUsage().rss}\n`);
  });
  app.use((req, res) => res.status(404).json({ error: 'Not found' }));
  // Malformed JSON and bodies over the limit: a JSON error, not an HTML page.
  // eslint-disable-next-line no-unused-vars
  app.use((err, req, res, next) => res.status(err.status || 400).json({ error: err.type === 'entity.too.large' ? 'Payload too large' : 'Invalid JSON' }));

  const server = app.listen(PORT, process.env.PD_LISTEN_ADDR || '0.0.0.0', () => {
    console.log(JSON.stringify({ msg: 'listening', role: 'api', port: PORT, pid: process.pid }));
  });
  server.keepAliveTimeout = 65000;
  return () => server.close();
}

const stop = ROLE === 'api' ? startApi() : startSignal();
for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    stop();
    redis.quit().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
