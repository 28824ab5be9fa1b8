'use strict';
// Node client for VideoMatch: loads protos/ at run time with @grpc/proto-loader (no code generation step).
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const { MAX_PIXELS, prepareImage, toOwn, transformToOwn } = require('./images');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', '..', 'protos');
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

class VideoMatchClient {
  /**
   * @param {string} address host:port of a plaintext HTTP/2 server; pass credentials for TLS.
   * `model` names which of the server's models every call uses (listModels names them); '' for its default.
   */
  constructor(address = '127.0.0.1:50051', { credentials = grpc.credentials.createInsecure(), apiKey, maxMessageBytes = 64 * 1024 * 1024, model = '' } = {}) {
    this.stub = new proto.VideoMatcher(address, credentials, {
      'grpc.max_send_message_length': maxMessageBytes,
      'grpc.max_receive_message_length': maxMessageBytes,
    });
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
  openStream({
    threshold, maxMatches = 0, name = '', estimate, inlierThresholdPx = 0,
    keyframes = false, rekeyMinInliers = 0, trackIds = false, trackRadiusPx = 0, letterbox = false,
  } = {}) {
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
   * Streams an array or (async) iterable of images and resolves to all results, in frame order. If the images
   * throw (or one is not an image), the frames sent before it are answered and the promise rejects with that
   * error; its `results` property holds their results.
   */
  async stream(images, options = {}) {
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
}

module.exports = { VideoMatchClient, imageMessage, prepareImage, MAX_PIXELS, proto, grpc };
