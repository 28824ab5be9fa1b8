namespace VideoMatch.Engine.Inference;

/// <summary>What a matcher has computed, for metrics: read from any thread, written by the batcher's.</summary>
public sealed class ModelWork
{
    private long _framesEncoded;
    private long _pairsMatched;
    private long _evictions;

    /// <summary>Frames run through a per-frame encoder (split models, XFeat's extractor); monolithic models count none.</summary>
    public long FramesEncoded => Interlocked.Read(ref _framesEncoded);

    /// <summary>Pairs run through the model (the matcher of a split model).</summary>
    public long PairsMatched => Interlocked.Read(ref _pairsMatched);

    /// <summary>Cached frame features dropped to make room in a full frame bank (re-encoded if used again).</summary>
    public long Evictions => Interlocked.Read(ref _evictions);

    /// <summary>Frame-bank slots holding features now, and the bank's size (0 and 0 without a bank).</summary>
    public Func<(int InUse, int Capacity)> Bank { get; internal set; } = static () => (0, 0);

    internal void Encoded(int frames) => Interlocked.Add(ref _framesEncoded, frames);

    internal void Matched(int pairs) => Interlocked.Add(ref _pairsMatched, pairs);

    internal void Evicted() => Interlocked.Increment(ref _evictions);
}
