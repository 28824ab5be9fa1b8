using System.Diagnostics;
using VideoMatch.Cli.Video;
using VideoMatch.Tests;

namespace VideoMatch.Cli.Tests.Video;

/// <summary>The real ffmpeg decoder on clips whose frame count is known.</summary>
public sealed class FfmpegVideoDecoderTests : IDisposable
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("videomatch-decoder-");

    public void Dispose() => _folder.Delete(recursive: true);

    [Theory]
    [InlineData(60, 32, 24)]
    [InlineData(30, 320, 240)]
    public async Task DecodeGray_SlowConsumer_DeliversEveryFrameInOrder(int frames, int width, int height)
    {
        // Small frames fit the pipe many at a time, so ffmpeg finishes long before a slow reader does: every
        // frame still buffered when it exits must still arrive.
        var clip = await ClipAsync(frames, width, height);
        var seen = new List<byte>();

        await new FfmpegVideoDecoder().DecodeGrayAsync(clip, width, height, async (pixels, token) =>
        {
            Assert.Equal(width * height, pixels.Length);
            seen.Add(pixels.Span[0]);
            await Task.Delay(5, token);
        }, CancellationToken.None).WaitAsync(Limits.Call);

        Assert.Equal(frames, seen.Count);
    }

    [Fact]
    public async Task Probe_EmptyFile_SaysItIsNoVideo()
    {
        var empty = Path.Combine(_folder.FullName, "empty.mp4");
        await File.WriteAllBytesAsync(empty, []);

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => new FfmpegVideoDecoder().ProbeAsync(empty, CancellationToken.None)).WaitAsync(Limits.Call);

        Assert.Contains("is empty", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("installed", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Probe_TextFile_SaysFfmpegCannotReadIt()
    {
        var text = Path.Combine(_folder.FullName, "notes.mp4");
        await File.WriteAllTextAsync(text, "these are not video frames\n");

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => new FfmpegVideoDecoder().ProbeAsync(text, CancellationToken.None)).WaitAsync(Limits.Call);

        Assert.Contains("is not a video or image ffmpeg can read", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("installed", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Probe_KnownClip_ReportsSizeAndRate()
    {
        var clip = await ClipAsync(10, 64, 48);

        var info = await new FfmpegVideoDecoder().ProbeAsync(clip, CancellationToken.None).WaitAsync(Limits.Call);

        Assert.Equal((64, 48), (info.Width, info.Height));
        Assert.Equal(30, info.FramesPerSecond, 3);
    }

    /// <summary>A lossless clip of <paramref name="frames"/> frames whose first pixel counts up, so order is visible.</summary>
    private async Task<string> ClipAsync(int frames, int width, int height)
    {
        var path = Path.Combine(_folder.FullName, $"clip-{frames}-{width}x{height}.mkv");
        await RunFfmpegAsync("-v", "error", "-y", "-f", "lavfi", "-i", $"testsrc=size={width}x{height}:rate=30", "-frames:v",
            frames.ToString(System.Globalization.CultureInfo.InvariantCulture), "-c:v", "ffv1", path);
        return path;
    }

    internal static async Task RunFfmpegAsync(params string[] args)
    {
        var start = new ProcessStartInfo("ffmpeg") { RedirectStandardError = true };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        var errors = await process.StandardError.ReadToEndAsync().DefaultTimeout();
        await process.WaitForExitAsync().DefaultTimeout();
        Assert.True(process.ExitCode == 0, $"ffmpeg failed: {errors}");
    }
}
