using VideoMatch.Engine.Frames;

namespace VideoMatch.Engine.Inference;

/// <summary>One pair for a model: two prepared frames and what to keep of their matches.</summary>
/// <param name="Threshold">Keep matches scoring strictly above this.</param>
/// <param name="MaxMatches">At most this many, best first; 0 for all.</param>
public readonly record struct PairInput(PreparedFrame Frame0, PreparedFrame Frame1, float Threshold, int MaxMatches);

/// <summary>Runs a batch of frame pairs through a model. Called from one thread at a time (the batcher's loop).</summary>
public interface IPairMatcher : IDisposable
{
    ModelManifest Manifest { get; }

    /// <summary>Where it runs, for model info: <c>cpu</c> or <c>cuda:N</c>.</summary>
    string ExecutionProvider { get; }

    /// <summary>Which graph serves and at what precision, for the start-up log and model info.</summary>
    string Graph => Manifest.Name;

    /// <summary>The type its frames' pixels must be prepared in (<see cref="FramePreparer"/>): what its first graph takes.</summary>
    InputElementType FrameType => Manifest.Input.ElementType;

    /// <summary>Largest batch <see cref="Match"/> accepts.</summary>
    int MaxBatchSize { get; }

    /// <summary>Frames encoded and pairs matched so far, for metrics.</summary>
    ModelWork Work { get; }

    /// <summary>Matches each pair of <paramref name="batch"/> into the same index of <paramref name="results"/>.</summary>
    void Match(ReadOnlySpan<PairInput> batch, Span<PairMatchResult> results);

    /// <summary>
    /// Ends a <see cref="Match"/> that is running (it throws) and fails every later one: for shutdown, once nobody
    /// waits for the result, so the process never waits for a batch of a model that is slow on this machine.
    /// </summary>
    void Terminate()
    {
    }
}
