using System.Diagnostics;
using System.Numerics;
using System.Threading.Channels;
using VideoMatch.Client;
using VideoMatch.Contracts.V1;
using VideoMatch.Synthetic;

namespace VideoMatch.Cli.Commands;

/// <summary>What a load run asks for.</summary>
internal sealed record BenchSettings(int Streams, double FramesPerSecond, TimeSpan Duration, int Width, int Height, float? Threshold = null);

/// <summary>What a load run measured. Latency is from sending a frame to receiving its response, on the client.</summary>
internal sealed record BenchReport(
    int Streams,
    double TargetFramesPerSecond,
    double Seconds,
    int Width,
    int Height,
    long FramesSent,
    long Responses,
    long Pairs,
    long FirstFrames,
    long Dropped,
    long Invalid,
    long Failed,
    double PairsPerSecond,
    double ResponsesPerSecond,
    double LatencyP50Ms,
    double LatencyP95Ms,
    double LatencyP99Ms)
{
    /// <summary>Frames sent that got no response (should be 0: the server answers every frame).</summary>
    public long Unanswered => FramesSent - Responses;
}

/// <summary>
/// The project's load generator: N concurrent streams, each sending pre-rendered GRAY8 frames of a moving
/// textured scene at F frames/s for S seconds (a stream that the server slows sends late, never early), then
/// waiting for every response. Each stream runs through <see cref="StreamHarness"/>, as <c>stream</c> does.
/// </summary>
internal static class BenchRunner
{
    private const int DistinctFrames = 8;

    /// <param name="stream">How each stream reaches the server (<see cref="Cli.Streamer"/>: resuming or not); null: one call on one server.</param>
    public static async Task<BenchReport> RunAsync(VideoMatchClient client, BenchSettings settings, CancellationToken cancellationToken, Streamer? stream = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(settings.Streams);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(settings.FramesPerSecond);
        stream ??= static (client, frames, config, token) => client.StreamAsync(frames, config, token);
        var started = Stopwatch.GetTimestamp();
        var results = await Task.WhenAll(Enumerable.Range(0, settings.Streams)
            .Select(s => StreamHarness.RunAsync(client, stream, new StreamConfig { StreamName = $"bench-{s}", MatchThreshold = settings.Threshold },
                (frames, token) => FeedAsync(settings, s, frames, token), answer: null, cancellationToken))).ConfigureAwait(false);
        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var all = StreamTally.Combine(results);
        return new BenchReport(settings.Streams, settings.FramesPerSecond, seconds, settings.Width, settings.Height,
            all.Sent, all.Responses, all.Pairs, all.FirstFrames, all.Dropped, all.Invalid, all.Failed,
            all.Pairs / seconds, all.Responses / seconds, all.LatencyPercentile(50), all.LatencyPercentile(95), all.LatencyPercentile(99));
    }

    /// <summary>One stream's frames at the target rate for the run's duration; a server that slows the call delays the next frame.</summary>
    private static async Task FeedAsync(BenchSettings settings, int stream, ChannelWriter<Frame> frames, CancellationToken cancellationToken)
    {
        try
        {
            var images = Render(settings.Width, settings.Height, seed: 1000 + stream);
            var capacity = (int)Math.Ceiling(settings.FramesPerSecond * settings.Duration.TotalSeconds) + 2;
            var period = TimeSpan.FromSeconds(1 / settings.FramesPerSecond);
            var deadline = Stopwatch.GetTimestamp() + (long)(settings.Duration.TotalSeconds * Stopwatch.Frequency);
            using var timer = new PeriodicTimer(period);
            ulong sequence = 0;
            while (Stopwatch.GetTimestamp() < deadline && (int)sequence < capacity)
            {
                await frames.WriteAsync(new Frame { Sequence = sequence, TimestampUs = (long)(sequence * period.TotalMicroseconds), Image = images[(int)(sequence % DistinctFrames)] },
                    cancellationToken).ConfigureAwait(false);
                sequence++;
                if (!await timer.WaitForNextTickAsync(cancellationToken).ConfigureAwait(false))
                {
                    break;
                }
            }

            frames.TryComplete();
        }
        catch (Exception e)
        {
            frames.TryComplete(e);
            throw;
        }
    }

    /// <summary>Frames of a textured scene drifting a few pixels per frame, pre-rendered so sending costs no drawing.</summary>
    private static Image[] Render(int width, int height, int seed)
    {
        var scene = new TexturedScene(seed);
        var frames = new Image[DistinctFrames];
        for (var i = 0; i < frames.Length; i++)
        {
            var gray = new byte[width * height];
            var drift = i < DistinctFrames / 2 ? i : DistinctFrames - i;
            scene.RenderGray(width, height, Matrix3x2.CreateTranslation(2.5f * drift, 1.5f * drift), gray);
            frames[i] = Images.RawNoCopy(PixelFormat.Gray8, width, height, gray);
        }

        return frames;
    }
}
