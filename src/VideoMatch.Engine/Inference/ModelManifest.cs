using System.Text.Json;
using System.Text.Json.Serialization;

namespace VideoMatch.Engine.Inference;

/// <summary>How the model's input tensor holds pixels.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<InputElementType>))]
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1720", Justification = "The names are the ONNX element types they stand for.")]
public enum InputElementType
{
    /// <summary>float32 in [0, 1] (the Hugging Face processor's output).</summary>
    Float32,

    /// <summary>uint8 in [0, 255]; the graph scales it (a quarter of the host-to-device bytes).</summary>
    UInt8,
}

/// <summary>What the dense outputs' slots mean.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<OutputLayout>))]
public enum OutputLayout
{
    /// <summary>
    /// Slot n is image-0 cell n: matches[b,0,n] is the matched image-1 cell or −1, and keypoints[b,0,n] ↔
    /// keypoints[b,1,n] is the matched pair of refined points. Pair-consistent by construction.
    /// </summary>
    PairSlots,

    /// <summary>
    /// keypoints[b,k,n] is the point of cell n in image k; matches[b,0,n] is the image-1 cell matched to image-0
    /// cell n or −1, so the pair is keypoints[b,0,n] ↔ keypoints[b,1,matches[b,0,n]].
    /// </summary>
    CellIndex,

    /// <summary>
    /// Hugging Face's own rows (an export made with <c>--hf-compat</c> for parity checks): row 0 per image-1 cell, row 1
    /// per image-0 cell, paired by position, which is wrong whenever match order is not kept. Never served.
    /// </summary>
    HuggingFaceRows,
}

/// <summary>Which kind of model a manifest describes.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ModelFamily>))]
public enum ModelFamily
{
    /// <summary>
    /// A dense matcher (EfficientLoFTR's contract): a whole-pair graph, and optionally its stream split, an encoder
    /// run once per frame into a frame bank and a matcher run per pair.
    /// </summary>
    Dense,

    /// <summary>A keypoint extractor (XFeat, run once per frame) and a keypoint matcher (LighterGlue, run per pair).</summary>
    XFeatLighterGlue,
}

/// <summary>What frames the model takes: size and pixel format (the graphs' tensors are in <see cref="ModelManifest.Graphs"/>).</summary>
public sealed record ModelInputManifest
{
    public int Width { get; init; }

    public int Height { get; init; }

    /// <summary>1 (gray) or 3 (gray replicated, as the Hugging Face processor emits).</summary>
    public int Channels { get; init; } = 1;

    public InputElementType ElementType { get; init; } = InputElementType.Float32;

    /// <summary>
    /// Rotate frames whose orientation differs from the input's (a landscape frame for a portrait input) by 90°
    /// clockwise before resizing, so they fill the input instead of being squeezed; points are rotated back.
    /// </summary>
    public bool RotateToFit { get; init; }
}

/// <summary>How to read a dense model's outputs.</summary>
public sealed record ModelOutputManifest
{
    public OutputLayout Layout { get; init; } = OutputLayout.PairSlots;
}

/// <summary>What tools/export records about an export: its source, options and self-check.</summary>
public sealed record ExportManifest
{
    /// <summary>Exporter and version, e.g. "videomatch_export 1.0.0".</summary>
    public string Tool { get; init; } = "";

    /// <summary>PyTorch version the module ran on.</summary>
    public string Torch { get; init; } = "";

    /// <summary>The checkpoint folder exported (as given on the exporting machine).</summary>
    public string Checkpoint { get; init; } = "";

    public string CheckpointSha256 { get; init; } = "";

    /// <summary>sha256 of the architecture keys of config.json (canonical JSON).</summary>
    public string ConfigSha256 { get; init; } = "";

    /// <summary>The export's options (height, width, topK, fp16, hfCompat, fused).</summary>
    public Dictionary<string, JsonElement> Options { get; init; } = [];

    /// <summary>Inputs and PyTorch outputs to check the export against (<c>videomatch verify</c>), relative to the manifest.</summary>
    public string SelfCheck { get; init; } = "";

    /// <summary>How long the export took, in seconds.</summary>
    public double Seconds { get; init; }
}

/// <summary>
/// The file <c>videomatch-model.json</c> of a model folder: its family, what frames it takes, every graph with its
/// tensors (<see cref="Graphs"/>, the contract the sessions are checked against), and how to read the outputs.
/// </summary>
/// <remarks>
/// Dense outputs: matches int64 (B, 2, N), scores float (B, 2, N) and keypoints float (B, 2, N, 2) normalised as
/// (x / W, y / H) with x, y in model-input pixel-index coordinates; N = (H / stride)(W / stride).
/// </remarks>
public sealed record ModelManifest
{
    /// <summary>The manifest's file name inside a model folder.</summary>
    public const string FileName = "videomatch-model.json";

    /// <summary>Largest manifest read: a real one is a few kilobytes.</summary>
    public const int MaxManifestBytes = 1 << 20;

    public string Name { get; init; } = "";

    public ModelFamily Family { get; init; } = ModelFamily.Dense;

    /// <summary>
    /// Every graph of the folder: role, precision (<c>fp32</c>, <c>fp16</c>), file relative to the manifest, and each
    /// input and output. Dense: a <c>pair</c> graph, and an <c>encoder</c> with a <c>matcher</c> for the stream split,
    /// per precision. XFeat + LighterGlue: an <c>extractor</c> and a <c>matcher</c>.
    /// </summary>
    public IReadOnlyList<GraphSpec> Graphs { get; init; } = [];

    /// <summary>XFeat + LighterGlue only: most keypoints the extractor returns per frame.</summary>
    public int MaxKeypoints { get; init; }

    /// <summary>Dense only: most matches the model returns per pair (an export's <c>--top-k</c>); 0: one per coarse cell.</summary>
    public int MaxMatches { get; init; }

    /// <summary>Where an exported model came from and how to check it (written by tools/export); null for other models.</summary>
    public ExportManifest? Export { get; init; }

    public ModelInputManifest Input { get; init; } = new();

    public ModelOutputManifest Outputs { get; init; } = new();

    /// <summary>Score threshold used when a stream sets none.</summary>
    public float DefaultThreshold { get; init; } = 0.2f;

    /// <summary>Coarse cell size in input pixels.</summary>
    public int CoarseStride { get; init; } = 8;

    /// <summary>The manifest file this was read from (<see cref="Load"/>); empty for a manifest made in code.</summary>
    [JsonIgnore]
    public string SourceFile { get; init; } = "";

    /// <summary>The graph of <paramref name="role"/> at <paramref name="precision"/>, or null when the folder has none.</summary>
    public GraphSpec? Graph(GraphRole role, string precision = "fp32") => Graphs.FirstOrDefault(g => g.Role == role && g.Precision == precision);

    /// <summary>Whether the folder has the stream split (an encoder and a matcher) at <paramref name="precision"/>.</summary>
    public bool HasSplit(string precision = "fp32") => Family == ModelFamily.Dense && Graph(GraphRole.Encoder, precision) is not null && Graph(GraphRole.Matcher, precision) is not null;

    /// <summary>Slots per pair in the outputs.</summary>
    [JsonIgnore]
    public int Cells => Input.Width / CoarseStride * (Input.Height / CoarseStride);

    /// <summary>Most matches one pair can produce.</summary>
    [JsonIgnore]
    public int MaxMatchesPerPair => Family == ModelFamily.Dense ? (MaxMatches > 0 ? Math.Min(MaxMatches, Cells) : Cells) : MaxKeypoints;

    /// <summary>
    /// Default track-linking radius in model-input pixels: half a coarse cell for dense matchers (image-0 points
    /// lie on the coarse grid, image-1 points do not), one pixel for detectors (a frame's points are the same in
    /// both of its pairs).
    /// </summary>
    [JsonIgnore]
    public float TrackRadiusModelPx => Family == ModelFamily.Dense ? CoarseStride / 2f : 1f;

    internal static readonly JsonSerializerOptions JsonOptions = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        ReadCommentHandling = JsonCommentHandling.Skip,
        AllowTrailingCommas = true,
        WriteIndented = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    /// <summary>Reads and checks a manifest; <paramref name="path"/> is the manifest file or its folder.</summary>
    /// <exception cref="InvalidDataException">The manifest is missing, unreadable or inconsistent; the message says why.</exception>
    public static ModelManifest Load(string path)
    {
        var file = Directory.Exists(path) ? Path.Combine(path, FileName) : path;
        if (!File.Exists(file) && Directory.Exists(path) && File.Exists(Path.Combine(path, "config.json"))
            && (File.Exists(Path.Combine(path, "model.safetensors")) || File.Exists(Path.Combine(path, "pytorch_model.bin"))))
        {
            throw new InvalidDataException($"'{path}' is a Hugging Face checkpoint (config.json and its weights), not a model folder: export it first with /usr/bin/python3 tools/export/export.py --checkpoint {path} --out models/NAME, and use models/NAME.");
        }

        if (!Directory.Exists(path) && !File.Exists(path))
        {
            throw new InvalidDataException($"'{path}' does not exist: give a model folder written by tools/export/export.py, or one holding one xfeat*.onnx and one lighterglue*.onnx.");
        }

        if (!File.Exists(file))
        {
            throw new InvalidDataException($"'{path}' holds no {FileName}: give a model folder written by tools/export/export.py, or one holding one xfeat*.onnx and one lighterglue*.onnx.");
        }

        var length = new FileInfo(file).Length;
        if (length is 0 or > MaxManifestBytes)
        {
            throw new InvalidDataException($"Model manifest '{file}' is {(length == 0 ? "empty or not a regular file (a device or a FIFO)" : $"{length} bytes, more than a manifest's {MaxManifestBytes}")}: export the model again.");
        }

        ModelManifest? manifest;
        try
        {
            var text = File.ReadAllText(file);
            using (var document = JsonDocument.Parse(text, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }))
            {
                if (document.RootElement.ValueKind == JsonValueKind.Object && !document.RootElement.TryGetProperty("graphs", out _))
                {
                    throw new InvalidDataException($"Model manifest '{file}' describes no graphs: it was written by an exporter older than the graph contract. Export the model again with tools/export/export.py (or write the folder again with ModelLoader.WriteEmbedded).");
                }
            }

            manifest = JsonSerializer.Deserialize<ModelManifest>(text, JsonOptions);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Model manifest '{file}' is not valid: {e.Message}", e);
        }

        if (manifest is null)
        {
            throw new InvalidDataException($"Model manifest '{file}' is empty.");
        }

        manifest.Validate(file);
        foreach (var graph in manifest.Graphs)
        {
            Resolve(file, graph.File, $"{graph.Role.ToString().ToLowerInvariant()} graph");
        }

        return manifest with { SourceFile = Path.GetFullPath(file) };
    }

    /// <summary>
    /// The full path of <paramref name="relative"/> in the folder of manifest file <paramref name="file"/>. A model
    /// folder is trusted only as far as it checks out: the name must stay inside the folder (no absolute path, no
    /// <c>..</c> out of it, no link whose target lies outside), and the file must be a regular file with content, so a
    /// device (<c>/dev/zero</c>) or a FIFO is never read.
    /// </summary>
    /// <param name="what">What the file is, for the message: "ONNX file", "self-check file".</param>
    /// <exception cref="InvalidDataException">The name leaves the folder, or the file is missing, empty or not regular.</exception>
    public static string Resolve(string file, string relative, string what = "ONNX file")
    {
        var folder = Path.GetDirectoryName(Path.GetFullPath(file))!;
        var path = Path.GetFullPath(relative, folder);
        var problem = FileProblem(folder, relative, path);
        return problem is null ? path : throw new InvalidDataException($"Model manifest '{file}' names {what} '{relative}', which {problem}.");
    }

    /// <summary>Why <paramref name="path"/> (named <paramref name="relative"/> in <paramref name="folder"/>) may not be read as a model file, or null.</summary>
    private static string? FileProblem(string folder, string relative, string path)
    {
        if (string.IsNullOrWhiteSpace(relative))
        {
            return "is empty";
        }

        if (Path.IsPathRooted(relative) || !Inside(folder, path))
        {
            return "lies outside the model folder: name files relative to the manifest, inside its folder";
        }

        var info = new FileInfo(path);
        if (!info.Exists)
        {
            return Directory.Exists(path) ? "is a folder, not a file" : "does not exist";
        }

        if (info.LinkTarget is not null)
        {
            var target = info.ResolveLinkTarget(returnFinalTarget: true);
            if (target is null || !target.Exists)
            {
                return "is a link to nothing";
            }

            if (!Inside(folder, target.FullName))
            {
                return $"is a link to '{target.FullName}', outside the model folder";
            }

            info = new FileInfo(target.FullName);
        }

        // A FIFO, a socket and a device all report no length: nothing a model file can be.
        return info.Length == 0 ? "is empty or not a regular file (a device or a FIFO)" : null;
    }

    private static bool Inside(string folder, string path) =>
        path.StartsWith(Path.TrimEndingDirectorySeparator(folder) + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    /// <summary>
    /// The self-check file of a dense model folder (tools/export writes one; the server and <c>videomatch verify</c>
    /// require it), checked as every file the manifest names.
    /// </summary>
    /// <exception cref="InvalidDataException">The manifest names none, or the file it names may not be read.</exception>
    public string SelfCheckPath(string file)
    {
        if (Export is not { SelfCheck.Length: > 0 } export)
        {
            throw new InvalidDataException($"Model manifest '{file}' names no self-check (export.selfCheck), so nothing shows that its graphs compute what the manifest says: export the model again with tools/export/export.py, which writes one.");
        }

        return Resolve(file, export.SelfCheck, "self-check file");
    }

    /// <summary>The full path of <paramref name="graph"/>'s file, checked as <see cref="Resolve"/> checks every file.</summary>
    /// <exception cref="InvalidDataException">The file may not be read.</exception>
    public string PathOf(GraphSpec graph) => Resolve(SourceFile, graph.File, $"{graph.Role.ToString().ToLowerInvariant()} graph");

    /// <summary>Writes this manifest as JSON.</summary>
    public void Save(string file) => File.WriteAllText(file, JsonSerializer.Serialize(this, JsonOptions));

    internal void Validate(string source)
    {
        var problems = new List<string>();
        if (string.IsNullOrWhiteSpace(Name))
        {
            problems.Add("name is empty");
        }

        if (Graphs is null || Input is null || Outputs is null)
        {
            throw new InvalidDataException($"Model manifest '{source}' is not valid: graphs, input and outputs may not be null.");
        }

        if (Family == ModelFamily.XFeatLighterGlue)
        {
            if (Input.Width <= 0 || Input.Height <= 0)
            {
                problems.Add($"input width and height must be positive (got {Input.Width}×{Input.Height})");
            }

            if (MaxKeypoints <= 0)
            {
                problems.Add($"maxKeypoints must be positive (got {MaxKeypoints})");
            }
        }
        else if (CoarseStride <= 0)
        {
            problems.Add($"coarseStride must be positive (got {CoarseStride})");
        }
        else if (Input.Width <= 0 || Input.Height <= 0 || Input.Width % CoarseStride != 0 || Input.Height % CoarseStride != 0)
        {
            problems.Add($"input width and height must be positive multiples of coarseStride {CoarseStride} (got {Input.Width}×{Input.Height})");
        }

        if (MaxMatches < 0)
        {
            problems.Add($"maxMatches must be 0 (one per cell) or more (got {MaxMatches})");
        }

        if (Input.Channels is not (1 or 3))
        {
            problems.Add($"input channels must be 1 or 3 (got {Input.Channels})");
        }

        if (!(DefaultThreshold >= 0f && DefaultThreshold < 1f))
        {
            problems.Add($"defaultThreshold must be in [0, 1) (got {DefaultThreshold})");
        }

        if (problems.Count == 0)
        {
            ValidateGraphs(problems);
        }

        if (problems.Count > 0)
        {
            throw new InvalidDataException($"Model manifest '{source}' is not valid: {string.Join("; ", problems)}.");
        }
    }

    /// <summary>The graphs against the family's contract and the input section: roles, tensor counts, and the sizes the server relies on.</summary>
    private void ValidateGraphs(List<string> problems)
    {
        foreach (var (graph, i) in Graphs.Select((g, i) => (g, i)))
        {
            if (graph is null || graph.File is null || graph.Inputs is null || graph.Outputs is null
                || graph.Inputs.Concat(graph.Outputs).Any(t => t is null || string.IsNullOrEmpty(t.Name) || t.Shape is null) || graph.Precision is not ("fp32" or "fp16"))
            {
                problems.Add($"graphs[{i}] needs a role, precision fp32 or fp16, a file, and inputs and outputs each with a name, dtype and shape");
                return;
            }
        }

        var duplicate = Graphs.GroupBy(g => (g.Role, g.Precision)).FirstOrDefault(group => group.Count() > 1);
        if (duplicate is not null)
        {
            problems.Add($"graphs name two {duplicate.Key.Role.ToString().ToLowerInvariant()} graphs at {duplicate.Key.Precision}");
        }

        if (Family == ModelFamily.XFeatLighterGlue)
        {
            Expect(Graph(GraphRole.Extractor), "an extractor graph (fp32)", 1, 2, problems);
            Expect(Graph(GraphRole.Matcher), "a matcher graph (fp32)", 4, 2, problems);
            return;
        }

        if (Expect(Graph(GraphRole.Pair), "a pair graph (fp32)", 1, 3, problems) is null)
        {
            return;
        }

        var pixels = Input.ElementType == InputElementType.UInt8 ? TensorType.UInt8 : TensorType.Float32;
        foreach (var precision in new[] { "fp32", "fp16" })
        {
            if (Graph(GraphRole.Pair, precision) is { } pair)
            {
                ExpectPixels(pair, pair.Inputs[0], pixels, [2, Input.Channels, Input.Height, Input.Width], problems);
                ExpectDenseOutputs(pair, problems);
            }

            var encoder = Graph(GraphRole.Encoder, precision);
            var matcher = Graph(GraphRole.Matcher, precision);
            if ((encoder is null) != (matcher is null))
            {
                problems.Add($"the stream split at {precision} needs both an encoder and a matcher graph");
                continue;
            }

            if (encoder is null || matcher is null || Expect(encoder, "", 1, -1, problems) is null || Expect(matcher, "", encoder.Outputs.Count + 1, 3, problems) is null)
            {
                continue;
            }

            ExpectPixels(encoder, encoder.Inputs[0], TensorType.UInt8, [1, Input.Height, Input.Width], problems);
            for (var f = 0; f < encoder.Outputs.Count; f++)
            {
                var (feature, bank) = (encoder.Outputs[f], matcher.Inputs[f]);
                if (feature.Shape.Count < 2 || !feature.Shape.Skip(1).SequenceEqual(bank.Shape.Skip(1)) || feature.Shape.Skip(1).Any(d => d.IsNamed)
                    || feature.Dtype != TensorType.Float32 || bank.Dtype != TensorType.Float32)
                {
                    problems.Add($"matcher input {bank} must be a bank of encoder output {feature} (float32, the same static sizes after the first dimension)");
                }
            }

            if (matcher.Inputs[^1] is { Dtype: TensorType.Int64, Shape: [{ IsNamed: true }, { Size: 2 }] } == false)
            {
                problems.Add($"the matcher's last input {matcher.Inputs[^1]} must be the pairs' slot numbers, int64 [batch, 2]");
            }

            ExpectDenseOutputs(matcher, problems);
        }
    }

    private static GraphSpec? Expect(GraphSpec? graph, string what, int inputs, int outputs, List<string> problems)
    {
        if (graph is null)
        {
            problems.Add($"graphs has no {what}");
            return null;
        }

        if (graph.Inputs.Count != inputs || (outputs >= 0 && graph.Outputs.Count < outputs) || graph.Outputs.Count == 0)
        {
            problems.Add($"the {graph.Role.ToString().ToLowerInvariant()} graph {graph.File} must have {inputs} inputs and {(outputs >= 0 ? $"{outputs}" : "some")} outputs (has {graph.Inputs.Count} and {graph.Outputs.Count})");
            return null;
        }

        return graph;
    }

    private static void ExpectPixels(GraphSpec graph, TensorSpec tensor, TensorType dtype, long[] sizes, List<string> problems)
    {
        if (tensor.Dtype != dtype || tensor.Shape.Count != sizes.Length + 1 || !tensor.Shape[0].IsNamed || !tensor.Shape.Skip(1).Select(d => d.Size).SequenceEqual(sizes))
        {
            problems.Add($"{graph.File} input {tensor} does not fit the input section: expected {dtype.ToString().ToLowerInvariant()} [batch, {string.Join(", ", sizes)}]");
        }
    }

    private void ExpectDenseOutputs(GraphSpec graph, List<string> problems)
    {
        long cells = Cells;
        (TensorType Dtype, long[] Sizes)[] expected = [(TensorType.Int64, [2, cells]), (TensorType.Float32, [2, cells]), (TensorType.Float32, [2, cells, 2])];
        for (var o = 0; o < expected.Length; o++)
        {
            var tensor = graph.Outputs[o];
            if (tensor.Dtype != expected[o].Dtype || tensor.Shape.Count != expected[o].Sizes.Length + 1 || !tensor.Shape[0].IsNamed || !tensor.Shape.Skip(1).Select(d => d.Size).SequenceEqual(expected[o].Sizes))
            {
                problems.Add($"{graph.File} output {o} {tensor} must be {expected[o].Dtype.ToString().ToLowerInvariant()} [batch, {string.Join(", ", expected[o].Sizes)}] ({cells} cells of {Input.Width}×{Input.Height} at stride {CoarseStride})");
            }
        }
    }
}
