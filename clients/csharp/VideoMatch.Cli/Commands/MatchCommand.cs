using System.CommandLine;
using System.Diagnostics;
using SkiaSharp;
using VideoMatch.Client;
using VideoMatch.Contracts.V1;

namespace VideoMatch.Cli.Commands;

/// <summary><c>videomatch match IMAGE0 IMAGE1</c>: the pipeline's task, over the server.</summary>
internal static class MatchCommand
{
    public static Command Create(CliContext context)
    {
        var image0 = new Argument<FileInfo>("IMAGE0") { Description = "First image: JPEG or PNG as is; WebP, BMP, GIF or ICO converted; photos over 8.8 MP downscaled (matches stay in the file's pixels)." };
        var image1 = new Argument<FileInfo>("IMAGE1") { Description = "Second image, likewise." };
        var threshold = CliOptions.Threshold("Keep matches scoring above this, in [0, 1). Default: the model's.");
        var maxMatches = CliOptions.MaxMatches("At most this many matches, best first; 0 (the default): all.");
        var json = new Option<string>("--json") { Description = "Write the match list to FILE, or '-' for standard output (the default).", DefaultValueFactory = _ => "-" };
        var viz = new Option<FileInfo?>("--viz") { Description = "Write a side-by-side PNG: every match as a dot coloured by score, lines for the best match per area of image 0 (at most 250)." };
        var estimate = CliOptions.Estimate("Also fit a robust transform on the server; the JSON becomes {\"matches\": [...], \"transform\": [9 numbers, row-major 3×3, image0 → image1 pixels] or null, \"inliers\": N}.");
        var inlierThreshold = CliOptions.Positive("--inlier-threshold", "Largest reprojection error of an inlier, in image pixels. Default 3.", 3, 1000);
        var letterbox = CliOptions.Letterbox();
        var command = new Command("match", "Match two images and print the matches as the Hugging Face pipeline lists them, best first.")
        {
            image0, image1, threshold, maxMatches, json, viz, estimate, inlierThreshold, letterbox,
        };
        command.SetAction(Cli.Guard(context, async (parse, cancellationToken) =>
        {
            var file0 = parse.GetValue(image0)!;
            var file1 = parse.GetValue(image1)!;
            var sent0 = await ImageFiles.LoadAsync(file0, cancellationToken).ConfigureAwait(false);
            var sent1 = await ImageFiles.LoadAsync(file1, cancellationToken).ConfigureAwait(false);
            foreach (var note in new[] { sent0.Note, sent1.Note }.OfType<string>())
            {
                await context.Error.WriteLineAsync($"videomatch: {note}").ConfigureAwait(false);
            }

            using var client = Cli.Connect(parse);
            var started = Stopwatch.GetTimestamp();
            var model = TransformModels.Parse(parse.GetValue(estimate));
            var response = await client.MatchAsync(new MatchPairRequest
            {
                Image0 = sent0.Message,
                Image1 = sent1.Message,
                MatchThreshold = parse.GetValue(threshold),
                MaxMatches = (uint)parse.GetValue(maxMatches),
                Estimate = model,
                InlierThresholdPx = model == TransformModel.Unspecified ? 0 : (float)parse.GetValue(inlierThreshold),
                Letterbox = parse.GetValue(letterbox),
            }, cancellationToken).ConfigureAwait(false);
            var elapsed = Stopwatch.GetElapsedTime(started);
            // The server sorts by score; a stable sort here keeps that promise for any server. In each file's own pixels.
            var matches = MatchList.ToArray(response.Matches).OrderByDescending(m => m.Score).Select(m =>
            {
                var (x0, y0) = sent0.Scale.ToVideo(m.X0, m.Y0);
                var (x1, y1) = sent1.Scale.ToVideo(m.X1, m.Y1);
                return new KeypointMatch(x0, y0, x1, y1, m.Score);
            }).ToArray();
            if (response.Transform is { Matrix.Count: 9 } fitted && (sent0.Note ?? sent1.Note) is not null)
            {
                var own = FrameScale.ToOriginal(fitted.Matrix, sent0.Scale, sent1.Scale);
                fitted.Matrix.Clear();
                fitted.Matrix.Add(own);
            }

            var target = parse.GetValue(json)!;
            var writer = Cli.OpenOutput(context, target);
            try
            {
                if (model == TransformModel.Unspecified)
                {
                    await MatchJson.WriteListAsync(writer, matches).ConfigureAwait(false);
                }
                else
                {
                    await MatchJson.WriteWithTransformAsync(writer, matches, response.Transform).ConfigureAwait(false);
                }

                await writer.FlushAsync(cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                if (!ReferenceEquals(writer, context.Output))
                {
                    await writer.DisposeAsync().ConfigureAwait(false);
                }
            }

            PictureSummary? drawn = null;
            if (parse.GetValue(viz) is { } picture)
            {
                using var bitmap0 = Decode(sent0.Bytes, file0.Name);
                using var bitmap1 = Decode(sent1.Bytes, file1.Name);
                drawn = MatchPicture.Save(PictureImage.Of(bitmap0), PictureImage.Of(bitmap1), matches, picture.FullName, $"{file0.Name} (left) and {file1.Name} (right)");
            }

            await context.Error.WriteLineAsync(
                $"{matches.Length} matches in {elapsed.TotalMilliseconds:F0} ms (model {response.Timings.InferenceMs:F0} ms)" +
                (target == "-" ? "" : $"; list in {target}") +
                (drawn is { } d ? $"; picture in {parse.GetValue(viz)!.FullName} ({d.Width}×{d.Height}, lines for {d.Lines} of {d.Matches})" : "")).ConfigureAwait(false);
            return 0;
        }));
        return command;
    }

    private static SKBitmap Decode(byte[] bytes, string name) =>
        SKBitmap.Decode(bytes) ?? throw new InvalidOperationException($"{name} could not be decoded for the picture.");
}
