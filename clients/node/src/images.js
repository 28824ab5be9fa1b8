'use strict';
// Images as users have them (file paths, JPEG/PNG Buffers) for the server, and photos over its pixel limit
// downscaled here with pure-JS decoders (jpeg-js, pngjs): Node has no image decoder built in.
const fs = require('node:fs');
const jpeg = require('jpeg-js');
const { PNG } = require('pngjs');

/** The server's default Limits:MaxImagePixels (4096×2160): larger images are downscaled before sending. */
const MAX_PIXELS = 4096 * 2160;

/**
 * Pixels of a downscaled image, sent as raw gray (Node has no encoder built in): the two images of a pair in one
 * message stay under the server's default message limit (16 MiB, Limits:MaxMessageBytes).
 */
const RAW_PIXELS = 6000000;

const ACCEPTED = 'a JPEG or PNG file path, a JPEG or PNG Buffer, or raw pixels { gray|rgb|rgba: Buffer, width, height }';

/** Reads an image file, with one line for each way a path can be wrong. */
function readImageFile(file) {
  let stat;
  try {
    stat = fs.statSync(file);
  } catch {
    throw new Error(`${file} does not exist`);
  }
  if (stat.isDirectory()) throw new Error(`${file} is a directory; give an image file`);
  if (stat.size === 0) throw new Error(`${file} is empty (0 bytes)`);
  return fs.readFileSync(file);
}

function encodingOf(buffer) {
  if (buffer[0] === 0xff && buffer[1] === 0xd8) return 'IMAGE_ENCODING_JPEG';
  if (buffer.subarray(0, 4).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47]))) return 'IMAGE_ENCODING_PNG';
  return null;
}

/** Width and height from a PNG's IHDR or a JPEG's frame header (SOFn), or null when they cannot be found. */
function dimensions(buffer, encoding) {
  if (encoding === 'IMAGE_ENCODING_PNG') return buffer.length >= 24 ? { width: buffer.readUInt32BE(16), height: buffer.readUInt32BE(20) } : null;
  for (let at = 2; at + 9 < buffer.length;) {
    if (buffer[at] !== 0xff) return null;
    const marker = buffer[at + 1];
    if (marker === 0xff) { at += 1; continue; }
    const length = buffer.readUInt16BE(at + 2);
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { width: buffer.readUInt16BE(at + 7), height: buffer.readUInt16BE(at + 5) };
    }
    at += 2 + length;
  }
  return null;
}

/** Gray plane of a decoded RGBA image, averaged down to width×height (each output pixel the mean of its source area). */
function downscaleGray(rgba, sourceWidth, sourceHeight, width, height) {
  const sums = new Float64Array(width * height);
  const counts = new Uint32Array(width * height);
  for (let y = 0; y < sourceHeight; y++) {
    const row = Math.min(height - 1, Math.floor((y * height) / sourceHeight)) * width;
    for (let x = 0; x < sourceWidth; x++) {
      const p = 4 * (y * sourceWidth + x);
      const target = row + Math.min(width - 1, Math.floor((x * width) / sourceWidth));
      // The server's gray: 0.2989 R + 0.5870 G + 0.1140 B.
      sums[target] += 0.2989 * rgba[p] + 0.587 * rgba[p + 1] + 0.114 * rgba[p + 2];
      counts[target] += 1;
    }
  }
  const gray = Buffer.alloc(width * height);
  for (let i = 0; i < gray.length; i++) gray[i] = Math.round(sums[i] / counts[i]);
  return gray;
}

/**
 * The Image message for an image, downscaling (aspect kept) one of more than maxPixels pixels (null: never), and
 * the scales that map its sent pixels back to its own: { message, scaleX, scaleY }.
 */
function prepareImage(image, maxPixels = MAX_PIXELS) {
  const name = typeof image === 'string' || image instanceof URL ? String(image) : 'encoded image';
  if (typeof image === 'string' || image instanceof URL) image = readImageFile(image);
  if (Buffer.isBuffer(image)) {
    const encoding = encodingOf(image);
    if (!encoding) throw new Error(`${name} is neither JPEG nor PNG (by its first bytes): the server reads those two; convert it first (WebP, BMP, ...)`);
    const size = maxPixels === null ? null : dimensions(image, encoding);
    if (!size || size.width * size.height <= maxPixels) return { message: { encoded: { encoding, data: image } }, scaleX: 1, scaleY: 1 };
    let decoded;
    try {
      decoded = encoding === 'IMAGE_ENCODING_JPEG'
        ? jpeg.decode(image, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: 200, maxMemoryUsageInMB: 2048 })
        : PNG.sync.read(image);
    } catch (error) {
      throw new Error(`${name} could not be decoded to downscale it: ${error.message}`);
    }
    const factor = Math.sqrt(Math.min(maxPixels, RAW_PIXELS) / (decoded.width * decoded.height));
    const width = Math.max(1, Math.floor(decoded.width * factor));
    const height = Math.max(1, Math.floor(decoded.height * factor));
    const gray = downscaleGray(decoded.data, decoded.width, decoded.height, width, height);
    return { message: { raw: { format: 'PIXEL_FORMAT_GRAY8', width, height, rowStride: 0, data: gray } }, scaleX: decoded.width / width, scaleY: decoded.height / height };
  }
  if (image === null || typeof image !== 'object') throw new Error(`an image is ${ACCEPTED}; got ${image === null ? 'null' : typeof image}`);
  const [format, data] = image.gray ? ['PIXEL_FORMAT_GRAY8', image.gray]
    : image.rgb ? ['PIXEL_FORMAT_RGB24', image.rgb]
      : image.rgba ? ['PIXEL_FORMAT_RGBA32', image.rgba]
        : [null, null];
  if (!format) throw new Error(`an image is ${ACCEPTED}; this object has none of gray, rgb or rgba`);
  if (!(data instanceof Uint8Array)) throw new Error(`raw pixels must be 8-bit (a Buffer or Uint8Array), got ${data?.constructor?.name ?? typeof data}`);
  return { message: { raw: { format, width: image.width, height: image.height, rowStride: image.rowStride || 0, data } }, scaleX: 1, scaleY: 1 };
}

/** A point of a sent image in the image's own pixels (pixel centres at whole numbers). */
function toOwn([x, y], scaleX, scaleY) {
  return scaleX === 1 && scaleY === 1 ? [x, y] : [(x + 0.5) * scaleX - 0.5, (y + 0.5) * scaleY - 0.5];
}

/** A sent-image0 → sent-image1 transform (row-major 3×3) in the images' own pixels: S1·M·S0⁻¹. */
function transformToOwn(matrix, image0, image1) {
  const s1 = [image1.scaleX, 0, 0.5 * image1.scaleX - 0.5, 0, image1.scaleY, 0.5 * image1.scaleY - 0.5, 0, 0, 1];
  const inverse0 = [1 / image0.scaleX, 0, 0.5 / image0.scaleX - 0.5, 0, 1 / image0.scaleY, 0.5 / image0.scaleY - 0.5, 0, 0, 1];
  const multiply = (a, b) => Array.from({ length: 9 }, (_, i) => [0, 1, 2].reduce((sum, k) => sum + a[3 * Math.floor(i / 3) + k] * b[3 * k + (i % 3)], 0));
  const own = multiply(multiply(s1, matrix), inverse0);
  return own.map((v) => v / own[8]);
}

module.exports = { MAX_PIXELS, prepareImage, toOwn, transformToOwn };
