using VideoMatch.Engine.Frames;
using VideoMatch.Engine.Inference;

namespace VideoMatch.Engine.Tests.Inference;

public sealed class PostProcessorTests
{
    // A 4-cell model (N = 4) with a 16×8 input.
    private const int Cells = 4;
    private const int Width = 16;
    private const int Height = 8;

    [Fact]
    public void Extract_PairSlots_KeepsMatchedAboveThresholdSortedByScore()
    {
        long[] matches = [2, -1, 0, 3, /* row 1 */ 0, -1, 2, 3];
        float[] scores = [0.5f, 0.9f, 0.8f, 0.3f, 0.5f, 0.9f, 0.8f, 0.3f];
        var keypoints = Keypoints();

        var result = new PostProcessor(Cells, OutputLayout.PairSlots, Width, Height)
            .Extract(matches, scores, keypoints, threshold: 0.3f, maxMatches: 0, Map(Width, Height), Map(Width, Height));

        // Slot 1 has no match, slot 3 scores exactly the threshold (strict >): both dropped. Slot 2 first.
        Assert.Equal([0.8f, 0.5f], result.Scores);
        Assert.Equal([4f, 0f, 0f, 0f], result.Keypoints0);
        Assert.Equal([12f, 5f, 8f, 5f], result.Keypoints1);
    }

    [Fact]
    public void Extract_EqualScores_OrdersBySlotAndHonoursMaxMatches()
    {
        long[] matches = [0, 1, 2, 3, 0, 1, 2, 3];
        float[] scores = [0.7f, 0.9f, 0.7f, 0.7f, 0.7f, 0.9f, 0.7f, 0.7f];

        var result = new PostProcessor(Cells, OutputLayout.PairSlots, Width, Height)
            .Extract(matches, scores, Keypoints(), threshold: 0f, maxMatches: 3, Map(Width, Height), Map(Width, Height));

        Assert.Equal([0.9f, 0.7f, 0.7f], result.Scores);
        Assert.Equal([2f, 0f, 0f, 0f, 4f, 0f], result.Keypoints0);
    }

    [Fact]
    public void Extract_OriginalSizeDiffers_MapsPixelCentres()
    {
        long[] matches = [0, -1, -1, -1, 0, -1, -1, -1];
        float[] scores = [1f, 0f, 0f, 0f, 1f, 0f, 0f, 0f];
        var keypoints = new float[2 * Cells * 2];
        keypoints[0] = 3f / Width;   // image 0, slot 0: model pixel (3, 1)
        keypoints[1] = 1f / Height;
        keypoints[8] = 3f / Width;   // image 1, slot 0: the same model pixel
        keypoints[9] = 1f / Height;

        var result = new PostProcessor(Cells, OutputLayout.PairSlots, Width, Height)
            .Extract(matches, scores, keypoints, 0f, 0, Map(64, 8), Map(16, 32));

        // Model pixel u of an image s times larger covers original pixels around (u + 0.5)·s − 0.5.
        Assert.Equal([13.5f, 1f], result.Keypoints0);
        Assert.Equal([3f, 5.5f], result.Keypoints1);
    }

    [Fact]
    public void Extract_CellIndexLayout_PairsImage0CellWithIndexedImage1Cell()
    {
        long[] matches = [3, -1, -1, -1, -1, -1, -1, 0];
        float[] scores = [0.9f, 0f, 0f, 0f, 0f, 0f, 0f, 0.9f];

        var result = new PostProcessor(Cells, OutputLayout.CellIndex, Width, Height)
            .Extract(matches, scores, Keypoints(), 0f, 0, Map(Width, Height), Map(Width, Height));

        Assert.Equal([0f, 0f], result.Keypoints0);
        Assert.Equal([14f, 5f], result.Keypoints1);
    }

    [Fact]
    public void Extract_NothingAboveThreshold_ReturnsEmpty()
    {
        var result = new PostProcessor(Cells, OutputLayout.PairSlots, Width, Height)
            .Extract(new long[8], new float[8], Keypoints(), 0.5f, 0, Map(Width, Height), Map(Width, Height));

        Assert.Equal(0, result.Count);
    }

    // Image 0 cell n at x = 2n, y = 0; image 1 cell n at x = 8 + 2n, y = 5 (normalised by 16×8).
    private static float[] Keypoints()
    {
        var keypoints = new float[2 * Cells * 2];
        for (var n = 0; n < Cells; n++)
        {
            keypoints[2 * n] = 2f * n / Width;
            keypoints[2 * n + 1] = 0f;
            keypoints[2 * Cells + 2 * n] = (8f + 2f * n) / Width;
            keypoints[2 * Cells + 2 * n + 1] = 5f / Height;
        }

        return keypoints;
    }

    private static FrameMapping Map(int originalWidth, int originalHeight) =>
        FrameMapping.Create(Width, Height, originalWidth, originalHeight, rotated: false, letterbox: false);
}

public sealed class MatchSelectorTests
{
    [Fact]
    public void Select_SparseMatchesListedOutOfOrder_OrderedAsDenseOnes()
    {
        // Image-0 points 0..3 at (k, 0), image-1 points at (k, k); point 1 has no match. Equal scores go by image-0
        // point, as dense slots do, whatever order the matcher listed them in.
        int[] partners = [2, -1, 0, 1];
        float[] scores = [0.7f, 0f, 0.9f, 0.7f];
        float[] points0 = [0, 0, 1, 0, 2, 0, 3, 0];
        float[] points1 = [0, 0, 1, 1, 2, 2, 3, 3];
        var map = FrameMapping.Create(8, 8, 8, 8, rotated: false, letterbox: false);

        var all = new MatchSelector().Select(new PointMatches(partners, scores, points0, points1), threshold: 0.2f, maxMatches: 0, map, map);
        var best = new MatchSelector().Select(new PointMatches(partners, scores, points0, points1), threshold: 0.2f, maxMatches: 2, map, map);
        var strict = new MatchSelector().Select(new PointMatches(partners, scores, points0, points1), threshold: 0.7f, maxMatches: 0, map, map);

        // Same size in and out: model pixels are the image's.
        Assert.Equal([0.9f, 0.7f, 0.7f], all.Scores);
        Assert.Equal([2f, 0f, 0f, 0f, 3f, 0f], all.Keypoints0);
        Assert.Equal([0f, 0f, 2f, 2f, 1f, 1f], all.Keypoints1);
        Assert.Equal([0.9f, 0.7f], best.Scores);
        Assert.Equal([2f, 0f, 0f, 0f], best.Keypoints0);
        Assert.Equal([0.9f], strict.Scores);
    }
}
