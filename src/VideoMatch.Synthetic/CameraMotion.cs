using System.Numerics;

namespace VideoMatch.Synthetic;

/// <summary>
/// Seeded camera paths over a scene, as frame-to-texture maps: a steady pan with optional hand shake (random
/// translation and rotation about the frame centre, fresh each frame), so stabilizers and matchers can be scored
/// against exact truth.
/// </summary>
public static class CameraMotion
{
    /// <param name="frames">Number of frames.</param>
    /// <param name="width">Frame width (rotation and zoom are about the centre).</param>
    /// <param name="height">Frame height.</param>
    /// <param name="pan">Steady motion of the window per frame, in texture pixels.</param>
    /// <param name="shakePx">Largest random offset of the window, in pixels.</param>
    /// <param name="shakeDegrees">Largest random turn, in degrees.</param>
    /// <param name="seed">Seed of the shake.</param>
    public static Matrix3x2[] Shaky(int frames, int width, int height, Vector2 pan, float shakePx, float shakeDegrees, int seed)
    {
        var random = new Random(seed);
        var views = new Matrix3x2[frames];
        for (var i = 0; i < frames; i++)
        {
            var offset = new Vector2((float)((random.NextDouble() * 2) - 1), (float)((random.NextDouble() * 2) - 1)) * shakePx;
            var degrees = (float)((random.NextDouble() * 2) - 1) * shakeDegrees;
            views[i] = View(width, height, degrees, 1f, (pan * i) + offset);
        }

        return views;
    }

    /// <summary>Frame-to-texture map of a window turned by <paramref name="degrees"/> and zoomed by <paramref name="zoom"/> about its centre, moved by <paramref name="offset"/>.</summary>
    public static Matrix3x2 View(int width, int height, float degrees, float zoom, Vector2 offset)
    {
        var centre = new Vector2(width / 2f, height / 2f);
        return Matrix3x2.CreateTranslation(-centre)
            * Matrix3x2.CreateScale(1 / zoom)
            * Matrix3x2.CreateRotation(degrees * MathF.PI / 180)
            * Matrix3x2.CreateTranslation(centre + offset);
    }
}
