using Microsoft.Extensions.Options;

namespace VideoMatch.Engine.Batching;

/// <summary>How pairs from all streams are grouped into model runs. Bound from the <c>Batching</c> section.</summary>
public sealed class BatchingOptions
{
    public const string Section = "Batching";

    /// <summary>What an unset <see cref="MaxBatchSize"/> becomes on the CPU provider.</summary>
    public const int CpuDefault = 1;

    /// <summary>What an unset <see cref="MaxBatchSize"/> becomes on the CUDA provider.</summary>
    public const int CudaDefault = 8;

    /// <summary>
    /// A batch closes when it holds this many pairs. 0 (default): chosen for the execution provider at start
    /// (<see cref="ChooseFor"/>): <see cref="CpuDefault"/> on the CPU, <see cref="CudaDefault"/> on CUDA.
    /// </summary>
    public int MaxBatchSize { get; set; }

    /// <summary>Why <see cref="MaxBatchSize"/> has its value, for the start-up log; null when it was set.</summary>
    public string? MaxBatchSizeChoice { get; private set; }

    /// <summary>
    /// Gives an unset <see cref="MaxBatchSize"/> its value for the execution provider. On CPU cores a batch buys no
    /// speed (the convolutions already use every core: the same ms per pair at batch 1 and 8) and each pair of batch
    /// costs memory (about 0.55 GB at 640×480 on the embedded model), so the CPU gets batches of 1; a GPU needs
    /// batches to be busy.
    /// </summary>
    public void ChooseFor(bool cuda)
    {
        if (MaxBatchSize != 0)
        {
            return;
        }

        MaxBatchSize = cuda ? CudaDefault : CpuDefault;
        MaxBatchSizeChoice = cuda
            ? $"Batching:MaxBatchSize {CudaDefault}, the default on CUDA (a GPU needs batches to be busy); set it to change"
            : $"Batching:MaxBatchSize {CpuDefault}, the default on the CPU (batching buys no speed on CPU cores, and each pair of batch holds about 0.55 GB more at 640×480); set it to batch more";
    }

    /// <summary>
    /// These options for one model of several: its own <paramref name="maxBatchSize"/> when set, else this one (or, when
    /// this one was chosen for the provider rather than set, the choice for the model's provider).
    /// </summary>
    public BatchingOptions For(int? maxBatchSize, bool cuda)
    {
        var copy = new BatchingOptions
        {
            MaxBatchDelayMs = MaxBatchDelayMs,
            QueueCapacity = QueueCapacity,
            MaxBatchSize = maxBatchSize ?? (MaxBatchSizeChoice is null ? MaxBatchSize : 0),
        };
        copy.ChooseFor(cuda);
        return copy;
    }

    /// <summary>…or when its oldest pair has waited this long, in milliseconds. Default 5 ms.</summary>
    public double MaxBatchDelayMs { get; set; } = 5;

    /// <summary>
    /// Pairs waiting for a batch, over all streams. When full, a stream's next pair waits for room (its reader
    /// pauses, and HTTP/2 flow control slows that client). Default 64.
    /// </summary>
    public int QueueCapacity { get; set; } = 64;

    public TimeSpan MaxBatchDelay => TimeSpan.FromMilliseconds(MaxBatchDelayMs);
}

/// <summary>Checks <see cref="BatchingOptions"/> at start.</summary>
public sealed class BatchingOptionsValidator : IValidateOptions<BatchingOptions>
{
    /// <summary>The largest batch the batcher forms.</summary>
    public const int MaxBatchSize = 256;

    public ValidateOptionsResult Validate(string? name, BatchingOptions options)
    {
        var problems = new List<string>();
        // 0 (unset) was replaced by the provider's default before this runs (ChooseFor).
        SettingRange.Check(problems, "Batching:MaxBatchSize", options.MaxBatchSize, 1, MaxBatchSize, "pairs; 0 or unset: the execution provider's default");
        SettingRange.Check(problems, "Batching:MaxBatchDelayMs", options.MaxBatchDelayMs, 0, 10_000, "milliseconds");
        SettingRange.Check(problems, "Batching:QueueCapacity", options.QueueCapacity, 1, 65_536, "pairs");

        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}
