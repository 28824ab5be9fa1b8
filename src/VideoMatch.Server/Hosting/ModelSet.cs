using VideoMatch.Engine.Batching;
using VideoMatch.Engine.Inference;

namespace VideoMatch.Server.Hosting;

/// <summary>A model the server serves: the name requests choose it by, and its own settings.</summary>
public sealed record ModelSlot(string Name, InferenceOptions Inference, BatchingOptions Batching);

/// <summary>The models a server serves, from its settings, and the default one.</summary>
public static class ModelSet
{
    /// <summary>
    /// Every <c>Models:&lt;name&gt;</c> entry, in the order of the settings, plus the model of <c>Inference:ModelPath</c>
    /// (named after its folder) when it is set or when no entry is: the embedded model is named <c>embedded</c>.
    /// </summary>
    /// <exception cref="InvalidOperationException">Two models share a name, or the default names no model; the message says which.</exception>
    public static (IReadOnlyList<ModelSlot> Models, string Default) From(InferenceOptions inference, BatchingOptions batching, IReadOnlyList<KeyValuePair<string, ModelEntryOptions>> entries)
    {
        var models = new List<ModelSlot>();
        if (ServesModelPath(inference.ModelPath, entries.Count))
        {
            models.Add(new ModelSlot(NameOf(inference.ModelPath), inference, batching));
        }

        var problems = entries.SelectMany(e => Problems(e.Key, e.Value)).ToList();
        if (problems.Count > 0)
        {
            throw new InvalidOperationException(string.Join(" ", problems));
        }

        foreach (var (name, entry) in entries)
        {
            var options = inference.Copy();
            options.ModelPath = entry.Path;
            options.ExecutionProvider = entry.ExecutionProvider ?? inference.ExecutionProvider;
            options.DeviceId = entry.DeviceId ?? inference.DeviceId;
            options.Precision = entry.Precision ?? inference.Precision;
            if (models.Any(m => string.Equals(m.Name, name, StringComparison.OrdinalIgnoreCase)))
            {
                throw new InvalidOperationException($"Two models are named '{name}' (Models:{name}, and Inference:ModelPath's folder); rename one.");
            }

            models.Add(new ModelSlot(name, options, batching.For(entry.MaxBatchSize, options.IsCuda)));
        }

        var chosen = string.IsNullOrEmpty(inference.DefaultModel) ? models[0].Name : inference.DefaultModel;
        return models.FirstOrDefault(m => m.Name == chosen) is { } found
            ? (models, found.Name)
            : throw new InvalidOperationException($"Inference:DefaultModel is '{chosen}', but the server serves {string.Join(", ", models.Select(m => $"'{m.Name}'"))}.");
    }

    /// <summary>The <c>Models</c> section's entries, in key order.</summary>
    public static IReadOnlyList<KeyValuePair<string, ModelEntryOptions>> Entries(IConfiguration configuration) =>
        [.. configuration.GetSection(ModelEntryOptions.Section).GetChildren().Select(c => KeyValuePair.Create(c.Key, c.Get<ModelEntryOptions>() ?? new ModelEntryOptions()))];

    /// <summary>The names of the models <paramref name="configuration"/> serves, as <see cref="From"/> names them.</summary>
    public static IReadOnlyList<string> Names(IConfiguration configuration)
    {
        var path = configuration[$"{InferenceOptions.Section}:{nameof(InferenceOptions.ModelPath)}"] ?? "";
        var entries = Entries(configuration);
        return [.. (ServesModelPath(path, entries.Count) ? [NameOf(path)] : Array.Empty<string>()).Concat(entries.Select(e => e.Key))];
    }

    /// <summary>Whether <c>Inference:ModelPath</c>'s model is served: when it is set, or when no Models entry is (the embedded model).</summary>
    private static bool ServesModelPath(string? path, int entries) => !string.IsNullOrEmpty(path) || entries == 0;

    /// <summary>The name of the model in <paramref name="path"/>: its folder's name, or <c>embedded</c>.</summary>
    public static string NameOf(string path)
    {
        if (string.IsNullOrEmpty(path))
        {
            return "embedded";
        }

        var full = System.IO.Path.TrimEndingDirectorySeparator(System.IO.Path.GetFullPath(path));
        var folder = File.Exists(full) ? System.IO.Path.GetDirectoryName(full) ?? full : full;
        return System.IO.Path.GetFileName(folder) is { Length: > 0 } name ? name : "model";
    }

    /// <summary>What is wrong with model <paramref name="name"/>'s own settings, one sentence each naming the setting.</summary>
    private static IEnumerable<string> Problems(string name, ModelEntryOptions entry)
    {
        var key = $"{ModelEntryOptions.Section}:{name}";
        if (name.Length > 64 || name.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')) || name == HealthTags.Live)
        {
            yield return $"{key}: a model's name is at most 64 letters, digits, '-', '_' or '.', and not '{HealthTags.Live}' (requests and grpc.health.v1 name models by it).";
        }

        if (entry.ExecutionProvider is { } provider && provider is not ("cpu" or "cuda"))
        {
            yield return $"{key}:ExecutionProvider must be 'cpu' or 'cuda' (got '{provider}').";
        }

        if (entry.Precision is { } precision && precision is not ("fp32" or "fp16"))
        {
            yield return $"{key}:Precision must be 'fp32' or 'fp16' (got '{precision}').";
        }

        if (entry.DeviceId is < 0 or > 255)
        {
            yield return $"{key}:DeviceId must be 0..255 (a GPU ordinal) (got {entry.DeviceId}).";
        }

        if (entry.MaxBatchSize is < 1 or > BatchingOptionsValidator.MaxBatchSize)
        {
            yield return $"{key}:MaxBatchSize must be 1..{BatchingOptionsValidator.MaxBatchSize} (pairs) (got {entry.MaxBatchSize}).";
        }

        if (entry.Path.Length > 0 && !File.Exists(entry.Path) && !Directory.Exists(entry.Path))
        {
            yield return $"{key}:Path '{entry.Path}' does not exist; give a model folder, or leave it empty for the embedded model.";
        }
    }
}
