using VideoMatch.Engine.Frames;
using VideoMatch.Engine.Inference;

namespace VideoMatch.Engine.Batching;

/// <summary>
/// Two frames to match, waiting for a batch. Owns one reference to each frame and releases them when it
/// completes, fails or is cancelled — exactly once.
/// </summary>
public sealed class PairRequest
{
    private readonly TaskCompletionSource<PairOutcome> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _finished;

    /// <param name="frame0">The earlier frame; the request takes over one reference.</param>
    /// <param name="frame1">The later frame; the request takes over one reference.</param>
    /// <param name="threshold">Keep matches scoring strictly above this.</param>
    /// <param name="maxMatches">At most this many matches; 0 for all.</param>
    /// <param name="cancellation">The owning stream's token: a cancelled pair is removed before it runs.</param>
    public PairRequest(PreparedFrame frame0, PreparedFrame frame1, float threshold, int maxMatches, CancellationToken cancellation)
    {
        Frame0 = frame0;
        Frame1 = frame1;
        Threshold = threshold;
        MaxMatches = maxMatches;
        Cancellation = cancellation;
    }

    public PreparedFrame Frame0 { get; }

    public PreparedFrame Frame1 { get; }

    public float Threshold { get; }

    public int MaxMatches { get; }

    public CancellationToken Cancellation { get; }

    /// <summary>What the model is given.</summary>
    public PairInput Input => new(Frame0, Frame1, Threshold, MaxMatches);

    /// <summary>Completes with the matches, faults with the model's error, or is cancelled with its stream.</summary>
    public Task<PairOutcome> Completion => _completion.Task;

    /// <summary>When it entered the queue, in <see cref="TimeProvider"/> ticks.</summary>
    internal long EnqueuedAt { get; set; }

    internal void Complete(PairOutcome outcome)
    {
        if (Finish())
        {
            _completion.SetResult(outcome);
        }
    }

    internal void Fail(Exception error)
    {
        if (Finish())
        {
            _completion.SetException(error);
        }
    }

    internal void Cancel()
    {
        if (Finish())
        {
            _completion.SetCanceled(Cancellation);
        }
    }

    private bool Finish()
    {
        if (Interlocked.Exchange(ref _finished, 1) != 0)
        {
            return false;
        }

        Frame0.Release();
        Frame1.Release();
        return true;
    }
}
