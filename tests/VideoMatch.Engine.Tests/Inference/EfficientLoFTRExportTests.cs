using VideoMatch.Engine.Frames;
using VideoMatch.Engine.Inference;
using VideoMatch.Engine.Models;
using VideoMatch.Tests;

namespace VideoMatch.Engine.Tests.Inference;

/// <summary>
/// The EfficientLoFTR export (tools/export) run by the engine's ONNX Runtime session, compared with the PyTorch module's
/// outputs that the export wrote beside it (synthetic pairs and every fixture pair). Skips without the fixtures or
/// the exporter's Python.
/// </summary>
public sealed class EfficientLoFTRExportTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [ExportedModelTheory("tiny")]
    [InlineData(1)]
    [InlineData(4)]
    public void SelfCheck_TinyExportFp32_EqualsPyTorchWithinTolerance(int maxBatchSize)
    {
        using var matcher = Open(ExportedModels.Folder("tiny"), maxBatchSize);

        var report = SelfCheck.Run(matcher, Path.Combine(ExportedModels.Folder("tiny"), "selfcheck.safetensors"), SelfCheckTolerances.Fp32);

        // 3 synthetic pairs and the 4 fixture pairs; batches of 1 and 4 run the same graph at two batch sizes.
        output.WriteLine(report.ToString());
        Assert.True(report.Passed, report.ToString());
        Assert.Equal(7, report.Pairs);
        Assert.True(report.Reference >= 50, report.ToString());
    }

    [ExportedModelFact("default")]
    public void SelfCheck_DefaultExportFp32_EqualsPyTorchWithinTolerance()
    {
        // The MatchAnything architecture at 480×640: 3 synthetic pairs and fixture pairs a, b, c (pair a alone matches
        // 1618 cells).
        var folder = ExportedModels.Folder("default");
        using var matcher = Open(folder, 2);

        var report = SelfCheck.Run(matcher, Path.Combine(folder, "selfcheck.safetensors"), SelfCheckTolerances.Fp32);

        output.WriteLine(report.ToString());
        Assert.True(report.Passed, report.ToString());
        Assert.Equal(6, report.Pairs);
        Assert.True(report.Reference >= 1618, report.ToString());
    }

    [ExportedModelFact("tiny")]
    public void SelfCheck_TopKExport_EqualsPyTorchAndKeepsAtMostK()
    {
        var folder = ExportedModels.Folder("tiny", "--top-k", "16");
        using var matcher = Open(folder, 4);

        var report = SelfCheck.Run(matcher, Path.Combine(folder, "selfcheck.safetensors"), SelfCheckTolerances.Fp32);

        output.WriteLine(report.ToString());
        Assert.True(report.Passed, report.ToString());
        Assert.Equal(16, matcher.Manifest.MaxMatchesPerPair);
        var (tensors, _) = Safetensors.Read(Path.Combine(folder, "selfcheck.safetensors"));
        var matches = tensors["matches"].As<long>("I64");
        for (var pair = 0; pair < report.Pairs; pair++)
        {
            Assert.InRange(matches.AsSpan(pair * 2 * 320, 320).ToArray().Count(m => m >= 0), 0, 16);
        }
    }

    [ExportedModelFact("tiny")]
    public void SelfCheck_Fp16Variant_WithinFp16Tolerances()
    {
        var folder = ExportedModels.Folder("tiny", "--fp16");
        using var matcher = (OnnxPairMatcher)ModelLoader.Open(new InferenceOptions { ModelPath = folder, Precision = "fp16" }, 4);

        var report = SelfCheck.Run(matcher, Path.Combine(folder, "selfcheck.safetensors"), SelfCheckTolerances.Fp16);

        output.WriteLine(report.ToString());
        Assert.EndsWith("-fp16", matcher.Manifest.Name, StringComparison.Ordinal);
        Assert.True(report.Passed, report.ToString());
        // The fp16 graph really is another graph: its scores are not bit-identical to PyTorch's fp32 ones.
        Assert.True(report.MaxScoreDifference > 1e-5, report.ToString());
    }

    [ExportedModelFact("tiny")]
    public void Open_Fp16WithoutAnFp16Graph_SaysHowToExportOne()
    {
        var error = Assert.Throws<InvalidOperationException>(() => ModelLoader.Open(new InferenceOptions { ModelPath = ExportedModels.Folder("tiny"), Precision = "fp16" }, 1));

        Assert.Contains("export.py --fp16", error.Message, StringComparison.Ordinal);
    }

    [ExportedModelFact("tiny")]
    public void Open_HfCompatExport_RefusedWithTheReason()
    {
        var folder = ExportedModels.Folder("tiny", "--hf-compat");

        var error = Assert.Throws<InvalidOperationException>(() => Open(folder, 1));

        Assert.Contains("exported with --hf-compat", error.Message, StringComparison.Ordinal);
    }

    [ExportedModelFact("tiny")]
    public void Match_FixturePairThroughTheEngine_KeypointsInOriginalPixels()
    {
        using var matcher = Open(ExportedModels.Folder("tiny"), 2);
        var (golden, _) = Safetensors.Read(Path.Combine(ExportedModels.Checkpoint("tiny")!, "golden.safetensors"));
        // Pair d: image 1 is image 0 shifted by exactly (16, 8) px; the random weights match such shifts cell to cell.
        var pixels = golden["pd.pixel_values"].As<float>("F32");
        var preparer = new FramePreparer(160, 128, 8192, elementType: matcher.FrameType);
        var frames = new PreparedFrame[2];
        for (var i = 0; i < 2; i++)
        {
            var gray = new byte[160 * 128];
            for (var p = 0; p < gray.Length; p++)
            {
                gray[p] = (byte)Math.Clamp(MathF.Round(pixels[(i * 3 * gray.Length) + p] * 255f), 0, 255);
            }

            frames[i] = preparer.Prepare(FrameInput.Raw(FramePixelFormat.Gray8, 160, 128, 0, gray));
        }

        var results = new PairMatchResult[1];
        matcher.Match([new PairInput(frames[0], frames[1], 0f, 0)], results);

        var result = results[0];
        Assert.InRange(result.Count, 25, 40);
        var shifted = 0;
        for (var i = 0; i < result.Count; i++)
        {
            // Coarse cells move by exactly (−2, −1); refinement keeps the points within a cell of that.
            var (dx, dy) = (result.Keypoints1[2 * i] - result.Keypoints0[2 * i], result.Keypoints1[2 * i + 1] - result.Keypoints0[2 * i + 1]);
            shifted += Math.Abs(dx + 16) <= 8 && Math.Abs(dy + 8) <= 8 ? 1 : 0;
        }

        Assert.Equal(result.Count, shifted);
    }

    private static OnnxPairMatcher Open(string folder, int maxBatchSize) =>
        (OnnxPairMatcher)ModelLoader.Open(new InferenceOptions { ModelPath = folder }, maxBatchSize);
}
