using VideoMatch.Engine.Models;

namespace VideoMatch.Engine.Inference;

/// <summary>Opens the configured model: a manifest folder, or the embedded matcher when none is set.</summary>
public static class ModelLoader
{
    public static OnnxPairMatcher Open(InferenceOptions options, int maxBatchSize)
    {
        if (string.IsNullOrEmpty(options.ModelPath))
        {
            var manifest = EmbeddedMatcherModel.Manifest(options.EmbeddedWidth, options.EmbeddedHeight);
            return OnnxPairMatcher.Create(EmbeddedMatcherModel.Build(options.EmbeddedWidth, options.EmbeddedHeight), manifest, options, maxBatchSize);
        }

        ModelManifest loaded;
        string onnx;
        try
        {
            (loaded, onnx) = ModelManifest.Load(options.ModelPath);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidOperationException(e.Message, e);
        }

        return OnnxPairMatcher.Create(File.ReadAllBytes(onnx), loaded, options, maxBatchSize);
    }

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
