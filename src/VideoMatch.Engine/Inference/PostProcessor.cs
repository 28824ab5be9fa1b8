using VideoMatch.Engine.Frames;

namespace VideoMatch.Engine.Inference;

/// <summary>
/// Reads one pair out of a dense matcher's outputs: keeps slots with a match and a score strictly above the
/// threshold (and, for letterboxed frames, both points on the frames' own pixels), sorts them by score (ties by
/// slot, so results are deterministic), keeps the best <c>maxMatches</c>, and maps normalised model coordinates to
/// each image's original pixels as floats.
/// </summary>
internal sealed class PostProcessor
{
    private readonly int _cells;
    private readonly OutputLayout _layout;
    private readonly int _modelWidth;
    private readonly int _modelHeight;
    private readonly long[] _order;

    public PostProcessor(int cells, OutputLayout layout, int modelWidth, int modelHeight)
    {
        _cells = cells;
        _layout = layout;
        _modelWidth = modelWidth;
        _modelHeight = modelHeight;
        _order = new long[cells];
    }

    /// <param name="matches">(2, N) of this pair.</param>
    /// <param name="scores">(2, N) of this pair.</param>
    /// <param name="keypoints">(2, N, 2) of this pair, normalised.</param>
    public PairMatchResult Extract(ReadOnlySpan<long> matches, ReadOnlySpan<float> scores, ReadOnlySpan<float> keypoints,
        float threshold, int maxMatches, FrameMapping frame0, FrameMapping frame1)
    {
        var n = _cells;
        var row1 = 2 * n;
        var padded = frame0.Letterboxed || frame1.Letterboxed;
        var found = 0;
        for (var slot = 0; slot < n; slot++)
        {
            var partner = matches[slot];
            var score = scores[slot];
            if (partner < 0 || partner >= n || !(score > threshold))
            {
                continue;
            }

            if (padded)
            {
                var other = _layout == OutputLayout.PairSlots ? slot : (int)partner;
                var (x0, y0) = Model(keypoints, 2 * slot);
                var (x1, y1) = Model(keypoints, row1 + 2 * other);
                if (!frame0.Covers(x0, y0) || !frame1.Covers(x1, y1))
                {
                    continue;
                }
            }

            // Non-negative floats order like their bit patterns: high score first, then low slot.
            var rank = int.MaxValue - BitConverter.SingleToInt32Bits(score);
            _order[found++] = ((long)rank << 32) | (uint)slot;
        }

        var order = _order.AsSpan(0, found);
        order.Sort();
        var count = maxMatches > 0 ? Math.Min(found, maxMatches) : found;
        if (count == 0)
        {
            return PairMatchResult.Empty;
        }

        var points0 = new float[2 * count];
        var points1 = new float[2 * count];
        var kept = new float[count];
        for (var i = 0; i < count; i++)
        {
            var slot = (int)(order[i] & 0xFFFFFFFF);
            var other = _layout == OutputLayout.PairSlots ? slot : (int)matches[slot];
            kept[i] = scores[slot];
            var (x0, y0) = Model(keypoints, 2 * slot);
            var (x1, y1) = Model(keypoints, row1 + 2 * other);
            (points0[2 * i], points0[2 * i + 1]) = frame0.ToOriginal(x0, y0);
            (points1[2 * i], points1[2 * i + 1]) = frame1.ToOriginal(x1, y1);
        }

        return new PairMatchResult(points0, points1, kept);
    }

    /// <summary>The keypoint at <paramref name="at"/> in model pixels (pixel centres at whole numbers).</summary>
    private (float X, float Y) Model(ReadOnlySpan<float> keypoints, int at) =>
        (keypoints[at] * _modelWidth, keypoints[at + 1] * _modelHeight);
}
