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
    /// <summary>One dense pair matcher (EfficientLoFTR's contract, see <see cref="ModelManifest"/>).</summary>
    Dense,

    /// <summary>
    /// XFeat sparse extractor (<see cref="ModelManifest.OnnxFile"/>, run once per frame) and LighterGlue matcher
    /// (<see cref="ModelManifest.MatcherFile"/>, run per pair).
    /// </summary>
    XFeatLighterGlue,
}

/// <summary>The model's input tensor.</summary>
public sealed record ModelInputManifest
{
    public string Name { get; init; } = "pixel_values";

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

/// <summary>The model's output tensors.</summary>
public sealed record ModelOutputManifest
{
    public string Matches { get; init; } = "matches";

    public string Scores { get; init; } = "matching_scores";

    public string Keypoints { get; init; } = "keypoints";

    public OutputLayout Layout { get; init; } = OutputLayout.PairSlots;
}

/// <summary>
/// The stream split of a dense model: <see cref="EncoderFile"/> maps uint8 frames (F, 1, H, W) to per-frame features
/// (outputs <c>stage1</c>, <c>stage2</c>, <c>coarse0</c>); <see cref="MatcherFile"/> takes a bank of those features
/// (inputs <c>bank_stage1</c>, <c>bank_stage2</c>, <c>bank_coarse0</c>, S slots) and <c>pairs</c> (B, 2) slot numbers and
/// returns the model's usual outputs. Both relative to the manifest.
/// </summary>
public sealed record SplitManifest
{
    public string EncoderFile { get; init; } = "";

    public string MatcherFile { get; init; } = "";
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
/// The file <c>videomatch-model.json</c> beside a dense pair-matcher ONNX model: how to feed it and how to read it.
/// </summary>
/// <remarks>
/// Contract: input (B, 2, C, H, W), both images of pair b in dim 1; outputs matches int64 (B, 2, N),
/// scores float (B, 2, N) and keypoints float (B, 2, N, 2) normalised as (x / W, y / H) with x, y in
/// model-input pixel-index coordinates; N = (H / stride)(W / stride).
/// </remarks>
public sealed record ModelManifest
{
    /// <summary>The manifest's file name inside a model folder.</summary>
    public const string FileName = "videomatch-model.json";

    /// <summary>Largest manifest read: a real one is a few kilobytes.</summary>
    public const int MaxManifestBytes = 1 << 20;

    public string Name { get; init; } = "";

    public ModelFamily Family { get; init; } = ModelFamily.Dense;

    /// <summary>The ONNX file, relative to the manifest (for XFeat + LighterGlue: the extractor).</summary>
    public string OnnxFile { get; init; } = "model.onnx";

    /// <summary>XFeat + LighterGlue only: the matcher's ONNX file, relative to the manifest.</summary>
    public string MatcherFile { get; init; } = "";

    /// <summary>XFeat + LighterGlue only: most keypoints the extractor returns per frame.</summary>
    public int MaxKeypoints { get; init; }

    /// <summary>Dense only: an fp16 variant of <see cref="OnnxFile"/> (same inputs and outputs), relative to the manifest; empty: none.</summary>
    public string OnnxFileFp16 { get; init; } = "";

    /// <summary>Dense only: most matches the model returns per pair (an export's <c>--top-k</c>); 0: one per coarse cell.</summary>
    public int MaxMatches { get; init; }

    /// <summary>Dense only: the stream split (<c>export.py --split</c>), a per-frame encoder and a bank-reading pair matcher; null: none.</summary>
    public SplitManifest? Split { get; init; }

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
    public static (ModelManifest Manifest, string OnnxPath) Load(string path)
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
            manifest = JsonSerializer.Deserialize<ModelManifest>(File.ReadAllText(file), JsonOptions);
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
        var onnx = Resolve(file, manifest.OnnxFile);
        if (manifest.Family == ModelFamily.XFeatLighterGlue)
        {
            Resolve(file, manifest.MatcherFile);
        }

        return (manifest with { SourceFile = Path.GetFullPath(file) }, onnx);
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

    /// <summary>Writes this manifest as JSON.</summary>
    public void Save(string file) => File.WriteAllText(file, JsonSerializer.Serialize(this, JsonOptions));

    internal void Validate(string source)
    {
        var problems = new List<string>();
        if (string.IsNullOrWhiteSpace(Name))
        {
            problems.Add("name is empty");
        }

        if (Family == ModelFamily.XFeatLighterGlue)
        {
            if (Input.Width <= 0 || Input.Height <= 0)
            {
                problems.Add($"input width and height must be positive (got {Input.Width}×{Input.Height})");
            }

            if (string.IsNullOrWhiteSpace(MatcherFile))
            {
                problems.Add("matcherFile (the LighterGlue ONNX file) is empty");
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

        if (problems.Count > 0)
        {
            throw new InvalidDataException($"Model manifest '{source}' is not valid: {string.Join("; ", problems)}.");
        }
    }
}
