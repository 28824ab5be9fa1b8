namespace VideoMatch.Engine.Inference;

/// <summary>
/// Reads one pair out of a dense matcher's outputs: keeps slots with a match and a score strictly above the
/// threshold, sorts them by score (ties by slot, so results are deterministic), keeps the best
/// <c>maxMatches</c>, and maps normalised model coordinates to each image's original pixels as floats.
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
        float threshold, int maxMatches, (int Width, int Height) size0, (int Width, int Height) size1)
    {
        var n = _cells;
        var found = 0;
        for (var slot = 0; slot < n; slot++)
        {
            var partner = matches[slot];
            var score = scores[slot];
            if (partner < 0 || partner >= n || !(score > threshold))
            {
                continue;
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
        var (sx0, sy0) = ((float)size0.Width / _modelWidth, (float)size0.Height / _modelHeight);
        var (sx1, sy1) = ((float)size1.Width / _modelWidth, (float)size1.Height / _modelHeight);
        var row1 = 2 * n;
        for (var i = 0; i < count; i++)
        {
            var slot = (int)(order[i] & 0xFFFFFFFF);
            var other = _layout == OutputLayout.PairSlots ? slot : (int)matches[slot];
            kept[i] = scores[slot];
            // Model pixel u covers original pixels around (u + 0.5) · scale − 0.5 (half-pixel centres, as the resize).
            points0[2 * i] = (keypoints[2 * slot] * _modelWidth + 0.5f) * sx0 - 0.5f;
            points0[2 * i + 1] = (keypoints[2 * slot + 1] * _modelHeight + 0.5f) * sy0 - 0.5f;
            points1[2 * i] = (keypoints[row1 + 2 * other] * _modelWidth + 0.5f) * sx1 - 0.5f;
            points1[2 * i + 1] = (keypoints[row1 + 2 * other + 1] * _modelHeight + 0.5f) * sy1 - 0.5f;
        }

        return new PairMatchResult(points0, points1, kept);
    }
}
