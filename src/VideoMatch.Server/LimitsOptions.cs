using Microsoft.Extensions.Options;

namespace VideoMatch.Server;

/// <summary>Input limits. Bound from the <c>Limits</c> section.</summary>
public sealed class LimitsOptions
{
    public const string Section = "Limits";

    /// <summary>Largest accepted width or height, raw or decoded, in pixels. Default 8192.</summary>
    public int MaxImageDimension { get; set; } = 8192;

    /// <summary>Largest gRPC message in bytes, both ways. Default 16 MiB (a 1920×1080 RGBA frame is 8.3 MB).</summary>
    public int MaxMessageBytes { get; set; } = 16 * 1024 * 1024;
}

internal sealed class LimitsOptionsValidator : IValidateOptions<LimitsOptions>
{
    public ValidateOptionsResult Validate(string? name, LimitsOptions options)
    {
        var problems = new List<string>();
        if (options.MaxImageDimension is < 32 or > 65535)
        {
            problems.Add($"Limits:MaxImageDimension must be 32..65535 (got {options.MaxImageDimension}).");
        }

        if (options.MaxMessageBytes < 64 * 1024)
        {
            problems.Add($"Limits:MaxMessageBytes must be at least 65536 (got {options.MaxMessageBytes}).");
        }

        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems);
    }
}
