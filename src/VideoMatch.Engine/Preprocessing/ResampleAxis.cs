using System.Collections.Concurrent;

namespace VideoMatch.Engine.Preprocessing;

/// <summary>
/// Antialiased bilinear (triangle filter) weights along one axis, computed as Pillow and torchvision's
/// antialiased resize compute them: the filter widens by the scale factor when shrinking, source pixel centres
/// at i + 0.5, weights normalised per output pixel.
/// </summary>
internal sealed class ResampleAxis
{
    private static readonly ConcurrentDictionary<(int, int), ResampleAxis> Cache = new();

    private ResampleAxis(int inSize, int outSize)
    {
        InSize = inSize;
        OutSize = outSize;
        var scale = (double)inSize / outSize;
        var filterScale = Math.Max(scale, 1.0);
        var support = filterScale;
        Taps = (int)Math.Ceiling(support) * 2 + 1;
        Start = new int[outSize];
        Count = new int[outSize];
        WeightsByOutput = new float[outSize * Taps];
        WeightsByTap = new float[outSize * Taps];
        PixelByTap = new int[outSize * Taps];
        var weights = new double[Taps];
        for (var o = 0; o < outSize; o++)
        {
            var centre = (o + 0.5) * scale;
            var min = Math.Max((int)(centre - support + 0.5), 0);
            var count = Math.Min((int)(centre + support + 0.5), inSize) - min;
            var total = 0.0;
            for (var k = 0; k < count; k++)
            {
                var w = Triangle((k + min - centre + 0.5) / filterScale);
                weights[k] = w;
                total += w;
            }

            Start[o] = min;
            Count[o] = count;
            for (var k = 0; k < Taps; k++)
            {
                var w = k < count && total != 0.0 ? (float)(weights[k] / total) : 0f;
                WeightsByOutput[o * Taps + k] = w;
                WeightsByTap[k * outSize + o] = w;
                // Padding taps read a real pixel with weight 0, so vector gathers never leave the row.
                PixelByTap[k * outSize + o] = min + Math.Min(k, count - 1);
            }
        }
    }

    public int InSize { get; }

    public int OutSize { get; }

    /// <summary>Taps per output pixel after padding (unused taps weigh 0).</summary>
    public int Taps { get; }

    /// <summary>First source pixel of each output pixel.</summary>
    public int[] Start { get; }

    /// <summary>Source pixels that really contribute to each output pixel.</summary>
    public int[] Count { get; }

    /// <summary>[output × Taps + tap].</summary>
    public float[] WeightsByOutput { get; }

    /// <summary>[tap × OutSize + output], for vectors over outputs.</summary>
    public float[] WeightsByTap { get; }

    /// <summary>Source pixel index of [tap × OutSize + output].</summary>
    public int[] PixelByTap { get; }

    public static ResampleAxis Get(int inSize, int outSize)
    {
        if (Cache.TryGetValue((inSize, outSize), out var axis))
        {
            return axis;
        }

        // Streams keep one size, so few entries are live; a client cycling sizes must not grow memory forever.
        if (Cache.Count > 256)
        {
            Cache.Clear();
        }

        return Cache.GetOrAdd((inSize, outSize), static key => new ResampleAxis(key.Item1, key.Item2));
    }

    private static double Triangle(double x)
    {
        x = Math.Abs(x);
        return x < 1.0 ? 1.0 - x : 0.0;
    }
}
