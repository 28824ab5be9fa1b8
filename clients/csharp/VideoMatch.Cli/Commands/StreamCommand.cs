using System.Buffers;
using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
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
            video, output, vizEvery, vizDir, threshold, maxMatches, estimate, inlierThreshold, keyframes, rekey, trackIds, trackRadius, letterbox,
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
                Threshold = parse.GetValue(threshold),
                MaxMatches = parse.GetValue(maxMatches),
                VizEvery = parse.GetValue(vizEvery),
                VizDirectory = parse.GetValue(vizDir)?.FullName,
                Estimate = CliOptions.TransformModel(parse.GetValue(estimate)),
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

    private sealed class StreamRun(CliContext context, VideoMatchClient client, ModelInfo model, Video.VideoInfo source, string path)
    {
        private readonly ConcurrentDictionary<ulong, long> _sentAt = new();
        private readonly ConcurrentDictionary<ulong, byte[]> _pixels = new();
        private long _framesSent;

        public float? Threshold { get; init; }

        public int MaxMatches { get; init; }

        public int VizEvery { get; init; }

        public string? VizDirectory { get; init; }

        public TransformModel Estimate { get; init; }

        /// <summary>In video pixels.</summary>
        public float InlierThresholdPx { get; init; } = 3f;

        public bool Keyframes { get; init; }

        public bool Letterbox { get; init; }

        private int SendWidth => source.SendSize(model, Letterbox).Width;

        private int SendHeight => source.SendSize(model, Letterbox).Height;

        public int RekeyMinInliers { get; init; }

        public bool TrackIds { get; init; }

        /// <summary>In video pixels; 0: the model's default.</summary>
        public float TrackRadiusPx { get; init; }

        public async Task<Summary> RunAsync(TextWriter? writer, CancellationToken cancellationToken)
        {
            // Bounded, Wait: decoding runs at most a few frames ahead of what the stream has sent.
            var frames = Channel.CreateBounded<Frame>(new BoundedChannelOptions(8) { FullMode = BoundedChannelFullMode.Wait, SingleReader = true, SingleWriter = true });
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            var decoding = DecodeAsync(frames.Writer, stop.Token);
            var latencies = new List<double>();
            long pairs = 0, dropped = 0, invalid = 0, failed = 0, matchTotal = 0;
            var started = Stopwatch.GetTimestamp();
            var config = new StreamConfig
            {
                MatchThreshold = Threshold,
                MaxMatches = (uint)Math.Max(0, MaxMatches),
                StreamName = Path.GetFileName(path),
                Estimate = Estimate,
                // The server measures in the frames it gets (model size); the option is in video pixels.
                InlierThresholdPx = Estimate == TransformModel.Unspecified ? 0 : InlierThresholdPx / MeanScale,
                Keyframes = Keyframes,
                Letterbox = Letterbox,
                RekeyMinInliers = (uint)RekeyMinInliers,
                TrackIds = TrackIds,
                TrackRadiusPx = TrackRadiusPx / MeanScale,
            };
            var progress = context.Interactive ? new ProgressReporter(context.Console, source.EstimatedFrames) : null;
            try
            {
                await foreach (var response in client.StreamAsync(SendAsync(frames.Reader, stop.Token), config, stop.Token).ConfigureAwait(false))
                {
                    if (response.Pair is { } pair)
                    {
                        pairs++;
                        matchTotal += pair.Matches.Count;
                        if (_sentAt.TryRemove(pair.Sequence1, out var sent))
                        {
                            latencies.Add(Stopwatch.GetElapsedTime(sent).TotalMilliseconds);
                        }

                        var matches = VideoMatches(pair.Matches);
                        if (writer is not null)
                        {
                            await writer.WriteLineAsync(Line(pair, matches, latencies.Count > 0 ? latencies[^1] : 0)).ConfigureAwait(false);
                        }

                        Draw(pair, matches, pairs);
                        ForgetPixels(pair);
                    }
                    else if (response.Status is { } status)
                    {
                        _sentAt.TryRemove(status.Sequence, out _);
                        if (status.Code == FrameStatusCode.Invalid)
                        {
                            // Never a reference: its pixels are not needed for any picture.
                            _pixels.TryRemove(status.Sequence, out _);
                        }

                        switch (status.Code)
                        {
                            case FrameStatusCode.Dropped:
                                dropped++;
                                break;
                            case FrameStatusCode.Invalid:
                                invalid++;
                                await context.Error.WriteLineAsync($"videomatch: frame {status.Sequence} rejected: {status.Message}").ConfigureAwait(false);
                                break;
                            case FrameStatusCode.Failed:
                                failed++;
                                await context.Error.WriteLineAsync($"videomatch: frame {status.Sequence}: {status.Message}").ConfigureAwait(false);
                                break;
                        }
                    }

                    progress?.Report(Interlocked.Read(ref _framesSent), pairs);
                }

                await decoding.ConfigureAwait(false);
            }
            finally
            {
                await stop.CancelAsync().ConfigureAwait(false);
                await decoding.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default).ConfigureAwait(false);
                progress?.Dispose();
            }

            latencies.Sort();
            return new Summary(_framesSent, pairs, dropped, invalid, failed, Stopwatch.GetElapsedTime(started).TotalSeconds,
                Percentiles.Of(latencies, 50), Percentiles.Of(latencies, 99), pairs > 0 ? (double)matchTotal / pairs : 0);
        }

        private Task DecodeAsync(ChannelWriter<Frame> frames, CancellationToken cancellationToken) =>
            Video.FrameFeed.DecodeAsync(context.Decoder, path, SendWidth, SendHeight, source.FramesPerSecond, frames,
                VizEvery > 0 ? (index, pixels) => _pixels[index] = pixels : null, cancellationToken);

        private async IAsyncEnumerable<Frame> SendAsync(ChannelReader<Frame> frames, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
        {
            await foreach (var frame in frames.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                _sentAt[frame.Sequence] = Stopwatch.GetTimestamp();
                Interlocked.Increment(ref _framesSent);
                yield return frame;
            }
        }

        /// <summary>A pair's matches mapped from the frames sent (model size) to the video's own pixels.</summary>
        private KeypointMatch[] VideoMatches(Matches matches)
        {
            var (sx, sy) = VideoScale;
            var sent = MatchList.ToArray(matches);
            var video = new KeypointMatch[sent.Length];
            for (var i = 0; i < sent.Length; i++)
            {
                var m = sent[i];
                video[i] = new KeypointMatch((m.X0 + 0.5f) * sx - 0.5f, (m.Y0 + 0.5f) * sy - 0.5f, (m.X1 + 0.5f) * sx - 0.5f, (m.Y1 + 0.5f) * sy - 0.5f, m.Score);
            }

            return video;
        }

        private (float X, float Y) VideoScale => (source.Width > 0 ? (float)source.Width / SendWidth : 1f, source.Height > 0 ? (float)source.Height / SendHeight : 1f);

        /// <summary>
        /// Frees the pixels no later pair can use: every frame before this pair's reference (later pairs refer to it
        /// or to later frames), and in keyframe mode this frame too unless it became the keyframe.
        /// </summary>
        private void ForgetPixels(PairMatches pair)
        {
            foreach (var sequence in _pixels.Keys)
            {
                var older = sequence < (pair.NewKeyframe ? pair.Sequence1 : pair.Sequence0);
                if (older || (Keyframes && !pair.NewKeyframe && sequence == pair.Sequence1))
                {
                    _pixels.TryRemove(sequence, out _);
                }
            }
        }

        /// <summary>One NDJSON line, in the video's own pixels.</summary>
        private string Line(PairMatches pair, KeypointMatch[] matches, double latencyMs)
        {
            var (sx, sy) = VideoScale;
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
                    MatchJson.WriteTransform(json, transform, sx, sy);
                }

                json.WriteStartObject("timings");
                json.WriteNumber("queue_wait_ms", pair.Timings.QueueWaitMs);
                json.WriteNumber("inference_ms", pair.Timings.InferenceMs);
                json.WriteNumber("batch_size", pair.Timings.BatchSize);
                json.WriteNumber("preprocess_ms", pair.Timings.PreprocessMs);
                json.WriteNumber("latency_ms", Math.Round(latencyMs, 2));
                json.WriteEndObject();
                json.WriteEndObject();
            }

            return Encoding.UTF8.GetString(buffer.WrittenSpan);
        }

        private float MeanScale => source.Width > 0 && source.Height > 0 ? (((float)source.Width / SendWidth) + ((float)source.Height / SendHeight)) / 2 : 1f;

        /// <summary>Every <see cref="VizEvery"/>th pair as a picture, at the video's aspect ratio.</summary>
        private void Draw(PairMatches pair, KeypointMatch[] matches, long count)
        {
            if (VizEvery <= 0 || VizDirectory is null || count % VizEvery != 0)
            {
                return;
            }

            if (_pixels.TryGetValue(pair.Sequence0, out var pixels0) && _pixels.TryGetValue(pair.Sequence1, out var pixels1))
            {
                using var image0 = MatchPicture.FromGray(pixels0, SendWidth, SendHeight);
                using var image1 = MatchPicture.FromGray(pixels1, SendWidth, SendHeight);
                MatchPicture.Save(new PictureImage(image0, source.Width, source.Height), new PictureImage(image1, source.Width, source.Height), matches,
                    Path.Combine(VizDirectory, $"pair-{pair.Sequence0:D6}-{pair.Sequence1:D6}.png"));
            }
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
