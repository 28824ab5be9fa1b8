using System.Numerics;

namespace VideoMatch.Synthetic;

/// <summary>
/// A seeded, smooth random texture that can be viewed through any affine camera with sub-pixel accuracy, so
/// tests, benchmarks and load generators get frames whose true motion is known exactly.
/// </summary>
/// <remarks>
/// The texture is value noise at two scales (about 9 and 4 pixels), evaluated with smoothstep interpolation:
/// continuous everywhere, so a frame rendered at a fractional offset is the same picture moved by that offset.
/// Colour channels differ, which exercises the gray conversion.
/// </remarks>
public sealed class TexturedScene(int seed)
{
    private readonly uint _seed = (uint)seed * 2654435761u;

    /// <summary>Texture intensity at texture coordinates (u, v), in [0, 1].</summary>
    public float Intensity(float u, float v) =>
        0.65f * Noise(u / 9f, v / 9f, 0u) + 0.35f * Noise(u / 4f, v / 4f, 7919u);

    /// <summary>
    /// Renders a width×height RGB24 frame whose pixel (x, y) shows the texture at <paramref name="frameToTexture"/>(x, y).
    /// </summary>
    public void RenderRgb(int width, int height, Matrix3x2 frameToTexture, Span<byte> rgb)
    {
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                var p = Vector2.Transform(new Vector2(x, y), frameToTexture);
                var t = Intensity(p.X, p.Y);
                var i = 3 * (y * width + x);
                rgb[i] = ToByte(t);
                rgb[i + 1] = ToByte(0.85f * t + 0.1f);
                rgb[i + 2] = ToByte(1f - 0.7f * t);
            }
        }
    }

    /// <summary>Same as <see cref="RenderRgb"/> for one gray channel.</summary>
    public void RenderGray(int width, int height, Matrix3x2 frameToTexture, Span<byte> gray)
    {
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                var p = Vector2.Transform(new Vector2(x, y), frameToTexture);
                gray[y * width + x] = ToByte(Intensity(p.X, p.Y));
            }
        }
    }

    /// <summary>Where a point of frame A appears in frame B, given each frame's frame-to-texture transform.</summary>
    public static Vector2 Map(Vector2 pointInA, Matrix3x2 aToTexture, Matrix3x2 bToTexture)
    {
        if (!Matrix3x2.Invert(bToTexture, out var textureToB))
        {
            throw new ArgumentException("The frame transform is singular.", nameof(bToTexture));
        }

        return Vector2.Transform(Vector2.Transform(pointInA, aToTexture), textureToB);
    }

    private static byte ToByte(float value) => (byte)Math.Clamp((int)MathF.Round(value * 255f), 0, 255);

    private float Noise(float u, float v, uint salt)
    {
        var x0 = (int)MathF.Floor(u);
        var y0 = (int)MathF.Floor(v);
        var fx = Smooth(u - x0);
        var fy = Smooth(v - y0);
        var a = Lattice(x0, y0, salt);
        var b = Lattice(x0 + 1, y0, salt);
        var c = Lattice(x0, y0 + 1, salt);
        var d = Lattice(x0 + 1, y0 + 1, salt);
        return a + (b - a) * fx + (c - a) * fy + (a - b - c + d) * fx * fy;
    }

    private static float Smooth(float t) => t * t * (3f - 2f * t);

    private float Lattice(int x, int y, uint salt)
    {
        var h = (uint)x * 374761393u + (uint)y * 668265263u + _seed + salt;
        h = (h ^ (h >> 13)) * 1274126177u;
        h ^= h >> 16;
        return (h & 0xFFFFFF) / 16777215f;
    }
}
