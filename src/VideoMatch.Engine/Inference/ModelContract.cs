using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML.OnnxRuntime;

namespace VideoMatch.Engine.Inference;

/// <summary>Element types of the contract's tensors (the manifest writes them in lower case, as numpy does).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<TensorType>))]
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1720", Justification = "The names are the element types they stand for.")]
public enum TensorType
{
    [JsonStringEnumMemberName("uint8")]
    UInt8,

    [JsonStringEnumMemberName("int64")]
    Int64,

    [JsonStringEnumMemberName("float32")]
    Float32,

    [JsonStringEnumMemberName("float16")]
    Float16,
}

/// <summary>What a graph does in its family; the order of its tensors means what the contract says (tools/export/README.md).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<GraphRole>))]
public enum GraphRole
{
    /// <summary>Dense, whole pair: inputs [pixels (B, 2, C, H, W)]; outputs [matches (B, 2, N), scores (B, 2, N), keypoints (B, 2, N, 2)].</summary>
    [JsonStringEnumMemberName("pair")]
    Pair,

    /// <summary>Dense split, per frame: inputs [frames (F, 1, H, W) uint8]; outputs [one per-frame feature each (F, ...)].</summary>
    [JsonStringEnumMemberName("encoder")]
    Encoder,

    /// <summary>
    /// Dense split: inputs [a bank (S, ...) of each encoder output, in order; pairs (B, 2) slot numbers]; outputs as
    /// <see cref="Pair"/>. XFeat + LighterGlue: inputs [keypoints0, keypoints1, descriptors0, descriptors1]; outputs [matches (M, 2), scores (M)].
    /// </summary>
    [JsonStringEnumMemberName("matcher")]
    Matcher,

    /// <summary>Keypoint extractor, per frame: inputs [image]; outputs [keypoints (K, 2), descriptors (K, D), ...].</summary>
    [JsonStringEnumMemberName("extractor")]
    Extractor,
}

/// <summary>One dimension of a tensor's shape: a size, or a name for a size that varies (batch, frames, slots).</summary>
[JsonConverter(typeof(DimensionConverter))]
public readonly record struct Dimension(long Size, string? Name = null)
{
    public bool IsNamed => Name is not null;

    public static implicit operator Dimension(long size) => new(size);

    public static implicit operator Dimension(string name) => new(-1, name);

    public override string ToString() => Name ?? Size.ToString(CultureInfo.InvariantCulture);

    private sealed class DimensionConverter : JsonConverter<Dimension>
    {
        public override Dimension Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.TokenType switch
        {
            JsonTokenType.Number when reader.TryGetInt64(out var size) && size > 0 => new Dimension(size),
            JsonTokenType.String when reader.GetString() is { Length: > 0 } name => new Dimension(-1, name),
            _ => throw new JsonException("a dimension is a positive size or the name of one that varies"),
        };

        public override void Write(Utf8JsonWriter writer, Dimension value, JsonSerializerOptions options)
        {
            if (value.Name is { } name)
            {
                writer.WriteStringValue(name);
            }
            else
            {
                writer.WriteNumberValue(value.Size);
            }
        }
    }
}

/// <summary>One input or output of a graph.</summary>
public sealed record TensorSpec(string Name, TensorType Dtype, IReadOnlyList<Dimension> Shape)
{
    public override string ToString() => $"'{Name}' {Dtype.ToString().ToLowerInvariant()} [{string.Join(", ", Shape)}]";

    /// <summary>The shape without its first (varying) dimension, as sizes; throws unless they are all static.</summary>
    public long[] TrailingSizes() =>
        Shape.Skip(1).Select(d => d.IsNamed ? throw new InvalidDataException($"tensor {this} must have static sizes after its first dimension") : d.Size).ToArray();
}

/// <summary>
/// One graph of a model folder as <c>videomatch-model.json</c> describes it: role, precision, file (relative to the
/// manifest) and each tensor. The server checks every session against it once (<see cref="Check"/>), and the
/// matchers feed and read tensors by the names here, never by names of their own.
/// </summary>
public sealed record GraphSpec(GraphRole Role, string Precision, string File, IReadOnlyList<TensorSpec> Inputs, IReadOnlyList<TensorSpec> Outputs)
{
    /// <summary>
    /// Throws unless <paramref name="session"/> has every input and output named here, with the element type and the
    /// shape (a named dimension must vary in the session; a size must equal the session's, or the session's may vary),
    /// and needs no input that is not named here.
    /// </summary>
    /// <exception cref="InvalidOperationException">The graph and its manifest disagree; the message names each tensor, what was expected and what was found.</exception>
    public void Check(InferenceSession session, string model)
    {
        var problems = new List<string>();
        Compare("input", Inputs, session.InputMetadata, problems);
        Compare("output", Outputs, session.OutputMetadata, problems);
        foreach (var name in session.InputMetadata.Keys.Where(name => Inputs.All(t => t.Name != name)))
        {
            problems.Add($"it needs input '{name}', which the manifest does not name");
        }

        if (problems.Count > 0)
        {
            throw new InvalidOperationException($"Model '{model}': graph {File} does not match its manifest: {string.Join("; ", problems)}.");
        }
    }

    private static void Compare(string side, IReadOnlyList<TensorSpec> expected, IReadOnlyDictionary<string, NodeMetadata> found, List<string> problems)
    {
        foreach (var tensor in expected)
        {
            if (!found.TryGetValue(tensor.Name, out var actual))
            {
                problems.Add($"it has no {side} '{tensor.Name}' ({side}s: {string.Join(", ", found.Keys)})");
                continue;
            }

            var dims = actual.Dimensions;
            var fits = actual.ElementType == ClrType(tensor.Dtype) && dims.Length == tensor.Shape.Count
                && tensor.Shape.Select((d, i) => d.IsNamed ? dims[i] <= 0 : dims[i] <= 0 || dims[i] == d.Size).All(ok => ok);
            if (!fits)
            {
                problems.Add($"{side} '{tensor.Name}': the manifest says {tensor.Dtype.ToString().ToLowerInvariant()} [{string.Join(", ", tensor.Shape)}], the graph has {actual.ElementType.Name} [{string.Join(", ", dims.Select(d => d <= 0 ? "?" : d.ToString(CultureInfo.InvariantCulture)))}]");
            }
        }
    }

    private static Type ClrType(TensorType type) => type switch
    {
        TensorType.UInt8 => typeof(byte),
        TensorType.Int64 => typeof(long),
        TensorType.Float16 => typeof(Float16),
        _ => typeof(float),
    };
}

/// <summary>
/// The contracts of the graphs the server builds or finds itself (the embedded model, published XFeat + LighterGlue
/// files): the one C# place that names tensors. Exported folders carry theirs in the manifest, written by
/// tools/export/videomatch_export/contract.py.
/// </summary>
public static class ModelContracts
{
    /// <summary>A dense whole-pair graph of <paramref name="cells"/> slots.</summary>
    public static GraphSpec DensePair(string file, int width, int height, int channels, TensorType pixels, int cells) => new(GraphRole.Pair, "fp32", file,
        [new("pixel_values", pixels, ["batch", 2, channels, height, width])],
        [new("matches", TensorType.Int64, ["batch", 2, cells]), new("matching_scores", TensorType.Float32, ["batch", 2, cells]),
            new("keypoints", TensorType.Float32, ["batch", 2, cells, 2])]);

    /// <summary>The published XFeat extractor (input <paramref name="image"/> [1, 3, H, W]) and LighterGlue matcher.</summary>
    public static (GraphSpec Extractor, GraphSpec Matcher) XFeat(string extractorFile, string image, int width, int height, string matcherFile, int descriptorLength = 64) => (
        new(GraphRole.Extractor, "fp32", extractorFile,
            [new(image, TensorType.Float32, [1, 3, height, width])],
            [new("keypoints", TensorType.Float32, ["keypoints", 2]), new("descriptors", TensorType.Float32, ["keypoints", descriptorLength])]),
        new(GraphRole.Matcher, "fp32", matcherFile,
            [new("kpts0", TensorType.Float32, [1, "keypoints0", 2]), new("kpts1", TensorType.Float32, [1, "keypoints1", 2]),
                new("desc0", TensorType.Float32, [1, "keypoints0", descriptorLength]), new("desc1", TensorType.Float32, [1, "keypoints1", descriptorLength])],
            [new("matches", TensorType.Int64, ["matches", 2]), new("scores", TensorType.Float32, ["matches"])]));
}
