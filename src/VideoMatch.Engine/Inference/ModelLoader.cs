using VideoMatch.Engine.Models;

namespace VideoMatch.Engine.Inference;

/// <summary>
/// Opens the configured model: the embedded matcher when no path is set; otherwise a folder (or manifest file)
/// with <c>videomatch-model.json</c>, or a folder holding one <c>xfeat*.onnx</c> and one <c>lighterglue*.onnx</c>
/// (served as XFeat + LighterGlue without a manifest).
/// </summary>
public static class ModelLoader
{
    public static IPairMatcher Open(InferenceOptions options, int maxBatchSize)
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
            if (loaded.Family == ModelFamily.XFeatLighterGlue)
            {
                var file = Directory.Exists(options.ModelPath) ? Path.Combine(options.ModelPath, ModelManifest.FileName) : options.ModelPath;
                var xfeat = XFeatLighterGlueMatcher.Create(onnx, ModelManifest.Resolve(file, loaded.MatcherFile), loaded, options, maxBatchSize);
                xfeat.Graph = XFeatGraph(loaded);
                return xfeat;
            }

            var manifestFile = Directory.Exists(options.ModelPath) ? Path.Combine(options.ModelPath, ModelManifest.FileName) : options.ModelPath;
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
            throw new InvalidOperationException(e.Message, e);
        }
    }

    private static string XFeatGraph(ModelManifest manifest) => $"XFeat extractor {manifest.OnnxFile} + LighterGlue matcher {manifest.MatcherFile}, fp32";

    /// <summary>Writes the embedded model and its manifest into <paramref name="folder"/>, as a model folder to serve or inspect.</summary>
    public static string WriteEmbedded(string folder, int width, int height)
    {
        Directory.CreateDirectory(folder);
        var manifest = EmbeddedMatcherModel.Manifest(width, height) with { OnnxFile = "model.onnx" };
        File.WriteAllBytes(Path.Combine(folder, manifest.OnnxFile), EmbeddedMatcherModel.Build(width, height));
        var path = Path.Combine(folder, ModelManifest.FileName);
        manifest.Save(path);
        return path;
    }
}
