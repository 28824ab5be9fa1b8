using System.Diagnostics;
using System.Numerics;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using SkiaSharp;
using VideoMatch.Cli.Video;
using VideoMatch.Synthetic;
using VideoMatch.Tests;

namespace VideoMatch.Cli.Tests;

public sealed class CliTests(LoopbackServer server) : IClassFixture<LoopbackServer>, IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("videomatch-cli-");

    public void Dispose() => _folder.Delete(recursive: true);

    [Fact]
    public async Task Match_TwoPngFiles_PrintsSortedPipelineJsonAndWritesPicture()
    {
        var image0 = WriteScenePng("a.png", 400, 300, Vector2.Zero);
        var image1 = WriteScenePng("b.png", 400, 300, new Vector2(5, -3));
        var picture = Path.Combine(_folder.FullName, "matches.png");

        var (exit, output, error) = await RunAsync("match", image0, image1, "--server", server.Url, "--viz", picture);

        Assert.True(exit == 0, error);
        using var json = JsonDocument.Parse(output);
        var matches = json.RootElement.EnumerateArray().ToArray();
        Assert.True(matches.Length > 200, $"{matches.Length} matches");
        var scores = matches.Select(m => m.GetProperty("score").GetSingle()).ToArray();
        Assert.Equal(scores.OrderByDescending(s => s), scores);
        var motions = matches.Select(m => new Vector2(
            m.GetProperty("keypoint_image_1").GetProperty("x").GetSingle() - m.GetProperty("keypoint_image_0").GetProperty("x").GetSingle(),
            m.GetProperty("keypoint_image_1").GetProperty("y").GetSingle() - m.GetProperty("keypoint_image_0").GetProperty("y").GetSingle())).ToArray();
        Assert.True(motions.Count(d => Vector2.Distance(d, new Vector2(-5, 3)) < 1f) >= 0.9 * motions.Length);
        using var drawn = SKBitmap.Decode(picture);
        // Side by side at their own aspect ratio, 8 px apart, under a 58 px header.
        Assert.Equal((808, 358), (drawn.Width, drawn.Height));
        Assert.Contains($"{matches.Length} matches", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Match_PhoneSizedJpegs_DownscaledSaidSoAndMatchesInTheFilesOwnPixels()
    {
        // 4032×3024 (12.2 MP, a phone photo) is over the server's 8.8 MP limit: the CLI sends 3434×2575.
        var image0 = WriteScene("a.jpg", 4032, 3024, Vector2.Zero, SKEncodedImageFormat.Jpeg);
        var image1 = WriteScene("b.jpg", 4032, 3024, new Vector2(40, -24), SKEncodedImageFormat.Jpeg);
        var picture = Path.Combine(_folder.FullName, "photos.png");

        var (exit, output, error) = await RunAsync("match", image0, image1, "--server", server.Url, "--viz", picture, "--estimate", "similarity");

        Assert.True(exit == 0, error);
        Assert.Contains("a.jpg: 4032×3024 (12.2 MP) is over the server's default limit of 8.8 MP: sent at 3434×2575; matches are in the file's own pixels", error, StringComparison.Ordinal);
        using var json = JsonDocument.Parse(output);
        var matches = json.RootElement.GetProperty("matches").EnumerateArray().ToArray();
        Assert.True(matches.Length > 100, $"{matches.Length} matches");
        var motions = matches.Select(m => new Vector2(
            m.GetProperty("keypoint_image_1").GetProperty("x").GetSingle() - m.GetProperty("keypoint_image_0").GetProperty("x").GetSingle(),
            m.GetProperty("keypoint_image_1").GetProperty("y").GetSingle() - m.GetProperty("keypoint_image_0").GetProperty("y").GetSingle())).ToArray();
        // Content moves by (−40, +24) file pixels; one sent pixel is 1.17 file pixels, and the model's grid is coarse.
        Assert.True(motions.Count(d => Vector2.Distance(d, new Vector2(-40, 24)) < 4f) >= 0.8 * motions.Length, $"median {motions.OrderBy(d => d.X).ElementAt(motions.Length / 2)}");
        Assert.True(matches.All(m => m.GetProperty("keypoint_image_0").GetProperty("x").GetSingle() is >= 0 and < 4032), "keypoints lie in the file's pixels");
        var transform = json.RootElement.GetProperty("transform").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        Assert.InRange(transform[2], -44, -36);
        Assert.InRange(transform[5], 20, 28);
        using var drawn = SKBitmap.Decode(picture);
        Assert.Equal(MatchPicture.MaxWidth, drawn.Width);
    }

    [Theory]
    [InlineData("a.webp", SKEncodedImageFormat.Webp, "WEBP converted to PNG")]
    [InlineData("a.bmp", SKEncodedImageFormat.Bmp, "BMP converted to PNG")]
    public async Task Match_OtherFormats_ConvertedHereAndMatched(string name, SKEncodedImageFormat format, string note)
    {
        var image0 = format == SKEncodedImageFormat.Bmp ? await WriteBmpAsync(name, 400, 300, Vector2.Zero) : WriteScene(name, 400, 300, Vector2.Zero, format);
        var image1 = WriteScenePng("b.png", 400, 300, new Vector2(5, -3));

        var (exit, output, error) = await RunAsync("match", image0, image1, "--server", server.Url);

        Assert.True(exit == 0, error);
        Assert.Contains($"{name}: {note}", error, StringComparison.Ordinal);
        using var json = JsonDocument.Parse(output);
        Assert.True(json.RootElement.GetArrayLength() > 100, $"{json.RootElement.GetArrayLength()} matches");
    }

    [Fact]
    public async Task Match_EmptyFileDirectoryOrNotAnImage_SaysWhichInOneLine()
    {
        var empty = Path.Combine(_folder.FullName, "empty.jpg");
        await File.WriteAllBytesAsync(empty, []);
        var text = Path.Combine(_folder.FullName, "notes.png");
        await File.WriteAllTextAsync(text, "not an image");
        var good = WriteScenePng("b.png", 320, 240, Vector2.Zero);

        var emptyRun = await RunAsync("match", empty, good, "--server", server.Url);
        var folderRun = await RunAsync("match", _folder.FullName, good, "--server", server.Url);
        var textRun = await RunAsync("match", text, good, "--server", server.Url);

        Assert.Equal((1, "videomatch: empty.jpg is empty (0 bytes).\n"), (emptyRun.Exit, emptyRun.Error.Replace("\r", "", StringComparison.Ordinal)));
        Assert.Equal(1, folderRun.Exit);
        Assert.Contains("is a directory; give an image file", folderRun.Error, StringComparison.Ordinal);
        Assert.Equal(1, textRun.Exit);
        Assert.Contains("notes.png is not an image this tool can read (JPEG, PNG, WebP, BMP, GIF or ICO)", textRun.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Match_JsonToFile_LeavesStandardOutputEmpty()
    {
        var image0 = WriteScenePng("a.png", 320, 240, Vector2.Zero);
        var image1 = WriteScenePng("b.png", 320, 240, new Vector2(1, 1));
        var list = Path.Combine(_folder.FullName, "list.json");

        var (exit, output, _) = await RunAsync("match", image0, image1, "--server", server.Url, "--json", list, "--max-matches", "10");

        Assert.Equal(0, exit);
        Assert.Equal("", output);
        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(list));
        Assert.Equal(10, json.RootElement.GetArrayLength());
    }

    [Fact]
    public async Task Match_Estimate_WritesTheTransformBesideTheList()
    {
        var image0 = WriteScenePng("a.png", 400, 300, Vector2.Zero);
        var image1 = WriteScenePng("b.png", 400, 300, new Vector2(5, -3));

        var (exit, output, error) = await RunAsync("match", image0, image1, "--server", server.Url, "--estimate", "similarity", "--letterbox");

        Assert.True(exit == 0, error);
        using var json = JsonDocument.Parse(output);
        Assert.True(json.RootElement.GetProperty("matches").GetArrayLength() > 200);
        var transform = json.RootElement.GetProperty("transform").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        // Content moves by (−5, +3).
        Assert.Equal(-5, transform[2], 0.3);
        Assert.Equal(3, transform[5], 0.3);
        Assert.True(json.RootElement.GetProperty("inliers").GetInt32() > 200);
    }

    [Fact]
    public async Task Match_MissingFile_ExitsOneNamingIt()
    {
        var (exit, _, error) = await RunAsync("match", "/nonexistent/a.png", "/nonexistent/b.png", "--server", server.Url);

        Assert.Equal(1, exit);
        Assert.Contains("/nonexistent/a.png", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Info_ServerDown_ExitsOneSayingSo()
    {
        var (exit, _, error) = await RunAsync("info", "--server", "http://127.0.0.1:9");

        Assert.Equal(1, exit);
        Assert.Contains("could not reach the server at http://127.0.0.1:9", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Info_RunningServer_PrintsHealthAndModel()
    {
        var (exit, output, _) = await RunAsync("info", "--server", server.Url);

        Assert.Equal(0, exit);
        Assert.Contains("SERVING", output, StringComparison.Ordinal);
        Assert.Contains("videomatch-embedded-patch-matcher", output, StringComparison.Ordinal);
        Assert.Contains($"{TestServerSettings.ModelWidth}×{TestServerSettings.ModelHeight}", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stream_VideoMadeWithFfmpeg_WritesOneLinePerPairInVideoPixels()
    {
        var video = await PanVideoAsync(8);
        var lines = Path.Combine(_folder.FullName, "pairs.ndjson");

        var (exit, _, error) = await RunAsync("stream", video, "--server", server.Url, "--out", lines);

        Assert.True(exit == 0, error);
        var pairs = (await File.ReadAllLinesAsync(lines)).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        Assert.Equal(7, pairs.Length);
        for (var i = 0; i < pairs.Length; i++)
        {
            Assert.Equal(i, pairs[i].GetProperty("frame0").GetInt32());
            Assert.Equal(i + 1, pairs[i].GetProperty("frame1").GetInt32());
            var matches = pairs[i].GetProperty("matches").EnumerateArray().ToArray();
            Assert.True(matches.Length > 100, $"pair {i}: {matches.Length} matches");
            var dx = Median(matches.Select(m => m.GetProperty("keypoint_image_1").GetProperty("x").GetSingle() - m.GetProperty("keypoint_image_0").GetProperty("x").GetSingle()));
            var dy = Median(matches.Select(m => m.GetProperty("keypoint_image_1").GetProperty("y").GetSingle() - m.GetProperty("keypoint_image_0").GetProperty("y").GetSingle()));
            Assert.True(Math.Abs(dx + 2) < 0.5 && Math.Abs(dy + 1) < 0.5, $"pair {i}: median motion ({dx}, {dy})");
            Assert.True(pairs[i].GetProperty("timings").GetProperty("batch_size").GetInt32() >= 1);
        }

        Assert.Contains("pairs matched", error, StringComparison.Ordinal);
        Assert.Contains("latency p50 / p99", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Stream_SeveralServersWithResume_SkipsTheOneThatIsDownAndWritesWhatOneServerWrites()
    {
        var video = await PanVideoAsync(6);
        var one = Path.Combine(_folder.FullName, "one.ndjson");
        var several = Path.Combine(_folder.FullName, "several.ndjson");

        var (exitOne, _, errorOne) = await RunAsync("stream", video, "--server", server.Url, "--out", one, "--track-ids");
        // Nothing listens on the first address: round-robin leaves it out, and --resume would move the stream on a stop.
        var (exit, _, error) = await RunAsync("stream", video, "--server", $"http://127.0.0.1:{Ports.Free()}, {server.Url}", "--resume", "--out", several, "--track-ids");

        Assert.True(exitOne == 0, errorOne);
        Assert.True(exit == 0, error);
        static string[] Pairs(string file) => [.. File.ReadAllLines(file).Select(l => JsonDocument.Parse(l).RootElement)
            .Select(p => $"{p.GetProperty("frame0")}->{p.GetProperty("frame1")} {p.GetProperty("matches").GetArrayLength()} {p.GetProperty("track_ids")}")];
        Assert.Equal(5, Pairs(one).Length);
        Assert.Equal(Pairs(one), Pairs(several));
    }

    /// <summary>A 320×240 crop window moving by (+2, +1) px per frame over a textured picture: content moves by (−2, −1).</summary>
    private async Task<string> PanVideoAsync(int frames)
    {
        var source = WriteScenePng("scene.png", 480, 360, Vector2.Zero);
        var video = Path.Combine(_folder.FullName, "pan.mkv");
        await Ffmpeg("-v", "error", "-y", "-loop", "1", "-i", source, "-vf", "format=rgb24,crop=320:240:x='20+2*n':y='10+n'",
            "-frames:v", frames.ToString(System.Globalization.CultureInfo.InvariantCulture), "-c:v", "ffv1", video);
        return video;
    }

    [Fact]
    public async Task Info_ServerListWithABadAddress_OneLineNamingIt()
    {
        var (exit, _, error) = await RunAsync("info", "--server", $"{server.Url},ftp://x");

        Assert.Equal(1, exit);
        Assert.Contains("--server 'ftp://x' is not an http:// or https:// address", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("similarity")]
    [InlineData("homography")]
    public async Task Stream_Estimate_WritesEachPairsTransformInVideoPixels(string model)
    {
        // 320×240 video, 320×256 model: the transform is measured on resized frames and must come back in video pixels.
        var source = WriteScenePng("scene.png", 480, 360, Vector2.Zero);
        var video = Path.Combine(_folder.FullName, "pan.mkv");
        await Ffmpeg("-v", "error", "-y", "-loop", "1", "-i", source, "-vf", "format=rgb24,crop=320:240:x='20+2*n':y='10+n'",
            "-frames:v", "5", "-c:v", "ffv1", video);
        var lines = Path.Combine(_folder.FullName, "pairs.ndjson");

        var (exit, _, error) = await RunAsync("stream", video, "--server", server.Url, "--out", lines, "--estimate", model);

        Assert.True(exit == 0, error);
        var pairs = (await File.ReadAllLinesAsync(lines)).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        Assert.Equal(4, pairs.Length);
        double[] expected = [1, 0, -2, 0, 1, -1, 0, 0, 1];
        foreach (var pair in pairs)
        {
            var transform = pair.GetProperty("transform").EnumerateArray().Select(v => v.GetDouble()).ToArray();
            Assert.Equal(9, transform.Length);
            for (var i = 0; i < 9; i++)
            {
                var tolerance = i is 2 or 5 ? 0.3 : 0.005;
                Assert.True(Math.Abs(transform[i] - expected[i]) < tolerance, $"{model}: transform [{string.Join(", ", transform.Select(v => v.ToString("F4", System.Globalization.CultureInfo.InvariantCulture)))}]");
            }

            Assert.True(pair.GetProperty("inliers").GetInt32() > 100);
        }
    }

    [Fact]
    public async Task Stream_UnknownEstimate_ExitsNamingTheChoices()
    {
        var (exit, _, error) = await RunAsync("stream", "video.mkv", "--server", server.Url, "--estimate", "projective");

        Assert.NotEqual(0, exit);
        Assert.Contains("homography", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bench_ShortRun_AnswersEveryFrameAndWritesReport()
    {
        var report = Path.Combine(_folder.FullName, "bench.json");

        var (exit, output, error) = await RunAsync("bench", "--server", server.Url, "--streams", "2", "--fps", "10", "--seconds", "1", "--json", report);

        Assert.True(exit == 0, error);
        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(report));
        var root = json.RootElement;
        Assert.Equal(0, root.GetProperty("unanswered").GetInt64());
        Assert.Equal(root.GetProperty("frames_sent").GetInt64(), root.GetProperty("responses").GetInt64());
        Assert.Equal(2, root.GetProperty("first_frames").GetInt64());
        Assert.True(root.GetProperty("pairs").GetInt64() >= 2);
        Assert.Contains("pairs/s", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bench_ResumeWhileAServerStops_EveryFrameAnsweredOnceAndNoStreamStartsAgain()
    {
        var report = Path.Combine(_folder.FullName, "bench.json");
        var stopping = await LoopbackServer.StartAsync();
        var calls = stopping.Services.GetRequiredService<VideoMatch.Server.Hosting.CallTracker>();

        var run = RunAsync("bench", "--server", $"{stopping.Url},{server.Url}", "--resume", "--streams", "4", "--fps", "10", "--seconds", "3", "--size", "160x128", "--json", report);
        // Round-robin puts streams on both; once one runs on the stopping server (and has sent a few frames), stop it.
        var waited = Stopwatch.StartNew();
        while (calls.Open - calls.Watches == 0)
        {
            Assert.True(waited.Elapsed < TimeSpan.FromSeconds(2.5), "in 2.5 s of a 3 s run, round-robin put none of the 4 streams on the second server");
            await Task.Delay(20);
        }

        await Task.Delay(500);
        await stopping.DisposeAsync();
        var (exit, output, error) = await run;

        Assert.True(exit == 0, error);
        Assert.Contains("the stream went on on another one", error, StringComparison.Ordinal);
        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(report));
        var root = json.RootElement;
        Assert.Equal(0, root.GetProperty("unanswered").GetInt64());
        Assert.Equal(root.GetProperty("frames_sent").GetInt64(), root.GetProperty("responses").GetInt64());
        // A resumed stream pairs its next frame with the last one answered: no second FIRST_FRAME, no pair lost.
        Assert.Equal(4, root.GetProperty("first_frames").GetInt64());
        Assert.Equal(root.GetProperty("responses").GetInt64() - 4, root.GetProperty("pairs").GetInt64() + root.GetProperty("dropped").GetInt64());
        Assert.Equal(0, root.GetProperty("invalid").GetInt64() + root.GetProperty("failed").GetInt64());
        Assert.Contains("pairs/s", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("12")]
    [InlineData("axb")]
    [InlineData("0x10")]
    public async Task Bench_BadSize_ExitsOneExplaining(string size)
    {
        var (exit, _, error) = await RunAsync("bench", "--server", server.Url, "--size", size, "--seconds", "0.1");

        Assert.Equal(1, exit);
        Assert.Contains("is not WIDTHxHEIGHT", error, StringComparison.Ordinal);
    }

    internal static async Task<(int Exit, string Output, string Error)> RunAsync(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        using var timeout = new CancellationTokenSource(Limits.Call);
        var exit = await Cli.RunAsync(args, output, error, new FfmpegVideoDecoder(), timeout.Token);
        return (exit, output.ToString(), error.ToString());
    }

    private string WriteScenePng(string name, int width, int height, Vector2 offset) => WriteScene(name, width, height, offset, SKEncodedImageFormat.Png);

    private string WriteScene(string name, int width, int height, Vector2 offset, SKEncodedImageFormat format)
    {
        var rgb = new byte[width * height * 3];
        new TexturedScene(seed: 77).RenderRgb(width, height, Matrix3x2.CreateTranslation(30 + offset.X, 20 + offset.Y), rgb);
        using var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        var pixels = bitmap.GetPixelSpan();
        for (var p = 0; p < width * height; p++)
        {
            pixels[4 * p] = rgb[3 * p];
            pixels[4 * p + 1] = rgb[3 * p + 1];
            pixels[4 * p + 2] = rgb[3 * p + 2];
            pixels[4 * p + 3] = 255;
        }

        var path = Path.Combine(_folder.FullName, name);
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(format, 95) ?? throw new InvalidOperationException($"SkiaSharp cannot write {format}");
        using var file = File.Create(path);
        data.SaveTo(file);
        return path;
    }

    /// <summary>A BMP (SkiaSharp writes none): the scene as a PNG, converted by ffmpeg.</summary>
    private async Task<string> WriteBmpAsync(string name, int width, int height, Vector2 offset)
    {
        var png = WriteScenePng(Path.ChangeExtension(name, ".src.png"), width, height, offset);
        var path = Path.Combine(_folder.FullName, name);
        await Ffmpeg("-v", "error", "-y", "-i", png, path);
        return path;
    }

    private static async Task Ffmpeg(params string[] args)
    {
        var start = new ProcessStartInfo("ffmpeg") { RedirectStandardError = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException("ffmpeg is needed for this test (apt-get install ffmpeg; .ci/run installs it).", e);
        }

        using (process)
        {
            var errors = await process.StandardError.ReadToEndAsync().DefaultTimeout();
            await process.WaitForExitAsync().DefaultTimeout();
            Assert.True(process.ExitCode == 0, $"ffmpeg failed: {errors}");
        }
    }

    private static float Median(IEnumerable<float> values)
    {
        var sorted = values.Order().ToArray();
        return sorted[sorted.Length / 2];
    }
}
