using VideoMatch.Engine.Frames;
using VideoMatch.Engine.Inference;
using VideoMatch.Engine.Models;
using VideoMatch.Tests;

namespace VideoMatch.Engine.Tests.Inference;

/// <summary>
/// The stream split of the tiny fixture export (encoder once per frame into a frame bank, matcher per pair reading
/// it), against PyTorch's outputs and against the whole-pair graph. Skips without the fixtures or the exporter.
/// </summary>
public sealed class SplitPairMatcherTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const int Width = 160;
    private const int Height = 128;

    private static string Folder => ExportedModels.Folder("tiny", "--split");

    [ExportedModelFact("tiny")]
    public void SelfCheck_SplitExport_EqualsPyTorch()
    {
        using var matcher = OpenSplit(maxBatchSize: 3);

        var report = SelfCheck.Run(matcher, Path.Combine(Folder, "selfcheck.safetensors"), SelfCheckTolerances.Fp32);

        output.WriteLine(report.ToString());
        Assert.True(report.Passed, report.ToString());
        Assert.Equal(7, report.Pairs);
        Assert.Equal(0, matcher.Work.Bank().InUse);
    }

    [ExportedModelFact("tiny")]
    public void Match_StreamOfFrames_EncodesEachFrameOnceAndEqualsTheWholeGraph()
    {
        using var split = OpenSplit(maxBatchSize: 2);
        using var whole = (OnnxPairMatcher)ModelLoader.Open(new InferenceOptions { ModelPath = Folder, UseSplit = false }, 2);
        var frames = StreamFrames(6);

        // Pairs (0,1) (1,2) ... in batches of 2, as the batcher would form them from one stream.
        var splitResults = new List<PairMatchResult>();
        var wholeResults = new List<PairMatchResult>();
        for (var t = 1; t < frames.Length; t += 2)
        {
            PairInput[] batch = t + 1 < frames.Length
                ? [new(frames[t - 1], frames[t], 0f, 0), new(frames[t], frames[t + 1], 0f, 0)]
                : [new(frames[t - 1], frames[t], 0f, 0)];
            splitResults.AddRange(Run(split, batch));
            wholeResults.AddRange(Run(whole, batch));
        }

        Assert.Equal(6, split.Work.FramesEncoded);
        Assert.Equal(5, split.Work.PairsMatched);
        Assert.Equal(6, split.Work.Bank().InUse);
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(wholeResults[i].Count, splitResults[i].Count);
            Assert.True(wholeResults[i].Count > 0, $"pair {i} has matches");
            for (var k = 0; k < 2 * wholeResults[i].Count; k++)
            {
                Assert.Equal(wholeResults[i].Keypoints1[k], splitResults[i].Keypoints1[k], 1e-3f);
            }
        }

        foreach (var frame in frames)
        {
            frame.Release();
        }

        // Released frames give their slots back.
        Assert.Equal(0, split.Work.Bank().InUse);
    }

    [ExportedModelFact("tiny")]
    public void Match_EncoderRunFails_ItsReservedSlotsAreFreeAgain()
    {
        using var split = OpenSplit(maxBatchSize: 2, slots: 8);
        var frames = StreamFrames(4);
        Run(split, [new PairInput(frames[0], frames[1], 0f, 0)]);
        var held = split.Work.Bank().InUse;

        // The terminate flag fails the next encoder run, as a passing out-of-memory error on a GPU would.
        split.Terminate();
        Assert.ThrowsAny<Exception>(() => Run(split, [new PairInput(frames[2], frames[3], 0f, 0)]));

        Assert.Equal(2, held);
        Assert.Equal(held, split.Work.Bank().InUse);
        foreach (var frame in frames)
        {
            frame.Release();
        }

        Assert.Equal(0, split.Work.Bank().InUse);
    }

    [ExportedModelFact("tiny")]
    public void Match_KeyframeReusedByTenPairs_EncodedOnce()
    {
        using var split = OpenSplit(maxBatchSize: 2);
        var frames = StreamFrames(11);

        for (var t = 1; t < frames.Length; t++)
        {
            Run(split, [new PairInput(frames[0], frames[t], 0f, 0)]);
        }

        Assert.Equal(11, split.Work.FramesEncoded);
        Assert.Equal(10, split.Work.PairsMatched);
        foreach (var frame in frames)
        {
            frame.Release();
        }
    }

    [ExportedModelFact("tiny")]
    public void Match_BankSmallerThanTheFramesAlive_EvictsAndReEncodesWithTheSameResults()
    {
        // 4 slots (the least a batch of 2 pairs needs), 8 frames alive: older features are evicted and encoded again.
        using var small = OpenSplit(maxBatchSize: 2, slots: 4);
        using var large = OpenSplit(maxBatchSize: 2, slots: 16);
        // Each matcher gets its own frames: a frame holds one matcher's cached features.
        var frames = StreamFrames(8);
        var copies = StreamFrames(8);

        for (var round = 0; round < 2; round++)
        {
            for (var t = 1; t < frames.Length; t++)
            {
                var a = Run(small, [new PairInput(frames[t - 1], frames[t], 0f, 0)])[0];
                var b = Run(large, [new PairInput(copies[t - 1], copies[t], 0f, 0)])[0];
                Assert.Equal(b.Keypoints0, a.Keypoints0);
                Assert.Equal(b.Keypoints1, a.Keypoints1);
            }
        }

        output.WriteLine($"evictions {small.Work.Evictions}, encoded {small.Work.FramesEncoded} vs {large.Work.FramesEncoded}, in use {small.Work.Bank()}");
        Assert.True(small.Work.Evictions > 0, $"{small.Work.Evictions} evictions");
        Assert.True(small.Work.FramesEncoded > large.Work.FramesEncoded, $"{small.Work.FramesEncoded} vs {large.Work.FramesEncoded} encoder rows");
        Assert.Equal(8, large.Work.FramesEncoded);
        Assert.InRange(small.Work.Bank().InUse, 1, 4);
        foreach (var frame in frames.Concat(copies))
        {
            frame.Release();
        }

        Assert.Equal((0, 0), (small.Work.Bank().InUse, large.Work.Bank().InUse));
    }

    [ExportedModelFact("tiny")]
    public void Open_BankSmallerThanABatchNeeds_RefusedWithTheMinimum()
    {
        var error = Assert.Throws<InvalidOperationException>(() => OpenSplit(maxBatchSize: 4, slots: 6));

        Assert.Contains("at least 8", error.Message, StringComparison.Ordinal);
    }

    [CudaFact]
    public void SelfCheck_CudaProvider_BankInDeviceMemoryEqualsPyTorch()
    {
        // The CUDA binding path: the bank in device memory from ONNX Runtime's allocator, frames and outputs bound.
        using var matcher = (SplitPairMatcher)ModelLoader.Open(new InferenceOptions { ModelPath = Folder, ExecutionProvider = "cuda" }, 2);

        var report = SelfCheck.Run(matcher, Path.Combine(Folder, "selfcheck.safetensors"), SelfCheckTolerances.Fp32);

        output.WriteLine(report.ToString());
        Assert.StartsWith("cuda:", matcher.ExecutionProvider, StringComparison.Ordinal);
        Assert.True(report.Passed, report.ToString());
    }

    private static SplitPairMatcher OpenSplit(int maxBatchSize, int slots = 0) =>
        (SplitPairMatcher)ModelLoader.Open(new InferenceOptions { ModelPath = Folder, FrameBankSlots = slots }, maxBatchSize);

    private static PairMatchResult[] Run(IPairMatcher matcher, PairInput[] batch)
    {
        var results = new PairMatchResult[batch.Length];
        matcher.Match(batch, results);
        return results;
    }

    /// <summary>Frames of a camera moving 16 px right per frame over fixture pair d's first image (whole cells, which
    /// the random weights match).</summary>
    private static PreparedFrame[] StreamFrames(int count)
    {
        var (golden, _) = Safetensors.Read(Path.Combine(ExportedModels.Checkpoint("tiny")!, "golden.safetensors"));
        var pixels = golden["pd.pixel_values"].As<float>("F32");
        // The split's encoder and the whole-pair graph both take uint8 frames.
        var preparer = new FramePreparer(Width, Height, 8192, elementType: InputElementType.UInt8);
        var frames = new PreparedFrame[count];
        for (var t = 0; t < count; t++)
        {
            var gray = new byte[Width * Height];
            for (var y = 0; y < Height; y++)
            {
                for (var x = 0; x < Width; x++)
                {
                    // Image 0 of the pair wrapped around horizontally by 16·t px (t odd: image 1, shifted (16, 8) more).
                    var source = (t % 2) * 3 * Width * Height;
                    gray[y * Width + x] = (byte)MathF.Round(pixels[source + y * Width + ((x + 16 * (t / 2)) % Width)] * 255f);
                }
            }

            frames[t] = preparer.Prepare(FrameInput.Raw(FramePixelFormat.Gray8, Width, Height, 0, gray), (ulong)t);
        }

        return frames;
    }
}
