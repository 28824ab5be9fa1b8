namespace VideoMatch.Engine.Inference;

/// <summary>
/// The matches of one pair, highest score first, in each image's original pixel coordinates (the centre of the
/// top-left pixel is (0, 0)). Arrays hold exactly <see cref="Count"/> points.
/// </summary>
public sealed class PairMatchResult(float[] keypoints0, float[] keypoints1, float[] scores)
{
    public static PairMatchResult Empty { get; } = new([], [], []);

    public int Count => Scores.Length;

    /// <summary>x0, y0, x1, y1, ... in image 0.</summary>
    public float[] Keypoints0 { get; } = keypoints0;

    /// <summary>The matching points in image 1, same order.</summary>
    public float[] Keypoints1 { get; } = keypoints1;

    public float[] Scores { get; } = scores;
}

/// <summary>How a pair went through the batcher.</summary>
public readonly record struct BatchTimings(double QueueWaitMs, double InferenceMs, int BatchSize);

/// <summary>A finished pair.</summary>
public sealed record PairOutcome(PairMatchResult Matches, BatchTimings Timings);
