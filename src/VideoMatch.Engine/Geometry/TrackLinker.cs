namespace VideoMatch.Engine.Geometry;

/// <summary>
/// Gives the matches of a stream's pairs track ids. A pair that shares a frame with the pair before it (the
/// previous pair's later frame, or — in keyframe mode — its reference frame) inherits ids: each match of the new
/// pair takes the id of the nearest unclaimed point of the shared frame within a radius, matches taken in order
/// (highest score first). Every other match gets an id never used before in the stream.
/// </summary>
/// <remarks>Not thread-safe: one linker per stream, fed pairs in frame order.</remarks>
public sealed class TrackLinker
{
    private ulong _nextId = 1;
    private ulong _lastSequence0;
    private ulong _lastSequence1;
    private float[] _lastPoints0 = [];
    private float[] _lastPoints1 = [];
    private ulong[] _lastIds = [];
    private bool _hasLast;

    /// <summary>
    /// Goes on from a stream another linker served, from its last pair as the client received it and the next id it
    /// would have given; the caller has checked them (points of equal count, two values per id, ids below
    /// <paramref name="nextId"/>).
    /// </summary>
    public void Resume(ulong sequence0, ulong sequence1, float[] points0, float[] points1, ulong[] ids, ulong nextId)
    {
        ArgumentNullException.ThrowIfNull(points0);
        ArgumentNullException.ThrowIfNull(points1);
        ArgumentNullException.ThrowIfNull(ids);
        if (points0.Length != 2 * ids.Length || points1.Length != 2 * ids.Length || nextId == 0 || ids.Any(id => id == 0 || id >= nextId))
        {
            throw new ArgumentException("A resumed track state needs two values per id in each frame and ids from 1 below the next id.", nameof(ids));
        }

        (_hasLast, _lastSequence0, _lastSequence1, _lastPoints0, _lastPoints1, _lastIds, _nextId) = (true, sequence0, sequence1, points0, points1, ids, nextId);
    }

    /// <summary>Ids handed out so far.</summary>
    public ulong IdsIssued => _nextId - 1;

    /// <summary>Ids for the matches of pair (<paramref name="sequence0"/>, <paramref name="sequence1"/>), in match order.</summary>
    /// <param name="points0">x, y of each match in frame <paramref name="sequence0"/>.</param>
    /// <param name="points1">x, y of each match in frame <paramref name="sequence1"/>.</param>
    /// <param name="radiusPx">Largest distance, in pixels of the shared frame, at which a point keeps its id.</param>
    public ulong[] Link(ulong sequence0, ulong sequence1, float[] points0, float[] points1, double radiusPx)
    {
        ArgumentNullException.ThrowIfNull(points0);
        ArgumentNullException.ThrowIfNull(points1);
        if (points0.Length != points1.Length || points0.Length % 2 != 0)
        {
            throw new ArgumentException($"Point arrays must hold x, y pairs of equal count (got {points0.Length} and {points1.Length} values).", nameof(points1));
        }

        // The shared frame: this pair's frame 0 is the last pair's frame 1 (consecutive pairs) or its frame 0 (same keyframe).
        float[]? previous = null;
        if (_hasLast && sequence0 == _lastSequence1)
        {
            previous = _lastPoints1;
        }
        else if (_hasLast && sequence0 == _lastSequence0)
        {
            previous = _lastPoints0;
        }

        var ids = new ulong[points0.Length / 2];
        if (previous is { Length: > 0 } && radiusPx > 0)
        {
            Inherit(previous, _lastIds, points0, ids, radiusPx);
        }

        for (var i = 0; i < ids.Length; i++)
        {
            if (ids[i] == 0)
            {
                ids[i] = _nextId++;
            }
        }

        _hasLast = true;
        _lastSequence0 = sequence0;
        _lastSequence1 = sequence1;
        _lastPoints0 = points0;
        _lastPoints1 = points1;
        _lastIds = ids;
        return ids;
    }

    /// <summary>Nearest unclaimed neighbour within the radius, through a uniform grid of cell side = radius.</summary>
    private static void Inherit(float[] previous, ulong[] previousIds, float[] points, ulong[] ids, double radius)
    {
        var cell = (float)radius;
        var count = previous.Length / 2;
        var buckets = new Dictionary<long, int>(count);
        var next = new int[count];
        for (var i = 0; i < count; i++)
        {
            var key = Key(CellOf(previous[2 * i], cell), CellOf(previous[2 * i + 1], cell));
            next[i] = buckets.TryGetValue(key, out var head) ? head : -1;
            buckets[key] = i;
        }

        var claimed = new bool[count];
        var limit = radius * radius;
        for (var m = 0; m < ids.Length; m++)
        {
            var x = points[2 * m];
            var y = points[2 * m + 1];
            var (cx, cy) = (CellOf(x, cell), CellOf(y, cell));
            var best = -1;
            var bestDistance = double.MaxValue;
            for (var dy = -1; dy <= 1; dy++)
            {
                for (var dx = -1; dx <= 1; dx++)
                {
                    if (!buckets.TryGetValue(Key(cx + dx, cy + dy), out var i))
                    {
                        continue;
                    }

                    for (; i >= 0; i = next[i])
                    {
                        if (claimed[i])
                        {
                            continue;
                        }

                        double ex = previous[2 * i] - x;
                        double ey = previous[2 * i + 1] - y;
                        var distance = ex * ex + ey * ey;
                        // Ties go to the lower index (the higher-scored match of the last pair).
                        if (distance <= limit && (distance < bestDistance || (distance == bestDistance && i < best)))
                        {
                            best = i;
                            bestDistance = distance;
                        }
                    }
                }
            }

            if (best >= 0)
            {
                claimed[best] = true;
                ids[m] = previousIds[best];
            }
        }
    }

    private static int CellOf(float value, float cell) => (int)MathF.Floor(value / cell);

    private static long Key(int x, int y) => ((long)x << 32) ^ (uint)y;
}
