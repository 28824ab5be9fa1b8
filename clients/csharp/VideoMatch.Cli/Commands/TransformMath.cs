namespace VideoMatch.Cli.Commands;

/// <summary>3×3 row-major transforms between the frames sent (model size) and the video's own pixels.</summary>
internal static class TransformMath
{
    /// <summary>
    /// Conjugates a frame0 → frame1 transform measured on frames resized by (1/sx, 1/sy) into video pixels:
    /// S·M·S⁻¹ with S the half-pixel-exact model-to-video map v = (m + 0.5)·s − 0.5. Scaled so the last entry is 1.
    /// </summary>
    public static double[] ToVideoPixels(double[] m, double sx, double sy)
    {
        double[] s = [sx, 0, (0.5 * sx) - 0.5, 0, sy, (0.5 * sy) - 0.5, 0, 0, 1];
        double[] inverse = [1 / sx, 0, (0.5 / sx) - 0.5, 0, 1 / sy, (0.5 / sy) - 0.5, 0, 0, 1];
        var result = Multiply(Multiply(s, m), inverse);
        var w = result[8];
        return [.. result.Select(v => v / w)];
    }

    public static double[] Multiply(double[] a, double[] b)
    {
        var c = new double[9];
        for (var r = 0; r < 3; r++)
        {
            for (var k = 0; k < 3; k++)
            {
                c[(r * 3) + k] = (a[r * 3] * b[k]) + (a[(r * 3) + 1] * b[3 + k]) + (a[(r * 3) + 2] * b[6 + k]);
            }
        }

        return c;
    }
}
