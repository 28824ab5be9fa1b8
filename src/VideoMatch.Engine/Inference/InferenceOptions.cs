using Microsoft.Extensions.Options;
using VideoMatch.Engine.Batching;

namespace VideoMatch.Engine.Inference;

/// <summary>Which model runs, and where. Bound from the <c>Inference</c> configuration section.</summary>
public sealed class InferenceOptions
{
    public const string Section = "Inference";

    /// <summary>
    /// Folder holding <c>videomatch-model.json</c> and its ONNX file, or the manifest file itself.
    /// Empty (the default): the embedded weight-free matcher, built in memory.
    /// </summary>
    public string ModelPath { get; set; } = "";

    /// <summary><c>cpu</c> (default) or <c>cuda</c>. A CUDA provider that cannot start stops the server; there is no fallback.</summary>
    public string ExecutionProvider { get; set; } = "cpu";

    /// <summary>GPU ordinal for <c>cuda</c>. Default 0.</summary>
    public int DeviceId { get; set; }

    /// <summary>ONNX Runtime intra-op threads on CPU; 0 lets ONNX Runtime choose (one per core).</summary>
    public int IntraOpThreads { get; set; }

    /// <summary>Embedded model input width in pixels, a multiple of 32. Default 640 (as EfficientLoFTR).</summary>
    public int EmbeddedWidth { get; set; } = 640;

    /// <summary>Embedded model input height in pixels, a multiple of 32. Default 480 (as EfficientLoFTR).</summary>
    public int EmbeddedHeight { get; set; } = 480;

    /// <summary>
    /// Run an exported model's self-check (its <c>selfcheck.safetensors</c>: PyTorch's outputs on known inputs) at start;
    /// a model that fails it never reports SERVING. Default true.
    /// </summary>
    public bool SelfCheck { get; set; } = true;

    /// <summary>Run the warm-up batches before reporting ready. Default true.</summary>
    public bool WarmUp { get; set; } = true;

    /// <summary>
    /// Batch sizes the warm-up runs, each once (ONNX Runtime's CUDA provider picks kernels per input shape, so
    /// every size clients will produce is worth a run). Empty (default): 1 and Batching:MaxBatchSize.
    /// </summary>
    public IList<int> WarmUpBatchSizes { get; } = [];

    /// <summary>
    /// <c>cpu</c>: keep ONNX Runtime's CPU memory arena (true, its default), which holds every buffer at its peak and
    /// grows it for each new batch size, or allocate per run and return memory after it (false). RSS for each in
    /// docs/BENCHMARKS.md ("Memory per batch size").
    /// </summary>
    public bool CpuMemoryArena { get; set; } = true;

    /// <summary>
    /// ONNX Runtime's memory pattern: plan each input shape's buffers as one block and keep it. Off by default: the
    /// batcher forms batches of every size, and with the pattern on each size's blocks stay in the arena (the default
    /// model at 640×480 and batches up to 8 reached 8.9 GB RSS with it, 4.7 GB without, and ran no faster).
    /// </summary>
    public bool CpuMemoryPattern { get; set; }

    /// <summary><c>cuda</c> only: the arena's limit in MiB (ONNX Runtime's <c>gpu_mem_limit</c>). 0 (default): no limit.</summary>
    public long GpuMemoryLimitMb { get; set; }

    /// <summary>
    /// <c>cuda</c> only: how cuDNN picks convolution algorithms: <c>Exhaustive</c> (default: benchmark all once
    /// per shape, the fastest), <c>Heuristic</c> (no benchmarking, faster start) or <c>Default</c>.
    /// </summary>
    public string CudnnConvAlgoSearch { get; set; } = "Exhaustive";

    /// <summary><c>cuda</c> only: prefer NHWC convolution kernels (tensor cores, fp16). Default false.</summary>
    public bool PreferNhwc { get; set; }

    /// <summary>
    /// <c>fp32</c> (default) or <c>fp16</c>: which graph of an exported model folder to serve (<c>model-fp16.onnx</c>,
    /// written by <c>export.py --fp16</c>; its matching and coordinates stay fp32). Meant for <c>cuda</c>; ONNX Runtime's
    /// CPU provider runs it too, without a speed-up.
    /// </summary>
    public string Precision { get; set; } = "fp32";

    /// <summary>
    /// Serve an export's stream split (<c>export.py --split</c>, fp32) when it has one: each frame is encoded once and
    /// its features kept in a frame bank for all its pairs. Default true; false serves the whole-pair graph.
    /// </summary>
    public bool UseSplit { get; set; } = true;

    /// <summary>Frame-bank slots of a split model (one frame's features each: 34 MB at 480×640). 0 (default): 4 × Batching:MaxBatchSize.</summary>
    public int FrameBankSlots { get; set; }

    /// <summary>
    /// With several models (<c>Models:&lt;name&gt;:Path</c>): the one a request that names none gets. Empty (default):
    /// the first model.
    /// </summary>
    public string DefaultModel { get; set; } = "";

    /// <summary>A copy, for one model of several to override what it sets itself.</summary>
    public InferenceOptions Copy() => (InferenceOptions)MemberwiseClone();

    /// <summary>True when <see cref="ExecutionProvider"/> names CUDA.</summary>
    public bool IsCuda => string.Equals(ExecutionProvider, "cuda", StringComparison.OrdinalIgnoreCase);
}

/// <summary>Checks <see cref="InferenceOptions"/> at start.</summary>
public sealed class InferenceOptionsValidator : IValidateOptions<InferenceOptions>
{
    private const int MaxDeviceId = 255;
    private const int MaxThreads = 1024;
    private const int MaxEmbeddedSide = 4096;
    private const long MaxGpuMemoryMb = 16L * 1024 * 1024;
    private const int MaxFrameBankSlots = 65536;
    private static readonly string[] CudnnSearches = ["Exhaustive", "Heuristic", "Default"];

    public ValidateOptionsResult Validate(string? name, InferenceOptions options)
    {
        var problems = new List<string>();
        if (!string.Equals(options.ExecutionProvider, "cpu", StringComparison.OrdinalIgnoreCase) && !options.IsCuda)
        {
            problems.Add($"Inference:ExecutionProvider must be 'cpu' or 'cuda' (got '{options.ExecutionProvider}').");
        }

        SettingRange.Check(problems, "Inference:DeviceId", options.DeviceId, 0, MaxDeviceId, "a GPU ordinal");
        SettingRange.Check(problems, "Inference:IntraOpThreads", options.IntraOpThreads, 0, MaxThreads, "0: automatic");
        SettingRange.Check(problems, "Inference:EmbeddedWidth", options.EmbeddedWidth, 32, MaxEmbeddedSide, "pixels, a multiple of 32");
        SettingRange.Check(problems, "Inference:EmbeddedHeight", options.EmbeddedHeight, 32, MaxEmbeddedSide, "pixels, a multiple of 32");
        if (string.IsNullOrEmpty(options.ModelPath) && (options.EmbeddedWidth % 32 != 0 || options.EmbeddedHeight % 32 != 0))
        {
            problems.Add($"Inference:EmbeddedWidth and EmbeddedHeight must be positive multiples of 32 (got {options.EmbeddedWidth}×{options.EmbeddedHeight}).");
        }

        SettingRange.Check(problems, "Inference:GpuMemoryLimitMb", options.GpuMemoryLimitMb, 0, MaxGpuMemoryMb, "0: no limit");

        if (!CudnnSearches.Contains(options.CudnnConvAlgoSearch, StringComparer.OrdinalIgnoreCase))
        {
            problems.Add($"Inference:CudnnConvAlgoSearch must be Exhaustive, Heuristic or Default (got '{options.CudnnConvAlgoSearch}').");
        }

        if (options.Precision is not ("fp32" or "fp16"))
        {
            problems.Add($"Inference:Precision must be 'fp32' or 'fp16' (got '{options.Precision}').");
        }

        SettingRange.Check(problems, "Inference:FrameBankSlots", options.FrameBankSlots, 0, MaxFrameBankSlots, "0: automatic");
        if (options.WarmUpBatchSizes.Any(size => size is <= 0 or > BatchingOptionsValidator.MaxBatchSize))
        {
            problems.Add($"Inference:WarmUpBatchSizes must hold positive batch sizes of at most {BatchingOptionsValidator.MaxBatchSize} (got {string.Join(", ", options.WarmUpBatchSizes)}).");
        }

        if (!string.IsNullOrEmpty(options.ModelPath) && !File.Exists(options.ModelPath) && !Directory.Exists(options.ModelPath))
        {
            var full = Path.GetFullPath(options.ModelPath);
            problems.Add(full == options.ModelPath
                ? $"Inference:ModelPath '{options.ModelPath}' does not exist; give a model folder or leave it empty for the embedded model."
                : $"Inference:ModelPath '{options.ModelPath}' does not exist (resolved against the working directory {Environment.CurrentDirectory} to {full}); give a model folder or leave it empty for the embedded model.");
        }

        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}
