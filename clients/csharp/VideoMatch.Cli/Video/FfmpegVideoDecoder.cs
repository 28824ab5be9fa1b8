using System.ComponentModel;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace VideoMatch.Cli.Video;

/// <summary>
/// Probes with Debian's ffprobe and decodes with its ffmpeg: raw frames, scaled by ffmpeg, read from its standard
/// output to the end. Every frame ffmpeg writes arrives (the pipe is read until ffmpeg closes it, whatever the
/// reader's pace); a truncated last frame or a failing ffmpeg is an error naming the file.
/// </summary>
/// <remarks>
/// FFMpegCore's pipe sink was used before: it cancels the sink as soon as ffmpeg exits, so frames still in the pipe
/// were lost whenever the reader was slower than the decoder (often the last frame of a clip).
/// </remarks>
internal sealed class FfmpegVideoDecoder : IVideoDecoder
{
    private const string Install = "is ffmpeg installed? apt-get install ffmpeg";

    public async Task<VideoInfo> ProbeAsync(string path, CancellationToken cancellationToken)
    {
        var file = new FileInfo(path);
        if (!file.Exists)
        {
            throw new FileNotFoundException($"Video '{path}' does not exist.");
        }

        if (file.Length == 0)
        {
            throw new InvalidOperationException($"'{path}' is empty (0 bytes); give a video file.");
        }

        var (exitCode, output, errors) = await RunToEndAsync("ffprobe",
            ["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height,avg_frame_rate,r_frame_rate:format=duration", "-of", "json", path],
            cancellationToken).ConfigureAwait(false);
        if (exitCode != 0)
        {
            throw new InvalidOperationException($"'{path}' is not a video or image ffmpeg can read: {FirstLine(errors)}");
        }

        using var json = JsonDocument.Parse(output);
        if (!json.RootElement.TryGetProperty("streams", out var streams) || streams.GetArrayLength() == 0)
        {
            throw new InvalidOperationException($"'{path}' has no video stream (ffprobe found none); give a video file.");
        }

        var video = streams[0];
        var width = video.TryGetProperty("width", out var w) ? w.GetInt32() : 0;
        var height = video.TryGetProperty("height", out var h) ? h.GetInt32() : 0;
        if (width <= 0 || height <= 0)
        {
            throw new InvalidOperationException($"'{path}' has a video stream without a frame size; ffmpeg cannot decode it.");
        }

        var rate = Rate(video, "avg_frame_rate") is > 0 and var average ? average : Rate(video, "r_frame_rate");
        var duration = json.RootElement.TryGetProperty("format", out var format) && format.TryGetProperty("duration", out var d)
            && double.TryParse(d.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) ? TimeSpan.FromSeconds(seconds) : TimeSpan.Zero;
        return new VideoInfo(width, height, rate, duration);
    }

    public Task DecodeGrayAsync(string path, int width, int height, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> onFrame, CancellationToken cancellationToken) =>
        DecodeAsync(path, width, height, "gray", 1, onFrame, cancellationToken);

    public Task DecodeRgbAsync(string path, int width, int height, Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> onFrame, CancellationToken cancellationToken) =>
        DecodeAsync(path, width, height, "rgb24", 3, onFrame, cancellationToken);

    private static async Task DecodeAsync(string path, int width, int height, string pixelFormat, int bytesPerPixel,
        Func<ReadOnlyMemory<byte>, CancellationToken, ValueTask> onFrame, CancellationToken cancellationToken)
    {
        // bilinear in swscale widens its filter when shrinking, like the antialiased resize of the HF processor.
        using var process = Start("ffmpeg", ["-v", "error", "-nostdin", "-i", path, "-vf", $"scale={width}:{height}:flags=bilinear",
            "-pix_fmt", pixelFormat, "-f", "rawvideo", "pipe:1"], redirectOutput: true);
        var errors = process.StandardError.ReadToEndAsync(CancellationToken.None);
        var frame = new byte[width * height * bytesPerPixel];
        var output = process.StandardOutput.BaseStream;
        long frames = 0;
        try
        {
            while (true)
            {
                var filled = 0;
                while (filled < frame.Length)
                {
                    var read = await output.ReadAsync(frame.AsMemory(filled), cancellationToken).ConfigureAwait(false);
                    if (read == 0)
                    {
                        break;
                    }

                    filled += read;
                }

                if (filled == 0)
                {
                    break;
                }

                if (filled < frame.Length)
                {
                    await process.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
                    throw new InvalidOperationException($"ffmpeg stopped inside frame {frames} of '{path}' ({filled} of {frame.Length} bytes): {FirstLine(await errors.ConfigureAwait(false))}");
                }

                await onFrame(frame, cancellationToken).ConfigureAwait(false);
                frames++;
            }

            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"ffmpeg could not decode '{path}' (after {frames} frames): {FirstLine(await errors.ConfigureAwait(false))}");
        }
    }

    private static Process Start(string program, string[] args, bool redirectOutput)
    {
        var start = new ProcessStartInfo(program) { RedirectStandardOutput = redirectOutput, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        try
        {
            return Process.Start(start) ?? throw new InvalidOperationException($"{program} did not start ({Install}).");
        }
        catch (Win32Exception e)
        {
            throw new InvalidOperationException($"{program} could not start: {e.Message} ({Install})", e);
        }
    }

    private static async Task<(int ExitCode, string Output, string Errors)> RunToEndAsync(string program, string[] args, CancellationToken cancellationToken)
    {
        using var process = Start(program, args, redirectOutput: true);
        var output = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var errors = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            await process.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        return (process.ExitCode, await output.ConfigureAwait(false), await errors.ConfigureAwait(false));
    }

    /// <summary>"30000/1001" → 29.97; 0 when absent or "0/0".</summary>
    private static double Rate(JsonElement stream, string name)
    {
        if (!stream.TryGetProperty(name, out var value) || value.GetString() is not { } text)
        {
            return 0;
        }

        var parts = text.Split('/');
        return parts.Length == 2 && double.TryParse(parts[0], CultureInfo.InvariantCulture, out var n) && double.TryParse(parts[1], CultureInfo.InvariantCulture, out var d) && d > 0 ? n / d : 0;
    }

    private static string FirstLine(string errors)
    {
        var line = errors.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault();
        return string.IsNullOrEmpty(line) ? "ffmpeg gave no reason" : line.TrimEnd('.');
    }
}
