using System.Runtime.InteropServices;
using VideoMatch.Engine.Models;

namespace VideoMatch.Engine.Inference;

/// <summary>
/// Opens the configured model: the embedded matcher when no path is set; otherwise a folder (or manifest file)
/// with <c>videomatch-model.json</c>, or a folder holding one <c>xfeat*.onnx</c> and one <c>lighterglue*.onnx</c>
/// (served as XFeat + LighterGlue without a manifest).
/// </summary>
public static class ModelLoader
{
    /// <param name="setting">The setting that named the folder, to begin messages about it; null: none (the CLI names folders itself).</param>
    public static IPairMatcher Open(InferenceOptions options, int maxBatchSize, string? setting = "Inference:ModelPath")
    {
        if (string.IsNullOrEmpty(options.ModelPath))
        {
            var manifest = EmbeddedMatcherModel.Manifest(options.EmbeddedWidth, options.EmbeddedHeight);
            var embedded = OnnxPairMatcher.Create(EmbeddedMatcherModel.Build(options.EmbeddedWidth, options.EmbeddedHeight), manifest, options, maxBatchSize);
            embedded.Graph = "the embedded whole-pair graph, fp32";
            return embedded;
        }

        try
        {
            var folder = options.ModelPath;
            if (Directory.Exists(folder) && !File.Exists(Path.Combine(folder, ModelManifest.FileName)) && XFeatLighterGlueMatcher.Discover(folder) is { } found)
            {
                var discovered = XFeatLighterGlueMatcher.Create(Path.Combine(folder, found.OnnxFile), Path.Combine(folder, found.MatcherFile), found, options, maxBatchSize);
                discovered.Graph = XFeatGraph(found);
                return discovered;
            }

            var (loaded, onnx) = ModelManifest.Load(options.ModelPath);
            var manifestFile = loaded.SourceFile;
            if (loaded.Family == ModelFamily.XFeatLighterGlue)
            {
                var xfeat = XFeatLighterGlueMatcher.Create(onnx, ModelManifest.Resolve(manifestFile, loaded.MatcherFile), loaded, options, maxBatchSize);
                xfeat.Graph = XFeatGraph(loaded);
                return xfeat;
            }

            if (options.UseSplit && options.Precision == "fp32" && loaded.Split is { } split)
            {
                var matcher = SplitPairMatcher.Create(File.ReadAllBytes(ModelManifest.Resolve(manifestFile, split.EncoderFile)),
                    File.ReadAllBytes(ModelManifest.Resolve(manifestFile, split.MatcherFile)), loaded, options, maxBatchSize);
                matcher.Graph = $"split graphs (encoder {split.EncoderFile} once per frame + matcher {split.MatcherFile}), fp32";
                return matcher;
            }

            if (options.Precision == "fp16")
            {
                if (string.IsNullOrEmpty(loaded.OnnxFileFp16))
                {
                    throw new InvalidDataException($"Inference:Precision=fp16, but model '{loaded.Name}' has no fp16 graph (onnxFileFp16 is empty). Export it with tools/export/export.py --fp16, or serve fp32.");
                }

                onnx = ModelManifest.Resolve(manifestFile, loaded.OnnxFileFp16);
                loaded = loaded with { Name = loaded.Name + "-fp16" };
            }

            var pair = OnnxPairMatcher.Create(File.ReadAllBytes(onnx), loaded, options, maxBatchSize);
            pair.Graph = $"whole-pair graph {Path.GetFileName(onnx)}, {options.Precision}" + (loaded.Split is null ? "" : options.Precision == "fp16"
                ? "; the folder's split graphs serve fp32 only"
                : "; the folder's split graphs are off (Inference:UseSplit=false)");
            return pair;
        }
        catch (InvalidDataException e)
        {
            // The manifest's messages name no setting (videomatch verify reads folders too); the server's names it.
            throw new InvalidOperationException(setting is null ? e.Message : $"{setting}: {e.Message}", e);
        }
    }

    private static string XFeatGraph(ModelManifest manifest) => $"XFeat extractor {manifest.OnnxFile} + LighterGlue matcher {manifest.MatcherFile}, fp32";

    /// <summary>
    /// Writes the embedded model, its manifest and its self-check (three synthetic pairs and this machine's outputs for
    /// them) into <paramref name="folder"/>, as a model folder to serve, verify or inspect.
    /// </summary>
    public static string WriteEmbedded(string folder, int width, int height)
    {
        Directory.CreateDirectory(folder);
        const string SelfCheckFile = "selfcheck.safetensors";
        var manifest = EmbeddedMatcherModel.Manifest(width, height) with
        {
            OnnxFile = "model.onnx",
            Export = new ExportManifest { Tool = $"videomatch {typeof(ModelLoader).Assembly.GetName().Version} (the embedded model)", SelfCheck = SelfCheckFile },
        };
        var model = EmbeddedMatcherModel.Build(width, height);
        File.WriteAllBytes(Path.Combine(folder, manifest.OnnxFile), model);
        var pixels = SyntheticPairs(width, height, manifest.CoarseStride);
        using (var matcher = OnnxPairMatcher.Create(model, manifest, new InferenceOptions { IntraOpThreads = 1 }, 3))
        {
            var (matches, scores, keypoints) = matcher.RunRaw(pixels, 3);
            long cells = manifest.Cells;
            Safetensors.Write(Path.Combine(folder, SelfCheckFile), new Dictionary<string, SafetensorsTensor>
            {
                ["pixel_values"] = new("U8", [3, 2, 1, height, width], pixels),
                ["matches"] = new("I64", [3, 2, cells], MemoryMarshal.AsBytes(matches.AsSpan()).ToArray()),
                ["matching_scores"] = new("F32", [3, 2, cells], MemoryMarshal.AsBytes(scores.AsSpan()).ToArray()),
                ["keypoints"] = new("F32", [3, 2, cells, 2], MemoryMarshal.AsBytes(keypoints.AsSpan()).ToArray()),
            }, new Dictionary<string, string> { ["what"] = "inputs and outputs of the embedded model", ["layout"] = manifest.Outputs.Layout.ToString() });
        }

        var path = Path.Combine(folder, ModelManifest.FileName);
        manifest.Save(path);
        return path;
    }

    /// <summary>
    /// Three gray pairs (3, 2, 1, H, W) of one scene of random boxes: shifted by whole cells (2 right, 1 down), the
    /// same image twice, and shifted by a fraction of a cell.
    /// </summary>
    private static byte[] SyntheticPairs(int width, int height, int stride)
    {
        var random = new Random(7);
        var margin = 4 * stride;
        var (bigWidth, bigHeight) = (width + (2 * margin), height + (2 * margin));
        var scene = new byte[bigWidth * bigHeight];
        scene.AsSpan().Fill(128);
        for (var box = 0; box < bigWidth * bigHeight / 60; box++)
        {
            var (x, y, w, h, value) = (random.Next(bigWidth), random.Next(bigHeight), random.Next(2, 14), random.Next(2, 14), (byte)random.Next(256));
            for (var row = y; row < Math.Min(bigHeight, y + h); row++)
            {
                scene.AsSpan((row * bigWidth) + x, Math.Min(w, bigWidth - x)).Fill(value);
            }
        }

        var plane = width * height;
        var pixels = new byte[3 * 2 * plane];
        (int Dx, int Dy)[] shifts = [(0, 0), (2 * stride, stride), (0, 0), (0, 0), (0, 0), (3, 2)];
        for (var image = 0; image < shifts.Length; image++)
        {
            for (var row = 0; row < height; row++)
            {
                scene.AsSpan(((margin + shifts[image].Dy + row) * bigWidth) + margin + shifts[image].Dx, width).CopyTo(pixels.AsSpan((image * plane) + (row * width), width));
            }
        }

        return pixels;
    }
}
