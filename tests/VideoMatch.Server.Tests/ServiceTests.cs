using System.Numerics;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Health.V1;
using Grpc.Reflection.V1Alpha;
using SkiaSharp;
using VideoMatch.Contracts.V1;
using VideoMatch.Synthetic;
using VideoMatch.Tests;

namespace VideoMatch.Server.Tests;

public sealed class ServiceTests(ServerFactory server) : IClassFixture<ServerFactory>
{
    [Fact]
    public async Task MatchPair_PngImages_RecoversShiftInOriginalPixels()
    {
        var scene = new TexturedScene(seed: 12);
        var request = new MatchPairRequest
        {
            Image0 = PngImage(scene, 480, 360, SyntheticVideo.View(Vector2.Zero)),
            Image1 = PngImage(scene, 480, 360, SyntheticVideo.View(new Vector2(4.5f, -3.25f))),
        };

        var response = await server.Client.MatchPairAsync(request);

        MatchAssertions.RecoversMotion(response.Matches, new Vector2(-4.5f, 3.25f));
        Assert.Equal(1u, response.Timings.BatchSize);
    }

    [Fact]
    public async Task MatchPair_FullHdRgbFrames_AcceptedAndMatched()
    {
        var video = new SyntheticVideo(seed: 13, width: 1920, height: 1080);
        var request = new MatchPairRequest { Image0 = video.Raw(Vector2.Zero), Image1 = video.Raw(new Vector2(6, 6)) };

        var response = await server.Client.MatchPairAsync(request);

        MatchAssertions.RecoversMotion(response.Matches, new Vector2(-6, -6), tolerance: 1.5f);
    }

    [Fact]
    public async Task MatchPair_DifferentAspectRatios_LetterboxKeepsScaleAndMatchesMore()
    {
        // Two views from the same camera position: 400×300 and its top 400×200. Stretched to the 320×256 input,
        // their vertical scales differ by 1.5×; letterboxed, both keep scale 0.8, and the padding yields no match.
        var scene = new TexturedScene(seed: 21);
        var view = SyntheticVideo.View(Vector2.Zero);
        var request = new MatchPairRequest { Image0 = PngImage(scene, 400, 300, view), Image1 = PngImage(scene, 400, 200, view) };

        var stretched = (await server.Client.MatchPairAsync(request)).Matches;
        request.Letterbox = true;
        var letterboxed = (await server.Client.MatchPairAsync(request)).Matches;

        MatchAssertions.RecoversMotion(letterboxed, Vector2.Zero, tolerance: 1f, share: 0.9, minimum: 300);
        Assert.All(Enumerable.Range(0, (int)letterboxed.Count), i => Assert.InRange(letterboxed.Keypoints1[2 * i + 1], -0.5f, 199.5f));
        var (correctStretched, correctLetterboxed) = (Correct(stretched), Correct(letterboxed));
        Assert.True(correctLetterboxed >= 1.5 * correctStretched, $"correct matches: letterboxed {correctLetterboxed}, stretched {correctStretched}");

        static int Correct(Matches m) => Enumerable.Range(0, (int)m.Count).Count(i =>
            Vector2.Distance(new Vector2(m.Keypoints0[2 * i], m.Keypoints0[2 * i + 1]), new Vector2(m.Keypoints1[2 * i], m.Keypoints1[2 * i + 1])) < 1f);
    }

    [Fact]
    public async Task GetModelInfo_EmbeddedModel_DescribesInputAndPreferredFormat()
    {
        var info = await server.Client.GetModelInfoAsync(new GetModelInfoRequest());

        Assert.Equal("videomatch-embedded-patch-matcher", info.ModelName);
        Assert.Equal((uint)TestServerSettings.ModelWidth, info.InputWidth);
        Assert.Equal((uint)TestServerSettings.ModelHeight, info.InputHeight);
        Assert.Equal(PixelFormat.Gray8, info.PreferredPixelFormat);
        Assert.Equal((uint)(TestServerSettings.ModelWidth / 8 * (TestServerSettings.ModelHeight / 8)), info.MaxMatchesPerPair);
        Assert.Equal("cpu", info.ExecutionProvider);
        Assert.Equal(8u, info.MaxBatchSize);
        Assert.True(info.MaxMessageBytes >= 1920 * 1080 * 3);
    }

    [Fact]
    public async Task HealthCheck_ModelLoaded_Serving()
    {
        var health = new Health.HealthClient(server.Channel);

        var response = await health.CheckAsync(new HealthCheckRequest(), deadline: Limits.Deadline);

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, response.Status);
    }

    [Fact]
    public async Task Reflection_ListServices_IncludesMatcherAndHealth()
    {
        var reflection = new ServerReflection.ServerReflectionClient(server.Channel);
        using var call = reflection.ServerReflectionInfo();

        await call.RequestStream.WriteAsync(new ServerReflectionRequest { ListServices = "" });
        await call.RequestStream.CompleteAsync();
        Assert.True(await call.ResponseStream.MoveNext());

        var names = call.ResponseStream.Current.ListServicesResponse.Service.Select(s => s.Name).ToArray();
        Assert.Contains("videomatch.v1.VideoMatcher", names);
        Assert.Contains("grpc.health.v1.Health", names);
    }

    [Fact]
    public async Task Start_ModelFolder_ServesManifestModel()
    {
        var folder = Directory.CreateTempSubdirectory("videomatch-model-").FullName;
        try
        {
            Engine.Inference.ModelLoader.WriteEmbedded(folder, 256, 192);
            using var factory = new ServerFactory(new Dictionary<string, string?> { ["Inference:ModelPath"] = folder });

            var info = await factory.Client.GetModelInfoAsync(new GetModelInfoRequest());

            Assert.Equal((256u, 192u), (info.InputWidth, info.InputHeight));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static Image PngImage(TexturedScene scene, int width, int height, Matrix3x2 view)
    {
        var rgb = new byte[width * height * 3];
        scene.RenderRgb(width, height, view, rgb);
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        var rgba = new byte[width * height * 4];
        for (var p = 0; p < width * height; p++)
        {
            rgba[4 * p] = rgb[3 * p];
            rgba[4 * p + 1] = rgb[3 * p + 1];
            rgba[4 * p + 2] = rgb[3 * p + 2];
            rgba[4 * p + 3] = 255;
        }

        System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return new Image { Encoded = new EncodedImage { Encoding = ImageEncoding.Png, Data = ByteString.CopyFrom(data.ToArray()) } };
    }
}
