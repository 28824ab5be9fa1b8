using System.Numerics;
using System.Text.Json;
using SkiaSharp;
using VideoMatch.Cli.Stabilization;
using VideoMatch.Client;
using VideoMatch.Cli.Video;
using VideoMatch.Engine.Geometry;
using VideoMatch.Synthetic;
using VideoMatch.Tests;

namespace VideoMatch.Cli.Tests;

public sealed class StabilizeTests(LoopbackServer server) : IClassFixture<LoopbackServer>, IDisposable
{
    private const int Width = 320;
    private const int Height = 240;
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("videomatch-stabilize-");

    public void Dispose() => _folder.Delete(recursive: true);

    [Fact]
    public async Task Stabilize_ShakySyntheticVideo_LowersMeasuredJitterAndWritesPicture()
    {
        // A pan of 1.5 px per frame with ±4 px, ±1° of shake each frame.
        var views = CameraMotion.Shaky(40, Width, Height, new Vector2(1.5f, 0.5f), 4f, 1f, seed: 3);
        var shaky = await WriteVideoAsync("shaky.mkv", views);
        var stable = Path.Combine(_folder.FullName, "stable.mkv");

        var (exit, _, error) = await CliTests.RunAsync("stabilize", shaky, stable, "--smooth", "8", "--server", server.Url);

        Assert.True(exit == 0, error);
        var stableSteps = await StepsAsync(stable);
        Assert.Equal(views.Length - 1, stableSteps.Count);
        var before = MotionJitter.Jitter(await StepsAsync(shaky));
        var after = MotionJitter.Jitter(stableSteps);
        Assert.True(after < 0.4 * before, $"jitter {before:F2} px before, {after:F2} px after");
        using var picture = SKBitmap.Decode(Path.ChangeExtension(stable, ".png"));
        Assert.Equal(2 * Width + 30, picture.Width);
        Assert.Contains("shake removed", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stabilize_MissingInput_ExitsOneNamingIt()
    {
        var (exit, _, error) = await CliTests.RunAsync("stabilize", Path.Combine(_folder.FullName, "none.mkv"), Path.Combine(_folder.FullName, "out.mkv"), "--server", server.Url);

        Assert.Equal(1, exit);
        Assert.Contains("none.mkv' does not exist", error, StringComparison.Ordinal);
    }

    [Fact]
    public void CameraPath_SteadyPanWithShake_SmoothedPathIsTheSteadyPan()
    {
        // Pair transforms of a camera panning 2 px per frame in x with alternating ±3 px shake.
        var positions = Enumerable.Range(0, 41).Select(t => (2.0 * t) + (t % 2 == 0 ? 3 : -3)).ToArray();
        var pairs = Enumerable.Range(0, positions.Length).Select(t => t == 0 ? null : new double[] { 1, 0, positions[t] - positions[t - 1], 0, 1, 0, 0, 0, 1 }).ToList();

        var path = CameraPath.Smooth(pairs, radius: 5);

        for (var t = 10; t < 30; t++)
        {
            // The smoothed path's steps are the pan; the correction undoes the shake.
            Assert.Equal(2.0, path.Smoothed[t + 1].Tx - path.Smoothed[t].Tx, 0.7);
            Assert.Equal(3.0, path.CorrectionAtCentre(t, Width, Height), 0.8);
        }
    }

    [Fact]
    public void CameraPath_SteadyPanWithoutShake_NoCorrectionEvenAtTheEnds()
    {
        var pairs = Enumerable.Range(0, 30).Select(t => t == 0 ? null : new double[] { 1, 0, -4, 0, 1, 1, 0, 0, 1 }).ToList();

        var path = CameraPath.Smooth(pairs, radius: 15);

        for (var t = 0; t < 30; t++)
        {
            Assert.Equal(0, path.CorrectionAtCentre(t, Width, Height), 0.01);
        }
    }

    [Fact]
    public void CameraMotion_RightwardPan_RisesInXAsTheCameraMoves()
    {
        // A camera panning right by 3 px per frame: the content moves left, each pair's transform is x − 3.
        var pairs = Enumerable.Range(0, 11).Select(t => t == 0 ? null : new double[] { 1, 0, -3, 0, 1, 0, 0, 0, 1 }).ToList();

        var (x, y) = Stabilization.BeforeAfterPicture.CameraMotion(CameraPath.Smooth(pairs, radius: 2), smoothed: false);

        Assert.Equal(30, x[^1] - x[0], 0.01);
        Assert.All(y, v => Assert.Equal(0, v, 0.01));
    }

    [Fact]
    public async Task Stream_KeyframesAndTrackIds_WritesThemOnEachLine()
    {
        var views = Enumerable.Range(0, 5).Select(i => CameraMotion.View(Width, Height, 0, 1, new Vector2(2 * i, i))).ToArray();
        var video = await WriteVideoAsync("pan.mkv", views);
        var lines = Path.Combine(_folder.FullName, "pairs.ndjson");

        var (exit, _, error) = await CliTests.RunAsync("stream", video, "--server", server.Url, "--out", lines, "--keyframes", "--rekey-min-inliers", "5", "--track-ids", "--estimate", "similarity");

        Assert.True(exit == 0, error);
        var pairs = (await File.ReadAllLinesAsync(lines)).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        Assert.Equal(4, pairs.Length);
        Assert.All(pairs, p => Assert.Equal(0, p.GetProperty("frame0").GetInt32()));
        Assert.All(pairs, p => Assert.False(p.GetProperty("new_keyframe").GetBoolean()));
        Assert.All(pairs, p => Assert.Equal(p.GetProperty("matches").GetArrayLength(), p.GetProperty("track_ids").GetArrayLength()));
        var first = pairs[0].GetProperty("track_ids").EnumerateArray().Select(i => i.GetUInt64()).ToHashSet();
        var last = pairs[^1].GetProperty("track_ids").EnumerateArray().Select(i => i.GetUInt64()).ToArray();
        Assert.True(last.Count(first.Contains) >= 0.5 * last.Length, "keyframe points keep their ids");
    }

    [Fact]
    public async Task Stream_KeyframesWithVizEvery_DrawsEveryNthPairAgainstTheKeyframe()
    {
        var views = Enumerable.Range(0, 7).Select(i => CameraMotion.View(Width, Height, 0, 1, new Vector2(2 * i, i))).ToArray();
        var video = await WriteVideoAsync("pan.mkv", views);
        var pictures = Directory.CreateDirectory(Path.Combine(_folder.FullName, "pictures"));

        var (exit, _, error) = await CliTests.RunAsync("stream", video, "--server", server.Url, "--keyframes", "--viz-every", "2", "--viz-dir", pictures.FullName);

        Assert.True(exit == 0, error);
        var drawn = pictures.GetFiles("*.png").Select(f => f.Name).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(["pair-000000-000002.png", "pair-000000-000004.png", "pair-000000-000006.png"], drawn);
        using var picture = SKBitmap.Decode(Path.Combine(pictures.FullName, drawn[^1]));
        Assert.True(picture.Width > Width, $"a {picture.Width}×{picture.Height} picture of two {Width}×{Height} frames");
    }

    [Fact]
    public async Task Stream_TrackRadiusWithoutTrackIds_ExitsExplaining()
    {
        var (exit, _, error) = await CliTests.RunAsync("stream", "video.mkv", "--server", server.Url, "--track-radius", "2");

        Assert.NotEqual(0, exit);
        Assert.Contains("--track-radius needs --track-ids", error, StringComparison.Ordinal);
    }

    private async Task<string> WriteVideoAsync(string name, Matrix3x2[] views)
    {
        var path = Path.Combine(_folder.FullName, name);
        var scene = new TexturedScene(seed: 41);
        var rgb = new byte[Width * Height * 3];
        using (var encoder = new FfmpegEncoder(path, Width, Height, 25))
        {
            foreach (var view in views)
            {
                scene.RenderRgb(Width, Height, view, rgb);
                await encoder.WriteAsync(rgb, CancellationToken.None);
            }

            await encoder.FinishAsync(CancellationToken.None);
        }

        return path;
    }

    private static async Task<List<(double X, double Y)>> StepsAsync(string video)
    {
        var steps = new List<(double X, double Y)>();
        byte[]? previous = null;
        await new FfmpegVideoDecoder().DecodeGrayAsync(video, Width, Height, (pixels, _) =>
        {
            var frame = pixels.ToArray();
            if (previous is not null)
            {
                steps.Add(MotionJitter.Shift(previous, frame, Width, Height));
            }

            previous = frame;
            return ValueTask.CompletedTask;
        }, CancellationToken.None);
        return steps;
    }
}
