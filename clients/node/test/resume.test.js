'use strict';
// A Node stream that survives its server: two server processes behind one client, the serving one stopped
// mid-stream (needs VIDEOMATCH_SERVER_DLL, the built server, which test.sh sets).
const fs = require('node:fs');
const net = require('node:net');
const { spawn } = require('node:child_process');
const test = require('node:test');
const assert = require('node:assert/strict');
const { VideoMatchClient, ResumePoint } = require('../support/subject').client;
const { texture, crop } = require('../support/scenes');

const serverDll = process.env.VIDEOMATCH_SERVER_DLL || '';
const settings = ['--Inference:EmbeddedWidth=160', '--Inference:EmbeddedHeight=128', '--Inference:WarmUp=false', '--Metrics:Url='];
const picture = texture(300, 400, 7);

function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** The built server as a process on a port, ready once it answers GetModelInfo (UNAVAILABLE while loading). */
async function startServer(port, extra = []) {
  const child = spawn('dotnet', [serverDll, ...settings, ...extra, '--urls', `http://127.0.0.1:${port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  const server = { port, child, log: '' };
  child.stdout.on('data', (chunk) => { server.log += chunk; });
  child.stderr.on('data', (chunk) => { server.log += chunk; });
  server.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  const probe = new VideoMatchClient(`127.0.0.1:${port}`);
  try {
    for (const started = Date.now(); ;) {
      try {
        await probe.modelInfo();
        return server;
      } catch {
        if (child.exitCode !== null || Date.now() - started > 60000) throw new Error(`the server on ${port} did not start: ${server.log.slice(-2000)}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  } finally {
    probe.close();
  }
}

function streams(server) {
  return (server.log.match(/Stream camera from \S+ started/g) || []).length - (server.log.match(/Stream camera ended/g) || []).length;
}

async function* frames(gate, count = 16, taking = () => {}) {
  for (let i = 0; i < count; i++) {
    taking(i);
    if (gate && i === 8) await gate.promise;
    if (gate && i >= 8) await new Promise((resolve) => setTimeout(resolve, 20)); // frames flow while the server stops
    yield crop(picture, 20 + 2 * i, 10 + i, 160, 128);
  }
}

function describe(results) {
  return results.map((r) => (r.kind === 'pair'
    ? `${r.sequence0}->${r.sequence1} key=${r.newKeyframe} n=${r.matches.count} s=${r.matches.scores.join(',')} k1=${r.matches.keypoints1.join(',')} ids=${r.matches.trackIds.join(',')}`
    : `${r.sequence} ${r.code}`));
}

const options = { threshold: 0.2, name: 'camera', trackIds: true, keyframes: true, rekeyMinInliers: 60 };

test('resume', { skip: !(serverDll && fs.existsSync(serverDll)) && 'needs VIDEOMATCH_SERVER_DLL (the built server; test.sh sets it)' }, async (t) => {
  await t.test('a server stopped mid-stream: the stream goes on as on one server', async () => {
    const ports = [await freePort(), await freePort()];
    const servers = [await startServer(ports[0]), await startServer(ports[1])];
    try {
      const client = new VideoMatchClient(ports.map((p) => `127.0.0.1:${p}`).join(','));
      const moves = [];
      let open;
      const gate = { promise: new Promise((resolve) => { open = resolve; }) };
      const running = client.stream(frames(gate), { ...options, resume: true, onMove: (move) => moves.push(move) });
      for (const started = Date.now(); !servers.some((s) => /Stream camera from/.test(s.log)) || servers.every((s) => streams(s) === 0);) {
        assert.ok(Date.now() - started < 60000, 'the stream started');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // Stop the serving server while the second half flows: what it read, it answers; the rest goes elsewhere.
      const serving = servers.find((s) => streams(s) > 0);
      open();
      serving.child.kill('SIGTERM');
      const results = await running;
      assert.equal(await serving.exited, 0);
      client.close();

      const survivor = servers.find((s) => s !== serving);
      const single = new VideoMatchClient(`127.0.0.1:${survivor.port}`);
      const expected = await single.stream(frames(null), options);
      single.close();
      assert.equal(results.length, 16);
      assert.deepEqual(describe(results), describe(expected));
      assert.equal(moves.length, 1);
      assert.equal(moves[0].cause, 14); // UNAVAILABLE
    } finally {
      for (const server of servers) if (server.child.exitCode === null) server.child.kill('SIGKILL');
    }
  });

  await t.test('the drain time runs out with pairs queued: those frames are matched on the next server', async () => {
    // A drain of 0 s: at SIGTERM every pair not matched yet is answered DROPPED with resendElsewhere; the client
    // hands none of those on and sends those frames again where the stream resumes.
    const ports = [await freePort(), await freePort()];
    const servers = [await startServer(ports[0], ['--Streaming:ShutdownDrainSeconds=0', '--Batching:MaxBatchSize=1'])];
    try {
      // The second address has no server yet: the stream starts on the first, and moves once the second is up.
      const client = new VideoMatchClient(ports.map((p) => `127.0.0.1:${p}`).join(','));
      const moves = [];
      // With 16 frames unanswered at most, taking frame 22 means frames 0..5 were answered and 16 are in flight.
      let inFlight;
      const sixAnswered = new Promise((resolve) => { inFlight = resolve; });
      const running = client.stream(frames(null, 24, (i) => { if (i === 22) inFlight(); }), { threshold: 0.2, name: 'camera', trackIds: true,
        resume: true, maxAttempts: 40, resumeDeadlineMs: 120000, maxUnanswered: 16, onMove: (move) => moves.push(move) });
      await sixAnswered;
      servers[0].child.kill('SIGTERM');
      assert.equal(await servers[0].exited, 0);
      servers.push(await startServer(ports[1]));
      const results = await running;
      client.close();

      const ended = /Stream camera ended after .*?, (\d+) dropped/.exec(servers[0].log);
      assert.ok(ended, servers[0].log.slice(-2000));
      assert.ok(Number(ended[1]) > 0, `the drain dropped no pair, so nothing was to send again: ${ended[0]}`);
      const single = new VideoMatchClient(`127.0.0.1:${ports[1]}`);
      const expected = await single.stream(frames(null, 24), { threshold: 0.2, name: 'camera', trackIds: true });
      single.close();
      assert.equal(results.length, 24);
      assert.deepEqual(describe(results), describe(expected));
      assert.equal(moves.length, 1);
    } finally {
      for (const server of servers) if (server.child.exitCode === null) server.child.kill('SIGKILL');
    }
  });

  await t.test('openStream with resume: frames sent one by one, results as they come, a server stopped midway', async () => {
    const ports = [await freePort(), await freePort()];
    const servers = [await startServer(ports[0])];
    try {
      const client = new VideoMatchClient(ports.map((p) => `127.0.0.1:${p}`).join(','));
      const moves = [];
      const stream = client.openStream({ ...options, resume: true, maxAttempts: 40, resumeDeadlineMs: 120000, onMove: (move) => moves.push(move) });
      const results = [];
      const reading = (async () => { for await (const result of stream) results.push(result); })();
      const images = [];
      for await (const image of frames(null, 24)) images.push(image);
      for (let i = 0; i < images.length; i++) {
        if (i === 12) {
          // Results come while the stream is open, not at its end.
          for (const started = Date.now(); results.length < 4;) {
            assert.ok(Date.now() - started < 60000, `only ${results.length} results before the stream ended`);
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
          servers[0].child.kill('SIGTERM');
          assert.equal(await servers[0].exited, 0);
          servers.push(await startServer(ports[1]));
        }
        await stream.send(images[i]);
      }
      stream.end();
      await reading;
      client.close();

      const single = new VideoMatchClient(`127.0.0.1:${ports[1]}`);
      const expected = await single.stream(frames(null, 24), options);
      single.close();
      assert.deepEqual(describe(results), describe(expected));
      assert.equal(moves.length, 1);
      assert.throws(() => stream.send(images[0], 3), /numbers its frames itself/);
    } finally {
      for (const server of servers) if (server.child.exitCode === null) server.child.kill('SIGKILL');
    }
  });

  await t.test('a server that hangs mid-stream: keepalive pings notice it and the stream goes on', async () => {
    // SIGSTOP: the connection stays open and nothing answers; only the client's HTTP/2 pings notice (1 s here).
    const ports = [await freePort(), await freePort()];
    const servers = [await startServer(ports[0]), await startServer(ports[1])];
    try {
      const client = new VideoMatchClient(ports.map((p) => `127.0.0.1:${p}`).join(','), { keepAliveMs: 1000, keepAliveTimeoutMs: 1000 });
      const moves = [];
      let open;
      const gate = { promise: new Promise((resolve) => { open = resolve; }) };
      const running = client.stream(frames(gate), { ...options, resume: true, onMove: (move) => moves.push({ move, at: Date.now() }) });
      for (const started = Date.now(); servers.every((s) => streams(s) === 0);) {
        assert.ok(Date.now() - started < 60000, 'the stream started');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await new Promise((resolve) => setTimeout(resolve, 500)); // the first half answered
      const serving = servers.find((s) => streams(s) > 0);
      serving.child.kill('SIGSTOP');
      const hung = Date.now();
      open();
      const results = await running;
      client.close();

      const survivor = servers.find((s) => s !== serving);
      const single = new VideoMatchClient(`127.0.0.1:${survivor.port}`);
      const expected = await single.stream(frames(null), options);
      single.close();
      assert.deepEqual(describe(results), describe(expected));
      assert.equal(moves.length, 1);
      const noticed = (moves[0].at - hung) / 1000;
      assert.ok(noticed < 10, `the stream moved ${noticed.toFixed(1)} s after the server hung`);
    } finally {
      for (const server of servers) if (server.child.exitCode === null) server.child.kill('SIGKILL');
    }
  });

  await t.test('resume point: nothing usable answered yet says so', () => {
    const point = new ResumePoint(false);
    point.sent({ sequence: 3 });
    point.answered({ result: 'status', status: { sequence: 3, code: 'FRAME_STATUS_CODE_INVALID' } });
    assert.equal(point.canResume, false);
    assert.throws(() => point.build({}), /the last answered was 3/);
  });
});
