'use strict';
// Textured test pictures with exactly known motion (value noise at cell sizes 9 and 4 px).

function texture(height, width, seed = 1) {
  let state = seed >>> 0;
  const random = () => { state = (Math.imul(state, 1664525) + 1013904223) >>> 0; return state / 4294967296; };
  const picture = new Float64Array(height * width);
  for (const [cell, weight] of [[9, 0.65], [4, 0.35]]) {
    const gw = Math.floor(width / cell) + 3;
    const gh = Math.floor(height / cell) + 3;
    const grid = Float64Array.from({ length: gw * gh }, random);
    const smooth = (t) => t * t * (3 - 2 * t);
    for (let y = 0; y < height; y++) {
      const y0 = Math.floor(y / cell);
      const fy = smooth(y / cell - y0);
      for (let x = 0; x < width; x++) {
        const x0 = Math.floor(x / cell);
        const fx = smooth(x / cell - x0);
        const a = grid[y0 * gw + x0]; const b = grid[y0 * gw + x0 + 1];
        const c = grid[(y0 + 1) * gw + x0]; const d = grid[(y0 + 1) * gw + x0 + 1];
        picture[y * width + x] += weight * (a + (b - a) * fx + (c - a) * fy + (a - b - c + d) * fx * fy);
      }
    }
  }
  return { width, height, data: Buffer.from(picture.map((v) => Math.max(0, Math.min(255, Math.round(v * 255))))) };
}

/** A width×height gray window at (x, y): moving it by (+dx, +dy) moves its content by (-dx, -dy). */
function crop(picture, x, y, width, height) {
  const gray = Buffer.alloc(width * height);
  for (let row = 0; row < height; row++) picture.data.copy(gray, row * width, (y + row) * picture.width + x, (y + row) * picture.width + x + width);
  return { gray, width, height };
}

function medianMotion(matches) {
  const median = (values) => { const s = [...values].sort((p, q) => p - q); return s[Math.floor(s.length / 2)]; };
  return [median(matches.keypoints1.map((p, i) => p[0] - matches.keypoints0[i][0])),
    median(matches.keypoints1.map((p, i) => p[1] - matches.keypoints0[i][1]))];
}

module.exports = { texture, crop, medianMotion };
