using VideoMatch.Engine.Batching;

namespace VideoMatch.Engine.Inference;

/// <summary>Runs a batch of frame pairs through a model. Called from one thread at a time (the batcher's loop).</summary>
public interface IPairMatcher : IDisposable
{
    ModelManifest Manifest { get; }

    /// <summary>Where it runs, for model info: <c>cpu</c> or <c>cuda:N</c>.</summary>
    string ExecutionProvider { get; }

    /// <summary>Largest batch <see cref="Match"/> accepts.</summary>
    int MaxBatchSize { get; }

    /// <summary>Matches each pair of <paramref name="batch"/> into the same index of <paramref name="results"/>.</summary>
    void Match(ReadOnlySpan<PairRequest> batch, Span<PairMatchResult> results);
}
