using Google.Protobuf;
using SkiaSharp;
using VideoMatch.Contracts.V1;
using VideoMatch.Tests;

namespace VideoMatch.Server.Tests;

/// <summary>The second model family behind the same service: XFeat + LighterGlue from ../shared (skips without it).</summary>
public sealed class XFeatServerTests
{
    private const string Extractor = "models/xfeat-lighterglue/xfeat_2048_640x360.onnx";


    [SharedDataFact(Extractor)]
    public async Task Stream_XFeatFolder_RecoversPanAndKeepsTrackIdsExactly()
    {
        using var server = new ServerFactory(new Dictionary<string, string?>
        {
            ["Inference:ModelPath"] = Path.GetDirectoryName(SharedData.Find(Extractor)),
        });
        using var photo = SKBitmap.Decode(SharedData.Find("images/DSC_0410.jpg"));
        var info = await server.Client.GetModelInfoAsync(new GetModelInfoRequest(), deadline: Limits.Deadline);

        // A landscape camera panning 5 px right and 2 px down per frame over the photo.
        var pairs = await Streams.PairsAsync(server.Client, new StreamConfig { TrackIds = true, Estimate = TransformModel.Similarity },
            Enumerable.Range(0, 4).Select(i => PhotoFrames.Crop(photo, 200 + 5 * i, 150 + 2 * i, 640, 360)));

        Assert.StartsWith("xfeat-lighterglue", info.ModelName, StringComparison.Ordinal);
        Assert.Equal((360u, 640u), (info.InputWidth, info.InputHeight));
        Assert.True(info.RotatesToFit);
        Assert.Equal(3, pairs.Count);
        foreach (var pair in pairs)
        {
            Assert.True(pair.Matches.Count >= 200, $"{pair.Matches.Count} matches");
            Assert.Equal(-5, pair.Transform.Matrix[2], 0.5);
            Assert.Equal(-2, pair.Transform.Matrix[5], 0.5);
        }

        // The extractor's points of a frame are the same in both of its pairs: a kept id sits on the same pixel.
        for (var k = 1; k < pairs.Count; k++)
        {
            var before = pairs[k - 1].Matches;
            var now = pairs[k].Matches;
            var kept = 0;
            for (var m = 0; m < now.TrackIds.Count; m++)
            {
                var b = before.TrackIds.IndexOf(now.TrackIds[m]);
                if (b >= 0)
                {
                    kept++;
                    Assert.Equal(before.Keypoints1[2 * b], now.Keypoints0[2 * m], 0.01);
                    Assert.Equal(before.Keypoints1[2 * b + 1], now.Keypoints0[2 * m + 1], 0.01);
                }
            }

            Assert.True(kept >= 0.6 * Math.Min(now.Count, before.Count), $"pair {k}: {kept} ids kept of {now.Count}");
        }
    }

    [SharedDataTheory(Extractor)]
    [InlineData(false)]
    [InlineData(true)]
    public async Task MatchPair_LandscapeAgainstPortraitCropOfItself_BothTurnedAlikeAndMappedBack(bool letterbox)
    {
        using var server = new ServerFactory(new Dictionary<string, string?>
        {
            ["Inference:ModelPath"] = Path.GetDirectoryName(SharedData.Find(Extractor)),
        });
        using var photo = SKBitmap.Decode(SharedData.Find("images/DSC_0410.jpg"));
        // Image 1 is the portrait part of image 0 from (200, 0) on: image-0 pixel (x, y) is image-1 pixel (x − 200, y).
        var request = new MatchPairRequest
        {
            Image0 = PhotoFrames.Crop(photo, 200, 150, 640, 360),
            Image1 = PhotoFrames.Crop(photo, 400, 150, 300, 360),
            MatchThreshold = 0.1f,
            Letterbox = letterbox,
        };

        var response = await server.Client.MatchPairAsync(request, deadline: Limits.Deadline);

        var matches = response.Matches;
        var within = 0;
        for (var i = 0; i < matches.Count; i++)
        {
            var dx = matches.Keypoints0[2 * i] - 200 - matches.Keypoints1[2 * i];
            var dy = matches.Keypoints0[2 * i + 1] - matches.Keypoints1[2 * i + 1];
            within += dx * dx + dy * dy < 9 ? 1 : 0;
        }

        Console.WriteLine($"letterbox {letterbox}: {matches.Count} matches, {within} within 3 px");
        Assert.True(within >= (letterbox ? 300 : 50), $"{within} of {matches.Count} matches within 3 px of the true correspondence");
        Assert.True(within >= (letterbox ? 0.8 : 0.5) * matches.Count, $"{within} of {matches.Count} matches within 3 px");
    }
}
