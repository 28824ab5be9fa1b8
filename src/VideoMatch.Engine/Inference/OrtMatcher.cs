using Microsoft.ML.OnnxRuntime;
using VideoMatch.Engine.Frames;

namespace VideoMatch.Engine.Inference;

/// <summary>
/// What every ONNX Runtime matcher shares: the identity it reports, the run options whose terminate flag ends a
/// running batch, and the native objects it owns (session options, sessions, bound values), disposed once, newest
/// first. Families differ only in how they run a batch.
/// </summary>
public abstract class OrtMatcher : IPairMatcher
{
    private readonly Stack<IDisposable> _owned;
    private bool _disposed;

    private protected OrtMatcher(ModelManifest manifest, OrtResources resources, int maxBatchSize, ModelWork? work = null)
    {
        Manifest = manifest;
        ExecutionProvider = resources.Provider;
        MaxBatchSize = maxBatchSize;
        Work = work ?? new ModelWork();
        _owned = resources.Release();
        RunOptions = Own(new RunOptions());
    }

    public ModelManifest Manifest { get; }

    public string ExecutionProvider { get; }

    /// <inheritdoc/>
    public string Graph { get; internal set; } = "";

    /// <inheritdoc/>
    public virtual InputElementType FrameType => Manifest.Input.ElementType;

    public int MaxBatchSize { get; }

    public ModelWork Work { get; }

    private protected RunOptions RunOptions { get; }

    public abstract void Match(ReadOnlySpan<PairInput> batch, Span<PairMatchResult> results);

    /// <inheritdoc/>
    public void Terminate() => RunOptions.Terminate = true;

    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    protected virtual void Dispose(bool disposing)
    {
        if (_disposed || !disposing)
        {
            return;
        }

        _disposed = true;
        while (_owned.TryPop(out var owned))
        {
            owned.Dispose();
        }
    }

    /// <summary>Disposes <paramref name="value"/> with this matcher.</summary>
    private protected T Own<T>(T value)
        where T : IDisposable
    {
        _owned.Push(value);
        return value;
    }

    /// <summary>Throws once disposed, and unless 1 ≤ <paramref name="size"/> ≤ <see cref="MaxBatchSize"/>.</summary>
    private protected void CheckBatch(int size)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        PairMatchers.CheckBatch(size, MaxBatchSize);
    }

    /// <summary>
    /// Builds a matcher from sessions opened on the configured provider: whatever <paramref name="build"/> opened is
    /// disposed when it throws, and owned by the matcher when it returns.
    /// </summary>
    /// <exception cref="InvalidOperationException">The provider cannot start, or a graph cannot load or does not fit its contract.</exception>
    private protected static T Build<T>(InferenceOptions options, Func<OrtResources, T> build)
        where T : OrtMatcher
    {
        var resources = new OrtResources(options);
        try
        {
            return build(resources);
        }
        catch
        {
            resources.Dispose();
            throw;
        }
    }
}

/// <summary>The native objects a matcher opens while it is built, handed to it whole, or disposed whole when building fails.</summary>
internal sealed class OrtResources : IDisposable
{
    private Stack<IDisposable> _owned = new();

    public OrtResources(InferenceOptions options)
    {
        SessionOptions = Own(OrtSessions.CreateOptions(options, out var provider));
        Provider = provider;
    }

    public SessionOptions SessionOptions { get; }

    /// <summary>Where sessions run: <c>cpu</c> or <c>cuda:N</c>.</summary>
    public string Provider { get; }

    public T Own<T>(T value)
        where T : IDisposable
    {
        _owned.Push(value);
        return value;
    }

    /// <summary>A session of <paramref name="graph"/> (ONNX bytes <paramref name="model"/>), checked against its contract once.</summary>
    public InferenceSession Session(byte[] model, GraphSpec graph, ModelManifest manifest)
    {
        var session = Own(OrtSessions.Open(model, SessionOptions, $"graph {graph.File} of model '{manifest.Name}'"));
        graph.Check(session, manifest.Name);
        return session;
    }

    /// <summary>Hands everything opened to the matcher, which disposes it from then on.</summary>
    public Stack<IDisposable> Release()
    {
        var owned = _owned;
        _owned = new Stack<IDisposable>();
        return owned;
    }

    public void Dispose()
    {
        while (_owned.TryPop(out var owned))
        {
            owned.Dispose();
        }
    }
}

/// <summary>
/// A dense model's outputs (matches, scores, keypoints in pair slots), pinned once for the largest batch, and what
/// is read out of them: one place for the whole-pair graph and the split's matcher.
/// </summary>
internal sealed class DenseOutputs
{
    private readonly string[] _names;
    private readonly int _cells;
    private readonly PostProcessor _postProcessor;

    public DenseOutputs(ModelManifest manifest, GraphSpec graph, int maxBatchSize)
    {
        _names = [.. graph.Outputs.Take(3).Select(t => t.Name)];
        _cells = manifest.Cells;
        Matches = GC.AllocateArray<long>(maxBatchSize * 2 * _cells, pinned: true);
        Scores = GC.AllocateArray<float>(maxBatchSize * 2 * _cells, pinned: true);
        Keypoints = GC.AllocateArray<float>(maxBatchSize * 4 * _cells, pinned: true);
        _postProcessor = new PostProcessor(_cells, manifest.Outputs.Layout, manifest.Input.Width, manifest.Input.Height);
    }

    public long[] Matches { get; }

    public float[] Scores { get; }

    public float[] Keypoints { get; }

    /// <summary>Binds the first <paramref name="size"/> pairs' slices as the graph's outputs; <paramref name="own"/> keeps the values for disposal.</summary>
    public void Bind(OrtIoBinding binding, int size, Func<OrtValue, OrtValue> own)
    {
        var memory = OrtMemoryInfo.DefaultInstance;
        binding.BindOutput(_names[0], own(OrtValue.CreateTensorValueFromMemory(memory, Matches.AsMemory(0, size * 2 * _cells), [size, 2, _cells])));
        binding.BindOutput(_names[1], own(OrtValue.CreateTensorValueFromMemory(memory, Scores.AsMemory(0, size * 2 * _cells), [size, 2, _cells])));
        binding.BindOutput(_names[2], own(OrtValue.CreateTensorValueFromMemory(memory, Keypoints.AsMemory(0, size * 4 * _cells), [size, 2, _cells, 2])));
    }

    /// <summary>Each pair's matches, read out of the outputs of the batch that just ran.</summary>
    public void Extract(ReadOnlySpan<PairInput> batch, Span<PairMatchResult> results)
    {
        var cells = _cells;
        for (var i = 0; i < batch.Length; i++)
        {
            var pair = batch[i];
            results[i] = _postProcessor.Extract(Matches.AsSpan(i * 2 * cells, 2 * cells), Scores.AsSpan(i * 2 * cells, 2 * cells),
                Keypoints.AsSpan(i * 4 * cells, 4 * cells), pair.Threshold, pair.MaxMatches, pair.Frame0.Mapping, pair.Frame1.Mapping);
        }
    }

    /// <summary>Copies of the first <paramref name="size"/> pairs' raw outputs (what a self-check compares with PyTorch's).</summary>
    public (long[] Matches, float[] Scores, float[] Keypoints) Copy(int size) =>
        (Matches.AsSpan(0, size * 2 * _cells).ToArray(), Scores.AsSpan(0, size * 2 * _cells).ToArray(), Keypoints.AsSpan(0, size * 4 * _cells).ToArray());
}

/// <summary>What every <see cref="IPairMatcher"/> checks alike.</summary>
internal static class PairMatchers
{
    /// <summary>Throws unless 1 ≤ <paramref name="size"/> ≤ <paramref name="maxBatchSize"/>.</summary>
    public static void CheckBatch(int size, int maxBatchSize)
    {
        if (size == 0 || size > maxBatchSize)
        {
            throw new ArgumentOutOfRangeException(nameof(size), size, $"Batch size must be 1..{maxBatchSize}.");
        }
    }
}
