using VideoMatch.Engine.Batching;
using VideoMatch.Engine.Frames;

namespace VideoMatch.Server.Services;

/// <summary>
/// One frame's answer in the making, in frame order: a frame status made when the frame was read or its pair ended,
/// or a matched pair. The writer turns it into the StreamResponse (<see cref="StreamSession"/>'s <c>Respond</c>), the
/// one place a response is built, track ids and the keyframe flag included.
/// </summary>
internal readonly record struct Outgoing(Contracts.V1.StreamResponse? Status, MatchedPair? Pair = null, bool NewKeyframe = false)
{
    public static implicit operator Outgoing(Contracts.V1.StreamResponse status) => new(status);
}

/// <summary>A pair that came back matched: what its response says, and the radius that links its points to tracks.</summary>
internal sealed record MatchedPair(ulong Sequence0, ulong Sequence1, long Timestamp0Us, long Timestamp1Us, double PreprocessMs,
    Engine.Inference.PairMatchResult Matches, Engine.Inference.BatchTimings Timings, Contracts.V1.Transform? Transform, double TrackRadiusPx);

/// <summary>Awaits a queued pair and builds its response, with the inliers keyframe mode judges by (−1: not matched). Never faults.</summary>
internal delegate Task<(Outgoing Reply, int Inliers)> PairResponder(PairRequest pair);

/// <summary>
/// Which earlier frame each frame of a stream is matched against, and who holds which frame: the one place a stream's
/// frame references move. The reader hands every accepted frame (one hold) to <see cref="Reference"/>; each pair
/// made from it is started with <see cref="Start"/> or given up with <see cref="Abandon"/>.
/// </summary>
internal abstract class Pairing : IDisposable
{
    /// <summary>
    /// Takes over the reader's hold on <paramref name="frame"/> and returns the frame to match it against, with a
    /// hold for the pair, or null for the stream's first frame (which then needs no answer beyond FIRST_FRAME).
    /// </summary>
    public abstract PreparedFrame? Reference(PreparedFrame frame);

    /// <summary>The pair (<paramref name="reference"/>, <paramref name="frame"/>) will not be made (dropped, cancelled): lets go of what it held.</summary>
    public abstract void Abandon(PreparedFrame reference, PreparedFrame frame);

    /// <summary>The pair to queue, and its response (in frame order); <paramref name="done"/> runs once the response is final (a pair slot comes back).</summary>
    public abstract (PairRequest Pair, Task<Outgoing> Response) Start(PreparedFrame reference, PreparedFrame frame, Action done);

    /// <summary>Lets go of the frames the strategy keeps (after the last response of the stream).</summary>
    public abstract void Dispose();
}

/// <summary>Frame t against frame t−1 (the last usable one): the stream keeps one hold on the latest frame.</summary>
internal sealed class ConsecutivePairing(MatchSettings settings, PairResponder respond, CancellationToken cancellation) : Pairing
{
    private PreparedFrame? _previous;

    public override PreparedFrame? Reference(PreparedFrame frame)
    {
        // The old previous frame's hold passes to the caller (for the pair); the reader's hold on the new one stays here.
        var reference = _previous;
        _previous = frame;
        return reference;
    }

    public override void Abandon(PreparedFrame reference, PreparedFrame frame) => reference.Release();

    public override (PairRequest Pair, Task<Outgoing> Response) Start(PreparedFrame reference, PreparedFrame frame, Action done)
    {
        var pair = new PairRequest(reference, frame.AddReference(), settings.Threshold, settings.MaxMatches, cancellation);
        return (pair, AwaitAsync(pair, done));
    }

    public override void Dispose()
    {
        _previous?.Release();
        _previous = null;
    }

    private async Task<Outgoing> AwaitAsync(PairRequest pair, Action done)
    {
        try
        {
            return (await respond(pair).ConfigureAwait(false)).Reply;
        }
        finally
        {
            done();
        }
    }
}

/// <summary>
/// Every frame against the keyframe; a frame whose pair has fewer than the re-key threshold of inliers becomes the
/// next keyframe. Without stalls: a frame is queued against the keyframe known when it is read; each frame's step
/// waits for the step before it, so re-keying happens in frame order, and a step whose keyframe has since been
/// replaced matches again against the new one. The answers are those of running the pairs one after another.
/// </summary>
internal sealed class KeyframePairing(StreamSettings settings, PairResponder respond, Func<PairRequest, CancellationToken, ValueTask> enqueue,
    CancellationToken cancellation) : Pairing
{
    private readonly Lock _lock = new();
    private PreparedFrame? _keyframe;
    private Task _chain = Task.CompletedTask;

    public override PreparedFrame? Reference(PreparedFrame frame)
    {
        lock (_lock)
        {
            if (_keyframe is null)
            {
                // The reader's hold becomes the keyframe's.
                _keyframe = frame;
                return null;
            }

            return _keyframe.AddReference();
        }
    }

    public override void Abandon(PreparedFrame reference, PreparedFrame frame)
    {
        reference.Release();
        frame.Release();
    }

    public override (PairRequest Pair, Task<Outgoing> Response) Start(PreparedFrame reference, PreparedFrame frame, Action done)
    {
        var pair = new PairRequest(reference, frame.AddReference(), settings.Match.Threshold, settings.Match.MaxMatches, cancellation);
        var step = StepAsync(_chain, pair, frame, done);
        _chain = step;
        return (pair, step);
    }

    /// <summary>Steps still in flight (a cancelled call) may read the keyframe: it is let go after the last one.</summary>
    public override void Dispose() =>
        _ = _chain.ContinueWith(_ =>
        {
            PreparedFrame? key;
            lock (_lock)
            {
                (key, _keyframe) = (_keyframe, null);
            }

            key?.Release();
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    /// <summary>One frame's step; owns the reader's hold on <paramref name="frame"/>. Never faults.</summary>
    private async Task<Outgoing> StepAsync(Task previous, PairRequest speculative, PreparedFrame frame, Action done)
    {
        try
        {
            await previous.ConfigureAwait(false);
            var pair = speculative;
            PreparedFrame key;
            lock (_lock)
            {
                key = _keyframe!.AddReference();
            }

            if (ReferenceEquals(key, speculative.Frame0))
            {
                key.Release();
            }
            else
            {
                // An earlier frame became the keyframe after this one was queued: its first pair is discarded.
                _ = speculative.Completion.ContinueWith(static t => _ = t.Exception, CancellationToken.None,
                    TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                pair = new PairRequest(key, frame.AddReference(), settings.Match.Threshold, settings.Match.MaxMatches, cancellation);
                try
                {
                    await enqueue(pair, cancellation).ConfigureAwait(false);
                }
                catch (Exception e) when (e is System.Threading.Channels.ChannelClosedException or OperationCanceledException)
                {
                    // The batcher cancelled the pair; its response says it was not matched.
                }
            }

            var (reply, inliers) = await respond(pair).ConfigureAwait(false);
            if (inliers >= 0 && inliers < settings.RekeyMinInliers)
            {
                PreparedFrame replaced;
                lock (_lock)
                {
                    replaced = _keyframe!;
                    _keyframe = frame.AddReference();
                }

                replaced.Release();
                reply = reply with { NewKeyframe = true };
            }

            return reply;
        }
        finally
        {
            frame.Release();
            done();
        }
    }
}
