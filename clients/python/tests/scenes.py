"""Textured test pictures with exactly known motion, in numpy only."""
import numpy as np


def texture(height: int, width: int, seed: int = 1) -> np.ndarray:
    """Smooth random texture (value noise at cell sizes 9 and 4 px), uint8."""
    rng = np.random.default_rng(seed)
    result = np.zeros((height, width), dtype=np.float64)
    for cell, weight in ((9.0, 0.65), (4.0, 0.35)):
        grid = rng.random((int(height / cell) + 3, int(width / cell) + 3))
        ys = np.arange(height) / cell
        xs = np.arange(width) / cell
        y0 = np.floor(ys).astype(int)
        x0 = np.floor(xs).astype(int)
        fy = (ys - y0)[:, None]
        fx = (xs - x0)[None, :]
        fy = fy * fy * (3 - 2 * fy)
        fx = fx * fx * (3 - 2 * fx)
        a = grid[y0][:, x0]
        b = grid[y0][:, x0 + 1]
        c = grid[y0 + 1][:, x0]
        d = grid[y0 + 1][:, x0 + 1]
        result += weight * (a + (b - a) * fx + (c - a) * fy + (a - b - c + d) * fx * fy)
    return np.clip(result * 255, 0, 255).astype(np.uint8)


def crop(picture: np.ndarray, x: int, y: int, width: int, height: int) -> np.ndarray:
    """A window of the picture: moving the window by (+dx, +dy) moves its content by (-dx, -dy)."""
    return np.ascontiguousarray(picture[y:y + height, x:x + width])
