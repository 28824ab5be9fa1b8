using System.Buffers;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Spectre.Console;
using VideoMatch.Client;
using VideoMatch.Contracts.V1;

namespace VideoMatch.Cli.Commands;

/// <summary><c>videomatch stream VIDEO</c>: decode a video, stream its frames, write one JSON line per pair.</summary>
internal static class StreamCommand
{
    public static Command Create(CliContext context)
    {
        var video = new Argument<FileInfo>("VIDEO") { Description = "Any video ffmpeg can read." };
        var output = new Option<string?>("--out", "-o") { Description = "Write one JSON line per pair to FILE, or '-' for standard output." };
        var vizEvery = new Option<int>("--viz-every") { Description = "Draw every Nth pair (needs --viz-dir)." };
        var vizDir = new Option<DirectoryInfo?>("--viz-dir") { Description = "Folder for the pictures of --viz-every." };
        var threshold = CliOptions.Threshold("Keep matches scoring above this, in [0, 1). Default: the model's.");
        var maxMatches = CliOptions.MaxMatches("At most this many matches per pair, best first; 0 (the default): all.");
        var estimate = CliOptions.Estimate("Fit a robust transform to each pair on the server and write it as \"transform\" (9 numbers, row-major 3×3, frame0 → frame1 video pixels) with \"inliers\".");
        var letterbox = CliOptions.Letterbox();
        var inlierThreshold = new Option<float>("--inlier-threshold") { Description = "Largest reprojection error of an inlier, in video pixels. Default 3.", DefaultValueFactory = _ => 3f };
        var keyframes = new Option<bool>("--keyframes") { Description = "Match each frame against a keyframe instead of the frame before it; re-key when inliers fall below --rekey-min-inliers. Lines carry \"new_keyframe\"." };
        var rekey = new Option<int>("--rekey-min-inliers") { Description = "Keyframe mode: re-key below this many inliers (of --estimate's transform, else matches). Default 50." };
        var trackIds = new Option<bool>("--track-ids") { Description = "Give each match a track id that persists while the point is matched; lines carry \"track_ids\"." };
        var trackRadius = new Option<float>("--track-radius") { Description = "Track linking radius in video pixels. Default: the model's." };
        var command = new Command("stream", "Stream a video's frames to the server and write the matches of each consecutive pair.")
        {
            video, output, vizEvery, vizDir, threshold, maxMatches, estimate, inlierThreshold, keyframes, rekey, trackIds, trackRadius, letterbox, Cli.Resume,
        };
        command.Validators.Add(result =>
        {
            if (result.GetValue(vizEvery) > 0 && result.GetValue(vizDir) is null)
            {
                result.AddError("--viz-every needs --viz-dir.");
            }

            if (result.GetValue(rekey) < 0 || (result.GetValue(rekey) > 0 && !result.GetValue(keyframes)))
            {
                result.AddError("--rekey-min-inliers needs --keyframes and a count of 1 or more.");
            }

            if (result.GetValue(trackRadius) < 0 || (result.GetValue(trackRadius) > 0 && !result.GetValue(trackIds)))
            {
                result.AddError("--track-radius needs --track-ids and a radius above 0.");
            }
        });
        command.SetAction(Cli.Guard(context, async (parse, cancellationToken) =>
        {
            var path = parse.GetValue(video)!.FullName;
            if (!File.Exists(path))
            {
                throw new FileNotFoundException($"Video '{path}' does not exist.");
            }

            using var client = Cli.Connect(parse);
            var model = await client.GetModelInfoAsync(cancellationToken).ConfigureAwait(false);
            var source = await context.Decoder.ProbeAsync(path, cancellationToken).ConfigureAwait(false);
            var run = new StreamRun(context, client, model, source, path)
            {
                Stream = Cli.Streamer(parse, context),
                Threshold = parse.GetValue(threshold),
                MaxMatches = parse.GetValue(maxMatches),
                VizEvery = parse.GetValue(vizEvery),
                VizDirectory = parse.GetValue(vizDir)?.FullName,
                Estimate = TransformModels.Parse(parse.GetValue(estimate)),
                Letterbox = parse.GetValue(letterbox),
                InlierThresholdPx = parse.GetValue(inlierThreshold),
                Keyframes = parse.GetValue(keyframes),
                RekeyMinInliers = parse.GetValue(rekey),
                TrackIds = parse.GetValue(trackIds),
                TrackRadiusPx = parse.GetValue(trackRadius),
            };
            var target = parse.GetValue(output);
            var writer = target is null ? null : Cli.OpenOutput(context, target);
            try
            {
                var summary = await run.RunAsync(writer, cancellationToken).ConfigureAwait(false);
                if (summary.FramesSent < 2)
                {
                    throw new InvalidOperationException(
                        $"'{path}' holds {summary.FramesSent} frame{(summary.FramesSent == 1 ? "" : "s")}; a stream pairs consecutive frames, so it needs at least two. To match two images use: videomatch match IMAGE0 IMAGE1");
                }

                summary.Render(context.Console, path);
                return summary.Pairs > 0 ? 0 : 1;
            }
            finally
            {
                if (writer is not null)
                {
                    await writer.FlushAsync(CancellationToken.None).ConfigureAwait(false);
                    if (!ReferenceEquals(writer, context.Output))
                    {
                        await writer.DisposeAsync().ConfigureAwait(false);
                    }
                }
            }
        }));
        return command;
    }

    internal sealed record Summary(long FramesSent, long Pairs, long Dropped, long Invalid, long Failed, double Seconds, double P50Ms, double P99Ms, double MeanMatches)
    {
        public double PairsPerSecond => Seconds > 0 ? Pairs / Seconds : 0;

        public static Summary Of(StreamTally tally, double seconds) => new(tally.Sent, tally.Pairs, tally.Dropped, tally.Invalid, tally.Failed, seconds,
            tally.LatencyPercentile(50), tally.LatencyPercentile(99), tally.MeanMatches);

        public void Render(IAnsiConsole console, string video)
        {
            var table = new Table().AddColumn("stream").AddColumn(Markup.Escape(Path.GetFileName(video)));
            table.AddRow("frames sent", FramesSent.ToString(CultureInfo.InvariantCulture));
            table.AddRow("pairs matched", Pairs.ToString(CultureInfo.InvariantCulture));
            table.AddRow("dropped / invalid / failed", $"{Dropped} / {Invalid} / {Failed}");
            table.AddRow("time", $"{Seconds:F2} s");
            table.AddRow("pairs/s", PairsPerSecond.ToString("F2", CultureInfo.InvariantCulture));
            table.AddRow("latency p50 / p99", Pairs > 0 ? $"{P50Ms:F0} / {P99Ms:F0} ms" : "none (no pair matched)");
            table.AddRow("matches per pair (mean)", MeanMatches.ToString("F0", CultureInfo.InvariantCulture));
            console.Write(table);
        }
    }

    /// <summary>
    /// One run through <see cref="StreamHarness"/>: decoded frames go to the call; each response is written, perhaps
    /// drawn, and settles the pixels held for pictures.
    /// </summary>
    private sealed class StreamRun(CliContext context, VideoMatchClient client, ModelInfo model, Video.VideoInfo source, string path)
    {
        private PairPixels? _pictures;

        /// <summary>Streams through one server, or resuming on another (<see cref="Cli.Streamer"/>).</summary>
        public required Streamer Stream { get; init; }

        public float? Threshold { get; init; }

        public int MaxMatches { get; init; }

        public int VizEvery { get; init; }

        public string? VizDirectory { get; init; }

        public TransformModel Estimate { get; init; }

        /// <summary>In video pixels.</summary>
        public float InlierThresholdPx { get; init; } = 3f;

        public bool Keyframes { get; init; }

        public bool Letterbox { get; init; }

        public int RekeyMinInliers { get; init; }

        public bool TrackIds { get; init; }

        /// <summary>In video pixels; 0: the model's default.</summary>
        public float TrackRadiusPx { get; init; }

        private FrameScale Scale => FrameScale.For(source.Width, source.Height, model, Letterbox);

        public async Task<Summary> RunAsync(TextWriter? writer, CancellationToken cancellationToken)
        {
            var scale = Scale;
            _pictures = VizEvery > 0 && VizDirectory is not null ? new PairPixels(Keyframes) : null;
            var started = Stopwatch.GetTimestamp();
            var config = new StreamConfig
            {
                MatchThreshold = Threshold,
                MaxMatches = (uint)Math.Max(0, MaxMatches),
                StreamName = Path.GetFileName(path),
                Estimate = Estimate,
                // The server measures in the frames it gets (model size); the options are in video pixels.
                InlierThresholdPx = Estimate == TransformModel.Unspecified ? 0 : (float)(InlierThresholdPx / scale.MeanScale),
                Keyframes = Keyframes,
                Letterbox = Letterbox,
                RekeyMinInliers = (uint)RekeyMinInliers,
                TrackIds = TrackIds,
                TrackRadiusPx = (float)(TrackRadiusPx / scale.MeanScale),
            };
            using var progress = context.Interactive ? new ProgressReporter(context.Console, source.EstimatedFrames) : null;
            var tally = await StreamHarness.RunAsync(client, Stream, config,
                (frames, token) => Video.FrameFeed.DecodeAsync(context.Decoder, path, scale.Width, scale.Height, source.FramesPerSecond, frames,
                    _pictures is null ? null : _pictures.Keep, token),
                async (response, tally) =>
                {
                    if (response.Pair is { } pair)
                    {
                        await AnswerAsync(pair, scale, writer, tally).ConfigureAwait(false);
                    }
                    else if (response.Status is { } status)
                    {
                        _pictures?.Settle(status);
                        await ReportAsync(status).ConfigureAwait(false);
                    }

                    progress?.Report(tally.Sent, tally.Pairs);
                }, cancellationToken).ConfigureAwait(false);
            return Summary.Of(tally, Stopwatch.GetElapsedTime(started).TotalSeconds);
        }

        private async Task AnswerAsync(PairMatches pair, FrameScale scale, TextWriter? writer, StreamTally tally)
        {
            var matches = scale.ToVideo(pair.Matches);
            if (writer is not null)
            {
                await writer.WriteLineAsync(Line(pair, matches, scale, tally.LastLatencyMs)).ConfigureAwait(false);
            }

            if (_pictures is null)
            {
                return;
            }

            var (pixels0, pixels1) = _pictures.Settle(pair);
            if (tally.Pairs % VizEvery == 0 && pixels0 is not null && pixels1 is not null)
            {
                using var image0 = MatchPicture.FromGray(pixels0, scale.Width, scale.Height);
                using var image1 = MatchPicture.FromGray(pixels1, scale.Width, scale.Height);
                MatchPicture.Save(new PictureImage(image0, source.Width, source.Height), new PictureImage(image1, source.Width, source.Height), matches,
                    Path.Combine(VizDirectory!, $"pair-{pair.Sequence0:D6}-{pair.Sequence1:D6}.png"), $"{Path.GetFileName(path)} frames {pair.Sequence0} (left) and {pair.Sequence1} (right)");
            }
        }

        private async Task ReportAsync(FrameStatus status)
        {
            var line = status.Code switch
            {
                FrameStatusCode.Invalid => $"videomatch: frame {status.Sequence} rejected: {status.Message}",
                FrameStatusCode.Failed => $"videomatch: frame {status.Sequence}: {status.Message}",
                _ => null,
            };
            if (line is not null)
            {
                await context.Error.WriteLineAsync(line).ConfigureAwait(false);
            }
        }

        /// <summary>One NDJSON line, in the video's own pixels.</summary>
        private string Line(PairMatches pair, KeypointMatch[] matches, FrameScale scale, double latencyMs)
        {
            var buffer = new ArrayBufferWriter<byte>();
            using (var json = new Utf8JsonWriter(buffer))
            {
                json.WriteStartObject();
                json.WriteNumber("frame0", pair.Sequence0);
                json.WriteNumber("frame1", pair.Sequence1);
                json.WriteNumber("timestamp0_us", pair.Timestamp0Us);
                json.WriteNumber("timestamp1_us", pair.Timestamp1Us);
                json.WriteStartArray("matches");
                foreach (var m in matches)
                {
                    MatchJson.WriteMatch(json, m);
                }

                json.WriteEndArray();
                if (pair.Matches.TrackIds.Count > 0)
                {
                    json.WriteStartArray("track_ids");
                    foreach (var id in pair.Matches.TrackIds)
                    {
                        json.WriteNumberValue(id);
                    }

                    json.WriteEndArray();
                }

                if (Keyframes)
                {
                    json.WriteBoolean("new_keyframe", pair.NewKeyframe);
                }

                if (pair.Transform is { } transform)
                {
                    MatchJson.WriteTransform(json, transform, scale);
                }

                json.WriteStartObject("timings");
                json.WriteNumber("queue_wait_ms", pair.Timings.QueueWaitMs);
                json.WriteNumber("inference_ms", pair.Timings.InferenceMs);
                json.WriteNumber("batch_size", pair.Timings.BatchSize);
                json.WriteNumber("preprocess_ms", pair.Timings.PreprocessMs);
                json.WriteNumber("latency_ms", double.IsNaN(latencyMs) ? 0 : Math.Round(latencyMs, 2));
                json.WriteEndObject();
                json.WriteEndObject();
            }

            return Encoding.UTF8.GetString(buffer.WrittenSpan);
        }
    }

    /// <summary>A live progress bar on an interactive terminal.</summary>
    private sealed class ProgressReporter : IDisposable
    {
        private readonly CancellationTokenSource _done = new();
        private readonly Task _render;
        private long _frames;
        private long _pairs;

        public ProgressReporter(IAnsiConsole console, long expectedFrames)
        {
            _render = console.Progress().AutoClear(true).StartAsync(async progress =>
            {
                var task = progress.AddTask("streaming", maxValue: Math.Max(1, expectedFrames));
                while (!_done.IsCancellationRequested)
                {
                    task.Value = Interlocked.Read(ref _frames);
                    task.Description = $"{Interlocked.Read(ref _pairs)} pairs";
                    await Task.Delay(100, CancellationToken.None).ConfigureAwait(false);
                }
            });
        }

        public void Report(long frames, long pairs)
        {
            Interlocked.Exchange(ref _frames, frames);
            Interlocked.Exchange(ref _pairs, pairs);
        }

        public void Dispose()
        {
            _done.Cancel();
            _render.Wait(TimeSpan.FromSeconds(2));
            _done.Dispose();
        }
    }
}
