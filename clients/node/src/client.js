'use strict';
// Node client for VideoMatch: loads the contract at run time with @grpc/proto-loader (no code generation step).
const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { MAX_PIXELS, prepareImage, toOwn, transformToOwn } = require('./images');

// The installed package carries its copy of the contract in proto/ (npm pack's prepack); a checkout reads protos/.
const PACKED = path.resolve(__dirname, '..', 'proto');
const PROTO_ROOT = fs.existsSync(path.join(PACKED, 'videomatch')) ? PACKED : path.resolve(__dirname, '..', '..', '..', 'protos');
const definition = protoLoader.loadSync('videomatch/v1/videomatch.proto', {
  includeDirs: [PROTO_ROOT],
  keepCase: false, // fields in lowerCamelCase: keypoints0, sequence0, matchThreshold ...
  longs: Number, // sequence numbers and timestamps as numbers (exact up to 2^53)
  enums: String,
  defaults: true,
  oneofs: true,
});
const proto = grpc.loadPackageDefinition(definition).videomatch.v1;

/**
 * Builds an Image message from a JPEG or PNG file path (a string or URL), a JPEG/PNG Buffer, or raw pixels
 * { gray|rgb|rgba: Buffer, width, height }. Other formats (WebP, BMP, ...) must be converted first. matchPair also
 * downscales photos over the server's pixel limit (see prepareImage).
 */
function imageMessage(image) {
  return prepareImage(image, null).message;
}

/** Matches as arrays of [x, y] pairs in original pixels, best score first. */
function toMatches(message) {
  const count = message.count;
  const points = (flat) => Array.from({ length: count }, (_, i) => [flat[2 * i], flat[2 * i + 1]]);
  // trackIds: one per match when the stream asked for track ids, else empty.
  return { count, keypoints0: points(message.keypoints0), keypoints1: points(message.keypoints1), scores: message.scores, trackIds: message.trackIds || [] };
}

const ESTIMATES = { homography: 'TRANSFORM_MODEL_HOMOGRAPHY', affine: 'TRANSFORM_MODEL_AFFINE', similarity: 'TRANSFORM_MODEL_SIMILARITY' };

function estimateName(estimate) {
  if (!ESTIMATES[estimate]) throw new Error(`estimate must be homography, affine or similarity; got ${estimate}`);
  return ESTIMATES[estimate];
}

/** A server-fitted transform: matrix (9 numbers, row-major 3×3, frame0 → frame1 pixels) or null with failure. */
function toTransform(message) {
  if (!message) return null;
  return {
    matrix: message.matrix.length === 9 ? message.matrix : null,
    inliers: message.inliers,
    inlierMask: Array.from(message.inlierMask, (b) => b === 1),
    failure: message.failure,
  };
}

function streamResult(response) {
  if (response.result === 'pair') {
    const pair = response.pair;
    return {
      kind: 'pair', sequence0: pair.sequence0, sequence1: pair.sequence1, matches: toMatches(pair.matches), timings: pair.timings,
      transform: toTransform(pair.transform), newKeyframe: Boolean(pair.newKeyframe),
    };
  }
  const status = response.status;
  return { kind: 'status', sequence: status.sequence, code: status.code.replace('FRAME_STATUS_CODE_', ''), message: status.message };
}

/** A gRPC target: several "ip:port" pairs become one ipv4: (or ipv6:) list; anything else stays as it is. */
function target(address) {
  if (!address.includes(',') || address.includes(':///')) return address;
  const parts = address.split(',').map((part) => part.trim()).filter(Boolean);
  return (parts.some((part) => part.startsWith('[')) ? 'ipv6:' : 'ipv4:') + parts.join(',');
}

/**
 * What a client keeps of a stream to resume it elsewhere (StreamConfig.resume): the frame the next frame pairs with,
 * the last matched pair (track ids), the largest id, and the frames sent but not answered yet. Feed it every frame
 * sent (the Frame message) and every response read (as grpc-js gives it), in order.
 */
class ResumePoint {
  constructor(keyframes) {
    this.keyframes = keyframes;
    this.unanswered = [];
    this.reference = null;
    this.lastPair = null;
    this.largestId = 0;
    this.lastAnswered = null;
  }

  get canResume() { return this.reference !== null; }

  sent(frame) { this.unanswered.push(frame); }

  answered(response) {
    const sequence = response.result === 'pair' ? response.pair.sequence1 : response.status.sequence;
    if (this.unanswered.length === 0 || this.unanswered[0].sequence !== sequence) {
      throw new Error(`a response for frame ${sequence} while frame ${this.unanswered.length ? this.unanswered[0].sequence : 'none'} waits for its answer`);
    }
    const frame = this.unanswered.shift();
    this.lastAnswered = sequence;
    const usable = response.result === 'pair' || response.status.code !== 'FRAME_STATUS_CODE_INVALID';
    const newKeyframe = response.result === 'pair' && response.pair.newKeyframe;
    if (usable && (!this.keyframes || this.reference === null || newKeyframe)) this.reference = frame;
    if (response.result === 'pair') {
      const ids = response.pair.matches.trackIds || [];
      for (const id of ids) this.largestId = Math.max(this.largestId, Number(id));
      if (ids.length > 0 || response.pair.matches.count === 0) this.lastPair = response.pair;
    }
  }

  build(config) {
    if (this.reference === null) {
      throw new Error(`nothing to resume from: no usable frame was answered (the last answered was ${this.lastAnswered ?? 'none'})`);
    }
    const resume = { reference: this.reference };
    if (config.trackIds && this.lastPair) resume.tracks = { lastPair: this.lastPair, nextTrackId: this.largestId + 1 };
    return resume;
  }
}

/**
 * An async iterable fed by push(): each push resolves once the reader took the value (so a pusher waits for room);
 * end() finishes it after what was pushed; fail(error) refuses what waits to be taken and makes the reader throw.
 */
function handoff() {
  const values = [];
  const readers = [];
  let finish = null; // { error } once ended or failed
  const settle = () => {
    while (readers.length > 0 && (values.length > 0 || finish)) {
      const reader = readers.shift();
      if (values.length > 0) {
        const { value, taken } = values.shift();
        taken();
        reader.resolve({ value, done: false });
      } else if (finish.error) reader.reject(finish.error);
      else reader.resolve({ value: undefined, done: true });
    }
  };
  return {
    push(value) {
      if (finish) return Promise.reject(finish.error || new Error('the stream has ended: no more frames can be sent'));
      return new Promise((taken, refused) => { values.push({ value, taken, refused }); settle(); });
    },
    end() { if (!finish) finish = { error: null }; settle(); },
    fail(error) {
      if (!finish) finish = { error };
      for (const { refused } of values.splice(0)) refused(error); // frames waiting for room: sent nowhere, and said so
      settle();
    },
    [Symbol.asyncIterator]() {
      return { next: () => new Promise((resolve, reject) => { readers.push({ resolve, reject }); settle(); }) };
    },
  };
}

/** The server went away or is draining: a move can go on elsewhere. */
function movable(error) {
  const details = String(error.details || '').toLowerCase();
  return error.code === grpc.status.UNAVAILABLE
    || ((error.code === grpc.status.INTERNAL || error.code === grpc.status.UNKNOWN) && (details.includes('closed') || details.includes('reset')));
}

class VideoMatchClient {
  /**
   * @param {string} address host:port of a plaintext HTTP/2 server (pass credentials for TLS); several ip:port pairs
   * separated by commas, or a gRPC target such as dns:///name:port, balance calls round-robin over the servers.
   * `model` names which of the server's models every call uses (listModels names them); '' for its default.
   * `keepAliveMs`: HTTP/2 pings that often while calls are open (0: none), each answered within `keepAliveTimeoutMs`:
   * a server that hangs without closing its connections (a frozen pod, a node gone) is noticed, and a resuming stream
   * moves on.
   */
  constructor(address = '127.0.0.1:50051', {
    credentials = grpc.credentials.createInsecure(), apiKey, maxMessageBytes = 64 * 1024 * 1024, model = '', keepAliveMs = 10000, keepAliveTimeoutMs = 10000,
  } = {}) {
    const options = {
      'grpc.max_send_message_length': maxMessageBytes,
      'grpc.max_receive_message_length': maxMessageBytes,
      // A server that comes back (a restarted pod on its address) is reached within 2 s, not after gRPC's default
      // backoff of up to 120 s; this channel's connections are its own, not shared with other clients'.
      'grpc.initial_reconnect_backoff_ms': 250,
      'grpc.max_reconnect_backoff_ms': 2000,
      'grpc.use_local_subchannel_pool': 1,
    };
    if (keepAliveMs > 0) {
      options['grpc.keepalive_time_ms'] = keepAliveMs;
      options['grpc.keepalive_timeout_ms'] = keepAliveTimeoutMs;
    }
    const balanced = target(address);
    if (balanced !== address || /^(dns|ipv4|ipv6):/.test(address)) {
      // Several servers: calls balanced round-robin, each stream on one; one that goes away is skipped.
      options['grpc.service_config'] = JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] });
      // An address list is no host name: name the first as the :authority (servers refuse the list).
      if (balanced !== address) options['grpc.default_authority'] = address.split(',')[0].trim();
    }
    this.stub = new proto.VideoMatcher(balanced, credentials, options);
    this.metadata = new grpc.Metadata();
    if (apiKey) this.metadata.set('authorization', `Bearer ${apiKey}`);
    this.model = model;
  }

  close() { this.stub.close(); }

  modelInfo() {
    return new Promise((resolve, reject) => this.stub.getModelInfo({ model: this.model }, this.metadata, (error, info) => (error ? reject(error) : resolve(info))));
  }

  /** Every model the server serves ({ models: [{ name, serving, ... }], defaultModel }). */
  listModels() {
    return new Promise((resolve, reject) => this.stub.listModels({}, this.metadata, (error, list) => (error ? reject(error) : resolve(list))));
  }

  /**
   * Matches two images once: file paths, JPEG/PNG Buffers or raw pixels. A photo over `maxPixels` (default the
   * server's 4096×2160 limit; null: never) is downscaled here, aspect kept, and its keypoints and transform come back
   * in its own pixels. Rejects with a gRPC error (code 3, INVALID_ARGUMENT) on bad input. `estimate` ('homography',
   * 'affine' or 'similarity') adds `transform`; `letterbox` keeps each image's aspect ratio.
   */
  matchPair(image0, image1, { threshold, maxMatches = 0, estimate, inlierThresholdPx = 0, letterbox = false, maxPixels = MAX_PIXELS } = {}) {
    const sent0 = prepareImage(image0, maxPixels);
    const sent1 = prepareImage(image1, maxPixels);
    const request = { image0: sent0.message, image1: sent1.message, maxMatches, inlierThresholdPx, letterbox, model: this.model };
    if (estimate !== undefined) request.estimate = estimateName(estimate);
    if (threshold !== undefined) request.matchThreshold = { value: threshold };
    return new Promise((resolve, reject) => this.stub.matchPair(request, this.metadata, (error, response) => {
      if (error) {
        reject(error);
        return;
      }
      const matches = toMatches(response.matches);
      matches.keypoints0 = matches.keypoints0.map((p) => toOwn(p, sent0.scaleX, sent0.scaleY));
      matches.keypoints1 = matches.keypoints1.map((p) => toOwn(p, sent1.scaleX, sent1.scaleY));
      const transform = toTransform(response.transform);
      if (transform?.matrix) transform.matrix = transformToOwn(transform.matrix, sent0, sent1);
      resolve({ ...matches, timings: response.timings, transform });
    }));
  }

  /**
   * Opens a stream. send(image, sequence) queues a frame, end() says no more; iterate the returned object
   * (for await ... of) to get one result per frame, in order: {kind:'pair', ...} or {kind:'status', code, ...}.
   */
  openStream(options = {}) {
    if (options.resume) return this.openResumingStream(options);
    const {
      threshold, maxMatches = 0, name = '', estimate, inlierThresholdPx = 0,
      keyframes = false, rekeyMinInliers = 0, trackIds = false, trackRadiusPx = 0, letterbox = false,
    } = options;
    const config = { maxMatches, streamName: name, inlierThresholdPx, keyframes, rekeyMinInliers, trackIds, trackRadiusPx, letterbox, model: this.model };
    if (estimate !== undefined) config.estimate = estimateName(estimate);
    const call = this.stub.matchStream(this.metadata);
    if (threshold !== undefined) config.matchThreshold = { value: threshold };
    call.write({ config });
    let next = 0;
    return {
      send(image, sequence = next) {
        next = sequence + 1;
        return new Promise((resolve) => {
          if (call.write({ frame: { sequence, image: imageMessage(image) } })) resolve();
          else call.once('drain', resolve); // HTTP/2 flow control: wait until the server takes more
        });
      },
      end() { call.end(); },
      cancel() { call.cancel(); },
      async* [Symbol.asyncIterator]() {
        for await (const response of call) yield streamResult(response);
      },
    };
  }

  /**
   * openStream({ resume: true, ... }): frames sent one by one (a camera callback) through streamResuming, so the stream
   * goes on on another server when its server stops; results come as they are answered. Frames are numbered from
   * `firstSequence` (default 0), one after another; send() waits while `maxUnanswered` frames wait for answers.
   */
  openResumingStream(options) {
    const frames = handoff();
    const results = handoff();
    const control = { cancelled: false, call: null };
    this.streamResuming(frames, options, (result) => { results.push(result); }, control)
      .then(() => results.end(), (error) => { frames.fail(error); results.fail(error); });
    let next = options.firstSequence || 0;
    return {
      send(image, sequence = next) {
        if (sequence !== next) throw new Error(`a resuming stream numbers its frames itself, one after another: the next is ${next}, not ${sequence}`);
        next += 1;
        return frames.push(image);
      },
      end() { frames.end(); },
      cancel() {
        control.cancelled = true;
        if (control.call) control.call.cancel();
        frames.end();
      },
      [Symbol.asyncIterator]() { return results[Symbol.asyncIterator](); },
    };
  }

  /**
   * Streams an array or (async) iterable of images and resolves to all results, in frame order. If the images
   * throw (or one is not an image), the frames sent before it are answered and the promise rejects with that
   * error; its `results` property holds their results.
   */
  async stream(images, options = {}) {
    if (options.resume) return this.streamResuming(images, options);
    const stream = this.openStream(options);
    const results = [];
    const reading = (async () => { for await (const result of stream) results.push(result); })();
    let sequence = options.firstSequence || 0;
    try {
      for await (const image of images) await stream.send(image, sequence++);
    } catch (error) {
      stream.end();
      await reading.catch(() => {});
      error.results = results;
      throw error;
    }
    stream.end();
    await reading;
    return results;
  }

  /**
   * stream() with `resume`: when the server stops (UNAVAILABLE, its drain, a closed connection) the client reconnects
   * (at most `maxAttempts` connections and `resumeDeadlineMs` per move, with backoff; at most `maxUnanswered` frames
   * are kept unanswered, to send again), resumes the stream there
   * (StreamConfig.resume), sends again the frames not yet answered, and goes on: one result per frame, in order, as
   * one uninterrupted server answers them. `onMove({ cause, details, lastAnswered, resent, attempts })` reports each
   * move; when the stream cannot go on, the error (with `lastAnswered` and `results`) names the last frame answered.
   */
  async streamResuming(images, {
    threshold, maxMatches = 0, name = '', estimate, inlierThresholdPx = 0, keyframes = false, rekeyMinInliers = 0,
    trackIds = false, trackRadiusPx = 0, letterbox = false, firstSequence = 0, maxAttempts = 6, resumeDeadlineMs = 30000, maxUnanswered = 16, onMove,
  } = {}, emit = null, control = { cancelled: false, call: null }) {
    const config = { maxMatches, streamName: name, inlierThresholdPx, keyframes, rekeyMinInliers, trackIds, trackRadiusPx, letterbox, model: this.model };
    if (estimate !== undefined) config.estimate = estimateName(estimate);
    if (threshold !== undefined) config.matchThreshold = { value: threshold };
    const point = new ResumePoint(keyframes);
    // Frames sent and not answered are kept to send again after a move: at most maxUnanswered of them.
    let roomMade = null;
    const room = () => new Promise((resolve) => { roomMade = resolve; });
    const results = [];
    const source = images[Symbol.asyncIterator] ? images[Symbol.asyncIterator]() : images[Symbol.iterator]();
    let sequence = firstSequence;
    let pending = null; // a frame taken from the images but not yet sent (its call died first)
    let done = false;
    let cause = null;
    let movedAfter = null;
    let moveStarted = 0;
    let failures = 0;
    const ended = (why, error) => Object.assign(new Error(`The stream could not go on: ${why} (the last frame answered was ${point.lastAnswered ?? 'none'}; `
      + `send the frames after it to a new stream). ${error.details || error.message}`), { code: error.code, lastAnswered: point.lastAnswered, results });
    for (;;) {
      if (control.cancelled) throw Object.assign(new Error('Cancelled on client'), { code: grpc.status.CANCELLED, details: 'Cancelled on client', results });
      const call = this.stub.matchStream(this.metadata);
      control.call = call;
      let alive = true;
      let die;
      const dead = new Promise((resolve) => { die = resolve; });
      const first = point.canResume ? { ...config, resume: point.build(config) } : config;
      const resent = point.unanswered.length;
      // A write waits for HTTP/2 flow control, or for the call's end (a dead call never drains).
      const write = (message) => Promise.race([dead, new Promise((resolve) => {
        if (!alive) { resolve(); return; }
        try {
          if (call.write(message)) resolve();
          else call.once('drain', resolve);
        } catch { resolve(); }
      })]);
      const sending = (async () => {
        await write({ config: first });
        for (const frame of [...point.unanswered]) await write({ frame });
        while (alive && !done) {
          while (alive && point.unanswered.length >= maxUnanswered) await Promise.race([dead, room()]);
          if (!alive) break;
          if (pending === null) {
            const next = await source.next();
            if (next.done) { done = true; break; }
            pending = { sequence: sequence++, image: imageMessage(next.value) };
          }
          if (!alive) break;
          // Recorded before it is written: if this call fails now, the next one sends it again.
          point.sent(pending);
          const frame = pending;
          pending = null;
          await write({ frame });
        }
        if (alive) call.end();
      })();
      // The server is stopping and could not match this frame in its drain time: from it on, every frame of this call
      // goes again to the next server, and none of their answers here is handed on.
      let stopping = null;
      try {
        for await (const response of call) {
          if (stopping !== null || (response.result === 'status' && response.status.resendElsewhere)) {
            if (stopping === null) stopping = response.status.message;
            continue;
          }
          point.answered(response);
          if (roomMade !== null) { roomMade(); roomMade = null; }
          if (cause !== null) {
            if (onMove) onMove({ cause: cause.code, details: cause.details, lastAnswered: movedAfter, resent, attempts: failures + 1 });
            cause = null;
            failures = 0;
          }
          // Handed on as it comes (openStream with resume), or kept for the promise (stream with resume).
          if (emit) emit(streamResult(response));
          else results.push(streamResult(response));
        }
        if (stopping !== null) {
          // The call ended (its drain done) with frames to send again: a move, as UNAVAILABLE is.
          throw Object.assign(new Error(stopping), { code: grpc.status.UNAVAILABLE, details: stopping });
        }
        await sending;
        return results;
      } catch (error) {
        alive = false;
        die();
        call.cancel();
        await sending.catch(() => {});
        if (error.code === undefined || !movable(error)) {
          if (cause !== null) throw ended('the server it moved to refused it', error);
          error.results = results;
          throw error;
        }
        if (cause === null) {
          movedAfter = point.lastAnswered;
          moveStarted = Date.now();
          failures = 0;
        } else {
          failures += 1;
        }
        if (cause === null) cause = error; // what ended the stream on its server, not the failed connections since
        const elapsed = Date.now() - moveStarted;
        if (failures >= maxAttempts || elapsed >= resumeDeadlineMs) {
          throw ended(`${failures + 1} connections over ${(elapsed / 1000).toFixed(1)} s found no server to resume it on`, error);
        }
        await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 100 * 2 ** failures)));
      }
    }
  }
}

module.exports = { VideoMatchClient, ResumePoint, imageMessage, prepareImage, MAX_PIXELS, proto, grpc };
