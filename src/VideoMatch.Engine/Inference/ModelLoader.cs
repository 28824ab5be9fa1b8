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
    /// <summary>How each family opens: one entry per family, the one place that maps a family to its implementation.</summary>
    private static readonly Dictionary<ModelFamily, Func<ModelManifest, InferenceOptions, int, IPairMatcher>> Families = new()
    {
        [ModelFamily.Dense] = OpenDense,
        [ModelFamily.XFeatLighterGlue] = OpenXFeat,
    };

    /// <param name="setting">The setting that named the folder, to begin messages about it; null: none (the CLI names folders itself).</param>
    public static IPairMatcher Open(InferenceOptions options, int maxBatchSize, string? setting = "Inference:ModelPath")
    {
        if (string.IsNullOrEmpty(options.ModelPath))
        {
            var manifest = EmbeddedMatcherModel.Manifest(options.EmbeddedWidth, options.EmbeddedHeight);
            var embedded = OnnxPairMatcher.Create(EmbeddedMatcherModel.Build(options.EmbeddedWidth, options.EmbeddedHeight), manifest, manifest.Graphs[0], options, maxBatchSize);
            embedded.Graph = "the embedded whole-pair graph, fp32";
            return embedded;
        }

        try
        {
            var manifest = Describe(options.ModelPath);
            return Families[manifest.Family](manifest, options, maxBatchSize);
        }
        catch (InvalidDataException e)
        {
            // The manifest's messages name no setting (videomatch verify reads folders too); the server's names it.
            throw new InvalidOperationException(setting is null ? e.Message : $"{setting}: {e.Message}", e);
        }
    }

    /// <summary>
    /// The manifest of the model in <paramref name="path"/>: its <c>videomatch-model.json</c>, or, for a folder without
    /// one that holds one <c>xfeat*.onnx</c> and one <c>lighterglue*.onnx</c>, the description of that pair.
    /// </summary>
    /// <exception cref="InvalidDataException">Neither: the message says what the folder is and what to give instead.</exception>
    public static ModelManifest Describe(string path) =>
        Directory.Exists(path) && !File.Exists(Path.Combine(path, ModelManifest.FileName)) && XFeatLighterGlueMatcher.Discover(path) is { } found
            ? found
            : ModelManifest.Load(path);

    /// <summary>A dense model: its stream split at the configured precision when the folder has one and it is on, else its whole-pair graph.</summary>
    private static IPairMatcher OpenDense(ModelManifest manifest, InferenceOptions options, int maxBatchSize)
    {
        var precision = options.Precision;
        var named = precision == "fp32" ? manifest : manifest with { Name = $"{manifest.Name}-{precision}" };
        if (options.UseSplit && manifest.HasSplit(precision))
        {
            var graphs = (Encoder: manifest.Graph(GraphRole.Encoder, precision)!, Matcher: manifest.Graph(GraphRole.Matcher, precision)!);
            var split = SplitPairMatcher.Create(File.ReadAllBytes(manifest.PathOf(graphs.Encoder)), File.ReadAllBytes(manifest.PathOf(graphs.Matcher)), named, graphs, options, maxBatchSize);
            split.Graph = $"split graphs (encoder {graphs.Encoder.File} once per frame + matcher {graphs.Matcher.File}), {precision}";
            return split;
        }

        var graph = manifest.Graph(GraphRole.Pair, precision)
            ?? throw new InvalidDataException($"Inference:Precision={precision}, but model '{manifest.Name}' has no {precision} graph. Export it with tools/export/export.py --{precision}, or serve fp32.");
        var pair = OnnxPairMatcher.Create(File.ReadAllBytes(manifest.PathOf(graph)), named, graph, options, maxBatchSize);
        pair.Graph = $"whole-pair graph {graph.File}, {precision}" + (!manifest.HasSplit() ? ""
            : !options.UseSplit ? "; the folder's split graphs are off (Inference:UseSplit=false)"
            : $"; the folder's split graphs have no {precision} variant (export with --split --{precision})");
        return pair;
    }

    private static XFeatLighterGlueMatcher OpenXFeat(ModelManifest manifest, InferenceOptions options, int maxBatchSize)
    {
        var xfeat = XFeatLighterGlueMatcher.Create(manifest, options, maxBatchSize);
        xfeat.Graph = $"XFeat extractor {manifest.Graph(GraphRole.Extractor)!.File} + LighterGlue matcher {manifest.Graph(GraphRole.Matcher)!.File}, fp32";
        return xfeat;
    }

    /// <summary>
    /// Writes the embedded model, its manifest and its self-check (three synthetic pairs and this machine's outputs for
    /// them) into <paramref name="folder"/>, as a model folder to serve, verify or inspect.
    /// </summary>
    public static string WriteEmbedded(string folder, int width, int height)
    {
        Directory.CreateDirectory(folder);
        const string SelfCheckFile = "selfcheck.safetensors";
        var manifest = EmbeddedMatcherModel.Manifest(width, height, "model.onnx") with
        {
            Export = new ExportManifest { Tool = $"videomatch {typeof(ModelLoader).Assembly.GetName().Version} (the embedded model)", SelfCheck = SelfCheckFile },
        };
        var model = EmbeddedMatcherModel.Build(width, height);
        var graph = manifest.Graphs[0];
        File.WriteAllBytes(Path.Combine(folder, graph.File), model);
        var pixels = SyntheticPairs(width, height, manifest.CoarseStride);
        using (var matcher = OnnxPairMatcher.Create(model, manifest, graph, new InferenceOptions { IntraOpThreads = 1 }, 3))
        {
            var (matches, scores, keypoints) = matcher.RunRaw(pixels, 3);
            long cells = manifest.Cells;
            // Keyed by the pair graph's tensor names, as tools/export writes them.
            Safetensors.Write(Path.Combine(folder, SelfCheckFile), new Dictionary<string, SafetensorsTensor>
            {
                [graph.Inputs[0].Name] = new("U8", [3, 2, 1, height, width], pixels),
                [graph.Outputs[0].Name] = new("I64", [3, 2, cells], MemoryMarshal.AsBytes(matches.AsSpan()).ToArray()),
                [graph.Outputs[1].Name] = new("F32", [3, 2, cells], MemoryMarshal.AsBytes(scores.AsSpan()).ToArray()),
                [graph.Outputs[2].Name] = new("F32", [3, 2, cells, 2], MemoryMarshal.AsBytes(keypoints.AsSpan()).ToArray()),
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
