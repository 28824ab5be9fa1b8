using VideoMatch.Client;
using VideoMatch.Cli.Commands;
using VideoMatch.Contracts.V1;
using VideoMatch.Engine.Frames;

namespace VideoMatch.Cli.Tests;

/// <summary>The client library's helpers, pinned to the engine's conventions they repeat.</summary>
public sealed class ClientHelperTests
{
    public static TheoryData<int, int, int, int, bool, bool> Sizes => new()
    {
        { 640, 480, 1920, 1080, false, false },
        { 640, 480, 1080, 1920, false, false },
        { 480, 640, 1920, 1080, true, false },
        { 480, 640, 1080, 1920, true, false },
        { 480, 640, 1000, 1000, true, false },
        { 640, 480, 1920, 800, false, true },
        { 480, 640, 1920, 1080, true, true },
        { 640, 640, 333, 1234, true, true },
        { 832, 832, 7, 3, false, true },
    };

    [Theory]
    [MemberData(nameof(Sizes))]
    public void FrameScaleFor_AnyVideo_SendsAtTheSizeTheEngineWouldResizeTo(int inputWidth, int inputHeight, int videoWidth, int videoHeight, bool rotates, bool letterbox)
    {
        var model = new ModelInfo { InputWidth = (uint)inputWidth, InputHeight = (uint)inputHeight, RotatesToFit = rotates };

        var scale = FrameScale.For(videoWidth, videoHeight, model, letterbox);

        // The engine turns the video's frames, and the sent ones, alike; the sent frame is exactly what the video's becomes.
        var rotated = rotates && FrameGeometry.IsRotated(inputWidth, inputHeight, videoWidth, videoHeight);
        Assert.Equal(rotated, rotates && FrameGeometry.IsRotated(inputWidth, inputHeight, scale.Width, scale.Height));
        var engine = FrameMapping.Create(inputWidth, inputHeight, videoWidth, videoHeight, rotated, letterbox);
        Assert.Equal((engine.ContentWidth, engine.ContentHeight), (scale.Width, scale.Height));
        Assert.Equal(FrameGeometry.IsRotated(inputWidth, inputHeight, videoWidth, videoHeight), FrameScale.Turns(inputWidth, inputHeight, videoWidth, videoHeight));
    }

    [Theory]
    [InlineData(320, 256, 1280, 720)]
    [InlineData(640, 480, 640, 480)]
    [InlineData(640, 480, 101, 977)]
    public void FrameScaleToVideo_Point_MapsAsTheEngineMapsModelPointsToFrames(int width, int height, int videoWidth, int videoHeight)
    {
        var scale = new FrameScale(videoWidth, videoHeight, width, height);
        var engine = FrameMapping.Create(width, height, videoWidth, videoHeight, rotated: false, letterbox: false);

        foreach (var (x, y) in new[] { (0f, 0f), (width - 1f, height - 1f), (17.25f, 101.5f), (-0.5f, -0.5f) })
        {
            var (ex, ey) = engine.ToOriginal(x, y);
            var (cx, cy) = scale.ToVideo(x, y);
            Assert.Equal(ex, cx, 1e-3f);
            Assert.Equal(ey, cy, 1e-3f);
        }
    }

    [Fact]
    public void FrameScaleToVideo_Transform_AgreesWithMappingEachPoint()
    {
        var scale = new FrameScale(1280, 720, 320, 256);
        double[] sent = [1.01, 0.02, 3.5, -0.015, 0.99, -2.25, 1e-5, 2e-5, 1];

        var video = scale.ToVideo(sent);

        Assert.Equal(1, video[8], 12);
        foreach (var (x, y) in new[] { (10.0, 20.0), (300.0, 5.0), (160.0, 128.0) })
        {
            var (mx, my) = Transforms.Apply(sent, x, y);
            var (vx, vy) = scale.ToVideo((float)x, (float)y);
            var expected = scale.ToVideo((float)mx, (float)my);
            var (ax, ay) = Transforms.Apply(video, vx, vy);
            Assert.Equal(expected.X, ax, 1e-2);
            Assert.Equal(expected.Y, ay, 1e-2);
        }
    }

    [Fact]
    public void TransformModels_EveryContractValue_HasOneNameThatParsesBack()
    {
        var models = Enum.GetValues<TransformModel>().Where(m => m != TransformModel.Unspecified).ToArray();

        Assert.Equal(models.Length, TransformModels.Names.Count);
        Assert.All(models, m => Assert.Equal(m, TransformModels.Parse(TransformModels.Name(m))));
        Assert.Equal(TransformModel.Unspecified, TransformModels.Parse(null));
        var error = Assert.Throws<ArgumentException>(() => TransformModels.Parse("perspective"));
        Assert.Contains("homography, affine, similarity", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void StreamTallyCount_EveryKindOfResponse_CountsEachOnceAndTimesPairs()
    {
        var tally = new StreamTally();
        for (ulong s = 0; s < 6; s++)
        {
            tally.Sending(s);
        }

        tally.Count(Status(0, FrameStatusCode.FirstFrame));
        tally.Count(Pair(0, 1, matches: 10));
        tally.Count(Status(2, FrameStatusCode.Dropped));
        tally.Count(Status(3, FrameStatusCode.Invalid));
        tally.Count(Status(4, FrameStatusCode.Failed));

        Assert.Equal((6L, 5L, 1L, 1L, 1L, 1L, 1L), (tally.Sent, tally.Responses, tally.Pairs, tally.FirstFrames, tally.Dropped, tally.Invalid, tally.Failed));
        Assert.Equal(1, tally.Unanswered);
        Assert.Equal(10, tally.MeanMatches);
        Assert.Equal(1, tally.TimedPairs);
        Assert.False(double.IsNaN(tally.LatencyPercentile(50)));
        var both = StreamTally.Combine([tally, tally]);
        Assert.Equal((12L, 2L, 2), (both.Sent, both.Pairs, both.TimedPairs));
    }

    [Fact]
    public void PairPixelsSettle_KeyframeStream_EveryPairDrawableAndOnlyTheKeyframeHeld()
    {
        var pixels = new PairPixels(keyframes: true);
        pixels.Keep(0, [0]);
        pixels.Settle(new FrameStatus { Sequence = 0, Code = FrameStatusCode.FirstFrame });
        for (ulong t = 1; t <= 20; t++)
        {
            pixels.Keep(t, [(byte)t]);
            pixels.Keep(t + 1, [(byte)(t + 1)]);
            if (t == 7)
            {
                pixels.Settle(new FrameStatus { Sequence = t, Code = FrameStatusCode.Dropped });
                Assert.Equal(2, pixels.Held);
                continue;
            }

            var key = t > 12 ? 12UL : 0UL;
            var (pixels0, pixels1) = pixels.Settle(new PairMatches { Sequence0 = key, Sequence1 = t, NewKeyframe = t == 12 });

            Assert.Equal(new[] { (byte)key }, pixels0);
            Assert.Equal(new[] { (byte)t }, pixels1);
            // The keyframe and the frame still in flight; nothing else.
            Assert.Equal(2, pixels.Held);
        }
    }

    [Fact]
    public void PairPixelsSettle_ConsecutiveStream_InvalidFramesFreedOthersBecomeTheReference()
    {
        var pixels = new PairPixels(keyframes: false);
        for (ulong t = 0; t < 5; t++)
        {
            pixels.Keep(t, [(byte)t]);
        }

        pixels.Settle(new FrameStatus { Sequence = 0, Code = FrameStatusCode.FirstFrame });
        pixels.Settle(new FrameStatus { Sequence = 1, Code = FrameStatusCode.Dropped });
        pixels.Settle(new FrameStatus { Sequence = 2, Code = FrameStatusCode.Invalid });
        Assert.Equal(3, pixels.Held);

        var (pixels0, pixels1) = pixels.Settle(new PairMatches { Sequence0 = 1, Sequence1 = 3 });

        Assert.Equal(new[] { (byte)1 }, pixels0);
        Assert.Equal(new[] { (byte)3 }, pixels1);
        Assert.Equal(2, pixels.Held);
    }

    private static StreamResponse Status(ulong sequence, FrameStatusCode code) => new() { Status = new FrameStatus { Sequence = sequence, Code = code } };

    private static StreamResponse Pair(ulong sequence0, ulong sequence1, int matches) =>
        new() { Pair = new PairMatches { Sequence0 = sequence0, Sequence1 = sequence1, Matches = new Matches { Count = (uint)matches } } };
}
