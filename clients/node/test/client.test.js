'use strict';
// Tests of the Node client against a running server (VIDEOMATCH_ADDRESS, default 127.0.0.1:50051).
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const test = require('node:test');
const assert = require('node:assert/strict');
const { VideoMatchClient, imageMessage } = require('../support/subject').client;
const { texture, crop, medianMotion } = require('../support/scenes');

const address = process.env.VIDEOMATCH_ADDRESS || '127.0.0.1:50051';
const picture = texture(400, 520, 3);

test('client', async (t) => {
  const client = new VideoMatchClient(address);
  t.after(() => client.close());

  await t.test('modelInfo names the model and prefers GRAY8', async () => {
    const info = await client.modelInfo();
    assert.ok(info.modelName.length > 0);
    assert.equal(info.preferredPixelFormat, 'PIXEL_FORMAT_GRAY8');
  });

  await t.test('matchPair recovers a known shift, best first', async () => {
    const result = await client.matchPair(crop(picture, 40, 30, 320, 240), crop(picture, 45, 33, 320, 240));
    assert.ok(result.count > 100, `${result.count} matches`);
    const [dx, dy] = medianMotion(result);
    assert.ok(Math.abs(dx + 5) < 0.5 && Math.abs(dy + 3) < 0.5, `median motion ${dx}, ${dy}`);
    for (let i = 1; i < result.scores.length; i++) assert.ok(result.scores[i - 1] >= result.scores[i]);
  });

  await t.test('stream answers every frame in order', async () => {
    const frames = [0, 1, 2, 3].map((i) => crop(picture, 40 + 2 * i, 30 + i, 320, 240));
    const results = await client.stream(frames, { name: 'node-test', firstSequence: 7 });
    assert.equal(results.length, 4);
    assert.deepEqual([results[0].kind, results[0].code, results[0].sequence], ['status', 'FIRST_FRAME', 7]);
    for (let i = 1; i < 4; i++) {
      assert.equal(results[i].kind, 'pair');
      assert.deepEqual([results[i].sequence0, results[i].sequence1], [6 + i, 7 + i]);
      const [dx, dy] = medianMotion(results[i].matches);
      assert.ok(Math.abs(dx + 2) < 0.5 && Math.abs(dy + 1) < 0.5, `pair ${i}: median motion ${dx}, ${dy}`);
    }
  });

  await t.test('estimate: each pair carries its fitted transform', async () => {
    const frames = [0, 1, 2].map((i) => crop(picture, 40 + 3 * i, 30 + i, 320, 240));
    const results = await client.stream(frames, { estimate: 'affine' });
    const expected = [1, 0, -3, 0, 1, -1, 0, 0, 1];
    for (const result of results.slice(1)) {
      assert.equal(result.transform.matrix.length, 9);
      result.transform.matrix.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 0.3, `transform ${result.transform.matrix}`));
      assert.equal(result.transform.inlierMask.length, result.matches.count);
      assert.equal(result.transform.inlierMask.filter(Boolean).length, result.transform.inliers);
    }
    assert.equal(results[0].kind, 'status');
    const plain = await client.stream(frames.slice(0, 2));
    assert.equal(plain[1].transform, null);
    assert.throws(() => client.openStream({ estimate: 'projective' }), /estimate must be/);
  });

  await t.test('keyframes re-key on a scene cut and track ids persist', async () => {
    const other = texture(480, 640, 9);
    const frames = [0, 1, 2].map((i) => crop(picture, 40 + 2 * i, 30, 320, 240))
      .concat([0, 1, 2].map((i) => crop(other, 40 + 2 * i, 30, 320, 240)));
    const results = await client.stream(frames, { keyframes: true, rekeyMinInliers: 30, estimate: 'similarity', trackIds: true });
    const pairs = results.slice(1);
    assert.deepEqual(pairs.map((p) => p.sequence0), [0, 0, 0, 3, 3]);
    assert.deepEqual(pairs.map((p) => p.newKeyframe), [false, false, true, false, false]);
    for (const pair of pairs) assert.equal(pair.matches.trackIds.length, pair.matches.count);
    const first = new Set(pairs[0].matches.trackIds);
    const kept = pairs[1].matches.trackIds.filter((id) => first.has(id)).length;
    assert.ok(kept > 0.7 * pairs[1].matches.count, `${kept} of ${pairs[1].matches.count} ids kept`);
  });

  await t.test('a bad frame gets an INVALID status naming it and the stream goes on', async () => {
    const bad = { gray: Buffer.alloc(10), width: 320, height: 240 };
    const results = await client.stream([crop(picture, 0, 0, 320, 240), bad, crop(picture, 1, 0, 320, 240)]);
    assert.deepEqual([results[1].code, results[1].sequence], ['INVALID', 1]);
    assert.match(results[1].message, /truncated/);
    assert.deepEqual([results[2].sequence0, results[2].sequence1], [0, 2]);
  });

  await t.test('a frame of the wrong type rejects the stream with that error, after the frames before it', async () => {
    const frames = [0, 1, 2, 3].map((i) => crop(picture, 40 + 2 * i, 30, 320, 240));
    frames[2] = { gray: new Float64Array(320 * 240), width: 320, height: 240 };
    await assert.rejects(client.stream(frames), (error) => /8-bit/.test(error.message) && error.results.length === 2);
  });

  await t.test('an image source that throws rejects the stream with its error', async () => {
    async function* frames() {
      yield crop(picture, 40, 30, 320, 240);
      throw new Error('camera unplugged');
    }
    await assert.rejects(client.stream(frames()), /camera unplugged/);
  });

  await t.test('matchPair with estimate and letterbox returns the transform', async () => {
    const result = await client.matchPair(crop(picture, 40, 30, 320, 240), crop(picture, 45, 33, 320, 240), { estimate: 'similarity', letterbox: true });
    assert.ok(result.count > 100);
    assert.ok(Math.abs(result.transform.matrix[2] + 5) < 0.3 && Math.abs(result.transform.matrix[5] + 3) < 0.3, `transform ${result.transform.matrix}`);
  });

  const photos = path.resolve(__dirname, '..', '..', '..', '..', 'shared', 'images');
  await t.test('matchPair takes file paths, as users have them', { skip: !fs.existsSync(photos) && `no ${photos} (../shared)` }, async () => {
    const result = await client.matchPair(path.join(photos, 'DSC_0410.jpg'), path.join(photos, 'DSC_0411.jpg'));
    assert.ok(result.count > 100, `${result.count} matches`);
  });

  await t.test('a phone-sized photo is downscaled here, its keypoints in its own pixels', async () => {
    const jpeg = require('jpeg-js');
    const big = texture(3024 + 12, 4032 + 24, 5);
    const photo = (x, y) => {
      const { gray } = crop(big, x, y, 4032, 3024);
      const rgba = Buffer.alloc(gray.length * 4, 255);
      for (let i = 0; i < gray.length; i++) rgba[4 * i] = rgba[4 * i + 1] = rgba[4 * i + 2] = gray[i];
      return jpeg.encode({ data: rgba, width: 4032, height: 3024 }, 92).data;
    };
    const [first, second] = [photo(0, 0), photo(24, 12)];

    const result = await client.matchPair(first, second, { estimate: 'similarity' });

    assert.ok(result.count > 100, `${result.count} matches`);
    assert.ok(Math.max(...result.keypoints0.map((p) => p[0])) > 2900, 'keypoints in the photo\'s pixels, not the sent ones');
    const [dx, dy] = medianMotion(result);
    assert.ok(Math.abs(dx + 24) < 2 && Math.abs(dy + 12) < 2, `median motion (${dx}, ${dy})`);
    assert.ok(Math.abs(result.transform.matrix[2] + 24) < 2, `transform ${result.transform.matrix}`);
    // Sent as it is, the server refuses it, naming its limit.
    await assert.rejects(client.matchPair(first, second, { maxPixels: null }), (error) => error.code === 3 && /Limits:MaxImagePixels/.test(error.details));
  });

  await t.test('a wrong image says what to pass, in one line', () => {
    const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'videomatch-node-'));
    const empty = path.join(folder, 'empty.jpg');
    const webp = path.join(folder, 'a.webp');
    fs.writeFileSync(empty, '');
    fs.writeFileSync(webp, Buffer.from('RIFF\0\0\0\0WEBPVP8 '));
    try {
      for (const [image, expected] of [[empty, /empty\.jpg is empty \(0 bytes\)/], [folder, /is a directory; give an image file/],
        [path.join(folder, 'missing.png'), /missing\.png does not exist/], [webp, /a\.webp is neither JPEG nor PNG.*convert it first/],
        [42, /an image is a JPEG or PNG file path, a JPEG or PNG Buffer, or raw pixels/], [{ width: 2, height: 2 }, /none of gray, rgb or rgba/]]) {
        assert.throws(() => imageMessage(image), (error) => expected.test(error.message) && !error.message.includes('\n'));
      }
    } finally {
      fs.rmSync(folder, { recursive: true });
    }
  });

  await t.test('a threshold out of range is INVALID_ARGUMENT', async () => {
    const image = crop(picture, 0, 0, 64, 64);
    await assert.rejects(client.matchPair(image, image, { threshold: 2 }), (error) => error.code === 3 && /match_threshold/.test(error.details));
  });

  await t.test('models are listed and chosen by name', async () => {
    const listed = await client.listModels();
    assert.equal(listed.defaultModel, 'embedded');
    assert.deepEqual(listed.models.map((m) => m.name), ['embedded']);
    const image = crop(picture, 0, 0, 64, 64);
    const named = new VideoMatchClient(address, { model: 'embedded' });
    const unknown = new VideoMatchClient(address, { model: 'superglue' });
    try {
      assert.equal((await named.modelInfo()).name, 'embedded');
      await named.matchPair(image, image);
      await assert.rejects(unknown.matchPair(image, image), (error) => error.code === 3 && /'superglue' names no model of this server; it serves 'embedded'/.test(error.details));
    } finally {
      named.close();
      unknown.close();
    }
  });
});
