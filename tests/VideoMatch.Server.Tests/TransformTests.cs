using System.Numerics;
using Google.Protobuf;
using Grpc.Core;
using VideoMatch.Contracts.V1;
using VideoMatch.Engine.Geometry;
using VideoMatch.Synthetic;
using VideoMatch.Tests;

namespace VideoMatch.Server.Tests;

/// <summary>Per-pair robust transforms over gRPC: known camera motion is recovered from the matches.</summary>
public sealed class TransformTests : IClassFixture<ServerFactory>
{
    private static readonly int Width = TestServerSettings.ModelWidth;
    private static readonly int Height = TestServerSettings.ModelHeight;
    private static readonly TexturedScene Scene = new(seed: 21);
    private readonly ServerFactory _server;

    public TransformTests(ServerFactory server) => _server = server;


    [Theory]
    [InlineData(TransformModel.Similarity)]
    [InlineData(TransformModel.Affine)]
    [InlineData(TransformModel.Homography)]
    public async Task Stream_Estimate_RecoversRotationZoomAndShiftWithinAPixel(TransformModel model)
    {
        // A camera that turns 1.5° and zooms 1.5% per frame while panning.
        Matrix3x2[] views = [Camera(0, 1, Vector2.Zero), Camera(1.5f, 1.015f, new Vector2(4, -3)), Camera(3f, 1.03f, new Vector2(7, -5))];
        var pairs = await Streams.PairsAsync(_server.Client, new StreamConfig { Estimate = model, StreamName = "transform" }, views.Select(Render));

        Assert.Equal(2, pairs.Count);
        foreach (var pair in pairs)
        {
            var transform = pair.Transform;
            Assert.Equal(model, transform.Model);
            Assert.Equal("", transform.Failure);
            Assert.Equal(9, transform.Matrix.Count);
            Assert.Equal(pair.Matches.Count, (uint)transform.InlierMask.Length);
            Assert.Equal(transform.InlierMask.Count(b => b == 1), (int)transform.Inliers);
            Assert.True(transform.Inliers >= pair.Matches.Count * 0.8, $"{transform.Inliers} of {pair.Matches.Count} inliers");
            var error = CornerError([.. transform.Matrix], views[(int)pair.Sequence0], views[(int)pair.Sequence1]);
            Assert.True(error < 1.0, $"{model} pair {pair.Sequence0}-{pair.Sequence1}: corners off by {error:F2} px");
        }
    }

    [Fact]
    public async Task MatchPair_EstimateHomography_GivesTheShiftAndInliers()
    {
        var a = Camera(0, 1, Vector2.Zero);
        var b = Camera(0, 1, new Vector2(6.5f, -2.25f));

        var response = await _server.Client.MatchPairAsync(new MatchPairRequest
        {
            Image0 = Render(a),
            Image1 = Render(b),
            Estimate = TransformModel.Homography,
            InlierThresholdPx = 2,
        }, deadline: Limits.Deadline);

        Assert.Equal(9, response.Transform.Matrix.Count);
        Assert.True(CornerError([.. response.Transform.Matrix], a, b) < 0.5);
        Assert.True(response.Transform.Inliers > 100, $"{response.Transform.Inliers} inliers");
    }

    [Fact]
    public async Task Stream_NoEstimate_NoTransform()
    {
        var responses = await Streams.RunAsync(_server.Client, new StreamConfig(),
            [new Frame { Sequence = 0, Image = Render(Camera(0, 1, Vector2.Zero)) }, new Frame { Sequence = 1, Image = Render(Camera(0, 1, Vector2.One)) }]);
        var last = responses.LastOrDefault();

        Assert.NotNull(last?.Pair);
        Assert.Null(last.Pair.Transform);
    }

    [Fact]
    public async Task Estimate_TooFewMatches_TransformSaysWhy()
    {
        // A flat gray pair: nothing to match, so nothing to fit; the pair is still answered.
        var flat = new Image { Raw = new RawImage { Format = PixelFormat.Gray8, Width = (uint)Width, Height = (uint)Height, Data = ByteString.CopyFrom(new byte[Width * Height]) } };

        var response = await _server.Client.MatchPairAsync(new MatchPairRequest { Image0 = flat, Image1 = flat, Estimate = TransformModel.Similarity }, deadline: Limits.Deadline);

        Assert.Empty(response.Transform.Matrix);
        Assert.Contains("a similarity transform needs at least 2", response.Transform.Failure, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(99, 0f, "estimate = 99 is not a TransformModel")]
    [InlineData(1, -1f, "inlier_threshold_px must be in [0, 1000]")]
    [InlineData(1, float.NaN, "inlier_threshold_px must be in [0, 1000]")]
    public async Task Config_BadTransformOptions_InvalidArgumentNamingTheField(int model, float threshold, string message)
    {
        using var call = _server.Client.MatchStream(deadline: Limits.Deadline);
        await call.RequestStream.WriteAsync(new StreamRequest { Config = new StreamConfig { Estimate = (TransformModel)model, InlierThresholdPx = threshold } });
        var error = await Assert.ThrowsAsync<RpcException>(() => call.ResponseStream.MoveNext(CancellationToken.None));
        var pairError = await Assert.ThrowsAsync<RpcException>(() => _server.Client.MatchPairAsync(new MatchPairRequest
        {
            Image0 = Render(Camera(0, 1, Vector2.Zero)),
            Image1 = Render(Camera(0, 1, Vector2.Zero)),
            Estimate = (TransformModel)model,
            InlierThresholdPx = threshold,
        }, deadline: Limits.Deadline).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains(message, error.Status.Detail, StringComparison.Ordinal);
        Assert.Equal(StatusCode.InvalidArgument, pairError.StatusCode);
        Assert.Contains(message, pairError.Status.Detail, StringComparison.Ordinal);
    }

    /// <summary>Frame-to-texture map of a camera turned by <paramref name="degrees"/> and zoomed about the frame centre, then panned.</summary>
    private static Matrix3x2 Camera(float degrees, float zoom, Vector2 pan) => CameraMotion.View(Width, Height, degrees, zoom, pan + new Vector2(80, 60));

    private static Image Render(Matrix3x2 view)
    {
        var gray = new byte[Width * Height];
        Scene.RenderGray(Width, Height, view, gray);
        return new Image { Raw = new RawImage { Format = PixelFormat.Gray8, Width = (uint)Width, Height = (uint)Height, Data = ByteString.CopyFrom(gray) } };
    }

    /// <summary>Largest distance, over points inset 10% from the corners, between the transform's and the truth's image of the point.</summary>
    private static double CornerError(double[] matrix, Matrix3x2 view0, Matrix3x2 view1)
    {
        var worst = 0.0;
        foreach (var corner in new[] { new Vector2(32, 26), new Vector2(Width - 32, 26), new Vector2(32, Height - 26), new Vector2(Width - 32, Height - 26) })
        {
            var truth = TexturedScene.Map(corner, view0, view1);
            var (x, y) = TransformEstimator.Apply(matrix, corner.X, corner.Y);
            worst = Math.Max(worst, Math.Sqrt(((x - truth.X) * (x - truth.X)) + ((y - truth.Y) * (y - truth.Y))));
        }

        return worst;
    }
}
