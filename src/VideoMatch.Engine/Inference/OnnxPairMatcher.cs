using Microsoft.ML.OnnxRuntime;
using VideoMatch.Engine.Frames;

namespace VideoMatch.Engine.Inference;

/// <summary>
/// A dense whole-pair graph (EfficientLoFTR's contract, see <see cref="ModelManifest"/>) on ONNX Runtime. Input and
/// output buffers are pinned once for the largest batch and bound once per batch size, so a batch copies pixels in,
/// runs, and reads results without allocating tensors.
/// </summary>
public sealed class OnnxPairMatcher : OrtMatcher
{
    private readonly InferenceSession _session;
    private readonly string _inputName;
    private readonly DenseOutputs _outputs;
    private readonly float[]? _inputFloat;
    private readonly byte[]? _inputBytes;
    private readonly OrtIoBinding?[] _bindings;
    private readonly int _plane;

    private OnnxPairMatcher(ModelManifest manifest, GraphSpec graph, OrtResources resources, InferenceSession session, int maxBatchSize)
        : base(manifest, resources, maxBatchSize)
    {
        _session = session;
        _inputName = graph.Inputs[0].Name;
        _outputs = new DenseOutputs(manifest, graph, maxBatchSize);
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

        _bindings = new OrtIoBinding?[maxBatchSize + 1];
    }

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

        return Build(options, resources => new OnnxPairMatcher(manifest, graph, resources, resources.Session(model, graph, manifest), maxBatchSize));
    }

    public override void Match(ReadOnlySpan<PairInput> batch, Span<PairMatchResult> results)
    {
        var size = batch.Length;
        CheckBatch(size);
        for (var i = 0; i < size; i++)
        {
            CopyIn(batch[i].Frame0, 2 * i);
            CopyIn(batch[i].Frame1, (2 * i) + 1);
        }

        Run(size);
        Work.Matched(size);
        _outputs.Extract(batch, results);
    }

    /// <summary>
    /// Runs raw gray pairs (size, 2, 1, H, W) as uint8 straight through the session, without preprocessing or
    /// post-processing, and returns copies of the raw outputs: what a self-check compares with PyTorch's.
    /// </summary>
    internal (long[] Matches, float[] Scores, float[] Keypoints) RunRaw(ReadOnlySpan<byte> pixels, int size)
    {
        CheckBatch(size);
        if (pixels.Length != size * 2 * _plane)
        {
            throw new ArgumentException($"{pixels.Length} bytes given; {size} gray pairs of {Manifest.Input.Width}×{Manifest.Input.Height} hold {size * 2 * _plane}.", nameof(pixels));
        }

        var scaled = _inputFloat is null ? [] : new float[_plane];
        for (var image = 0; image < 2 * size; image++)
        {
            var source = pixels.Slice(image * _plane, _plane);
            if (_inputBytes is not null)
            {
                CopyIn(source, _inputBytes, image);
                continue;
            }

            for (var p = 0; p < _plane; p++)
            {
                scaled[p] = source[p] / 255f;
            }

            CopyIn<float>(scaled, _inputFloat!, image);
        }

        Run(size);
        return _outputs.Copy(size);
    }

    /// <summary>A frame's plane, in the input's type, into every channel of image <paramref name="image"/> of the input.</summary>
    private void CopyIn(PreparedFrame frame, int image)
    {
        if (_inputFloat is not null)
        {
            CopyIn(frame.Floats(_plane), _inputFloat, image);
        }
        else
        {
            CopyIn(frame.Bytes(_plane), _inputBytes!, image);
        }
    }

    private void CopyIn<T>(ReadOnlySpan<T> pixels, T[] input, int image)
    {
        var channels = Manifest.Input.Channels;
        for (var c = 0; c < channels; c++)
        {
            pixels.CopyTo(input.AsSpan(((image * channels) + c) * _plane, _plane));
        }
    }

    /// <summary>
    /// Runs the session on the first <paramref name="size"/> pairs of the pinned buffers, bound once per batch size:
    /// on CUDA, ONNX Runtime copies the pixels in and the outputs out, and nothing else.
    /// </summary>
    private void Run(int size)
    {
        var binding = _bindings[size] ??= Bind(size);
        _session.RunWithBinding(RunOptions, binding);
        binding.SynchronizeBoundOutputs();
    }

    private OrtIoBinding Bind(int size)
    {
        // Owned after its values, so it is disposed before them.
        var binding = _session.CreateIoBinding();
        var input = Manifest.Input;
        long[] shape = [size, 2, input.Channels, input.Height, input.Width];
        var length = (int)(size * 2L * input.Channels * _plane);
        binding.BindInput(_inputName, Own(_inputFloat is not null
            ? OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _inputFloat.AsMemory(0, length), shape)
            : OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _inputBytes.AsMemory(0, length), shape)));
        _outputs.Bind(binding, size, Own);
        return Own(binding);
    }
}
