using System.Numerics;
using SkiaSharp;
using VideoMatch.Engine.Batching;
using VideoMatch.Engine.Frames;
using VideoMatch.Engine.Geometry;
using VideoMatch.Engine.Inference;
using VideoMatch.Tests;

namespace VideoMatch.Engine.Tests.Inference;

/// <summary>The real XFeat + LighterGlue weights from ../shared; every test skips with a message without them.</summary>
public sealed class XFeatLighterGlueTests
{
    private const string Folder = "models/xfeat-lighterglue";
    private const string Extractor = Folder + "/xfeat_2048_640x360.onnx";

    [SharedDataFact(Extractor)]
    public void Discover_SharedFolder_DescribesThePortraitExtractorAndItsMatcher()
    {
        var manifest = XFeatLighterGlueMatcher.Discover(SharedData.FindFolder(Folder)!);

        Assert.NotNull(manifest);
        Assert.Equal(ModelFamily.XFeatLighterGlue, manifest.Family);
        Assert.Equal((360, 640), (manifest.Input.Width, manifest.Input.Height));
        Assert.True(manifest.Input.RotateToFit);
        Assert.Equal(2048, manifest.MaxMatchesPerPair);
        Assert.Equal("lighterglue_L3.onnx", manifest.Graph(GraphRole.Matcher)!.File);
    }

    [SharedDataFact(Extractor)]
    public void Match_RealPlanarPair_MostMatchesFitOneHomography()
    {
        using var matcher = Open();
        var preparer = Preparer(matcher);
        var frame0 = preparer.Prepare(FrameInput.Encoded(FrameEncoding.Png, File.ReadAllBytes(SharedData.Find("images/planar_ref.png")!)));
        var frame1 = preparer.Prepare(FrameInput.Encoded(FrameEncoding.Png, File.ReadAllBytes(SharedData.Find("images/planar_tgt.png")!)));

        var result = MatchAll(matcher, new PairInput(frame0, frame1, 0.1f, 0))[0];
        var fit = TransformEstimator.Estimate(TransformKind.Homography, result.Keypoints0, result.Keypoints1, 8);

        // SOURCE.md saw 328 inliers of 437 matches with its own preprocessing.
        Assert.True(result.Count >= 200, $"{result.Count} matches");
        Assert.True(fit.Inliers >= 0.6 * result.Count, $"{fit.Inliers} of {result.Count} inliers");
    }

    [SharedDataFact(Extractor)]
    public void Match_LandscapeCropsOfAPhoto_RotatedIntoTheInputAndBackRecoversTheShift()
    {
        using var matcher = Open();
        var preparer = Preparer(matcher);
        using var photo = SKBitmap.Decode(SharedData.Find("images/DSC_0410.jpg"));
        var frame0 = preparer.Prepare(Crop(photo, 200, 150, 640, 360));
        var frame1 = preparer.Prepare(Crop(photo, 209, 144, 640, 360));

        var result = MatchAll(matcher, new PairInput(frame0, frame1, 0.1f, 0))[0];

        // The window moved by (+9, −6): content moves by (−9, +6). XFeat's points sit on whole input pixels, so
        // single matches are off by a pixel or two (measured: median 1.0 px, 80% within 3 px); the median motion is exact.
        var within = 0;
        for (var i = 0; i < result.Count; i++)
        {
            var error = Vector2.Distance(new Vector2(result.Keypoints0[2 * i] - 9, result.Keypoints0[2 * i + 1] + 6), new Vector2(result.Keypoints1[2 * i], result.Keypoints1[2 * i + 1]));
            within += error < 3f ? 1 : 0;
        }

        Assert.True(result.Count >= 200, $"{result.Count} matches");
        Assert.True(within >= 0.75 * result.Count, $"{within} of {result.Count} matches within 3 px of the true shift");
        Assert.Equal(-9f, Median(result, 0), 0.5f);
        Assert.Equal(6f, Median(result, 1), 0.5f);
    }

    [SharedDataFact(Extractor)]
    public void Match_FramesSharedByPairs_ExtractedOncePerFrame()
    {
        using var matcher = Open();
        var preparer = Preparer(matcher);
        using var photo = SKBitmap.Decode(SharedData.Find("images/DSC_0410.jpg"));
        var frames = Enumerable.Range(0, 3).Select(i => preparer.Prepare(Crop(photo, 200 + 4 * i, 150, 640, 360))).ToArray();
        // Consecutive pairs (0, 1), (1, 2) and a keyframe pair (0, 2): three frames, three pairs.
        PairInput[] pairs =
        [
            new(frames[0].AddReference(), frames[1].AddReference(), 0.1f, 0),
            new(frames[1].AddReference(), frames[2].AddReference(), 0.1f, 0),
            new(frames[0], frames[2], 0.1f, 0),
        ];
        frames[1].Release();

        var results = MatchAll(matcher, pairs);

        Assert.Equal(3, matcher.FramesExtracted);
        Assert.All(results, r => Assert.True(r.Count > 100, $"{r.Count} matches"));
        // A frame's keypoints are the same in both its pairs, so track ids can link them exactly.
        var shared = results[0].Keypoints1.Chunk(2).Select(p => (p[0], p[1])).ToHashSet();
        var again = results[1].Keypoints0.Chunk(2).Count(p => shared.Contains((p[0], p[1])));
        Assert.True(again >= 0.7 * Math.Min(results[0].Count, results[1].Count), $"{again} frame-1 points appear in both pairs");
    }

    [SharedDataFact(Extractor)]
    public void Match_BlankFrame_NoMatchesNoError()
    {
        using var matcher = Open();
        var preparer = Preparer(matcher);
        var blank = FrameInput.Raw(FramePixelFormat.Gray8, 640, 360, 0, new byte[640 * 360]);

        var result = MatchAll(matcher, new PairInput(preparer.Prepare(blank), preparer.Prepare(blank), 0.1f, 0))[0];

        Assert.Equal(0, result.Count);
    }

    private static XFeatLighterGlueMatcher Open() =>
        (XFeatLighterGlueMatcher)ModelLoader.Open(new InferenceOptions { ModelPath = SharedData.FindFolder(Folder)! }, 4);

    private static FramePreparer Preparer(XFeatLighterGlueMatcher matcher) =>
        new(matcher.Manifest.Input.Width, matcher.Manifest.Input.Height, 8192, matcher.Manifest.Input.RotateToFit);

    private static PairMatchResult[] MatchAll(XFeatLighterGlueMatcher matcher, params PairInput[] pairs)
    {
        var results = new PairMatchResult[pairs.Length];
        matcher.Match(pairs, results);
        return results;
    }

    /// <summary>Median of the matches' motion along x (<paramref name="axis"/> 0) or y (1).</summary>
    private static float Median(PairMatchResult result, int axis)
    {
        var moves = Enumerable.Range(0, result.Count).Select(i => result.Keypoints1[2 * i + axis] - result.Keypoints0[2 * i + axis]).Order().ToArray();
        return moves[moves.Length / 2];
    }

    private static FrameInput Crop(SKBitmap photo, int left, int top, int width, int height) =>
        FrameInput.Raw(FramePixelFormat.Rgb24, width, height, 0, Photos.CropRgb(photo, left, top, width, height));
}
