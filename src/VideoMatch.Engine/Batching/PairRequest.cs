using VideoMatch.Engine.Frames;
using VideoMatch.Engine.Inference;

namespace VideoMatch.Engine.Batching;

/// <summary>
/// Two frames to match, waiting for a batch. Owns one reference to each frame and releases them when it
/// completes, fails or is cancelled — exactly once. A pair whose token fires while it waits in the queue is
/// cancelled at once (its answer need not wait for the batch in front of it); once a batch has taken it, it runs.
/// </summary>
public sealed class PairRequest
{
    private const int Waiting = 0;
    private const int Taken = 1;
    private const int Finished = 2;

    private readonly TaskCompletionSource<PairOutcome> _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private CancellationTokenRegistration _registration;
    private int _state;

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

    /// <summary>From now on the token cancels the pair if it is still waiting.</summary>
    internal void WatchCancellation() =>
        _registration = Cancellation.UnsafeRegister(static pair => ((PairRequest)pair!).CancelIfWaiting(), this);

    /// <summary>A batch takes the pair; false when it was cancelled (or finished) first.</summary>
    internal bool TryTake() => Interlocked.CompareExchange(ref _state, Taken, Waiting) == Waiting;

    /// <summary>Cancels the pair unless a batch has taken it (or it finished): for a pair that will never be queued.</summary>
    public void CancelIfWaiting()
    {
        if (Interlocked.CompareExchange(ref _state, Finished, Waiting) == Waiting)
        {
            Release();
            _completion.TrySetCanceled(Cancellation);
        }
    }

    internal void Complete(PairOutcome outcome)
    {
        if (Finish())
        {
            _completion.TrySetResult(outcome);
        }
    }

    internal void Fail(Exception error)
    {
        if (Finish())
        {
            _completion.TrySetException(error);
        }
    }

    internal void Cancel()
    {
        if (Finish())
        {
            _completion.TrySetCanceled(Cancellation);
        }
    }

    private bool Finish()
    {
        if (Interlocked.Exchange(ref _state, Finished) == Finished)
        {
            return false;
        }

        Release();
        return true;
    }

    private void Release()
    {
        _registration.Unregister();
        Frame0.Release();
        Frame1.Release();
    }
}
