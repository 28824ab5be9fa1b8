namespace VideoMatch.Engine.Batching;

/// <summary>
/// Told about each batch the <see cref="PairBatcher"/> runs, on its loop: for metrics. Calls must be cheap
/// and must not throw; they sit between the model and the callers' answers.
/// </summary>
public interface IBatchObserver
{
    /// <summary>A batch of <paramref name="size"/> pairs ran in <paramref name="inference"/>; <paramref name="queueWaits"/> holds each pair's time in the queue.</summary>
    void BatchRan(int size, TimeSpan inference, ReadOnlySpan<TimeSpan> queueWaits);

    /// <summary>The model threw on a batch of <paramref name="size"/> pairs; they all fail.</summary>
    void BatchFailed(int size);
}
