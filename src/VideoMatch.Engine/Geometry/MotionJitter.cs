using OpenCvSharp;

namespace VideoMatch.Engine.Geometry;

/// <summary>
/// Measures how unsteady a video is, independently of any matcher: the frame-to-frame shift of each pair of
/// consecutive frames by phase correlation (OpenCV, sub-pixel, Hanning-windowed, on the central 60% so borders
/// that a stabilizer fills do not count), and the jitter of that motion.
/// </summary>
public static class MotionJitter
{
    /// <summary>Shift of the content from <paramref name="gray0"/> to <paramref name="gray1"/> in pixels (GRAY8, rows packed).</summary>
    public static (double X, double Y) Shift(ReadOnlySpan<byte> gray0, ReadOnlySpan<byte> gray1, int width, int height)
    {
        using var a = Centre(gray0, width, height);
        using var b = Centre(gray1, width, height);
        using var window = new Mat();
        Cv2.CreateHanningWindow(window, a.Size(), MatType.CV_64FC1);
        var shift = Cv2.PhaseCorrelate(a, b, window, out _);
        return (shift.X, shift.Y);
    }

    /// <summary>
    /// Root-mean-square change of the frame-to-frame motion, in pixels: 0 for a camera at rest or moving steadily,
    /// large for shake. Needs at least two steps.
    /// </summary>
    public static double Jitter(IReadOnlyList<(double X, double Y)> steps)
    {
        ArgumentNullException.ThrowIfNull(steps);
        if (steps.Count < 2)
        {
            throw new ArgumentException("Jitter needs at least three frames (two steps).", nameof(steps));
        }

        var sum = 0.0;
        for (var i = 1; i < steps.Count; i++)
        {
            var (dx, dy) = (steps[i].X - steps[i - 1].X, steps[i].Y - steps[i - 1].Y);
            sum += (dx * dx) + (dy * dy);
        }

        return Math.Sqrt(sum / (steps.Count - 1));
    }

    private static Mat Centre(ReadOnlySpan<byte> gray, int width, int height)
    {
        var (w, h) = (width * 6 / 10, height * 6 / 10);
        var (left, top) = ((width - w) / 2, (height - h) / 2);
        var values = new double[w * h];
        for (var y = 0; y < h; y++)
        {
            var row = gray.Slice(((top + y) * width) + left, w);
            for (var x = 0; x < w; x++)
            {
                values[(y * w) + x] = row[x];
            }
        }

        var mat = new Mat(h, w, MatType.CV_64FC1);
        mat.SetArray(values);
        return mat;
    }
}
