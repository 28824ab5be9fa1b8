namespace VideoMatch.Client;

/// <summary>A similarity transform (x, y) ↦ s·R(θ)·(x, y) + (tx, ty), in video pixels.</summary>
public readonly record struct Similarity(double Scale, double Angle, double Tx, double Ty)
{
    /// <summary>No motion: scale 1, angle 0, no shift.</summary>
    public static Similarity Identity => new(1, 0, 0, 0);

    /// <summary>Row-major 3×3.</summary>
    public double[] Matrix()
    {
        var (a, b) = (Scale * Math.Cos(Angle), Scale * Math.Sin(Angle));
        return [a, -b, Tx, b, a, Ty, 0, 0, 1];
    }

    /// <summary>The similarity nearest a 3×3 matrix's affine part (its rotation-and-scale part averaged).</summary>
    public static Similarity From(double[] m)
    {
        ArgumentNullException.ThrowIfNull(m);
        var a = (m[0] + m[4]) / 2;
        var b = (m[3] - m[1]) / 2;
        return new Similarity(Math.Sqrt((a * a) + (b * b)), Math.Atan2(b, a), m[2], m[5]);
    }

    /// <summary>The point (x, y) under the similarity.</summary>
    public (double X, double Y) Apply(double x, double y)
    {
        var (a, b) = (Scale * Math.Cos(Angle), Scale * Math.Sin(Angle));
        return ((a * x) - (b * y) + Tx, (b * x) + (a * y) + Ty);
    }
}

/// <summary>
/// The camera path of a video (what <c>videomatch stabilize</c> smooths) from its per-pair transforms, smoothed: frame t's correction maps its pixels to
/// where a smoothly moving camera would have seen them.
/// </summary>
/// <remarks>
/// Camera path C_t maps frame-0 pixels to frame-t pixels: C_t = M_t · C_(t−1), M_t the pair (t−1, t)'s transform.
/// Its parameters (log scale, unwrapped angle, translation) are averaged over a centred window of 2N + 1 frames
/// (shorter at the ends) into S_t; the correction is S_t · C_t⁻¹.
/// </remarks>
public sealed class CameraPath
{
    private CameraPath(Similarity[] path, Similarity[] smoothed)
    {
        Path = path;
        Smoothed = smoothed;
    }

    /// <summary>C_t: frame-0 pixels to frame-t pixels, as measured.</summary>
    public IReadOnlyList<Similarity> Path { get; }

    /// <summary>S_t: the path averaged over the smoothing window.</summary>
    public IReadOnlyList<Similarity> Smoothed { get; }

    /// <param name="pairTransforms">Index t ≥ 1: frame t−1 → t (row-major 3×3), or null when unknown (taken as no motion). Index 0 is ignored.</param>
    /// <param name="radius">N: frames each side in the smoothing window; 0 keeps the path as it is.</param>
    public static CameraPath Smooth(IReadOnlyList<double[]?> pairTransforms, int radius)
    {
        ArgumentNullException.ThrowIfNull(pairTransforms);
        ArgumentOutOfRangeException.ThrowIfNegative(radius);
        var count = pairTransforms.Count;
        var path = new Similarity[count];
        var current = Similarity.Identity.Matrix();
        var previousAngle = 0.0;
        for (var t = 0; t < count; t++)
        {
            if (t > 0 && pairTransforms[t] is { Length: 9 } step)
            {
                current = Transforms.Multiply(Similarity.From(step).Matrix(), current);
            }

            var s = Similarity.From(current);
            // Unwrap so a slow turn past ±π averages correctly.
            var angle = s.Angle + (Math.Round((previousAngle - s.Angle) / (2 * Math.PI)) * 2 * Math.PI);
            previousAngle = angle;
            path[t] = s with { Angle = angle };
        }

        var smoothed = new Similarity[count];
        for (var t = 0; t < count; t++)
        {
            // A window centred on t, narrower near the ends: a one-sided window there would pull the path towards the
            // frames after (or before) it, warping the first and last frames of a steady pan by half a window's motion.
            var reach = Math.Min(radius, Math.Min(t, count - 1 - t));
            var (from, to) = (t - reach, t + reach);
            double logScale = 0, angle = 0, tx = 0, ty = 0;
            for (var k = from; k <= to; k++)
            {
                logScale += Math.Log(path[k].Scale);
                angle += path[k].Angle;
                tx += path[k].Tx;
                ty += path[k].Ty;
            }

            var n = to - from + 1;
            smoothed[t] = new Similarity(Math.Exp(logScale / n), angle / n, tx / n, ty / n);
        }

        return new CameraPath(path, smoothed);
    }

    /// <summary>Row-major 3×3 mapping frame t's pixels to the stabilized frame's: S_t · C_t⁻¹.</summary>
    public double[] Correction(int t) => Transforms.Multiply(Smoothed[t].Matrix(), Invert(Path[t]).Matrix());

    /// <summary>How far the correction moves the frame's centre, in pixels.</summary>
    public double CorrectionAtCentre(int t, int width, int height)
    {
        var (cx, cy) = ((width - 1) / 2.0, (height - 1) / 2.0);
        var m = Correction(t);
        var (x, y) = ((m[0] * cx) + (m[1] * cy) + m[2], (m[3] * cx) + (m[4] * cy) + m[5]);
        return Math.Sqrt(((x - cx) * (x - cx)) + ((y - cy) * (y - cy)));
    }

    private static Similarity Invert(Similarity s)
    {
        var inverse = new Similarity(1 / s.Scale, -s.Angle, 0, 0);
        var (tx, ty) = inverse.Apply(s.Tx, s.Ty);
        return inverse with { Tx = -tx, Ty = -ty };
    }
}
