using Microsoft.ML.OnnxRuntime;
using VideoMatch.Engine.Frames;

namespace VideoMatch.Engine.Inference;

/// <summary>
/// A dense model served as its stream split (<c>export.py --split</c>): every frame runs once through the encoder,
/// whose outputs are bound straight into the frame's slot of a <see cref="FrameBank"/>; each batch of pairs runs
/// through the matcher, which reads the whole bank and the pairs' slot numbers and gathers inside the graph. A frame
/// shared by two pairs (t−1, t), (t, t+1), or a keyframe shared by many, is encoded once while it holds its slot.
/// Everything is bound once (per batch size, per encoder run length): on CUDA only pixels go to the device and only
/// the pairs' outputs come back.
/// </summary>
public sealed class SplitPairMatcher : OrtMatcher
{
    private readonly InferenceSession _encoder;
    private readonly InferenceSession _matcher;
    private readonly FrameBank _bank;
    private readonly DenseOutputs _outputs;
    private readonly OrtIoBinding _encoderBinding;
    private readonly OrtIoBinding?[] _matcherBindings;
    private readonly OrtValue?[] _frameValues;
    private readonly byte[] _frames;
    private readonly long[] _pairs;
    private readonly string _framesInput;
    private readonly string[] _featureOutputs;
    private readonly string[] _bankInputs;
    private readonly string _pairsInput;
    private readonly PreparedFrame[] _pending;
    private readonly int[] _slots;
    private readonly int _plane;
    private long _batch;

    private SplitPairMatcher(ModelManifest manifest, (GraphSpec Encoder, GraphSpec Matcher) graphs, OrtResources resources, InferenceSession encoder, InferenceSession matcher,
        FrameBank bank, ModelWork work, int maxBatchSize)
        : base(manifest, resources, maxBatchSize, work)
    {
        _framesInput = graphs.Encoder.Inputs[0].Name;
        _featureOutputs = [.. graphs.Encoder.Outputs.Select(t => t.Name)];
        _bankInputs = [.. graphs.Matcher.Inputs.SkipLast(1).Select(t => t.Name)];
        _pairsInput = graphs.Matcher.Inputs[^1].Name;
        _encoder = encoder;
        _matcher = matcher;
        _bank = bank;
        _outputs = new DenseOutputs(manifest, graphs.Matcher, maxBatchSize);
        _plane = manifest.Input.Width * manifest.Input.Height;
        _frames = GC.AllocateArray<byte>(2 * maxBatchSize * _plane, pinned: true);
        _frameValues = new OrtValue?[(2 * maxBatchSize) + 1];
        _pairs = GC.AllocateArray<long>(2 * maxBatchSize, pinned: true);
        _pending = new PreparedFrame[2 * maxBatchSize];
        _slots = new int[2 * maxBatchSize];
        _encoderBinding = Own(_encoder.CreateIoBinding());
        _matcherBindings = new OrtIoBinding?[maxBatchSize + 1];
    }

    /// <summary>Frame-bank slots, and the bytes each holds (all of one frame's features).</summary>
    public (int Slots, long BytesPerSlot) Bank => (_bank.Capacity, _bank.BytesPerSlot);

    /// <summary>Opens the encoder and matcher (ONNX bytes of <paramref name="graphs"/>) on the configured provider, checks them, and allocates the bank.</summary>
    /// <exception cref="InvalidOperationException">The provider cannot start, or the graphs do not fit the manifest.</exception>
    public static SplitPairMatcher Create(byte[] encoder, byte[] matcher, ModelManifest manifest, (GraphSpec Encoder, GraphSpec Matcher) graphs, InferenceOptions options, int maxBatchSize)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxBatchSize);
        manifest.Validate(manifest.Name);
        var slots = options.FrameBankSlots > 0 ? options.FrameBankSlots : 4 * maxBatchSize;
        if (slots < 2 * maxBatchSize)
        {
            throw new InvalidOperationException($"Inference:FrameBankSlots is {slots}, but one batch of {maxBatchSize} pairs can need {2 * maxBatchSize} frames' features at once; set it to at least {2 * maxBatchSize} (0 picks {4 * maxBatchSize}).");
        }

        return Build(options, resources =>
        {
            var encoderSession = resources.Session(encoder, graphs.Encoder, manifest);
            var matcherSession = resources.Session(matcher, graphs.Matcher, manifest);
            var features = graphs.Encoder.Outputs.Select(t => new BankFeature(t.Name, t.TrailingSizes())).ToList();
            OrtAllocator? allocator = null;
            if (options.IsCuda)
            {
                var deviceMemory = resources.Own(new OrtMemoryInfo("Cuda", OrtAllocatorType.DeviceAllocator, options.DeviceId, OrtMemType.Default));
                allocator = resources.Own(new OrtAllocator(matcherSession, deviceMemory));
            }

            var work = new ModelWork();
            var bank = resources.Own(new FrameBank(features, slots, allocator, work));
            return new SplitPairMatcher(manifest, graphs, resources, encoderSession, matcherSession, bank, work, maxBatchSize);
        });
    }

    /// <summary>The encoder takes uint8 frames (the contract's, see <see cref="ModelManifest.ValidateGraphs"/>).</summary>
    public override InputElementType FrameType => InputElementType.UInt8;

    public override void Match(ReadOnlySpan<PairInput> batch, Span<PairMatchResult> results)
    {
        var size = batch.Length;
        CheckBatch(size);

        var number = ++_batch;
        // Slots of frames already encoded (marked as used by this batch, so no eviction takes them); the rest once each.
        var pending = 0;
        for (var i = 0; i < 2 * size; i++)
        {
            var frame = i % 2 == 0 ? batch[i / 2].Frame0 : batch[i / 2].Frame1;
            _slots[i] = _bank.Find(frame, number);
            if (_slots[i] < 0 && Array.IndexOf(_pending, frame, 0, pending) < 0)
            {
                _pending[pending++] = frame;
            }
        }

        try
        {
            Encode(pending, number);
            for (var i = 0; i < 2 * size; i++)
            {
                var frame = i % 2 == 0 ? batch[i / 2].Frame0 : batch[i / 2].Frame1;
                _pairs[i] = _slots[i] >= 0 ? _slots[i] : _bank.Find(frame, number);
            }
        }
        finally
        {
            _pending.AsSpan(0, pending).Clear();
        }

        RunMatcher(size);
        Work.Matched(size);
        _outputs.Extract(batch, results);
    }

    /// <summary>
    /// Runs raw gray pairs (size, 2, 1, H, W) through the encoder and the matcher, in slots reserved for the call and
    /// freed after it, and returns copies of the matcher's raw outputs (what a self-check compares with PyTorch's).
    /// </summary>
    internal (long[] Matches, float[] Scores, float[] Keypoints) RunRaw(ReadOnlySpan<byte> pixels, int size)
    {
        CheckBatch(size);
        var number = ++_batch;
        var runs = new List<(int Start, int Count)>();
        try
        {
            for (var done = 0; done < 2 * size;)
            {
                var run = _bank.Reserve((2 * size) - done, number, out var start);
                runs.Add((start, run));
                pixels.Slice(done * _plane, run * _plane).CopyTo(_frames);
                RunEncoder(start, run);
                for (var k = 0; k < run; k++)
                {
                    _pairs[done + k] = start + k;
                }

                done += run;
            }

            RunMatcher(size);
        }
        finally
        {
            foreach (var (start, count) in runs)
            {
                _bank.ReleaseReserved(start, count);
            }
        }

        return _outputs.Copy(size);
    }

    /// <summary>Encodes the frames without features, in runs of free slots in a row, each run straight into its slots.</summary>
    private void Encode(int count, long batch)
    {
        var done = 0;
        while (done < count)
        {
            var run = _bank.Reserve(count - done, batch, out var start);
            try
            {
                for (var k = 0; k < run; k++)
                {
                    _pending[done + k].Bytes(_plane).CopyTo(_frames.AsSpan(k * _plane, _plane));
                }

                RunEncoder(start, run);
            }
            catch
            {
                // A failed run (a passing out-of-memory error on a GPU, the terminate flag) leaves its slots free again:
                // kept reserved, every failure would shrink the bank until no batch fits.
                _bank.ReleaseReserved(start, run);
                throw;
            }

            for (var k = 0; k < run; k++)
            {
                _bank.Assign(start + k, _pending[done + k]);
            }

            Work.Encoded(run);
            done += run;
        }
    }

    /// <summary>Encodes the first <paramref name="count"/> frames of the pixel buffer straight into bank slots from <paramref name="start"/>.</summary>
    private void RunEncoder(int start, int count)
    {
        _encoderBinding.BindInput(_framesInput, _frameValues[count] ??= Own(OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance,
            _frames.AsMemory(0, count * _plane), [count, 1, Manifest.Input.Height, Manifest.Input.Width])));
        var views = _bank.Views(start, count);
        for (var f = 0; f < _featureOutputs.Length; f++)
        {
            _encoderBinding.BindOutput(_featureOutputs[f], views[f]);
        }

        _encoder.RunWithBinding(RunOptions, _encoderBinding);
        _encoderBinding.SynchronizeBoundOutputs();
    }

    private void RunMatcher(int size)
    {
        var binding = _matcherBindings[size] ??= BindMatcher(size);
        _matcher.RunWithBinding(RunOptions, binding);
        binding.SynchronizeBoundOutputs();
    }

    private OrtIoBinding BindMatcher(int size)
    {
        // Owned after its values, so it is disposed before them.
        var binding = _matcher.CreateIoBinding();
        var whole = _bank.Whole;
        for (var f = 0; f < _bankInputs.Length; f++)
        {
            binding.BindInput(_bankInputs[f], whole[f]);
        }

        binding.BindInput(_pairsInput, Own(OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _pairs.AsMemory(0, 2 * size), [size, 2])));
        _outputs.Bind(binding, size, Own);
        return Own(binding);
    }
}
