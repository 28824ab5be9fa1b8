using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using SkiaSharp;
using Spectre.Console;
using VideoMatch.Client;
using VideoMatch.Contracts.V1;

namespace VideoMatch.Cli.Stabilization;

/// <summary>
/// <c>videomatch stabilize INPUT OUTPUT</c>: streams the video to the server for a similarity transform per pair,
/// smooths the camera path, warps every frame by its correction, encodes the result with ffmpeg and draws a
/// before/after picture.
/// </summary>
internal static class StabilizeCommand
{
    public static Command Create(CliContext context)
    {
        var input = new Argument<FileInfo>("INPUT") { Description = "Any video ffmpeg can read." };
        var output = new Argument<FileInfo>("OUTPUT") { Description = "The stabilized video; ffmpeg picks the codec from the extension (.mp4, .mkv: H.264)." };
        var smooth = new Option<int>("--smooth") { Description = "Frames each side of the averaging window for the camera path. Larger is steadier. Default 15.", DefaultValueFactory = _ => 15 };
        var picture = new Option<FileInfo?>("--picture") { Description = "Where to write the before/after picture (PNG). Default: OUTPUT with .png." };
        var threshold = CliOptions.Threshold("Match threshold in [0, 1). Default: the model's.");
        var command = new Command("stabilize", "Stabilize a shaky video: per-pair transforms from the server, a smoothed camera path, warped frames.")
        {
            input, output, smooth, picture, threshold, Cli.Resume,
        };
        command.Validators.Add(result =>
        {
            if (result.GetValue(smooth) is < 0 or > 1000)
            {
                result.AddError("--smooth must be 0..1000 frames.");
            }
        });
        command.SetAction(Cli.Guard(context, async (parse, cancellationToken) =>
        {
            var source = parse.GetValue(input)!.FullName;
            if (!File.Exists(source))
            {
                throw new FileNotFoundException($"Video '{source}' does not exist.");
            }

            var target = parse.GetValue(output)!.FullName;
            var picturePath = parse.GetValue(picture)?.FullName ?? Path.ChangeExtension(target, ".png");
            await FfmpegEncoder.CheckTargetAsync(target, cancellationToken).ConfigureAwait(false);
            using var client = Cli.Connect(parse);
            var model = await client.GetModelInfoAsync(cancellationToken).ConfigureAwait(false);
            var video = await context.Decoder.ProbeAsync(source, cancellationToken).ConfigureAwait(false);

            var started = Stopwatch.GetTimestamp();
            var transforms = await MeasureAsync(context, client, Cli.Streamer(parse, context), model, video, source, parse.GetValue(threshold), cancellationToken).ConfigureAwait(false);
            var path = CameraPath.Smooth(transforms.Matrices, parse.GetValue(smooth));
            var means = await WarpAndEncodeAsync(context, path, video, source, target, cancellationToken).ConfigureAwait(false);
            BeforeAfterPicture.Save(picturePath, means.Before, means.After, video.Width, video.Height, path);

            var corrections = Enumerable.Range(0, path.Path.Count).Select(t => path.CorrectionAtCentre(t, video.Width, video.Height)).ToArray();
            var table = new Table().AddColumn("stabilize").AddColumn(Markup.Escape(Path.GetFileName(source)));
            table.AddRow("frames", path.Path.Count.ToString(CultureInfo.InvariantCulture));
            table.AddRow("pairs matched / dropped / invalid / failed", $"{transforms.Tally.Pairs} / {transforms.Tally.Dropped} / {transforms.Tally.Invalid} / {transforms.Tally.Failed}");
            table.AddRow("pairs without a transform", transforms.Missing.ToString(CultureInfo.InvariantCulture));
            table.AddRow("shake removed (RMS / largest, at the centre)", $"{Math.Sqrt(corrections.Average(c => c * c)):F2} / {corrections.Max():F2} px");
            table.AddRow("time", $"{Stopwatch.GetElapsedTime(started).TotalSeconds:F1} s");
            table.AddRow("written", Markup.Escape($"{target}, {picturePath}"));
            context.Console.Write(table);
            return 0;
        }));
        return command;
    }

    /// <summary>Pass 1: each pair's similarity (frame t−1 → t) in video pixels; null where the server found none.</summary>
    private static async Task<(List<double[]?> Matrices, int Missing, StreamTally Tally)> MeasureAsync(CliContext context, VideoMatchClient client,
        Commands.Streamer stream, ModelInfo model, Video.VideoInfo video, string source, float? threshold, CancellationToken cancellationToken)
    {
        var scale = FrameScale.For(video.Width, video.Height, model);
        var config = new StreamConfig
        {
            MatchThreshold = threshold,
            StreamName = Path.GetFileName(source),
            Estimate = TransformModel.Similarity,
        };
        var matrices = new List<double[]?> { null };
        var missing = 0;
        var tally = await Commands.StreamHarness.RunAsync(client, stream, config,
            (frames, token) => Video.FrameFeed.DecodeAsync(context.Decoder, source, scale.Width, scale.Height, video.FramesPerSecond, frames, null, token),
            async (response, _) =>
            {
                var sequence = response.Pair is { } pair ? pair.Sequence1 : response.Status?.Sequence ?? 0;
                while ((ulong)matrices.Count <= sequence)
                {
                    matrices.Add(null);
                }

                if (response.Pair?.Transform is { Matrix.Count: 9 } transform)
                {
                    matrices[(int)sequence] = scale.ToVideo(transform.Matrix);
                }
                else if (response.Status?.Code != FrameStatusCode.FirstFrame)
                {
                    missing++;
                    var why = response.Pair?.Transform?.Failure ?? response.Status?.Message;
                    await context.Error.WriteLineAsync($"videomatch: frame {sequence}: no transform ({why}); the camera is taken as still there.").ConfigureAwait(false);
                }
            }, cancellationToken).ConfigureAwait(false);
        return (matrices, missing, tally);
    }

    /// <summary>Pass 2: decodes the video in colour, warps each frame by its correction and pipes it to ffmpeg.</summary>
    private static async Task<(float[] Before, float[] After)> WarpAndEncodeAsync(CliContext context, CameraPath path, Video.VideoInfo video,
        string source, string target, CancellationToken cancellationToken)
    {
        var (width, height) = (video.Width, video.Height);
        var before = new float[width * height * 3];
        var after = new float[width * height * 3];
        using var encoder = new FfmpegEncoder(target, width, height, video.FramesPerSecond);
        using var frame = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        using var warped = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque));
        using var canvas = new SKCanvas(warped);
        using var paint = new SKPaint();
        var rgb = new byte[width * height * 3];
        var index = 0;
        await context.Decoder.DecodeRgbAsync(source, width, height, async (pixels, token) =>
        {
            var t = Math.Min(index++, path.Path.Count - 1);
            Accumulate(pixels.Span, before);
            ToRgba(pixels.Span, frame.GetPixelSpan());
            var m = path.Correction(t);
            canvas.Clear(SKColors.Black);
            canvas.SetMatrix(new SKMatrix((float)m[0], (float)m[1], (float)m[2], (float)m[3], (float)m[4], (float)m[5], 0, 0, 1));
            using (var image = SKImage.FromBitmap(frame))
            {
                canvas.DrawImage(image, 0, 0, new SKSamplingOptions(SKFilterMode.Linear), paint);
            }

            canvas.Flush();
            FromRgba(warped.GetPixelSpan(), rgb);
            Accumulate(rgb, after);
            await encoder.WriteAsync(rgb, token).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
        await encoder.FinishAsync(cancellationToken).ConfigureAwait(false);
        var scale = 1f / Math.Max(1, index);
        for (var i = 0; i < before.Length; i++)
        {
            before[i] *= scale;
            after[i] *= scale;
        }

        return (before, after);
    }

    private static void Accumulate(ReadOnlySpan<byte> rgb, float[] sums)
    {
        for (var i = 0; i < sums.Length; i++)
        {
            sums[i] += rgb[i];
        }
    }

    private static void ToRgba(ReadOnlySpan<byte> rgb, Span<byte> rgba)
    {
        for (int p = 0, q = 0; p < rgb.Length; p += 3, q += 4)
        {
            (rgba[q], rgba[q + 1], rgba[q + 2], rgba[q + 3]) = (rgb[p], rgb[p + 1], rgb[p + 2], 255);
        }
    }

    private static void FromRgba(ReadOnlySpan<byte> rgba, Span<byte> rgb)
    {
        for (int p = 0, q = 0; p < rgb.Length; p += 3, q += 4)
        {
            (rgb[p], rgb[p + 1], rgb[p + 2]) = (rgba[q], rgba[q + 1], rgba[q + 2]);
        }
    }
}
