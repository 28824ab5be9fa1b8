using VideoMatch.Engine.Frames;

namespace VideoMatch.Engine.Inference;

/// <summary>
/// One pair's matches as every family can state them: by image-0 point (a dense slot, a sparse keypoint), the image-1
/// point it matches (negative: none) and the score; points as (x, y) pairs, times a scale to model input pixels.
/// </summary>
internal readonly ref struct PointMatches(ReadOnlySpan<int> partners, ReadOnlySpan<float> scores, ReadOnlySpan<float> points0, ReadOnlySpan<float> points1,
    float scaleX = 1f, float scaleY = 1f)
{
    private readonly ReadOnlySpan<int> _partners = partners;
    private readonly ReadOnlySpan<float> _scores = scores;
    private readonly ReadOnlySpan<float> _points0 = points0;
    private readonly ReadOnlySpan<float> _points1 = points1;

    /// <summary>Image-0 points, matched or not.</summary>
    public int Count => _partners.Length;

    /// <summary>The score of the match from image-0 point <paramref name="index"/>; false when it has none.</summary>
    public bool TryScore(int index, out float score)
    {
        score = _scores[index];
        return _partners[index] >= 0;
    }

    /// <summary>The match's image-0 point in model input pixels (pixel centres at whole numbers).</summary>
    public (float X, float Y) Point0(int index) => (_points0[2 * index] * scaleX, _points0[(2 * index) + 1] * scaleY);

    /// <summary>The match's image-1 point in model input pixels.</summary>
    public (float X, float Y) Point1(int index)
    {
        var partner = _partners[index];
        return (_points1[2 * partner] * scaleX, _points1[(2 * partner) + 1] * scaleY);
    }
}

/// <summary>
/// Post-processing shared by every family: keeps matches scoring strictly above the threshold (and, for letterboxed
/// frames, with both points on the frames' own pixels), orders them by score, ties by image-0 point so results are
/// deterministic, keeps the best <c>maxMatches</c> (0: all), and maps the points to each image's original pixels.
/// Holds one reusable ordering buffer: use it from one thread at a time.
/// </summary>
internal sealed class MatchSelector
{
    private long[] _order;

    public MatchSelector(int capacity = 0) => _order = new long[capacity];

    public PairMatchResult Select(scoped in PointMatches candidates, float threshold, int maxMatches, FrameMapping frame0, FrameMapping frame1)
    {
        var n = candidates.Count;
        if (_order.Length < n)
        {
            _order = new long[n];
        }

        var padded = frame0.Letterboxed || frame1.Letterboxed;
        var found = 0;
        for (var index = 0; index < n; index++)
        {
            if (!candidates.TryScore(index, out var score) || !(score > threshold))
            {
                continue;
            }

            if (padded)
            {
                var (x0, y0) = candidates.Point0(index);
                var (x1, y1) = candidates.Point1(index);
                if (!frame0.Covers(x0, y0) || !frame1.Covers(x1, y1))
                {
                    continue;
                }
            }

            // Non-negative floats order like their bit patterns: high score first, then low index.
            var rank = int.MaxValue - BitConverter.SingleToInt32Bits(score);
            _order[found++] = ((long)rank << 32) | (uint)index;
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
            var index = (int)(order[i] & 0xFFFFFFFF);
            _ = candidates.TryScore(index, out kept[i]);
            var (x0, y0) = candidates.Point0(index);
            var (x1, y1) = candidates.Point1(index);
            (points0[2 * i], points0[2 * i + 1]) = frame0.ToOriginal(x0, y0);
            (points1[2 * i], points1[2 * i + 1]) = frame1.ToOriginal(x1, y1);
        }

        return new PairMatchResult(points0, points1, kept);
    }
}

/// <summary>Reads one pair out of a dense matcher's outputs (one candidate per coarse cell of image 0) through <see cref="MatchSelector"/>.</summary>
internal sealed class PostProcessor
{
    private readonly int _cells;
    private readonly OutputLayout _layout;
    private readonly int _modelWidth;
    private readonly int _modelHeight;
    private readonly int[] _partners;
    private readonly MatchSelector _selector;

    public PostProcessor(int cells, OutputLayout layout, int modelWidth, int modelHeight)
    {
        _cells = cells;
        _layout = layout;
        _modelWidth = modelWidth;
        _modelHeight = modelHeight;
        _partners = new int[cells];
        _selector = new MatchSelector(cells);
    }

    /// <param name="matches">(2, N) of this pair.</param>
    /// <param name="scores">(2, N) of this pair.</param>
    /// <param name="keypoints">(2, N, 2) of this pair, normalised.</param>
    public PairMatchResult Extract(ReadOnlySpan<long> matches, ReadOnlySpan<float> scores, ReadOnlySpan<float> keypoints,
        float threshold, int maxMatches, FrameMapping frame0, FrameMapping frame1)
    {
        var n = _cells;
        for (var slot = 0; slot < n; slot++)
        {
            // Pair slots hold the partner in the same slot of row 1; cell indexes name the partner's cell.
            var partner = matches[slot];
            _partners[slot] = partner < 0 || partner >= n ? -1 : _layout == OutputLayout.PairSlots ? slot : (int)partner;
        }

        var candidates = new PointMatches(_partners, scores[..n], keypoints[..(2 * n)], keypoints.Slice(2 * n, 2 * n), _modelWidth, _modelHeight);
        return _selector.Select(candidates, threshold, maxMatches, frame0, frame1);
    }
}
