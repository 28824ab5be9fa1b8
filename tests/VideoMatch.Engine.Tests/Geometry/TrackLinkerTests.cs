using VideoMatch.Engine.Geometry;

namespace VideoMatch.Engine.Tests.Geometry;

public sealed class TrackLinkerTests
{
    [Fact]
    public void Link_FirstPair_NumbersMatchesFromOne()
    {
        var linker = new TrackLinker();

        var ids = linker.Link(0, 1, [0, 0, 10, 10, 20, 20], [1, 0, 11, 10, 21, 20], 1.0);

        Assert.Equal([1ul, 2ul, 3ul], ids);
        Assert.Equal(3ul, linker.IdsIssued);
    }

    [Fact]
    public void Link_NextPairSharesFrame_NearestPointWithinRadiusKeepsItsId()
    {
        var linker = new TrackLinker();
        linker.Link(0, 1, [0, 0, 10, 10, 20, 20], [1, 0, 11, 10, 21, 20], 1.0);

        // Frame 1's points: (11.3, 10.2) is 0.36 px from id 2; (1, 2.5) is 2.5 px from id 1 (too far); (40, 40) is new.
        var ids = linker.Link(1, 2, [11.3f, 10.2f, 1, 2.5f, 40, 40], [12, 10, 2, 2, 41, 40], 1.0);

        Assert.Equal([2ul, 4ul, 5ul], ids);
    }

    [Fact]
    public void Link_TwoCandidates_EachOldPointClaimedOnceInMatchOrder()
    {
        var linker = new TrackLinker();
        linker.Link(0, 1, [0, 0], [5, 5], 2.0);

        var ids = linker.Link(1, 2, [5.5f, 5, 5.2f, 5], [0, 0, 1, 1], 2.0);

        // The first (higher-scored) match takes id 1 although the second is nearer; the second gets a new id.
        Assert.Equal([1ul, 2ul], ids);
    }

    [Fact]
    public void Link_SameKeyframe_LinksThroughTheKeyframesPoints()
    {
        var linker = new TrackLinker();
        linker.Link(0, 1, [10, 10, 30, 30], [12, 10, 32, 30], 1.0);

        var ids = linker.Link(0, 2, [30, 30, 10, 10], [34, 30, 14, 10], 1.0);

        Assert.Equal([2ul, 1ul], ids);
    }

    [Fact]
    public void Link_PairSharesNoFrame_AllIdsNew()
    {
        var linker = new TrackLinker();
        linker.Link(0, 1, [10, 10], [11, 10], 5.0);

        // Frame 2's pair failed: (2, 3) shares no frame with (0, 1).
        var ids = linker.Link(2, 3, [11, 10], [12, 10], 5.0);

        Assert.Equal([2ul], ids);
    }

    [Fact]
    public void Link_ManyPointsOverCellBorders_FindsEveryNeighbourWithinRadius()
    {
        var linker = new TrackLinker();
        var random = new Random(5);
        var points = new float[2000];
        for (var i = 0; i < points.Length; i++)
        {
            points[i] = (float)(random.NextDouble() * 1000);
        }

        linker.Link(0, 1, points, points, 1.5);
        // Every point moves by less than the radius (1.4 px) in a random direction; a few collide, most keep their id.
        var moved = new float[points.Length];
        for (var i = 0; i < points.Length; i += 2)
        {
            var angle = random.NextDouble() * Math.Tau;
            moved[i] = points[i] + (float)(1.4 * Math.Cos(angle));
            moved[i + 1] = points[i + 1] + (float)(1.4 * Math.Sin(angle));
        }

        var ids = linker.Link(1, 2, moved, moved, 1.5);

        var kept = ids.Where((id, i) => id == (ulong)i + 1).Count();
        Assert.True(kept >= 990, $"{kept} of 1000 kept");
        Assert.Equal(ids.Length, ids.Distinct().Count());
    }

    [Fact]
    public void Link_UnevenArrays_Throws()
    {
        var error = Assert.Throws<ArgumentException>(() => new TrackLinker().Link(0, 1, [1, 2], [1, 2, 3, 4], 1.0));

        Assert.Contains("equal count", error.Message, StringComparison.Ordinal);
    }
}
