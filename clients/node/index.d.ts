// Types of the VideoMatch Node client (src/client.js). Field names are the contract's in lowerCamelCase, as
// @grpc/proto-loader gives them (keepCase: false); 64-bit numbers are plain numbers (exact up to 2^53).
/// <reference types="node" />
import * as grpc from '@grpc/grpc-js';

/** A point [x, y] in an image's pixels (pixel centres at whole numbers). */
export type Point = [number, number];

/** Raw 8-bit pixels, row after row (rowStride: bytes per row, 0 for tightly packed). */
export type RawPixels =
  | { gray: Uint8Array; width: number; height: number; rowStride?: number }
  | { rgb: Uint8Array; width: number; height: number; rowStride?: number }
  | { rgba: Uint8Array; width: number; height: number; rowStride?: number };

/** A JPEG or PNG file path (string or file: URL), a JPEG or PNG Buffer, or raw pixels. */
export type ImageInput = string | URL | Buffer | RawPixels;

export type TransformModelName = 'homography' | 'affine' | 'similarity';

export interface Matches {
  count: number;
  /** In the image's own pixels, best score first. */
  keypoints0: Point[];
  keypoints1: Point[];
  scores: number[];
  /** One per match when the stream asked for track ids, else empty. */
  trackIds: number[];
}

export interface Timings {
  queueWaitMs: number;
  inferenceMs: number;
  batchSize: number;
  preprocessMs: number;
}

/** A server-fitted transform: 9 numbers, row-major 3×3, frame0 → frame1 pixels; null with `failure` when none fits. */
export interface Transform {
  matrix: number[] | null;
  inliers: number;
  inlierMask: boolean[];
  failure: string;
}

export interface PairResult {
  kind: 'pair';
  sequence0: number;
  sequence1: number;
  matches: Matches;
  timings: Timings;
  transform: Transform | null;
  newKeyframe: boolean;
}

export type FrameStatusCode = 'FIRST_FRAME' | 'INVALID' | 'DROPPED' | 'FAILED' | 'UNSPECIFIED';

export interface StatusResult {
  kind: 'status';
  sequence: number;
  code: FrameStatusCode;
  message: string;
}

/** One per frame, in frame order. */
export type StreamResult = PairResult | StatusResult;

export interface MatchPairResult extends Matches {
  timings: Timings;
  transform: Transform | null;
}

export interface ModelInfo {
  modelName: string;
  inputWidth: number;
  inputHeight: number;
  preferredPixelFormat: string;
  defaultMatchThreshold: number;
  maxMatchesPerPair: number;
  maxBatchSize: number;
  executionProvider: string;
  maxImageDimension: number;
  maxMessageBytes: number;
  rotatesToFit: boolean;
  graph: string;
  name: string;
  serving: boolean;
  notServingReason: string;
}

export interface ModelList {
  models: ModelInfo[];
  defaultModel: string;
}

export interface ClientOptions {
  /** Default: plaintext (grpc.credentials.createInsecure()). */
  credentials?: grpc.ChannelCredentials;
  /** Sent as "authorization: Bearer KEY". */
  apiKey?: string;
  /** Default 64 MiB. */
  maxMessageBytes?: number;
  /** Which of the server's models every call uses; '' for its default. */
  model?: string;
  /** HTTP/2 pings this often while calls are open, so a server that hangs is noticed (default 10000; 0: none). */
  keepAliveMs?: number;
  /** How long a ping may go unanswered before the connection is dropped (default 10000). */
  keepAliveTimeoutMs?: number;
}

export interface MatchPairOptions {
  /** In [0, 1); default: the model's. */
  threshold?: number;
  /** 0: all. */
  maxMatches?: number;
  estimate?: TransformModelName;
  inlierThresholdPx?: number;
  letterbox?: boolean;
  /** Photos over this many pixels are downscaled here (default MAX_PIXELS); null: never. */
  maxPixels?: number | null;
}

export interface StreamOptions {
  threshold?: number;
  maxMatches?: number;
  /** The stream's name in the server's logs and metrics. */
  name?: string;
  estimate?: TransformModelName;
  inlierThresholdPx?: number;
  keyframes?: boolean;
  rekeyMinInliers?: number;
  trackIds?: boolean;
  trackRadiusPx?: number;
  letterbox?: boolean;
}

/** A stream that moved to another server (stream() with resume). */
export interface StreamMove {
  /** The gRPC status code that ended the call on the old server (14: UNAVAILABLE). */
  cause: grpc.status;
  details: string;
  /** The last frame answered before the move; null when none was. */
  lastAnswered: number | null;
  /** Frames sent again to the new server. */
  resent: number;
  /** Connections it took. */
  attempts: number;
}

export interface StreamAllOptions extends StreamOptions {
  /** The first frame's sequence number (default 0). */
  firstSequence?: number;
  /** Go on on another server when this one stops. */
  resume?: boolean;
  /** With resume: connections tried per move (default 6). */
  maxAttempts?: number;
  /** With resume: how long one move may take (default 30000). */
  resumeDeadlineMs?: number;
  /** With resume: frames sent and not yet answered, at most (kept to send again after a move; default 16). */
  maxUnanswered?: number;
  onMove?: (move: StreamMove) => void;
}

/** What stream() rejects with: the results of the frames answered before the failure, and with resume the last one. */
export interface StreamError extends Error {
  code?: grpc.status;
  details?: string;
  results: StreamResult[];
  lastAnswered?: number | null;
}

export interface MatchStream extends AsyncIterable<StreamResult> {
  /** Queues a frame (sequence: the last one + 1 unless given); resolves when HTTP/2 flow control takes it. */
  send(image: ImageInput, sequence?: number): Promise<void>;
  /** No more frames: the results of those sent still come. */
  end(): void;
  cancel(): void;
}

export class VideoMatchClient {
  /**
   * @param address host:port; several ip:port pairs separated by commas, or a gRPC target such as
   * dns:///name:port, balance calls round-robin over the servers. Default 127.0.0.1:50051.
   */
  constructor(address?: string, options?: ClientOptions);
  close(): void;
  modelInfo(): Promise<ModelInfo>;
  listModels(): Promise<ModelList>;
  matchPair(image0: ImageInput, image1: ImageInput, options?: MatchPairOptions): Promise<MatchPairResult>;
  /** With `resume`, the stream goes on on another server when its server stops (frames numbered by the client). */
  openStream(options?: StreamAllOptions): MatchStream;
  /** Streams the images and resolves to one result per frame, in order; rejects with a StreamError. */
  stream(images: Iterable<ImageInput> | AsyncIterable<ImageInput>, options?: StreamAllOptions): Promise<StreamResult[]>;
}

/** A frame as sent: its sequence number and the Image message. */
export interface FrameMessage {
  sequence: number;
  timestampUs?: number;
  image: object;
}

/**
 * What a client keeps of a stream to resume it elsewhere (StreamConfig.resume). Feed it every frame sent and every
 * response read (as grpc-js gives them), in order.
 */
export class ResumePoint {
  constructor(keyframes: boolean);
  readonly canResume: boolean;
  unanswered: FrameMessage[];
  lastAnswered: number | null;
  sent(frame: FrameMessage): void;
  answered(response: object): void;
  /** StreamConfig.resume for a new call; throws when no usable frame was answered. */
  build(config: { trackIds?: boolean }): object;
}

/** The Image message for an image (no downscaling). */
export function imageMessage(image: ImageInput): object;

/** The Image message and the factors from sent pixels to the image's own. */
export function prepareImage(image: ImageInput, maxPixels?: number | null): { message: object; scaleX: number; scaleY: number };

/** The server's default pixel limit (4096×2160). */
export const MAX_PIXELS: number;

/** The loaded contract (videomatch.v1), for raw calls. */
export const proto: grpc.GrpcObject;

export { grpc };
