using System.Collections.Concurrent;
using System.Diagnostics;
using VideoMatch.Contracts.V1;

namespace VideoMatch.Client;

/// <summary>
/// Counts a stream's responses by kind and measures each pair's latency, from sending its second frame to
/// receiving its matches. The server answers every frame exactly once, so <see cref="Unanswered"/> is 0 at the
/// end of a stream that ended cleanly.
/// </summary>
/// <remarks>
/// <see cref="Sending"/> may be called from the sending task while <see cref="Count"/> runs on the reading one;
/// read the totals after the stream has ended (or as a rough live view).
/// </remarks>
public sealed class StreamTally
{
    private readonly ConcurrentDictionary<ulong, long> _sentAt = new();
    private readonly List<double> _latencies = [];
    private bool _sorted = true;
    private long _sent;

    /// <summary>Frames handed to <see cref="Sending"/>.</summary>
    public long Sent => Interlocked.Read(ref _sent);

    /// <summary>Every response: pairs and statuses.</summary>
    public long Responses { get; private set; }

    /// <summary>Responses with matches.</summary>
    public long Pairs { get; private set; }

    /// <summary>Matches over all pairs.</summary>
    public long Matches { get; private set; }

    /// <summary><see cref="FrameStatusCode.FirstFrame"/>: nothing to pair with yet.</summary>
    public long FirstFrames { get; private set; }

    /// <summary><see cref="FrameStatusCode.Dropped"/>: the server shed the pair under load.</summary>
    public long Dropped { get; private set; }

    /// <summary><see cref="FrameStatusCode.Invalid"/>: the frame was rejected (its message says why).</summary>
    public long Invalid { get; private set; }

    /// <summary><see cref="FrameStatusCode.Failed"/> or a status this client does not know: the pair was not matched.</summary>
    public long Failed { get; private set; }

    /// <summary>Frames sent without a response (yet).</summary>
    public long Unanswered => Sent - Responses;

    /// <summary>Mean matches per pair; 0 without pairs.</summary>
    public double MeanMatches => Pairs > 0 ? (double)Matches / Pairs : 0;

    /// <summary>Latency of the pair counted last, in milliseconds; NaN when it was not timed.</summary>
    public double LastLatencyMs { get; private set; } = double.NaN;

    /// <summary>Notes that the frame numbered <paramref name="sequence"/> is being sent now.</summary>
    public void Sending(ulong sequence)
    {
        _sentAt[sequence] = Stopwatch.GetTimestamp();
        Interlocked.Increment(ref _sent);
    }

    /// <summary>Counts one response; a pair's latency is measured when its second frame went through <see cref="Sending"/>.</summary>
    public void Count(StreamResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        Responses++;
        LastLatencyMs = double.NaN;
        if (response.Pair is { } pair)
        {
            Pairs++;
            Matches += pair.Matches?.Count ?? 0;
            if (_sentAt.TryRemove(pair.Sequence1, out var sent))
            {
                LastLatencyMs = Stopwatch.GetElapsedTime(sent).TotalMilliseconds;
                _latencies.Add(LastLatencyMs);
                _sorted = false;
            }

            return;
        }

        var status = response.Status;
        if (status is not null)
        {
            _sentAt.TryRemove(status.Sequence, out _);
        }

        switch (status?.Code)
        {
            case FrameStatusCode.FirstFrame:
                FirstFrames++;
                break;
            case FrameStatusCode.Dropped:
                Dropped++;
                break;
            case FrameStatusCode.Invalid:
                Invalid++;
                break;
            default:
                Failed++;
                break;
        }
    }

    /// <summary>Nearest-rank percentile of the latencies, in milliseconds; NaN without any.</summary>
    public double LatencyPercentile(double percent) => Percentile(SortedLatencies(), percent);

    /// <summary>The totals of several streams in one (latencies pooled).</summary>
    public static StreamTally Combine(IEnumerable<StreamTally> tallies)
    {
        ArgumentNullException.ThrowIfNull(tallies);
        var all = new StreamTally();
        foreach (var t in tallies)
        {
            all._sent += t.Sent;
            all.Responses += t.Responses;
            all.Pairs += t.Pairs;
            all.Matches += t.Matches;
            all.FirstFrames += t.FirstFrames;
            all.Dropped += t.Dropped;
            all.Invalid += t.Invalid;
            all.Failed += t.Failed;
            all._latencies.AddRange(t._latencies);
        }

        all._sorted = false;
        return all;
    }

    /// <summary>Pairs whose latency was measured.</summary>
    public int TimedPairs => _latencies.Count;

    private static double Percentile(List<double> sorted, double percent) =>
        sorted.Count == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(percent / 100 * sorted.Count) - 1, 0, sorted.Count - 1)];

    private List<double> SortedLatencies()
    {
        if (!_sorted)
        {
            _latencies.Sort();
            _sorted = true;
        }

        return _latencies;
    }
}
