namespace VideoMatch.Server.Hosting;

/// <summary>
/// One model of several, from <c>Models:&lt;name&gt;:*</c>. What it leaves unset comes from the <c>Inference</c> and
/// <c>Batching</c> sections.
/// </summary>
public sealed class ModelEntryOptions
{
    public const string Section = "Models";

    /// <summary>The model folder, as <c>Inference:ModelPath</c>; empty: the embedded model.</summary>
    public string Path { get; set; } = "";

    /// <summary><c>cpu</c> or <c>cuda</c>; unset: Inference:ExecutionProvider.</summary>
    public string? ExecutionProvider { get; set; }

    /// <summary>GPU ordinal; unset: Inference:DeviceId.</summary>
    public int? DeviceId { get; set; }

    /// <summary><c>fp32</c> or <c>fp16</c>; unset: Inference:Precision.</summary>
    public string? Precision { get; set; }

    /// <summary>Largest batch of this model's own batcher; unset: Batching:MaxBatchSize (or its provider's choice).</summary>
    public int? MaxBatchSize { get; set; }
}
