using Microsoft.ML.OnnxRuntime;
using VideoMatch.Engine.Frames;

namespace VideoMatch.Engine.Inference;

/// <summary>
/// A dense pair matcher (EfficientLoFTR's contract, see <see cref="ModelManifest"/>) on ONNX Runtime. Input and
/// output buffers are pinned once for the largest batch and wrapped as <see cref="OrtValue"/>s once per batch
/// size, so a batch copies pixels in, runs, and reads results without allocating tensors.
/// </summary>
public sealed class OnnxPairMatcher : IPairMatcher
{
    private readonly SessionOptions _sessionOptions;
    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions = new();
    private readonly PostProcessor _postProcessor;
    private readonly string[] _inputNames;
    private readonly string[] _outputNames;
    private readonly float[]? _inputFloat;
    private readonly byte[]? _inputBytes;
    private readonly long[] _matches;
    private readonly float[] _scores;
    private readonly float[] _keypoints;
    private readonly OrtValue?[][] _values;
    private readonly OrtIoBinding?[] _bindings;
    private readonly int _plane;
    private bool _disposed;

    private OnnxPairMatcher(ModelManifest manifest, GraphSpec graph, SessionOptions sessionOptions, InferenceSession session, string provider, int maxBatchSize)
    {
        Manifest = manifest;
        ExecutionProvider = provider;
        MaxBatchSize = maxBatchSize;
        _sessionOptions = sessionOptions;
        _session = session;
        _inputNames = [graph.Inputs[0].Name];
        _outputNames = [.. graph.Outputs.Take(3).Select(t => t.Name)];
        _plane = manifest.Input.Width * manifest.Input.Height;
        var inputLength = maxBatchSize * 2 * manifest.Input.Channels * _plane;
        if (manifest.Input.ElementType == InputElementType.UInt8)
        {
            _inputBytes = GC.AllocateArray<byte>(inputLength, pinned: true);
        }
        else
        {
            _inputFloat = GC.AllocateArray<float>(inputLength, pinned: true);
        }

        var cells = manifest.Cells;
        _matches = GC.AllocateArray<long>(maxBatchSize * 2 * cells, pinned: true);
        _scores = GC.AllocateArray<float>(maxBatchSize * 2 * cells, pinned: true);
        _keypoints = GC.AllocateArray<float>(maxBatchSize * 4 * cells, pinned: true);
        _values = new OrtValue?[maxBatchSize + 1][];
        _bindings = new OrtIoBinding?[maxBatchSize + 1];
        _postProcessor = new PostProcessor(cells, manifest.Outputs.Layout, manifest.Input.Width, manifest.Input.Height);
    }

    public ModelManifest Manifest { get; }

    public string ExecutionProvider { get; }

    /// <inheritdoc/>
    public string Graph { get; internal set; } = "";

    public int MaxBatchSize { get; }

    public ModelWork Work { get; } = new();

    /// <summary>Opens <paramref name="model"/> (ONNX bytes of <paramref name="graph"/>) on the configured provider and checks it against its contract.</summary>
    /// <exception cref="InvalidOperationException">The provider cannot start or the model does not fit the manifest.</exception>
    public static OnnxPairMatcher Create(byte[] model, ModelManifest manifest, GraphSpec graph, InferenceOptions options, int maxBatchSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxBatchSize);
        manifest.Validate(manifest.Name);
        if (manifest.Outputs.Layout == OutputLayout.HuggingFaceRows)
        {
            throw new InvalidOperationException($"Model '{manifest.Name}' was exported with --hf-compat: Hugging Face's rows pair the wrong cells, so it is for parity checks only. Export it again without --hf-compat to serve it.");
        }

        var sessionOptions = OrtSessions.CreateOptions(options, out var provider);
        InferenceSession? session = null;
        try
        {
            session = OrtSessions.Open(model, sessionOptions, $"model '{manifest.Name}'");
            graph.Check(session, manifest.Name);
            return new OnnxPairMatcher(manifest, graph, sessionOptions, session, provider, maxBatchSize);
        }
        catch
        {
            session?.Dispose();
            sessionOptions.Dispose();
            throw;
        }
    }

    public void Match(ReadOnlySpan<PairInput> batch, Span<PairMatchResult> results)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var size = batch.Length;
        PairMatchers.CheckBatch(size, MaxBatchSize);

        var channels = Manifest.Input.Channels;
        for (var i = 0; i < size; i++)
        {
            CopyIn(batch[i].Frame0, (2 * i) * channels);
            CopyIn(batch[i].Frame1, (2 * i + 1) * channels);
        }

        Run(size);
        Work.Matched(size);

        var cells = Manifest.Cells;
        for (var i = 0; i < size; i++)
        {
            var pair = batch[i];
            results[i] = _postProcessor.Extract(
                _matches.AsSpan(i * 2 * cells, 2 * cells),
                _scores.AsSpan(i * 2 * cells, 2 * cells),
                _keypoints.AsSpan(i * 4 * cells, 4 * cells),
                pair.Threshold,
                pair.MaxMatches,
                pair.Frame0.Mapping,
                pair.Frame1.Mapping);
        }
    }

    /// <summary>
    /// Runs raw gray pairs (size, 2, 1, H, W) as uint8 straight through the session, without preprocessing or
    /// post-processing, and returns copies of the raw outputs: what a self-check compares with PyTorch's.
    /// </summary>
    internal (long[] Matches, float[] Scores, float[] Keypoints) RunRaw(ReadOnlySpan<byte> pixels, int size)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(size);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(size, MaxBatchSize);
        var channels = Manifest.Input.Channels;
        if (pixels.Length != size * 2 * _plane)
        {
            throw new ArgumentException($"{pixels.Length} bytes given; {size} gray pairs of {Manifest.Input.Width}×{Manifest.Input.Height} hold {size * 2 * _plane}.", nameof(pixels));
        }

        for (var image = 0; image < 2 * size; image++)
        {
            var source = pixels.Slice(image * _plane, _plane);
            for (var c = 0; c < channels; c++)
            {
                var offset = ((image * channels) + c) * _plane;
                if (_inputBytes is not null)
                {
                    source.CopyTo(_inputBytes.AsSpan(offset, _plane));
                }
                else
                {
                    var target = _inputFloat.AsSpan(offset, _plane);
                    for (var p = 0; p < _plane; p++)
                    {
                        target[p] = source[p] / 255f;
                    }
                }
            }
        }

        Run(size);
        return PairMatchers.CopyOutputs(size, Manifest.Cells, _matches, _scores, _keypoints);
    }

    /// <inheritdoc/>
    public void Terminate() => _runOptions.Terminate = true;

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var binding in _bindings)
        {
            binding?.Dispose();
        }

        foreach (var set in _values)
        {
            if (set is null)
            {
                continue;
            }

            foreach (var value in set)
            {
                value?.Dispose();
            }
        }

        _runOptions.Dispose();
        _session.Dispose();
        _sessionOptions.Dispose();
    }

    private void CopyIn(PreparedFrame frame, int firstPlane)
    {
        var pixels = frame.Pixels(_plane);
        for (var c = 0; c < Manifest.Input.Channels; c++)
        {
            var offset = (firstPlane + c) * _plane;
            if (_inputFloat is not null)
            {
                pixels.CopyTo(_inputFloat.AsSpan(offset, _plane));
            }
            else
            {
                var target = _inputBytes.AsSpan(offset, _plane);
                for (var p = 0; p < target.Length; p++)
                {
                    target[p] = (byte)MathF.Min(MathF.Floor(pixels[p] * 255f + 0.5f), 255f);
                }
            }
        }
    }

    /// <summary>
    /// Runs the session on the first <paramref name="size"/> pairs of the pinned buffers, bound once per batch size:
    /// on CUDA, ONNX Runtime copies the pixels in and the outputs out, and nothing else.
    /// </summary>
    private void Run(int size)
    {
        var binding = _bindings[size];
        if (binding is null)
        {
            var values = _values[size] ??= CreateValues(size);
            binding = _session.CreateIoBinding();
            binding.BindInput(_inputNames[0], values[0]!);
            for (var o = 0; o < _outputNames.Length; o++)
            {
                binding.BindOutput(_outputNames[o], values[o + 1]!);
            }

            _bindings[size] = binding;
        }

        _session.RunWithBinding(_runOptions, binding);
        binding.SynchronizeBoundOutputs();
    }

    private OrtValue?[] CreateValues(int size)
    {
        var input = Manifest.Input;
        long[] inputShape = [size, 2, input.Channels, input.Height, input.Width];
        var inputLength = (int)(size * 2L * input.Channels * _plane);
        var cells = Manifest.Cells;
        return
        [
            _inputFloat is not null
                ? OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _inputFloat.AsMemory(0, inputLength), inputShape)
                : OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _inputBytes.AsMemory(0, inputLength), inputShape),
            OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _matches.AsMemory(0, size * 2 * cells), [size, 2, cells]),
            OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _scores.AsMemory(0, size * 2 * cells), [size, 2, cells]),
            OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _keypoints.AsMemory(0, size * 4 * cells), [size, 2, cells, 2]),
        ];
    }
}
